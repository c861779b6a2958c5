"""Generated link-load traces of periodic training traffic, deterministic from a seed.

Why: the forecaster needs training data before the replay simulator or the lab can
record any, and its held-out test needs traces it has never seen.  The generator
mimics what a fat-tree carrying data-parallel training shows at 1 s polls:

* jobs with an iteration time (4-20 s, a little jitter per iteration) whose
  all-reduce phase (25-60% of the iteration) puts a flow on the links of the job:
  a full-rate flow reads ~0.95 utilization (frame overhead), a shared one 0.25-0.6;
* jobs start at random times and ramp up (warm-up), some pause (checkpoint);
* every link has slowly wandering background load and measurement noise;
* occasional hotspots (an incast or a storage burst) that nothing predicts.

Samples are time averages over each poll interval (10 sub-steps per sample), so
bursts that start mid-interval give partial values, as counters do.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from controller.loadtrace import HEADER, Link, write_rows
from mininet_topos.fattree_spec import fat_tree

SUBSTEPS = 10
SATURATION = 0.96   # utilization a saturated link reads (TCP reaches ~0.96 of the link rate)


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator; the defaults are the ones the shipped model was trained on."""

    k: int = 4
    duration_s: int = 1800
    sampling_period_s: float = 1.0
    jobs: Tuple[int, int] = (2, 5)            # number of jobs, inclusive range
    period_s: Tuple[float, float] = (4.0, 20.0)
    duty: Tuple[float, float] = (0.25, 0.6)
    jitter: float = 0.01                      # relative std of each iteration's length
    job_link_fraction: float = 0.4            # share of links each job touches
    full_rate_prob: float = 0.6               # a job's flow on a link runs at line rate
    hotspots_per_hour: float = 2.0            # per link
    capacity_bps: float = 10e6


@dataclass
class SynthTrace:
    t_s: np.ndarray            # (T,)
    links: List[Link]
    util: np.ndarray           # (n_links, T)
    capacity_bps: float


def fabric_links(k: int) -> List[Link]:
    """Directed links of a k-ary fat-tree (host links included), as the controller names them."""
    out: List[Link] = []
    for link in fat_tree(k).links:
        out.append((link.a, link.b))
        out.append((link.b, link.a))
    return sorted(out)


def _job_activity(rng: np.random.Generator, cfg: SynthConfig, n_fine: int, dt: float) -> np.ndarray:
    """Fraction of line rate a job's flow wants at each fine time step (0..1)."""
    period = rng.uniform(*cfg.period_s)
    duty = rng.uniform(*cfg.duty)
    duration = n_fine * dt
    start = rng.uniform(-0.2, 0.35) * duration
    lengths = period * (1.0 + cfg.jitter * rng.standard_normal(int(duration / period * 1.3) + 8))
    begins = start + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    t = (np.arange(n_fine) + 0.5) * dt
    it = np.searchsorted(begins, t, side="right") - 1
    valid = it >= 0
    itc = np.clip(it, 0, len(begins) - 1)
    on = valid & (t - begins[itc] < duty * lengths[itc])
    ramp_s = rng.uniform(10.0, 60.0)
    ramp = np.clip((t - start) / ramp_s, 0.0, 1.0) if start > 0 else np.ones(n_fine)
    act = on * np.maximum(ramp, 0.15 * valid)
    if rng.random() < 0.5:                           # a checkpoint pause
        p0 = rng.uniform(0.2, 0.9) * duration
        act[(t >= p0) & (t < p0 + rng.uniform(15.0, 60.0))] = 0.0
    if rng.random() < 0.3:                           # the job ends early
        act[t >= rng.uniform(0.6, 1.0) * duration] = 0.0
    return act


def generate(seed: int, cfg: SynthConfig = SynthConfig(), links: Optional[Sequence[Link]] = None) -> SynthTrace:
    """One trace: every link of a k-ary fat-tree (or ``links``) for ``cfg.duration_s`` seconds."""
    rng = np.random.default_rng(seed)
    links = list(links) if links is not None else fabric_links(cfg.k)
    n = len(links)
    T = int(round(cfg.duration_s / cfg.sampling_period_s))
    dt = cfg.sampling_period_s / SUBSTEPS
    n_fine = T * SUBSTEPS
    n_jobs = int(rng.integers(cfg.jobs[0], cfg.jobs[1] + 1))
    demand = np.zeros((n, T))
    for _ in range(n_jobs):
        act = _job_activity(rng, cfg, n_fine, dt).reshape(T, SUBSTEPS).mean(axis=1)
        touched = rng.random(n) < cfg.job_link_fraction
        share = np.where(rng.random(n) < cfg.full_rate_prob, rng.uniform(0.9, 1.0, n), rng.uniform(0.25, 0.6, n))
        demand += (touched * share)[:, None] * act[None, :]
    # slowly wandering background (AR(1)) around a per-link level
    level = rng.uniform(0.02, 0.15, n)
    ar = np.zeros((n, T))
    shocks = rng.standard_normal((n, T)) * 0.01
    for i in range(1, T):
        ar[:, i] = 0.98 * ar[:, i - 1] + shocks[:, i]
    background = np.clip(level[:, None] + ar, 0.0, None)
    # hotspots: unpredictable extra load for 10-60 s
    hot = np.zeros((n, T))
    rate = cfg.hotspots_per_hour * cfg.duration_s / 3600.0
    for li in range(n):
        for _ in range(int(rng.poisson(rate))):
            s = int(rng.integers(0, T))
            d = int(rng.uniform(10.0, 60.0) / cfg.sampling_period_s)
            hot[li, s:s + d] += rng.uniform(0.4, 0.8)
    # the wire saturates a little below 1 (frame overhead), with measurement noise on top
    util = np.minimum(demand + background + hot, SATURATION)
    util = np.clip(util + rng.standard_normal((n, T)) * 0.01, 0.0, 1.0)
    t_s = np.arange(T) * cfg.sampling_period_s
    return SynthTrace(t_s, links, util, cfg.capacity_bps)


def write_csv(path: str, trace: SynthTrace) -> int:
    """Write the trace in the link-load CSV format (rows in time order); returns rows written.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    from controller.atomicfile import open_atomic
    cap = trace.capacity_bps
    order = sorted(range(len(trace.links)), key=lambda i: trace.links[i])
    with open_atomic(path) as handle:
        handle.write(",".join(HEADER) + "\n")
        n = 0
        for j, t in enumerate(trace.t_s):
            n += write_rows(handle, ((float(t), trace.links[i], float(trace.util[i, j]),
                                      trace.util[i, j] * cap * trace.t_s[1] / 8.0 if len(trace.t_s) > 1 else 0.0,
                                      cap) for i in order))
    return n


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m models.synth OUT.csv --seed N [--k 4] [--duration 1800]``."""
    parser = argparse.ArgumentParser(prog="python -m models.synth", description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--duration", type=int, default=1800, help="seconds (default 1800)")
    args = parser.parse_args(argv)
    trace = generate(args.seed, SynthConfig(k=args.k, duration_s=args.duration))
    rows = write_csv(args.output, trace)
    print("wrote %s: %d links x %d samples (%d rows)" % (args.output, len(trace.links), len(trace.t_s), rows),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generated flow traces: the traffic the replay results are measured on.

* ``collide``   ring all-reduce training jobs whose long-lived connections
                (fixed NCCL-style ports across iterations) cross pods, so ECMP
                puts several of them on one core link.
* ``bursts``    the same training jobs plus periodic background bursts: every
                ``period`` seconds a set of bulk transfers between other hosts
                loads a few core links for a few seconds.
* ``multijob``  several training jobs with different periods (message size and
                compute gap differ per job), so their all-reduce bursts drift
                in and out of phase on the links they share.
* ``stride1``, ``stride2``, ``stride4``, ``stride8``, ``staggered``,
  ``random``, ``bijection``: Hedera's patterns (Al-Fares et al., NSDI 2010),
                one long-lived flow per host.
* ``websearch`` background flows with sizes drawn from the measured DCTCP
                web-search distribution (../shared/data/dc-flowsize-cdfs),
                Poisson arrivals at a target load.

Sizes scale with the link rate so a scenario has the same shape (seconds of
communication per iteration) at 10 Mbit/s in the lab and at 1 Gbit/s.  The
all-reduce message defaults to 100 MB at 1 Gbit/s: the real NCCL traces in
../shared/data/dl-training-nccl-traces-hta carry all-reduce/all-to-all
messages from 11 MB to 419 MB per call.  A ring all-reduce of M bytes over n
workers sends 2(n-1)/n * M bytes on every ring connection; we model one
iteration's communication as one flow per ring connection of that size,
depending on every flow of the previous iteration plus a compute gap
(synchronous data parallelism: the next all-reduce needs the next gradients).

    sidestep gen NAME --k 4 [--link-mbps 10] [--seed 0] [--duration S] -o FLOWS.csv   (controller/commands/gen.py)
    .venv/bin/python -m controller.scenarios table [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from controller.flowtrace import TraceFlow, save_flow_trace
from mininet_topos.fattree_spec import fat_tree

NCCL_PORT = 29500          # torch.distributed's default master port; ring ports count up from here
SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "..", "shared", "data")


@dataclass(frozen=True)
class Shape:
    k: int
    link_mbps: float
    seed: int

    @property
    def hosts(self) -> List[str]:
        return ["h%d" % i for i in range(1, self.k ** 3 // 4 + 1)]

    def bytes_for(self, seconds: float) -> float:
        """Bytes that take ``seconds`` at the full link rate."""
        return seconds * self.link_mbps * 1e6 / 8.0

    def pod(self, host_index: int) -> int:
        return host_index // (self.k * self.k // 4)


def ring_job(name: str, workers: Sequence[str], *, message_bytes: float, iterations: int,
             compute_s: float, start_s: float = 0.0, port_base: int = NCCL_PORT) -> List[TraceFlow]:
    """A ring all-reduce job: worker i sends to worker i+1 on one long-lived connection."""
    n = len(workers)
    per_conn = 2.0 * (n - 1) / n * message_bytes
    flows: List[TraceFlow] = []
    prev: List[str] = []
    for it in range(iterations):
        cur = []
        for w in range(n):
            fid = "%s.i%d.w%d" % (name, it, w)
            flows.append(TraceFlow(fid, start_s if it == 0 else 0.0, workers[w], workers[(w + 1) % n],
                                   round(per_conn), cls="training", job=name, iter=it,
                                   src_port=port_base + w, dst_port=port_base + 100 + w,
                                   deps=tuple(prev), gap_s=compute_s if it else 0.0))
            cur.append(fid)
        prev = cur
    return flows


NCCL_TRACES = os.path.join(SHARED_DATA, "dl-training-nccl-traces-hta")


def nccl_iteration_bytes(folder: str = NCCL_TRACES) -> List[float]:
    """All-reduce bytes per training iteration in the real NCCL traces, one value per (trace, profiler step).

    Why per iteration: a step all-reduces its gradients in several calls (buckets); the
    ring jobs here send one message per iteration, so their message is a step's total.
    Each trace is one rank's view; its CPU-side annotations are counted, or its GPU
    kernels where it has no annotations with sizes (never both: they are the same calls).
    """
    import csv
    import glob

    files = sorted(glob.glob(os.path.join(folder, "*_comm_events.csv")))
    if not files:
        raise FileNotFoundError("no NCCL traces (*_comm_events.csv) in %s (../shared/data is not here)" % folder)
    totals: List[float] = []
    for path in files:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        for event in ("cpu_nccl_annotation", "gpu_nccl_kernel"):
            sized = [r for r in rows if r.get("event") == event and r.get("collective") in ("all_reduce", "AllReduce")
                     and r.get("msg_bytes_est")]
            if sized:
                break
        steps: Dict[str, float] = {}
        for r in sized:
            steps[r["profiler_step"]] = steps.get(r["profiler_step"], 0.0) + float(r["msg_bytes_est"])
        totals += [steps[k] for k in sorted(steps)]
    return totals


def _job_messages(shape: Shape, jobs: int, message_s: float, message_bytes: object) -> List[float]:
    """Each job's all-reduce message: ``message_s`` at the link rate, ``message_bytes``, or "nccl":
    drawn (seeded, apart from the placement's random stream) from ``nccl_iteration_bytes``."""
    if message_bytes == "nccl":
        sizes = nccl_iteration_bytes()
        rng = np.random.default_rng([shape.seed, 6])
        return [float(sizes[int(rng.integers(len(sizes)))]) for _ in range(jobs)]
    one = shape.bytes_for(message_s) if message_bytes is None else float(message_bytes)   # type: ignore[arg-type]
    return [one] * jobs


def iterations_for(shape: Shape, duration_s: float, workers: int, message_bytes: float, compute_s: float) -> int:
    """Iterations of a ring job that fill ``duration_s`` on the non-blocking fabric (at least 1).

    One iteration there is its ring connection's bytes at the full link rate
    plus the compute gap; a loaded fabric only makes iterations longer.
    """
    per_conn = 2.0 * (workers - 1) / workers * message_bytes
    iteration_s = per_conn * 8.0 / (shape.link_mbps * 1e6) + compute_s
    return max(1, int(math.ceil(duration_s / iteration_s - 1e-9)))


def _spread_workers(shape: Shape, rng: np.random.Generator, jobs: int, per_job: int,
                    reserve: int = 0) -> List[List[str]]:
    """Place each job's workers in different pods (round-robin), so every ring hop crosses the core."""
    hosts = shape.hosts
    per_pod = shape.k * shape.k // 4
    pods = [list(rng.permutation(hosts[p * per_pod:(p + 1) * per_pod])) for p in range(shape.k)]
    out = []
    order = list(rng.permutation(shape.k))
    for j in range(jobs):
        ws = []
        for w in range(per_job):
            pod = order[(j + w) % shape.k]
            if len(pods[pod]) <= reserve:
                raise ValueError("not enough hosts for %d jobs of %d workers at k=%d" % (jobs, per_job, shape.k))
            ws.append(str(pods[pod].pop()))
        out.append(ws)
    return out


def collide(shape: Shape, *, jobs: int = 2, workers: int = 4, iterations: Optional[int] = None,
            message_s: float = 0.8, compute_s: float = 0.5, message_bytes: object = None,
            duration_s: Optional[float] = None) -> List[TraceFlow]:
    """Training jobs only; comm-heavy iterations (~1.6 s on the wire at full rate, 0.5 s compute).

    ``message_bytes`` overrides ``message_s`` (the message as seconds at the link
    rate); "nccl" draws each job's from the real traces (``nccl_iteration_bytes``).
    ``duration_s`` sets the iterations (see ``iterations_for``) unless
    ``iterations`` is given; neither: 12.
    """
    rng = np.random.default_rng(shape.seed)
    flows: List[TraceFlow] = []
    messages = _job_messages(shape, jobs, message_s, message_bytes)
    for j, ws in enumerate(_spread_workers(shape, rng, jobs, workers)):
        n_iter = _iterations(shape, iterations, duration_s, workers, messages[j], compute_s)
        flows += ring_job("job%d" % j, ws, message_bytes=messages[j], iterations=n_iter,
                          compute_s=compute_s, start_s=round(0.1 * j, 3), port_base=NCCL_PORT + 1000 * j)
    return flows


def _iterations(shape: Shape, iterations: Optional[int], duration_s: Optional[float], workers: int,
                message_bytes: float, compute_s: float) -> int:
    if iterations is not None:
        return int(iterations)
    if duration_s is not None:
        return iterations_for(shape, duration_s, workers, message_bytes, compute_s)
    return 12


def multijob(shape: Shape, *, jobs: int = 3, workers: int = 4, iterations: Optional[int] = None,
             message_s: float = 0.4, compute_s: float = 0.3, message_bytes: object = None,
             duration_s: Optional[float] = None) -> List[TraceFlow]:
    """``jobs`` ring all-reduce jobs whose periods differ: job j's message and compute gap are
    (1 + 0.6 j) times the first job's, so three jobs have periods in the ratio 1 : 1.6 : 2.2.

    Every job runs for the same ``duration_s`` (default 30 s) on the non-blocking
    fabric, so the slower jobs make fewer iterations; ``iterations`` fixes the
    count for every job instead.  With ``message_bytes="nccl"`` each job's message
    is drawn from the real traces and only the compute gaps scale.
    """
    rng = np.random.default_rng(shape.seed)
    drawn = message_bytes == "nccl"
    bases = _job_messages(shape, jobs, message_s, message_bytes)
    horizon = 30.0 if duration_s is None else duration_s
    flows: List[TraceFlow] = []
    for j, ws in enumerate(_spread_workers(shape, rng, jobs, workers)):
        scale = 1.0 + 0.6 * j
        message, compute = (bases[j] if drawn else bases[j] * scale), compute_s * scale
        n_iter = _iterations(shape, iterations, horizon, workers, message, compute)
        flows += ring_job("job%d" % j, ws, message_bytes=message, iterations=n_iter,
                          compute_s=round(compute, 6), start_s=round(0.1 * j, 3), port_base=NCCL_PORT + 1000 * j)
    return flows


def bursts(shape: Shape, *, jobs: int = 2, workers: int = 4, iterations: Optional[int] = None,
           message_s: float = 0.8, compute_s: float = 0.5, period_s: float = 6.0,
           burst_s: float = 3.0, burst_flows: Optional[int] = None, message_bytes: object = None,
           duration_s: Optional[float] = None) -> List[TraceFlow]:
    """Training jobs plus periodic inter-pod background bursts among the other hosts.

    Iterations as in ``collide``; the bursts cover ``duration_s`` when it is
    given, else 1.5 times the jobs' iterations at ``2 * message_s + compute_s`` each.
    """
    rng = np.random.default_rng(shape.seed)
    placed = _spread_workers(shape, rng, jobs, workers)
    messages = _job_messages(shape, jobs, message_s, message_bytes)
    flows: List[TraceFlow] = []
    n_iter = 0
    for j, ws in enumerate(placed):
        n_iter = _iterations(shape, iterations, duration_s, workers, messages[j], compute_s)
        flows += ring_job("job%d" % j, ws, message_bytes=messages[j], iterations=n_iter,
                          compute_s=compute_s, start_s=round(0.1 * j, 3), port_base=NCCL_PORT + 1000 * j)
    message = messages[-1] if messages else shape.bytes_for(message_s)
    used = {h for ws in placed for h in ws}
    free = [h for h in shape.hosts if h not in used]
    horizon = duration_s if duration_s is not None else n_iter * (2 * message / shape.bytes_for(1.0) + compute_s) * 1.5
    n_burst = burst_flows if burst_flows is not None else max(1, len(free) // 2)
    t = period_s / 2
    b = 0
    # per pod, the free hosts outside it, in ``free``'s order: a burst source draws its destination
    # there (a list per source cost k**6 / 32 steps per period: two minutes at k=32)
    free_pod = {h: shape.pod(int(h[1:]) - 1) for h in free}
    outside: Dict[int, List[str]] = {}
    while t < horizon:
        srcs = rng.permutation(free)[:n_burst]
        for i, src in enumerate(srcs):
            pod = free_pod[str(src)]
            others = outside.get(pod)
            if others is None:
                others = outside[pod] = [h for h in free if free_pod[h] != pod]
            if not others:
                continue
            dst = str(others[int(rng.integers(len(others)))])
            flows.append(TraceFlow("bg%d.%d" % (b, i), round(t, 3), str(src), dst,
                                   round(shape.bytes_for(burst_s)), rate_bps=shape.link_mbps * 1e6,
                                   cls="background", src_port=40000 + b % 1000, dst_port=5201 + i))
        t += period_s
        b += 1
    return flows


def hedera(shape: Shape, pattern: str, *, duration_s: Optional[float] = None,
           stagger: Optional[Tuple[float, float]] = None) -> List[TraceFlow]:
    """One long-lived flow per host (``duration_s`` at full rate, default 60 s), Hedera's traffic patterns.

    ``stagger``: staggered's (p_edge, p_pod), the chances that a host's destination is under
    its own edge switch or elsewhere in its own pod (default Hedera's (0.2, 0.3)).
    """
    p_edge, p_pod = (0.2, 0.3) if stagger is None else stagger
    if pattern != "staggered" and stagger is not None:
        raise ValueError("stagger applies to the staggered pattern only")
    if not (0.0 <= p_edge and 0.0 <= p_pod and p_edge + p_pod <= 1.0):
        raise ValueError("stagger needs p_edge, p_pod >= 0 with p_edge + p_pod <= 1, got %g,%g" % (p_edge, p_pod))
    rng = np.random.default_rng(shape.seed)
    hosts = shape.hosts
    n = len(hosts)
    per_edge = shape.k // 2
    per_pod = per_edge * per_edge
    dst_of: List[int] = []
    if pattern.startswith("stride"):
        step = int(pattern[len("stride"):])
        if step % n == 0:
            raise ValueError("%s would make every host send to itself: the fabric has %d hosts (use a larger --k)"
                             % (pattern, n))
        dst_of = [(i + step) % n for i in range(n)]
    elif pattern == "bijection":
        while True:
            perm = rng.permutation(n)
            if all(perm[i] != i for i in range(n)):
                dst_of = [int(x) for x in perm]
                break
    elif pattern == "random":
        for i in range(n):
            d = int(rng.integers(n - 1))
            dst_of.append(d if d < i else d + 1)
    elif pattern == "staggered":  # staggered(p_edge, p_pod): same edge p_edge, same pod p_pod, else other pod
        for i in range(n):
            r = rng.random()
            edge0, pod0 = i // per_edge * per_edge, i // per_pod * per_pod
            same_pod = [j for j in range(pod0, pod0 + per_pod) if j // per_edge != i // per_edge]
            if r < p_edge:
                cands = [j for j in range(edge0, edge0 + per_edge) if j != i]
            elif r < p_edge + p_pod:
                cands = same_pod
            else:
                cands = [j for j in range(n) if j // per_pod != i // per_pod]
            if not cands:   # k=2: one host per edge and per pod; the next wider group, as the lab does
                cands = same_pod or [j for j in range(n) if j // per_pod != i // per_pod]
            dst_of.append(int(cands[int(rng.integers(len(cands)))]))
    else:
        raise ValueError("unknown Hedera pattern %r" % pattern)
    size = round(shape.bytes_for(60.0 if duration_s is None else duration_s))
    return [TraceFlow("f%d" % i, 0.0, hosts[i], hosts[dst_of[i]], size, cls="training", job="",
                      src_port=50000 + i, dst_port=5001) for i in range(n)]


# the measured flow-size distributions in ../shared/data/dc-flowsize-cdfs, by name (see its PROVENANCE.md)
CDFS = {
    "websearch": ("opera", "websearch.csv"),                       # DCTCP web search (pFabric's table)
    "datamining": ("opera", "datamining.csv"),                     # VL2 data mining (pFabric's table)
    "fb-hadoop": ("opera", "FB_Hadoop_Inter_Rack_FlowCDF.csv"),    # Facebook Hadoop, inter-rack
    "alistorage": ("hpcc", "AliStorage2019.txt"),                  # Alibaba storage, 2019
    "google-rpc": ("hpcc", "GoogleRPC2008.txt"),                   # Google RPCs, before 2008
}


def cdf_file(name: str) -> str:
    """The file of a named distribution (``CDFS``), or ``name`` itself taken as a path."""
    if name in CDFS:
        folder, file = CDFS[name]
        path = os.path.join(SHARED_DATA, "dc-flowsize-cdfs", folder, file)
        if not os.path.exists(path):
            raise FileNotFoundError("flow-size CDF %s not found (../shared/data is not here)" % path)
        return path
    if not os.path.exists(name):
        raise FileNotFoundError("flow-size CDF %r is neither a file nor one of %s" % (name, ", ".join(CDFS)))
    return name


def read_cdf(path: str) -> np.ndarray:
    """A size CDF as (size, fraction) rows; accepts the opera (0-1) and hpcc (0-100) formats.

    Homa's files (a first line with the mean alone) read too.  Anything else is refused:
    fewer than two points, a negative size, sizes or fractions going down, or a last
    fraction that is not 1 (100 in the percent format).
    """
    rows = []
    if os.path.isdir(path):
        raise ValueError("--cdf %s is a folder; give a 'size fraction' file or one of %s" % (path, ", ".join(CDFS)))
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                parts = line.replace(",", " ").split()
                if len(parts) >= 2:
                    try:
                        rows.append((float(parts[0]), float(parts[1])))
                    except ValueError:
                        raise ValueError("%s:%d: not a size and a fraction: %r" % (path, n, line.strip())) from None
    except UnicodeDecodeError as exc:
        raise ValueError("%s is not a text file (byte %d is not UTF-8); a flow-size CDF has 'size fraction' "
                         "lines" % (path, exc.start)) from None
    arr = np.asarray(rows, dtype=float).reshape(-1, 2)
    if len(arr) >= 2 and arr[-1, 1] > 1.5:
        arr[:, 1] /= 100.0
    if (len(arr) < 2 or not np.isfinite(arr).all() or (arr[:, 0] < 0).any() or (np.diff(arr, axis=0) < 0).any()
            or abs(arr[-1, 1] - 1.0) > 1e-6):
        raise ValueError("%s is not a flow-size CDF: it needs 'size fraction' lines with both going up and the "
                         "last fraction 1 (or 100)" % path)
    return arr


def websearch(shape: Shape, *, load: Optional[float] = None, duration_s: Optional[float] = None,
              cdf: Optional[str] = None) -> List[TraceFlow]:
    """Poisson background at ``load`` (default 0.3) of the hosts' capacity for ``duration_s`` (default 30 s),
    sizes from a measured CDF (``cdf``: a name in ``CDFS`` or a file; default the DCTCP web search)."""
    if load is None:
        load = 0.3
    if not 0.0 < load <= 1.0:
        raise ValueError("background load must be in (0, 1], got %g" % load)
    cdf = read_cdf(cdf_file(cdf or "websearch"))
    rng = np.random.default_rng(shape.seed)
    mean = float(np.sum(np.diff(cdf[:, 1]) * (cdf[1:, 0] + cdf[:-1, 0]) / 2))
    hosts = shape.hosts
    rate = load * len(hosts) * shape.link_mbps * 1e6 / 8 / mean  # flows per second
    if duration_s is None:
        duration_s = 30.0
    flows = []
    t = 0.0
    i = 0
    while True:
        t += float(rng.exponential(1.0 / rate))
        if t >= duration_s:
            break
        u = float(rng.random())
        size = float(np.interp(u, cdf[:, 1], cdf[:, 0]))
        s, d = rng.choice(len(hosts), size=2, replace=False)
        flows.append(TraceFlow("w%d" % i, round(t, 6), hosts[s], hosts[d], max(1.0, round(size))))
        i += 1
    return flows


SCENARIOS: Dict[str, Callable[..., List[TraceFlow]]] = {
    "collide": collide,
    "bursts": bursts,
    "multijob": multijob,
    "stride1": lambda s, **kw: hedera(s, "stride1", **kw),
    "stride2": lambda s, **kw: hedera(s, "stride2", **kw),
    "stride4": lambda s, **kw: hedera(s, "stride4", **kw),
    "stride8": lambda s, **kw: hedera(s, "stride8", **kw),
    "staggered": lambda s, **kw: hedera(s, "staggered", **kw),
    "random": lambda s, **kw: hedera(s, "random", **kw),
    "bijection": lambda s, **kw: hedera(s, "bijection", **kw),
    "websearch": websearch,
}
HEDERA = ("stride1", "stride2", "stride4", "stride8", "staggered", "random", "bijection")
TRAINING = ("collide", "bursts", "multijob")     # the scenarios with ring all-reduce jobs (and their options)


def generate(name: str, k: int = 4, link_mbps: float = 1000.0, seed: int = 0, **options: object) -> List[TraceFlow]:
    """The named scenario on a k-ary fat-tree; sorted by start time then flow_id.

    ``options`` (None means the scenario's default): ``duration_s`` for every
    scenario; ``jobs``, ``workers``, ``iterations``, ``message_bytes``,
    ``compute_s`` for the training ones (``TRAINING``), which also take
    ``load`` (add measured-size Poisson background at that fraction of the
    hosts' capacity) and ``cdf`` (its size distribution: a name in ``CDFS`` or
    a file); ``load`` and ``cdf`` for ``websearch``; ``stagger`` (p_edge, p_pod)
    for ``staggered``.
    """
    if name not in SCENARIOS:
        raise ValueError("unknown scenario %r; choose one of %s" % (name, ", ".join(SCENARIOS)))
    fat_tree(k, link_mbps)  # validates k and the rate with the topology's own messages
    given = {key: v for key, v in options.items() if v is not None}
    allowed = {"duration_s"} | ({"jobs", "workers", "iterations", "message_bytes", "compute_s", "load", "cdf"}
                                if name in TRAINING else {"load", "cdf"} if name == "websearch"
                                else {"stagger"} if name == "staggered" else set())
    extra = sorted(set(given) - allowed)
    if extra:
        raise ValueError("scenario %s does not take %s" % (name, ", ".join(extra)))
    shape = Shape(int(k), float(link_mbps), int(seed))
    if name in TRAINING:
        load, cdf = given.pop("load", None), given.pop("cdf", None)
        if cdf is not None and load is None:
            raise ValueError("cdf applies to the background that load adds")
        flows = SCENARIOS[name](shape, **given)
        if load is not None:     # measured-size background among all hosts, over the jobs' span
            horizon = given.get("duration_s") or training_span(shape, flows)
            flows += websearch(shape, load=load, duration_s=horizon, cdf=cdf)
    else:
        flows = SCENARIOS[name](shape, **given)
    return sorted(flows, key=lambda f: (f.start_s, f.flow_id))


def training_span(shape: Shape, flows: Sequence[TraceFlow]) -> float:
    """Seconds the training jobs in ``flows`` last on the non-blocking fabric (the longest job)."""
    per_job: Dict[str, List[TraceFlow]] = {}
    for f in flows:
        if f.job:
            per_job.setdefault(f.job, []).append(f)
    span = 0.0
    for job in per_job.values():
        iters = max(f.iter or 0 for f in job) + 1
        one = max(f.size_bytes for f in job) * 8.0 / (shape.link_mbps * 1e6) + max(f.gap_s for f in job)
        span = max(span, min(f.start_s for f in job) + iters * one)
    return span


def write(path: str, flows: Sequence[TraceFlow]) -> None:
    save_flow_trace(path, flows)


# --------------------------------------------------------------------------
# the results table of docs/replay.md
# --------------------------------------------------------------------------
def results_table(seeds: Sequence[int], *, k: int = 4, link_mbps: float = 1000.0, model: Optional[str] = None,
                  log: Callable[[str], None] = lambda s: None) -> str:
    from controller.fabric import Fabric
    from controller.replay import POLICIES, load_model, mean_iteration_s, run_policy

    fabric = Fabric.from_spec(fat_tree(k, link_mbps))
    predictor = load_model(model, 1.0)
    out = ["| scenario | seed | ecmp / ideal | reactive / ideal | predictive / ideal | predictive / ecmp "
           "| predictive / reactive | reroutes (reactive, predictive) |",
           "|---|---|---|---|---|---|---|---|"]
    for name in ("collide", "bursts"):
        for seed in seeds:
            flows = generate(name, k, link_mbps, seed)
            it = {}
            rr = {}
            for pol in POLICIES:
                run = run_policy(pol, fabric, flows, seed=seed, predictor=predictor if pol == "predictive" else None)
                it[pol] = mean_iteration_s(run.summary)
                rr[pol] = run.summary["reroutes"]
                log("%s seed %d %s: mean iteration %.3f s" % (name, seed, pol, it[pol]))
            out.append("| %s | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %d, %d |" % (
                name, seed, it["ecmp"] / it["ideal"], it["reactive"] / it["ideal"],
                it["predictive"] / it["ideal"], it["predictive"] / it["ecmp"],
                it["predictive"] / it["reactive"], rr["reactive"], rr["predictive"]))
    out += ["", "| Hedera pattern (k=%d) | seed | ecmp | reactive | predictive | ideal |" % k,
            "|---|---|---|---|---|---|"]
    for name in HEDERA:
        for seed in (seeds if name in ("staggered", "random", "bijection") else seeds[:1]):
            flows = generate(name, k, link_mbps, seed)
            tput = {}
            for pol in POLICIES:
                run = run_policy(pol, fabric, flows, seed=seed, predictor=predictor if pol == "predictive" else None)
                tput[pol] = run.summary["aggregate_throughput_bps"]
            log("%s seed %d done" % (name, seed))
            out.append("| %s | %d | %.3f | %.3f | %.3f | 1.000 |" % (
                name, seed, tput["ecmp"] / tput["ideal"], tput["reactive"] / tput["ideal"],
                tput["predictive"] / tput["ideal"]))
    return "\n".join(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m controller.scenarios", description=__doc__.splitlines()[0])
    ap.add_argument("name", help="scenario (%s) or 'table'" % ", ".join(SCENARIOS))
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--link-mbps", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--model", default=None, help="forecaster for predictive (default: shipped; 'persistence': baseline)")
    ap.add_argument("-o", "--output", help="write the flow trace here")
    args = ap.parse_args(argv)
    try:
        if args.name == "table":
            print(results_table(args.seeds, k=args.k, link_mbps=args.link_mbps, model=args.model,
                                log=lambda s: print(s, file=sys.stderr)))
            return 0
        if not args.output:
            ap.error("-o FLOWS.csv is required")
        flows = generate(args.name, args.k, args.link_mbps, args.seed)
        write(args.output, flows)
    except (ValueError, OSError) as exc:
        print("scenarios: error: %s" % exc, file=sys.stderr)
        return 2
    print("wrote %d flows to %s; replay with: sidestep replay %s --k %d --link-mbps %g --out DIR"
          % (len(flows), args.output, args.output, args.k, args.link_mbps), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

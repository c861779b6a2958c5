"""Simulation speed: simulated seconds per wall-clock second, measured in one run.

Why: replay must be much faster than the traffic it replays (issue 6 asks for at
least 100x at k=8 with 1,000 concurrent flows, with the control loop on) or
nobody will sweep policies.

Workloads (stated so the ratio means something), on a k-ary fat-tree with 1 Gbit/s links,
a control tick every second, and about ``--flows`` flows in flight the whole time:

* ``training``: ring all-reduce jobs of 8 workers (one per pod where k allows, so every
  ring hop crosses the core), each ring hop carried by 8 NCCL-style channels (8 long-lived
  connections with fixed ports); per job an all-reduce message of 100-400 MB (the upper
  part of the 11-419 MB range of the real NCCL traces), 0.2-0.6 s of compute between
  iterations and a start within the first second, so jobs drift apart; jobs are added
  until ``--flows`` connections exist.  Training class: the planner does move these.
* ``churny``: ``--flows`` closed-loop chains between random hosts, 20-200 MB each
  (a new flow starts when its predecessor finishes): a completion every ~10 ms at k=8.
  Background class, so the planner never moves them, but the monitor, forecaster and
  the planner's hot-link check still run every tick.
* ``long``: the same chains with 1-4 GB flows (long-lived elephants: almost no completions).

Policies: ``ecmp`` (no control loop), ``reactive`` (real monitor + planner every
tick) and ``predictive`` (plus the forecaster: ``--model``, default the shipped
model; ``persistence`` for the baseline, which shows the simulator's own cost).
Each (k, workload, policy) runs ``--repeat`` times after a short warm-up run (module
imports, first-use caches); the median speed is reported (the machine is shared and noisy).  The fair-share solver is the compiled kernel
when Numba is installed; its one-time load (or first compile) is timed and printed
separately, not counted in any run.  ``--numpy-baseline`` also runs every cell with
the numpy reference solver, alternating with the kernel, and prints the ratio.

    .venv/bin/python tests/bench/bench_sim.py [--k 8 16] [--flows 1000] [--sim-seconds 30]
        [--workload training churny long] [--policy ecmp reactive predictive] [--repeat 3]
        [--numpy-baseline]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, List

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from controller import fairshare  # noqa: E402
from controller.fabric import Fabric  # noqa: E402
from controller.flowtrace import TraceFlow  # noqa: E402
from controller.scenarios import NCCL_PORT, ring_job  # noqa: E402
from controller.sim import Simulator  # noqa: E402
from mininet_topos.fattree_spec import fat_tree  # noqa: E402


def chains(hosts, n_chains: int, per_chain: int, seed: int, lo: float = 20e6, hi: float = 200e6):
    rng = np.random.default_rng(seed)
    flows = []
    for c in range(n_chains):
        prev = None
        for j in range(per_chain):
            src, dst = rng.choice(len(hosts), size=2, replace=False)
            fid = "c%d_%d" % (c, j)
            flows.append(TraceFlow(fid, 0.0, hosts[src], hosts[dst], float(rng.uniform(lo, hi)),
                                   deps=(prev,) if prev else (), src_port=10000 + c, dst_port=5000 + j))
            prev = fid
    return flows


def training(k: int, n_flows: int, sim_seconds: float, seed: int = 1, workers: int = 8,
             channels: int = 8) -> List[TraceFlow]:
    """Ring all-reduce jobs with ``channels`` connections per ring hop until ``n_flows`` connections."""
    rng = np.random.default_rng(seed)
    hosts = ["h%d" % i for i in range(1, k ** 3 // 4 + 1)]
    per_pod = k * k // 4
    pods = [list(rng.permutation(hosts[p * per_pod:(p + 1) * per_pod])) for p in range(k)]
    flows: List[TraceFlow] = []
    job = 0
    conns = 0
    while conns < n_flows:
        message_bytes = float(rng.uniform(100e6, 400e6))
        compute_s = round(float(rng.uniform(0.2, 0.6)), 3)
        start_s = round(float(rng.uniform(0.0, 1.0)), 3)
        per_conn = 2.0 * (workers - 1) / workers * message_bytes / channels
        # iterations enough to outlast sim_seconds even if every connection ran at full line rate
        iterations = int(sim_seconds / (per_conn * 8 / 1e9 + compute_s)) + 2
        order = sorted(range(k), key=lambda p: -len(pods[p]))
        ws = [str(pods[p].pop()) for p in order[:workers] if pods[p]]
        if len(ws) < 2:   # hosts used up: start again (a host then serves several jobs)
            pods = [list(rng.permutation(hosts[p * per_pod:(p + 1) * per_pod])) for p in range(k)]
            continue
        for ch in range(channels):
            flows += ring_job("j%d.c%d" % (job, ch), ws, message_bytes=message_bytes / channels,
                              iterations=iterations, compute_s=compute_s, start_s=start_s,
                              port_base=NCCL_PORT + 1000 * ch + 16 * (job % 60))
        conns += channels * len(ws)
        job += 1
    return flows


def workload(name: str, k: int, n_flows: int, sim_seconds: float) -> List[TraceFlow]:
    hosts = ["h%d" % i for i in range(1, k ** 3 // 4 + 1)]
    if name == "training":
        flows = training(k, n_flows, sim_seconds)
    else:
        lo, hi = {"churny": (20e6, 200e6), "long": (1000e6, 4000e6)}[name]
        # enough flows per chain to outlast sim_seconds
        per_chain = max(2, int(sim_seconds * 1e9 / 8 / (n_flows / len(hosts)) / lo) + 2)
        flows = chains(hosts, n_flows, per_chain, seed=1, lo=lo, hi=hi)
    return trim_to_horizon(k, flows, sim_seconds)


def trim_to_horizon(k: int, flows: List[TraceFlow], sim_seconds: float, margin: int = 2) -> List[TraceFlow]:
    """The flows a replay of ``sim_seconds`` can reach, so setup is not paid for the rest.

    Why: the generators above write traces long enough for any policy, often
    several times more flows than ``sim_seconds`` reaches; a replay reads and
    indexes every flow of its trace, so timing those would charge the replay
    for traffic outside the measured interval.  Kept: every flow that starts
    before the horizon under ``ideal`` (the non-blocking fabric, where flows
    finish soonest), plus ``margin`` generations of flows that wait on them,
    closed under dependencies.  ``bench`` reports the simulated time reached.
    """
    from controller.sim import big_switch_fabric

    class _Stop(Exception):
        pass

    def stop(t, done, total):
        if t >= sim_seconds:
            raise _Stop
    sim = Simulator(big_switch_fabric(Fabric.from_spec(fat_tree(k, 1000.0))), flows, seed=0,
                    poll_interval_s=1.0, progress=stop)
    try:
        sim.run()
    except _Stop:
        pass
    keep = {f.flow_id for f, t in zip(flows, sim.start_s) if t == t}    # started (not NaN)
    for _ in range(margin):
        keep |= {f.flow_id for f in flows if f.deps and any(d in keep for d in f.deps)}
    while True:    # a kept flow must keep all of its dependencies
        closed = {f.flow_id for f in flows if f.flow_id in keep and all(d in keep for d in f.deps)}
        if closed == keep:
            return [f for f in flows if f.flow_id in keep]
        keep = closed


class _Horizon(Exception):
    pass


def bench(k: int, flows: List[TraceFlow], sim_seconds: float, policy: str, model=None,
          compiled=None, quantum: float = 0.0) -> Dict[str, float]:
    fabric = Fabric.from_spec(fat_tree(k, 1000.0))
    hook = None
    if policy != "ecmp":
        from controller.replay import make_hook
        hook = make_hook(policy, fabric, poll_interval_s=1.0, model=model)
    seen = {"done": 0, "in_flight": []}
    sim = None

    def progress(t, done, total):
        seen["done"] = done
        seen["in_flight"].append(sim.in_flight)
        if t >= sim_seconds:
            raise _Horizon
    sim = Simulator(fabric, flows, seed=0, poll_interval_s=1.0, hook=hook, progress=progress,
                    compiled=compiled, quantum_s=quantum)
    t0 = time.perf_counter()
    try:
        result = sim.run()
        reached = float(result.tick_s[-1]) if len(result.tick_s) else 0.0
    except _Horizon:
        reached = sim_seconds
    wall = time.perf_counter() - t0
    return {"wall": wall, "speed": reached / wall, "reached": reached, "completions": seen["done"] / reached,
            "in_flight": float(np.mean(seen["in_flight"])) if seen["in_flight"] else 0.0,
            "events": sim.solves / reached,
            "planner_calls": getattr(hook, "planner_calls", 0), "ticks": getattr(hook, "ticks", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--sim-seconds", type=float, default=30.0)
    ap.add_argument("--workload", nargs="+", default=["training", "churny", "long"],
                    choices=["training", "churny", "long"])
    ap.add_argument("--policy", nargs="+", default=["ecmp", "reactive", "predictive"],
                    choices=["ecmp", "reactive", "predictive"])
    ap.add_argument("--model", default=None, help="predictive's forecaster (default: shipped; 'persistence')")
    ap.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is reported")
    ap.add_argument("--quantum", type=float, nargs="+", default=[0.0], metavar="S",
                    help="completion quantum(s) (Simulator(quantum_s=)); 0 = exact; each is a column")
    ap.add_argument("--numpy-baseline", action="store_true",
                    help="also run each cell with the numpy fair-share solver and print the ratio")
    args = ap.parse_args()
    from bench_forecaster import cpu_model     # this folder is on the path when run as a script
    # speeds depend on the machine (they rose 2-3x when this project moved to another, 2026-11-29)
    print("hardware: %s, %d cores (os.cpu_count); %s" % (cpu_model(), os.cpu_count(),
                                                           time.strftime("%Y-%m-%d %H:%M %Z")), flush=True)
    t0 = time.perf_counter()
    fairshare.warm_up()
    print("fair-share solver: %s; first call (JIT load or compile) %.2f s, not counted below"
          % ("compiled (Numba)" if fairshare.COMPILED else "numpy (Numba not installed)",
             time.perf_counter() - t0), flush=True)
    rows = []
    for k in args.k:
        for name in args.workload:
            flows = workload(name, k, args.flows, args.sim_seconds)
            cells = []
            info = None
            for policy, quantum in [(p, q) for p in args.policy for q in args.quantum]:
                runs, base = [], []
                bench(k, flows, min(args.sim_seconds, 3.0), policy, args.model)   # warm-up: imports, caches
                for _ in range(args.repeat):
                    runs.append(bench(k, flows, args.sim_seconds, policy, args.model, quantum=quantum))
                    if args.numpy_baseline:
                        base.append(bench(k, flows, args.sim_seconds, policy, args.model,
                                          compiled=False))
                speeds = sorted(r["speed"] for r in runs)
                med = speeds[len(speeds) // 2]
                if base:
                    bspeeds = sorted(r["speed"] for r in base)
                    bmed = bspeeds[len(bspeeds) // 2]
                    print("    numpy solver: median %.1fx (runs: %s); compiled / numpy = %.2f"
                          % (bmed, ", ".join("%.1f" % v for v in bspeeds), med / bmed), flush=True)
                info = runs[0]
                print("k=%-3d workload=%-8s policy=%-10s quantum=%g flows=%d reached=%.0fs in_flight=%.0f "
                      "completions/sim_s=%.1f solves/sim_s=%.1f planner_calls=%d/%d ticks  speed median %.1fx (runs: %s)"
                      % (k, name, policy, quantum, len(flows), info["reached"], info["in_flight"], info["completions"],
                         info["events"],
                         info["planner_calls"], info["ticks"], med, ", ".join("%.1f" % s for s in speeds)),
                      flush=True)
                cells.append("%.0fx" % med if med >= 10 else "%.1fx" % med)
            rows.append("| %d | %s | %.0f | %.0f | %s |" % (k, name, info["in_flight"], info["completions"],
                                                           " | ".join(cells)))
    print()
    columns = [p if args.quantum == [0.0] else "%s q=%g" % (p, q) for p in args.policy for q in args.quantum]
    print("| k | workload | flows in flight | completions per sim-s | %s |" % " | ".join(columns))
    print("|---|---|---|---|%s" % ("---|" * len(columns)))
    print("\n".join(rows))


if __name__ == "__main__":
    main()

"""Simulation speed: simulated seconds per wall-clock second, measured in one run.

Why: replay must be much faster than the traffic it replays (issue 6 asks for at
least 100x at k=8 with 1,000 concurrent flows) or nobody will sweep policies.

Workload (stated so the ratio means something): a k-ary fat-tree with 1 Gbit/s
links and ``--flows`` closed-loop chains, each always having one flow in flight
between random hosts (a new flow starts when the previous one of its chain
finishes), sizes uniform in a range: 20-200 MB (churny: a completion, hence a
full max-min re-solve, every ~20 ms of simulated time) and 1-4 GB (the
long-lived elephants a training fabric carries).  So there are exactly ``--flows``
concurrent flows the whole time.  ECMP routing with a control tick every second
(the tick builds the port counters the monitor would read), and optionally the
full predictive policy (real monitor + forecaster + planner) when they exist.

    .venv/bin/python tests/bench/bench_sim.py [--k 8 16] [--flows 1000] [--sim-seconds 30]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from controller.fabric import Fabric  # noqa: E402
from controller.flowtrace import TraceFlow  # noqa: E402
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


def bench(k: int, n_flows: int, sim_seconds: float, policy: str, sizes_mb=(20.0, 200.0)) -> None:
    fabric = Fabric.from_spec(fat_tree(k, 1000.0))
    hosts = fabric.hosts()
    # enough flows per chain to outlast sim_seconds; the run stops at the horizon
    lo, hi = sizes_mb[0] * 1e6, sizes_mb[1] * 1e6
    per_chain = max(2, int(sim_seconds * 1e9 / 8 / (n_flows / len(hosts)) / lo) + 2)
    flows = chains(hosts, n_flows, per_chain, seed=1, lo=lo, hi=hi)
    hook = None
    if policy != "ecmp":
        from controller.replay import make_hook
        hook = make_hook(policy, fabric, poll_interval_s=1.0)
    seen = {"done": 0}

    def progress(t, done, total):
        seen["done"] = done
        if t >= sim_seconds:
            raise StopIteration
    sim = Simulator(fabric, flows, seed=0, poll_interval_s=1.0, hook=hook, progress=progress)
    t0 = time.perf_counter()
    try:
        sim.run()
    except StopIteration:
        pass
    wall = time.perf_counter() - t0
    print("k=%-3d hosts=%-5d concurrent_flows=%-5d sizes=%g-%gMB policy=%-10s sim_s=%.0f completions/sim_s=%.1f "
          "wall_s=%.2f speed=%.1fx real time" % (k, len(hosts), n_flows, sizes_mb[0], sizes_mb[1], policy,
                                                 sim_seconds, seen["done"] / sim_seconds, wall, sim_seconds / wall))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--sim-seconds", type=float, default=30.0)
    ap.add_argument("--policy", nargs="+", default=["ecmp", "reactive"])
    ap.add_argument("--sizes-mb", nargs="+", default=["20:200", "1000:4000"],
                    help="flow size ranges lo:hi in MB (one run each; default churny 20:200 and long-lived 1000:4000)")
    args = ap.parse_args()
    for k in args.k:
        for sizes in args.sizes_mb:
            lo, hi = (float(x) for x in sizes.split(":"))
            for policy in args.policy:
                bench(k, args.flows, args.sim_seconds, policy, (lo, hi))


if __name__ == "__main__":
    main()

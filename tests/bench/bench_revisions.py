"""Replay speed of two checkouts of Sidestep on the same traces, alternating, in one run.

Why: this machine's speed drifts by up to 2x over an hour, so "before" and
"after" numbers taken at different times say little.  This runs the same
trimmed bench traces (``bench_sim.workload``) with the code of ``--base`` (for
example ``git worktree add /tmp/base <commit>``) and of this checkout, one
fresh process per run, alternating (base first in odd repeats, this first in
even ones), and prints both medians and their ratio.

    .venv/bin/python tests/bench/bench_revisions.py --base /tmp/base [--workload training churny long]
        [--policy ecmp reactive predictive] [--repeat 5] [--sim-seconds 20]
"""
from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def worker(repo: str, trace: str, policy: str, sim_seconds: float) -> None:
    """One timed replay with the code of ``repo`` (after a short warm-up), printed as a speed."""
    sys.path.insert(0, repo)
    from controller.fabric import Fabric
    from controller.flowtrace import TraceFlow
    from controller.sim import Simulator
    from mininet_topos.fattree_spec import fat_tree
    try:
        from controller import fairshare
        fairshare.warm_up()
    except ImportError:          # a checkout from before the compiled solver
        pass
    with open(trace, "rb") as fh:
        k, rows = pickle.load(fh)
    flows = [TraceFlow(**r) for r in rows]

    class Horizon(Exception):
        pass

    def once(horizon: float) -> float:
        fabric = Fabric.from_spec(fat_tree(k, 1000.0))
        hook = None
        if policy != "ecmp":
            from controller.replay import make_hook
            hook = make_hook(policy, fabric, poll_interval_s=1.0)

        def stop(t, done, total):
            if t >= horizon:
                raise Horizon
        sim = Simulator(fabric, flows, seed=0, poll_interval_s=1.0, hook=hook, progress=stop)
        t0 = time.perf_counter()
        try:
            sim.run()
        except Horizon:
            pass
        return horizon / (time.perf_counter() - t0)
    once(min(3.0, sim_seconds))
    print("%.3f" % once(sim_seconds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help="another checkout of Sidestep (the baseline); required")
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--sim-seconds", type=float, default=20.0)
    ap.add_argument("--workload", nargs="+", default=["training"], choices=["training", "churny", "long"])
    ap.add_argument("--policy", nargs="+", default=["ecmp", "reactive", "predictive"],
                    choices=["ecmp", "reactive", "predictive"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--worker", nargs=3, metavar=("REPO", "TRACE", "POLICY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.worker[2], args.sim_seconds)
        return
    if not args.base:
        ap.error("--base is required: another checkout, e.g. git worktree add /tmp/base <commit>")
    base = os.path.abspath(args.base)
    if not os.path.isfile(os.path.join(base, "controller", "sim.py")):
        sys.exit("bench_revisions: %s is not a Sidestep checkout (no controller/sim.py); "
                 "make one with: git worktree add /tmp/base <commit>" % base)
    sys.path.insert(0, HERE)
    import bench_sim
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.workload:
            trace = os.path.join(tmp, name + ".pkl")
            flows = bench_sim.workload(name, args.k, args.flows, args.sim_seconds)
            with open(trace, "wb") as fh:
                pickle.dump((args.k, [asdict(f) for f in flows]), fh)
            for policy in args.policy:
                speeds = {"base": [], "this": []}
                for i in range(args.repeat):
                    # which one goes first alternates: on this machine the second of two back-to-back
                    # runs was often the slower (10 of 13 pairs once, whichever code it ran)
                    pair = (("base", base), ("this", REPO))
                    for label, repo in (pair if i % 2 == 0 else pair[::-1]):
                        out = subprocess.run([sys.executable, __file__, "--sim-seconds", str(args.sim_seconds),
                                              "--worker", repo, trace, policy],
                                             check=True, capture_output=True, text=True).stdout
                        speeds[label].append(float(out.split()[-1]))
                b, t = statistics.median(speeds["base"]), statistics.median(speeds["this"])
                print("k=%d %-9s %-10s base %6.1fx (%s)  this %6.1fx (%s)  this/base %.2f" % (
                    args.k, name, policy, b, " ".join("%.1f" % v for v in speeds["base"]),
                    t, " ".join("%.1f" % v for v in speeds["this"]), t / b), flush=True)


if __name__ == "__main__":
    main()

"""``sidestep replay``: run a flow trace through the simulated fabric under each policy.

    sidestep replay FLOWS.csv --k 4 [--link-mbps 10] [--policy all] [--model M] [--seed 0]
                    [--poll-interval 1] --out DIR [--force]
    sidestep replay --scenario collide --k 4 --link-mbps 1000 --out DIR

Writes DIR/summary.json, DIR/flows.csv, DIR/loads.csv (one policy: the one
asked for, or ecmp under ``all``; ``summary.json`` names it as
``loads_policy``), DIR/iterations.png and DIR/heatmap-<policy>.png.  With
``--scenario`` the generated trace is kept as DIR/trace.csv.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List

from controller.replay import POLICIES, ReplayError, comparison_table, run_policy, write_outputs

PROG = "sidestep replay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flows", nargs="?", metavar="FLOWS.csv", help="flow trace (see docs/replay.md)")
    parser.add_argument("--scenario", metavar="NAME", default=None,
                        help="generate a scenario instead of reading FLOWS.csv (see controller/scenarios.py)")
    parser.add_argument("--k", required=True, help="fat-tree arity (even, >= 2)")
    parser.add_argument("--link-mbps", default="10", help="capacity of every link in Mbit/s (default 10)")
    parser.add_argument("--policy", default="all", metavar="|".join(POLICIES + ("all",)),
                        help="policy to replay, or all (default)")
    parser.add_argument("--model", default=None, help="forecaster file for predictive (default: the shipped model; 'persistence': the last-sample baseline)")
    parser.add_argument("--seed", default="0", help="seed: ephemeral source ports, scenario generation (default 0)")
    parser.add_argument("--poll-interval", default="1", metavar="S",
                        help="control tick (port-stats poll) interval in seconds (default 1)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist)")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress on standard error")


def _error(msg: str, code: int = 2) -> int:
    print("%s: error: %s" % (PROG, msg), file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from controller.fabric import Fabric
    from controller.flowtrace import read_flow_trace
    from controller.tracefile import TraceError
    from mininet_topos.fattree_spec import TopologyError, fat_tree

    try:
        spec = fat_tree(args.k, args.link_mbps)
    except TopologyError as exc:
        return _error(str(exc))
    try:
        seed = int(args.seed)
        poll = float(args.poll_interval)
        if not poll > 0:
            raise ValueError
    except ValueError:
        return _error("--seed must be an integer and --poll-interval a number of seconds > 0")
    policies: List[str] = list(POLICIES) if args.policy == "all" else [args.policy]
    if args.policy != "all" and args.policy not in POLICIES:
        return _error("unknown policy %r; choose one of %s or all" % (args.policy, "|".join(POLICIES)))
    out = os.path.abspath(args.out)
    if os.path.lexists(out) and not args.force:
        return _error("output folder %s exists; pick another --out or pass --force to replace it" % out)
    fabric = Fabric.from_spec(spec)
    try:
        if args.scenario:
            if args.flows:
                return _error("give FLOWS.csv or --scenario, not both")
            from controller.scenarios import generate
            flows = generate(args.scenario, spec.k, spec.bw_mbps, seed)
        elif args.flows:
            flows = read_flow_trace(args.flows, fabric.hosts())
        else:
            return _error("give a flow trace FLOWS.csv or --scenario NAME")
    except TraceError as exc:
        return _error(str(exc))
    except (ValueError, OSError) as exc:
        return _error(str(exc))

    predictor = None
    if "predictive" in policies:
        try:
            from controller.replay import load_model
            predictor = load_model(args.model, poll)
        except Exception as exc:  # ModelError and friends: one line, no traceback
            return _error("cannot load the forecaster: %s" % exc)

    runs = []
    last = [0.0]
    for policy in policies:
        started = time.monotonic()

        def progress(t: float, done: int, total: int, policy: str = policy) -> None:
            now = time.monotonic()
            if not args.quiet and now - last[0] >= 2.0 and now - started >= 2.0:
                last[0] = now
                print("%s: %s t=%.0fs %d/%d flows done" % (PROG, policy, t, done, total), file=sys.stderr)
        try:
            runs.append(run_policy(policy, fabric, flows, seed=seed, poll_interval_s=poll,
                                   predictor=predictor, progress=progress))
        except (ReplayError, ValueError, RuntimeError) as exc:
            return _error("%s: %s" % (policy, exc), 1)
    meta = {"k": spec.k, "link_mbps": spec.bw_mbps, "seed": seed, "poll_interval_s": poll,
            "trace": os.path.basename(args.flows) if args.flows else "scenario:%s" % args.scenario,
            "model": getattr(predictor, "name", None)}
    try:
        summary = write_outputs(out, runs, force=args.force, plots=not args.no_plots, meta=meta,
                                trace=flows if args.scenario else None)
    except (ReplayError, OSError) as exc:
        return _error(str(exc))
    print(comparison_table(summary))
    print("wrote %s" % out)
    return 0

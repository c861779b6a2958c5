"""``sidestep gen``: write a generated flow trace, for ``sidestep replay`` or a lab run.

    sidestep gen SCENARIO --k 4 [--link-mbps 10] [--seed 0] [--duration S] -o FLOWS.csv [--force]
        training scenarios (collide, bursts, multijob) also take
        [--training-jobs N] [--workers N] [--message-mb MB|nccl] [--compute-s S] [--iterations N]
        [--background-load F [--cdf NAME|FILE]]      (measured-size background mixed in)
        websearch takes [--background-load F] [--cdf NAME|FILE]; staggered takes [--stagger P_EDGE,P_POD]

Scenarios are described in ``controller/scenarios.py`` and docs/replay.md.
Sizes follow ``--link-mbps`` (a message is so many seconds at the link rate)
unless ``--message-mb`` fixes them, so replay the trace with the same
``--link-mbps``; the command prints the replay command line.  The file is
written whole or not at all, and an existing file is kept unless ``--force``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Dict, Optional, Tuple

from controller.commands.outputs import output_file_problem

PROG = "sidestep gen"


MAX_DURATION_S = 7 * 24 * 3600   # a week of traffic; sidestep replay refuses what it cannot keep anyway
MAX_ITERATIONS = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from controller.scenarios import SCENARIOS, TRAINING

    parser.add_argument("scenario", metavar="SCENARIO", help="one of: %s" % ", ".join(SCENARIOS))
    parser.add_argument("--k", required=True, help="fat-tree arity (even, >= 2)")
    parser.add_argument("--link-mbps", default="10",
                        help="link capacity the sizes are scaled to, Mbit/s (default 10, as sidestep replay)")
    parser.add_argument("--seed", default="0", help="seed of the host placement and random draws (default 0)")
    parser.add_argument("--duration", default=None, metavar="S",
                        help="seconds of traffic: training jobs get the iterations that fill it on the "
                             "non-blocking fabric, Hedera flows that many seconds at line rate, websearch "
                             "arrivals until then (default: the scenario's own)")
    parser.add_argument("-o", "--output", required=True, metavar="FLOWS.csv", help="trace file to write")
    parser.add_argument("--force", action="store_true", help="replace an existing trace file")
    group = parser.add_argument_group("training jobs (%s)" % ", ".join(TRAINING))
    group.add_argument("--training-jobs", default=None, metavar="N", help="ring all-reduce jobs")
    group.add_argument("--workers", default=None, metavar="N", help="workers per job (one per pod, round-robin)")
    group.add_argument("--message-mb", default=None, metavar="MB|nccl",
                       help="all-reduce message per iteration in MB (default: 0.8 s at the link rate, 100 MB at "
                            "1 Gbit/s; multijob: 0.4 s for job 0 and (1 + 0.6 j) times that for job j), or "
                            "nccl: each job's drawn from the per-iteration all-reduce totals of the real NCCL "
                            "traces in ../shared/data/dl-training-nccl-traces-hta (101 MB to 1.8 GB)")
    group.add_argument("--compute-s", default=None, metavar="S", help="compute gap between iterations, seconds")
    group.add_argument("--iterations", default=None, metavar="N", help="iterations per job (overrides --duration)")
    from controller.scenarios import CDFS
    bg = parser.add_argument_group("background traffic (websearch; training scenarios with --background-load)")
    bg.add_argument("--background-load", default=None, metavar="F",
                    help="Poisson background at this fraction (0-1] of the hosts' capacity (websearch: default 0.3; "
                         "training scenarios: none unless given)")
    bg.add_argument("--cdf", default=None, metavar="NAME|FILE",
                    help="its flow sizes: %s (../shared/data/dc-flowsize-cdfs), or a 'size fraction' file "
                         "(default websearch)" % ", ".join(CDFS))
    parser.add_argument("--stagger", default=None, metavar="P_EDGE,P_POD",
                        help="staggered only: chances of a destination under the same edge switch and in the "
                             "same pod (default Hedera's 0.2,0.3)")


def _error(msg: str) -> int:
    print("%s: error: %s" % (PROG, msg), file=sys.stderr)
    return 2


def _number(name: str, text: Optional[str], *, minimum: float, integer: bool = False,
            strict: bool = False) -> Optional[float]:
    """``text`` as a finite number >= ``minimum`` (> when ``strict``), or None when not given."""
    if text is None:
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ValueError("%s must be %s %s %g, got %r" % (
            name, "a whole number" if integer else "a number", ">" if strict else ">=", minimum, text))
    return value


def _stagger(text: Optional[str]) -> Optional[Tuple[float, float]]:
    """``"0.2,0.3"`` -> (0.2, 0.3): two chances >= 0 adding up to at most 1."""
    if text is None:
        return None
    try:
        p_edge, p_pod = (float(x) for x in text.split(","))
    except ValueError:
        p_edge = p_pod = math.nan
    if not (p_edge >= 0 and p_pod >= 0 and p_edge + p_pod <= 1):
        raise ValueError("--stagger must be P_EDGE,P_POD: two chances >= 0 adding up to at most 1, got %r" % text)
    return p_edge, p_pod


def run(args: argparse.Namespace) -> int:
    from controller.scenarios import generate, write

    try:
        k = int(args.k)
    except ValueError:
        return _error("--k must be an even whole number >= 2, got %r" % args.k)
    try:
        link_mbps = _number("--link-mbps", args.link_mbps, minimum=0.0, strict=True)
        seed = int(_number("--seed", args.seed, minimum=0, integer=True))
        nccl = args.message_mb == "nccl"
        message_mb = None if nccl else _number("--message-mb", args.message_mb, minimum=0.0, strict=True)
        options: Dict[str, object] = {
            "duration_s": _number("--duration", args.duration, minimum=0.0, strict=True),
            "jobs": _number("--training-jobs", args.training_jobs, minimum=1, integer=True),
            "workers": _number("--workers", args.workers, minimum=2, integer=True),
            "iterations": _number("--iterations", args.iterations, minimum=1, integer=True),
            "compute_s": _number("--compute-s", args.compute_s, minimum=0.0),
            "message_bytes": "nccl" if nccl else None if message_mb is None else message_mb * 1e6,
            "load": _number("--background-load", args.background_load, minimum=0.0, strict=True),
            "cdf": args.cdf,
            "stagger": _stagger(args.stagger),
        }
        for key, flag, most in (("duration_s", "--duration", MAX_DURATION_S),
                                ("iterations", "--iterations", MAX_ITERATIONS)):
            if options[key] is not None and options[key] > most:   # beyond these, generation never ended
                raise ValueError("%s must be at most %d, got %r" % (flag, most, getattr(args, flag[2:])))
        if options["load"] is not None and options["load"] > 1.0:
            raise ValueError("--background-load must be a fraction in (0, 1], got %r" % args.background_load)
    except ValueError as exc:
        return _error(str(exc))
    out = os.path.abspath(args.output)
    problem = output_file_problem(args.output, "-o", force=args.force, inputs=[args.cdf] if args.cdf else [],
                                  example="flows.csv")
    if problem:
        return _error(problem)
    from controller.scenarios import TRAINING
    flags = {"jobs": "--training-jobs", "workers": "--workers", "iterations": "--iterations",
             "compute_s": "--compute-s", "message_bytes": "--message-mb"}
    extra = [flag for key, flag in flags.items() if options[key] is not None]
    if extra and args.scenario not in TRAINING:
        return _error("only the training scenarios (%s) take %s, not %r"
                      % (", ".join(TRAINING), ", ".join(extra), args.scenario))
    if args.scenario in TRAINING + ("websearch",):
        if options["cdf"] is not None and options["load"] is None and args.scenario != "websearch":
            return _error("--cdf sets the sizes of the background --background-load adds; give both")
    elif options["load"] is not None or options["cdf"] is not None:
        return _error("--background-load and --cdf apply to websearch and the training scenarios, not %r"
                      % args.scenario)
    if options["stagger"] is not None and args.scenario != "staggered":
        return _error("--stagger applies to the staggered scenario only")
    try:
        flows = generate(args.scenario, k, link_mbps, seed, **options)
    except (ValueError, OSError) as exc:    # TopologyError is a ValueError
        return _error(str(exc))
    write(out, flows)                       # whole or not at all
    jobs = sorted({f.job for f in flows if f.job})
    print("%s: wrote %d flows%s to %s; replay with: sidestep replay %s --k %d --link-mbps %g --out DIR" % (
        PROG, len(flows), " (%d training jobs)" % len(jobs) if jobs else "", args.output, args.output, k,
        link_mbps), file=sys.stderr)
    return 0

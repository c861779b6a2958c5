"""``sidestep replay``: run a flow trace through the simulated fabric under each policy.

    sidestep replay FLOWS.csv --k 4 [--link-mbps 10] [--policy all] [--model M] [--seed 0]
                    [--poll-interval 1] [--quantum 0] [--jobs N] [--fail A-B@T ...]
                    [--restore A-B@T ...] --out DIR [--force]
    sidestep replay --scenario collide --k 4 --link-mbps 1000 --out DIR

Writes DIR/summary.json, DIR/flows.csv, DIR/loads.csv (one policy: the one
asked for, or ecmp under ``all``; ``summary.json`` names it as
``loads_policy``), DIR/iterations.png and DIR/heatmap-<policy>.png.  With
``--scenario`` the generated trace is kept as DIR/trace.csv.

Under ``--policy all`` the policies are replayed side by side, one worker
process each (``--jobs``, default one per CPU this process may use): each
replay is deterministic and independent of the others, so the outputs are
byte for byte those of ``--jobs 1``, and the wall time is that of the
slowest policy instead of the sum.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from controller.replay import (POLICIES, ReplayError, check_output_folder, check_span, comparison_table,
                               run_policy, write_outputs)

if TYPE_CHECKING:  # pragma: no cover - names for the type checker only
    from controller.fabric import Fabric

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
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder: must not exist (unless --force), its parent folder must")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing output folder that an earlier replay wrote")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress on standard error")
    parser.add_argument("--quantum", default="0", metavar="S",
                        help="handle flow completions less than S seconds apart as one event, at the rates "
                             "as they were (faster, approximate: docs/replay.md); default 0, every completion "
                             "exact")
    parser.add_argument("--fail", action="append", default=[], metavar="A-B@T",
                        help="the cable between switches A and B goes down at T seconds (repeatable), "
                             "e.g. a0_0-c0@20: its connections move at once (see docs/replay.md)")
    parser.add_argument("--restore", action="append", default=[], metavar="A-B@T",
                        help="a failed cable comes back up at T seconds (repeatable)")
    parser.add_argument("--jobs", default=None, metavar="N",
                        help="policies replayed at once, one process each (default: one per CPU this "
                             "process may use, at most one per policy; 1: one after another, in this process)")


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
    except ValueError:
        return _error("--seed must be an integer, got %r" % args.seed)
    try:
        poll = float(args.poll_interval)
    except ValueError:
        poll = float("nan")
    if not 0 < poll < float("inf"):
        return _error("--poll-interval must be a finite number of seconds > 0, got %r" % args.poll_interval)
    try:
        quantum = float(args.quantum)
    except ValueError:
        quantum = float("nan")
    if not (quantum >= 0 and quantum < poll):
        return _error("--quantum must be a number of seconds >= 0 and below --poll-interval, got %r" % args.quantum)
    policies: List[str] = list(POLICIES) if args.policy == "all" else [args.policy]
    if args.policy != "all" and args.policy not in POLICIES:
        return _error("unknown policy %r; choose one of %s or all" % (args.policy, "|".join(POLICIES)))
    try:
        jobs = _jobs(args.jobs, len(policies))
    except ValueError as exc:
        return _error(str(exc))
    try:
        link_events = parse_link_events(args.fail, args.restore, Fabric.from_spec(spec))
    except ValueError as exc:
        return _error(str(exc))
    out = os.path.abspath(args.out)
    keep = [args.flows] if args.flows else []
    try:
        check_output_folder(out, args.force, keep)   # before the replay, not after it
    except ReplayError as exc:
        return _error(str(exc))
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
        check_span(flows, fabric, poll, args.flows or "scenario %s" % args.scenario)
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
            return _error("cannot load the forecaster: %s; or replay predictive on the baseline "
                          "forecaster: --model persistence" % exc)

    replay = _PolicyReplay(fabric, flows, seed, poll, predictor, args.quiet, quantum, link_events)
    try:
        runs = replay.all(policies, jobs)
    except _PolicyFailed as exc:
        return _error(str(exc), 1)
    meta = {"k": spec.k, "link_mbps": spec.bw_mbps, "seed": seed, "poll_interval_s": poll,
            "trace": os.path.basename(args.flows) if args.flows else "scenario:%s" % args.scenario,
            "model": getattr(predictor, "name", None)}
    if quantum:
        meta["quantum_s"] = quantum       # only when approximate: exact runs keep their summary as before
    if link_events:
        meta["link_events"] = [{"t_s": e.t_s, "cable": "%s-%s" % (e.a, e.b), "up": e.up} for e in link_events]
    try:
        summary = write_outputs(out, runs, force=args.force, plots=not args.no_plots, meta=meta,
                                trace=flows if args.scenario else None, keep=keep)
    except (ReplayError, OSError) as exc:
        return _error(str(exc))
    print(comparison_table(summary))
    print("wrote %s" % out)
    return 0


def parse_link_events(fails: Sequence[str], restores: Sequence[str], fabric: Fabric) -> List[object]:
    """``--fail``/``--restore`` values (``A-B@T``) as checked ``LinkEvent``s in time order; ValueError names the
    option, the value and the fix."""
    from controller.commands.cables import parse_cable
    from controller.sim import LinkEvent, check_link_events

    events, labels = [], []
    for option, values, up in (("--fail", fails, False), ("--restore", restores, True)):
        for text in values:
            cable, at, when = text.rpartition("@")
            try:
                t = float(when)
            except ValueError:
                t = float("nan")
            label = "%s %s" % (option, text)
            if not (at and t == t):
                raise ValueError("%s: write the cable and the time as A-B@SECONDS, e.g. a0_0-c0@20" % label)
            events.append(LinkEvent(t, *parse_cable(label, cable, fabric), up))
            labels.append(label)
    return check_link_events(fabric, events, labels)


def _jobs(text: Optional[str], n_policies: int) -> int:
    """Worker processes for ``n_policies`` replays: ``--jobs``, or one per usable CPU."""
    if text is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, n_policies))
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ValueError("--jobs must be a whole number >= 1, got %r" % text)
    return min(jobs, n_policies)


class _PolicyFailed(Exception):
    """One policy's replay refused its input; the message names the policy."""


class _PolicyReplay:
    """The replays of one trace, one policy at a time or in worker processes.

    Why processes: a replay is one Python thread of pure CPU work, and the
    policies share nothing but their (read-only) inputs.  Workers are forked,
    so the trace, fabric and model are inherited rather than pickled; only
    each policy's result travels back.  Outputs are written by the caller,
    after every policy has finished, so an interrupted or failed run writes
    nothing.
    """

    # Slowest first, so that two workers finish close together.
    ORDER = ("predictive", "reactive", "ecmp", "ideal")

    def __init__(self, fabric, flows, seed: int, poll: float, predictor: object, quiet: bool,
                 quantum: float = 0.0, link_events: Sequence[object] = ()) -> None:
        self.fabric, self.flows, self.seed, self.poll = fabric, flows, seed, poll
        self.predictor, self.quiet, self.quantum = predictor, quiet, quantum
        self.link_events = list(link_events)
        self._last = 0.0

    def one(self, policy: str) -> Tuple[str, object, Optional[str]]:
        """(policy, PolicyRun or None, error message or None)."""
        started = time.monotonic()

        def progress(t: float, done: int, total: int) -> None:
            now = time.monotonic()
            if not self.quiet and now - self._last >= 2.0 and now - started >= 2.0:
                self._last = now
                print("%s: %s t=%.0fs %d/%d flows done" % (PROG, policy, t, done, total), file=sys.stderr)
        try:
            run = run_policy(policy, self.fabric, self.flows, seed=self.seed, poll_interval_s=self.poll,
                             predictor=self.predictor, progress=progress, quantum_s=self.quantum,
                             link_events=self.link_events)
        except (ReplayError, ValueError, RuntimeError) as exc:
            return policy, None, "%s: %s" % (policy, exc)
        return policy, run, None

    def all(self, policies: List[str], jobs: int) -> List[object]:
        """Every policy's PolicyRun, in ``policies`` order; raises _PolicyFailed for the first refusal."""
        if jobs <= 1 or len(policies) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            results = [self.one(p) for p in policies]
        else:
            results = self._in_workers(policies, jobs)
        by_policy: Dict[str, Tuple[object, Optional[str]]] = {p: (run, err) for p, run, err in results}
        for policy in policies:
            error = by_policy[policy][1]
            if error is not None:
                raise _PolicyFailed(error)
        return [by_policy[p][0] for p in policies]

    def _in_workers(self, policies: List[str], jobs: int) -> List[Tuple[str, object, Optional[str]]]:
        order = sorted(policies, key=lambda p: self.ORDER.index(p) if p in self.ORDER else len(self.ORDER))
        pool = multiprocessing.get_context("fork").Pool(jobs, _worker_start, (self,))
        # SIGTERM as Ctrl-C while workers run, so that they are stopped, not left behind (``sidestep``
        # does this for the whole command; this is for a caller that runs the replay some other way)
        from controller.cli import raise_interrupt
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
        try:
            pending = [pool.apply_async(_worker_replay, (p,)) for p in order]
            results = [r.get() for r in pending]
        except BaseException:
            pool.terminate()             # Ctrl-C, SIGTERM or a lost worker: stop the others now
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            pool.close()
            pool.join()
        return results


_WORKER: List[_PolicyReplay] = []   # in a worker process: the replay it was forked with


def _worker_start(replay: _PolicyReplay) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the workers (Pool.terminate),
    # so a worker ignores SIGINT rather than print a traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _WORKER[:] = [replay]


def _worker_replay(policy: str) -> Tuple[str, object, Optional[str]]:
    return _WORKER[0].one(policy)

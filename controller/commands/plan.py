"""``sidestep plan``: one offline planning round, for what-if questions and tests.

Runs the same ``plan_reroutes`` the controller runs each tick, on a fat-tree
described by ``--k``/``--link-mbps``, the flows in FLOWS.csv and the latest
sample per link in LOADS.csv.  With ``--down A-B`` it answers instead what the
controller does when that cable fails: the moves it makes at once, before its
next planning round (``fail_cables``).

FLOWS.csv: ``flow_id,src,dst,rate_bps,cls`` plus optional ``path`` (node names
separated by ``;``; ECMP's choice when absent or empty), ``proto`` (tcp, udp,
icmp or a number; default tcp), ``src_port``, ``dst_port`` (default 0).
``rate_bps`` is the connection's demand (its rate while it sends).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from controller.commands.outputs import output_file_problem, write_text_atomically
from controller.ecmp import PROTO_TCP, FiveTuple, ecmp_choice
from controller.fabric import Fabric, FabricError, Link, path_links
from controller.loadtrace import LinkLoadTrace, format_link, read_link_loads
from controller.paths import EqualCostPaths
from controller.planner import (POLICIES, ActiveFlow, PlannerConfig,
                                PlannerError, Reroute, apply_reroutes, plan_reroutes,
                                planning_utilization, reroute_failed_link, with_demand_floor)
from controller.tracefile import (TraceError, check_hosts, open_csv, parse_class, parse_float, parse_port,
                                  parse_proto)
from mininet_topos.fattree_spec import TopologyError, fat_tree

FLOW_REQUIRED = ("flow_id", "src", "dst", "rate_bps", "cls")
FLOW_OPTIONAL = ("path", "proto", "src_port", "dst_port")

PROG = "sidestep plan"


class _Warnings(list):
    def add(self, text: str) -> None:
        self.append(text)
        print("%s: warning: %s" % (PROG, text), file=sys.stderr)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", required=True, help="fat-tree arity (even, >= 2)")
    parser.add_argument("--link-mbps", default="10", help="capacity of every link in Mbit/s (default 10)")
    parser.add_argument("--flows", required=True, metavar="FLOWS.csv",
                        help="active flows: flow_id,src,dst,rate_bps,cls[,path,proto,src_port,dst_port]")
    parser.add_argument("--loads", required=True, metavar="LOADS.csv",
                        help="link-load samples t_s,link,util[,pred,...]; the latest per link is used")
    parser.add_argument("--policy", required=True, metavar="|".join(POLICIES),
                        help="placement policy: %s" % ", ".join(POLICIES))
    parser.add_argument("--json", metavar="OUT", default=None,
                        help="write the result as JSON to OUT ('-' for standard output)")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file")
    parser.add_argument("--model", metavar="MODEL", default=None,
                        help="forecaster for predictive when LOADS.csv has no pred column (default: shipped)")
    defaults = PlannerConfig()
    parser.add_argument("--hot-threshold", type=float, default=defaults.hot_threshold,
                        help="utilization above which a link is hot (default %(default)s)")
    parser.add_argument("--hysteresis", type=float, default=defaults.hysteresis,
                        help="minimum drop of a flow's bottleneck utilization to move it (default %(default)s)")
    parser.add_argument("--max-reroutes", type=int, default=defaults.max_reroutes_per_tick,
                        help="cap on reroutes per round (default %(default)s)")
    parser.add_argument("--elephant-bps", type=float, default=None,
                        help="elephant threshold in bit/s (default 10%% of the flow's host link)")
    parser.add_argument("--move-background", action="store_true",
                        help="also move background elephants (default: training flows only)")
    parser.add_argument("--down", action="append", default=[], metavar="A-B",
                        help="the cable between switches A and B fails (repeatable): show the moves the "
                             "controller makes at once, instead of a planning round")


def _fail(message: str, code: int = 2) -> int:
    print("%s: error: %s" % (PROG, message), file=sys.stderr)
    return code


def _build_fabric(k: str, mbps: str) -> Fabric:
    return Fabric.from_spec(fat_tree(k, mbps))


def read_flows(path: str, fabric: Fabric, paths: EqualCostPaths) -> List[ActiveFlow]:
    """Read and validate FLOWS.csv; errors name the file, line and column."""
    header, rows = open_csv(path, FLOW_REQUIRED, FLOW_OPTIONAL)
    flows: List[ActiveFlow] = []
    seen: Dict[str, int] = {}
    hosts = set(fabric.hosts())
    for line, row in rows:
        flow_id = row["flow_id"]
        if not flow_id:
            raise TraceError(path, "is empty; every flow needs an id", line, "flow_id")
        if flow_id in seen:
            raise TraceError(path, "flow_id %r already used on line %d" % (flow_id, seen[flow_id]),
                             line, "flow_id")
        seen[flow_id] = line
        src, dst = row["src"], row["dst"]
        check_hosts(path, line, src, dst, hosts)
        rate = parse_float(path, line, "rate_bps", row["rate_bps"], minimum=0.0)
        cls = parse_class(path, line, row["cls"])
        proto = parse_proto(path, line, row.get("proto", ""))
        proto = PROTO_TCP if proto is None else proto
        ports = [parse_port(path, line, col, row.get(col, "")) or 0 for col in ("src_port", "dst_port")]
        five = FiveTuple(src, dst, proto, ports[0], ports[1])
        text = row.get("path", "")
        if text:
            hops = tuple(h.strip() for h in text.split(";"))
            try:
                fabric.validate_path(hops, src, dst)
            except FabricError as exc:
                raise TraceError(path, str(exc), line, "path") from None
        else:
            try:
                hops = tuple(ecmp_choice(five, paths(src, dst)))
            except FabricError as exc:
                raise TraceError(path, str(exc), line, "path") from None
        flows.append(ActiveFlow(flow_id, five, hops, rate, cls))
    return flows


def _line_of_link(path: str, link: Link) -> Optional[int]:
    """First line of LOADS.csv that names ``link`` (for the error message)."""
    text = format_link(link)
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if text in line.replace(" ", ""):
                    return number
    except OSError:
        return None
    return None


def check_loads(trace: LinkLoadTrace, fabric: Fabric) -> None:
    for link in trace.links():
        if not fabric.graph.has_edge(*link):
            raise TraceError(trace.path, "%s is not a link of this fabric" % format_link(link),
                             _line_of_link(trace.path, link), "link")


def recent_history(trace: LinkLoadTrace, period: float, window: int) -> Tuple[List[Link], np.ndarray]:
    """Each link's last ``window`` polls on the trace's time grid, oldest first, NaN where it has no sample.

    Why on the grid: taking each link's last ``window`` samples glued the two
    sides of a gap together (a link silent for a minute looked as hot as
    before it), where the forecaster was trained on time-true histories.
    """
    from models.training import to_grid
    grid = to_grid(trace, period)
    tail = grid.util[:, -window:]
    history = np.full((len(grid.links), window), np.nan)
    history[:, window - tail.shape[1]:] = tail
    return grid.links, history


class PlanInputError(ValueError):
    """Input ``sidestep plan`` refuses (one line, exit 2): the message names the thing and the fix."""


def forecast(trace: LinkLoadTrace, model: Optional[str], warnings: _Warnings) -> Optional[Dict[Link, float]]:
    """The forecaster's prediction for each link, or None (with a warning) if there is none.

    The default forecaster lives in ``models.runtime``; it is imported here,
    lazily, so ``sidestep plan`` works (on measured values) without it.  A
    model named with ``--model`` that cannot be used raises ``PlanInputError``:
    planning on something else than what was asked for is not an answer.
    """
    try:
        from models import runtime  # noqa: WPS433 (optional part)
    except ImportError as exc:
        warnings.add("no forecaster available (%s); predictive plans on measured utilization" % exc)
        return None
    model_error = getattr(runtime, "ModelError", ValueError)
    try:
        period = trace.sampling_period_s()
        predictor = runtime.load_predictor(model, sampling_period_s=period)
        links, history = recent_history(trace, period, int(predictor.window))
        values = np.asarray(predictor.predict(history), dtype=float)
    except model_error as exc:
        if model is not None:    # the model the user named: refused, not quietly replaced
            raise PlanInputError(str(exc)) from None
        warnings.add("forecaster unusable (%s); predictive plans on measured utilization" % exc)
        return None
    except (TraceError, ValueError, OSError) as exc:
        warnings.add("forecaster unusable (%s); predictive plans on measured utilization" % exc)
        return None
    if values.shape != (len(links),):
        warnings.add("forecaster returned shape %s for %d links; predictive plans on measured utilization"
                     % (values.shape, len(links)))
        return None
    return {link: float(v) for link, v in zip(links, values)}


def parse_cables(texts: Sequence[str], fabric: Fabric) -> List[Link]:
    """``--down`` values as cables between two switches of ``fabric``; ValueError names the value and the fix."""
    from controller.commands.cables import parse_cable
    from controller.sim import LinkEvent, check_link_events

    labels = ["--down %s" % text for text in texts]
    events = [LinkEvent(0.0, *parse_cable(label, text, fabric), False) for label, text in zip(labels, texts)]
    return [(e.a, e.b) for e in check_link_events(fabric, events, labels)]


def fail_cables(fabric: Fabric, flows: Sequence[ActiveFlow], cables: Sequence[Link], config: PlannerConfig,
                measured: Dict[Link, float], paths: EqualCostPaths,
                warnings: _Warnings) -> Tuple[List[ActiveFlow], List[Reroute], Dict[str, str]]:
    """The controller's moves when ``cables`` fail, one after another: (flows after, moves, stranded).

    As ``ControllerRuntime`` on a port-down: under reactive and predictive the
    flows with a demand are placed by ``reroute_failed_link`` on the measured
    load raised to the flows' demands; every other flow on the cable, and every
    one under ecmp, takes ECMP's choice over the surviving paths.  A flow left
    with no path at all is *stranded* (flow_id -> why, and a warning): it keeps
    its last path in the flows returned, and any earlier move of it is dropped
    from the moves, which list only paths that are up.
    """
    flows = list(flows)
    moves: List[Reroute] = []
    stranded: Dict[str, str] = {}
    for a, b in cables:
        fabric.set_link_up(a, b, False)
        dead = {(a, b), (b, a)}
        crossing = [f for f in flows if not dead.isdisjoint(path_links(f.path)) and f.flow_id not in stranded]
        if not crossing:
            continue
        placed: Dict[str, Reroute] = {}
        weighed = [f for f in flows if f.rate_bps > 0 and f.flow_id not in stranded]
        if config.policy != "ecmp" and weighed:
            placed = {rr.flow_id: rr for rr in reroute_failed_link(
                fabric, weighed, (a, b), measured=with_demand_floor(fabric, weighed, measured), paths=paths)}
        for f in crossing:
            rr = placed.get(f.flow_id)
            if rr is None:
                try:
                    new = tuple(ecmp_choice(f.five, paths(f.five.src, f.five.dst)))
                except FabricError as exc:
                    stranded[f.flow_id] = "no path once %s-%s is down (%s)" % (a, b, exc)
                    warnings.add("flow %s has %s" % (f.flow_id, stranded[f.flow_id]))
                    continue
                rr = Reroute(f.flow_id, f.path, new, "link-down %s-%s; ECMP over the surviving paths" % (a, b))
            moves.append(rr)
        new_path = {rr.flow_id: tuple(rr.new_path) for rr in moves}
        flows = [ActiveFlow(f.flow_id, f.five, new_path.get(f.flow_id, f.path), f.rate_bps, f.cls) for f in flows]
    return flows, [rr for rr in moves if rr.flow_id not in stranded], stranded


def _max(util: Dict[Link, float]) -> float:
    return max(util.values(), default=0.0)


def plan(fabric: Fabric, flows: Sequence[ActiveFlow], trace: LinkLoadTrace, config: PlannerConfig,
         model: Optional[str], warnings: _Warnings, paths: EqualCostPaths,
         down: Sequence[Link] = ()) -> dict:
    measured = trace.latest()
    predicted = None
    if config.policy == "predictive":
        if any(s.pred is not None for s in trace.series.values()):
            predicted = trace.latest_pred()
        else:
            predicted = forecast(trace, model, warnings)
    before = planning_utilization(fabric, flows, measured, predicted, config)
    stranded: Dict[str, str] = {}
    if down:
        _, reroutes, stranded = fail_cables(fabric, flows, down, config, measured, paths, warnings)
    else:
        reroutes = plan_reroutes(fabric, flows, measured, predicted, config, paths=paths)
    # a stranded flow carries nothing: its share leaves the path it had (a move to no path)
    gone = [Reroute(f.flow_id, f.path, (), "stranded") for f in flows if f.flow_id in stranded]
    after = apply_reroutes(fabric, flows, before, list(reroutes) + gone)
    for a, b in down:                 # a cable that is down carries nothing
        after.pop((a, b), None)
        after.pop((b, a), None)
    final: Dict[str, Optional[List[str]]] = {f.flow_id: list(f.path) for f in flows}
    for rr in reroutes:
        final[rr.flow_id] = list(rr.new_path)
    for flow_id in stranded:
        final[flow_id] = None
    extra: Dict[str, object] = {"down": ["%s-%s" % cable for cable in down]} if down else {}
    if stranded:
        extra["stranded"] = dict(stranded)
    return {
        "paths": final,
        "reroutes": [{"flow_id": r.flow_id, "old_path": list(r.old_path), "new_path": list(r.new_path),
                      "reason": r.reason} for r in reroutes],
        "max_util_before": round(_max(before), 6),
        "max_util_after": round(_max(after), 6),
        "basis": "forecast" if predicted is not None else "measured",
        "warnings": list(warnings),
        **extra,
    }


def format_table(result: dict, flows: Sequence[ActiveFlow], policy: str) -> str:
    moved = {r["flow_id"]: r for r in result["reroutes"]}
    stranded = result.get("stranded", {})
    rows = [("FLOW", "SRC", "DST", "MBIT/S", "CLS", "PATH", "")]
    for f in flows:
        r = moved.get(f.flow_id)
        path = result["paths"][f.flow_id]
        note = "moved from %s: %s" % (" ".join(r["old_path"]), r["reason"]) if r else ""
        if f.flow_id in stranded:
            note = "stranded: %s" % stranded[f.flow_id]
        rows.append((f.flow_id, f.five.src, f.five.dst, "%.3f" % (f.rate_bps / 1e6), f.cls,
                     " ".join(path) if path is not None else "(no path)", note))
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:6], widths)).rstrip()
             + ("  " + row[6] if row[6] else "") for row in rows]
    lines.append("policy %s: %d flow(s), %d reroute(s)%s; max utilization %.3f -> %.3f (%s)"
                 % (policy, len(flows), len(result["reroutes"]),
                    ", %d stranded" % len(stranded) if stranded else "", result["max_util_before"],
                    result["max_util_after"], result["basis"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.policy not in POLICIES:
        return _fail("unknown policy %r; choose one of %s" % (args.policy, ", ".join(POLICIES)))
    try:
        config = PlannerConfig(policy=args.policy, hot_threshold=args.hot_threshold,
                               hysteresis=args.hysteresis, max_reroutes_per_tick=args.max_reroutes,
                               elephant_bps=args.elephant_bps, move_background=args.move_background)
    except PlannerError as exc:
        return _fail(str(exc))
    try:
        fabric = _build_fabric(args.k, args.link_mbps)
    except TopologyError as exc:
        return _fail(str(exc))
    try:
        down = parse_cables(args.down, fabric)
    except ValueError as exc:
        return _fail(str(exc))
    if args.json not in (None, "-"):
        inputs = [args.flows, args.loads] + ([args.model] if args.model else [])
        problem = output_file_problem(args.json, "--json", force=args.force, inputs=inputs)
        if problem:
            return _fail(problem)
    paths = EqualCostPaths(fabric)
    warnings = _Warnings()
    try:
        flows = read_flows(args.flows, fabric, paths)
        trace = read_link_loads(args.loads)
        check_loads(trace, fabric)
    except TraceError as exc:
        return _fail(str(exc))
    try:
        result = plan(fabric, flows, trace, config, args.model, warnings, paths, down)
    except PlanInputError as exc:
        return _fail(str(exc))
    if args.json is None:
        print(format_table(result, flows, config.policy))
        return 0
    text = json.dumps(result, indent=2, sort_keys=False)
    if args.json == "-":
        print(text)
        return 0
    try:
        write_text_atomically(args.json, text + "\n")
    except OSError as exc:
        return _fail("cannot write %s: %s" % (args.json, exc.strerror), 1)
    print("%s: %d reroute(s); max utilization %.3f -> %.3f (%s); wrote %s"
          % (PROG, len(result["reroutes"]), result["max_util_before"], result["max_util_after"],
             result["basis"], args.json))
    return 0

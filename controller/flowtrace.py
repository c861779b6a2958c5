"""Flow traces: the traffic ``sidestep replay`` (and the live lab) replays.

CSV with a header.  Required ``start_s,src,dst,size_bytes``; optional
``rate_bps`` (a cap), ``flow_id``, ``cls`` (``training`` | ``background``),
``job``, ``iter``, ``proto``, ``src_port``, ``dst_port``, ``deps``
(``;``-separated flow_ids that must finish first) and ``gap_s`` (compute time
after the last of them).  A flow starts at
``max(start_s, last dependency's finish + gap_s)``: that is what makes a
training job closed-loop, so a slow all-reduce delays the next iteration.

Rows need not be sorted by ``start_s``: a dependent flow's ``start_s`` is only a
lower bound, so file order carries no meaning.  Everything else is validated and
every error names the file, line and column (``controller.tracefile.TraceError``).
"""
from __future__ import annotations

import math
from operator import itemgetter
from dataclasses import dataclass
from typing import Callable, Collection, Dict, IO, Iterable, List, Optional, Tuple

from controller.ecmp import PROTO_TCP
from controller.tracefile import (FLOW_CLASSES, TraceError, check_hosts, open_csv, parse_class, parse_float,
                                  parse_int, parse_port, parse_proto)

REQUIRED = ("start_s", "src", "dst", "size_bytes")
OPTIONAL = ("rate_bps", "flow_id", "cls", "job", "iter", "proto", "src_port", "dst_port",
            "deps", "gap_s")
HEADER = REQUIRED + OPTIONAL
CLASSES = FLOW_CLASSES


@dataclass(frozen=True)
class TraceFlow:
    """One transfer of ``size_bytes`` from ``src`` to ``dst``.

    ``src_port``/``dst_port`` are None when the trace leaves them out; the
    simulator then draws an ephemeral port from its seed, as a real stack would.
    """

    flow_id: str
    start_s: float
    src: str
    dst: str
    size_bytes: float
    rate_bps: Optional[float] = None
    cls: str = "background"
    job: str = ""
    iter: Optional[int] = None
    proto: int = PROTO_TCP
    src_port: Optional[int] = None
    dst_port: Optional[int] = None
    deps: Tuple[str, ...] = ()
    gap_s: float = 0.0
    line: int = 0


def read_flow_trace(path: str, hosts: Collection[str]) -> List[TraceFlow]:
    """Read and validate a flow trace against the topology's host names.

    Raises TraceError for a malformed row, unknown host, negative or zero size,
    bad number, duplicate flow_id, a dependency on an unknown flow_id or a
    cycle of dependencies.
    """
    host_set = set(hosts)
    header, rows = open_csv(path, REQUIRED, OPTIONAL, cells=True)
    flows: List[TraceFlow] = []
    seen: Dict[str, int] = {}
    quick = _quick_parser(header, host_set, seen)
    for line, cells in rows:
        flow = quick(line, cells)
        if flow is None:        # anything unusual: the full check, which says what is wrong
            flow = _parse_row(path, line, dict(zip(header, cells)), host_set, seen)
        flows.append(flow)
    if not flows:
        raise TraceError(path, "has a header but no flows", line=2)
    by_id = {f.flow_id: f for f in flows}
    for f in flows:
        for dep in f.deps:
            if dep not in by_id:
                raise TraceError(path, "dependency %r names no flow_id in this trace" % dep,
                                 f.line, "deps")
            if dep == f.flow_id:
                raise TraceError(path, "flow %r depends on itself" % dep, f.line, "deps")
    _check_acyclic(path, flows, by_id)
    return flows


def _quick_parser(header: List[str], hosts: Collection[str], seen: Dict[str, int]
                  ) -> Callable[[int, List[str]], Optional[TraceFlow]]:
    """A parser for the common row, giving ``_parse_row``'s flow, or None for any other row.

    Why: a generated trace of a minute of fabric traffic has 100,000+ rows, and
    ``_parse_row``'s checks, one call per field, took ~3 s for 131,147 of them.
    This one accepts a row only when every field is plainly valid (numbers that
    ``float``/``int`` read, finite and in range; known hosts; a new flow_id; a
    known class; well-formed deps) and returns the same ``TraceFlow``.  Any other
    row goes to ``_parse_row``, so every error is still its error, with its
    line and column (a test reads random rows both ways).
    """
    at = {name: i for i, name in enumerate(header)}
    # the fields, required then optional, with an absent column read from an "" put after the row's cells
    fields = itemgetter(*[at.get(name, len(header)) for name in REQUIRED + OPTIONAL])
    isfinite = math.isfinite
    new_flow = object.__new__

    def parse(line: int, cells: List[str]) -> Optional[TraceFlow]:
        cells.append("")
        (start_t, src, dst, size_t, rate_t, fid, cls, job, iter_t, proto_t, sport_t, dport_t, deps_t,
         gap_t) = fields(cells)
        if src not in hosts or dst not in hosts or src == dst:
            return None
        try:
            start = float(start_t)
            size = float(size_t)
            rate = float(rate_t) if rate_t else None
            iteration = int(iter_t) if iter_t else None
            proto = int(proto_t) if proto_t else PROTO_TCP
            sport = int(sport_t) if sport_t else None
            dport = int(dport_t) if dport_t else None
            gap = float(gap_t) if gap_t else 0.0
        except ValueError:
            return None
        if not (isfinite(start) and start >= 0.0 and isfinite(size) and size > 0.0
                and isfinite(gap) and gap >= 0.0 and 0 <= proto <= 255):
            return None
        if rate is not None and not (isfinite(rate) and rate > 0.0):
            return None
        if iteration is not None and not (iteration >= 0 and job):
            return None
        if (sport is not None and not 0 <= sport <= 65535) or (dport is not None and not 0 <= dport <= 65535):
            return None
        fid = fid or "L%d" % line
        if fid in seen:
            return None
        cls = cls or ("training" if job else "background")
        if cls not in CLASSES:
            return None
        deps = tuple(d.strip() for d in deps_t.split(";")) if deps_t else ()
        if not all(deps):
            return None
        seen[fid] = line
        # TraceFlow(...) with its fields set at once: the frozen dataclass's __init__ sets them
        # one object.__setattr__ call each, a fifth of this parser's time
        flow = new_flow(TraceFlow)
        flow.__dict__.update(flow_id=fid, start_s=start, src=src, dst=dst, size_bytes=size, rate_bps=rate,
                             cls=cls, job=job, iter=iteration, proto=proto, src_port=sport, dst_port=dport,
                             deps=deps, gap_s=gap, line=line)
        return flow
    return parse


def _parse_row(path: str, line: int, row: Dict[str, str], hosts: Collection[str],
               seen: Dict[str, int]) -> TraceFlow:
    get = row.get
    start = parse_float(path, line, "start_s", row["start_s"], minimum=0.0)
    src, dst = row["src"], row["dst"]
    check_hosts(path, line, src, dst, hosts)
    size = parse_float(path, line, "size_bytes", row["size_bytes"])
    if size is None or size <= 0:
        raise TraceError(path, "%r must be > 0 bytes" % row["size_bytes"], line, "size_bytes")
    rate = parse_float(path, line, "rate_bps", get("rate_bps", ""), allow_empty=True)
    if rate is not None and rate <= 0:
        raise TraceError(path, "%r must be > 0 bit/s (leave it empty for no cap)"
                         % row["rate_bps"], line, "rate_bps")
    given_id = get("flow_id", "")
    flow_id = given_id or "L%d" % line
    if flow_id in seen:
        if not given_id:
            raise TraceError(path, "this row has no flow_id, so it is named %r after its line, and line %d "
                             "already uses that name; give this row a flow_id" % (flow_id, seen[flow_id]),
                             line, "flow_id")
        raise TraceError(path, "flow_id %r already used on line %d" % (flow_id, seen[flow_id]),
                         line, "flow_id")
    seen[flow_id] = line
    job = get("job", "")
    cls = get("cls", "") or ("training" if job else "background")
    parse_class(path, line, cls)
    iteration = parse_int(path, line, "iter", get("iter", ""), minimum=0, allow_empty=True)
    if iteration is not None and not job:
        raise TraceError(path, "iter given without a job; name the job the iteration belongs to",
                         line, "iter")
    proto = parse_proto(path, line, get("proto", ""))
    ports = [parse_port(path, line, col, get(col, "")) for col in ("src_port", "dst_port")]
    deps_text = get("deps", "")
    deps = tuple(d.strip() for d in deps_text.split(";")) if deps_text else ()
    if any(not d for d in deps):
        raise TraceError(path, "%r has an empty flow_id; separate flow_ids with ';'" % deps_text,
                         line, "deps")
    gap = parse_float(path, line, "gap_s", get("gap_s", ""), minimum=0.0, allow_empty=True)
    return TraceFlow(flow_id=flow_id, start_s=start, src=src, dst=dst, size_bytes=size,
                     rate_bps=rate, cls=cls, job=job, iter=iteration,
                     proto=PROTO_TCP if proto is None else proto,
                     src_port=ports[0], dst_port=ports[1], deps=deps,
                     gap_s=0.0 if gap is None else gap, line=line)


def _check_acyclic(path: str, flows: List[TraceFlow], by_id: Dict[str, TraceFlow]) -> None:
    """Depth-first search; a back edge is a cycle, reported with its members."""
    state: Dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in flows:
        if not root.deps or root.flow_id in state:    # a flow without deps closes no cycle
            continue
        stack: List[Tuple[str, int]] = [(root.flow_id, 0)]
        trail: List[str] = [root.flow_id]
        state[root.flow_id] = 1
        while stack:
            fid, i = stack[-1]
            deps = by_id[fid].deps
            if i < len(deps):
                stack[-1] = (fid, i + 1)
                dep = deps[i]
                mark = state.get(dep)
                if mark == 1:
                    cycle = trail[trail.index(dep):] + [dep]
                    raise TraceError(path, "dependencies form a cycle: %s" % " -> ".join(cycle),
                                     by_id[fid].line, "deps")
                if mark is None:
                    state[dep] = 1
                    stack.append((dep, 0))
                    trail.append(dep)
            else:
                state[fid] = 2
                stack.pop()
                trail.pop()


def _fmt(value: Optional[float]) -> str:
    if value is None:
        return ""
    if float(value).is_integer():
        return "%d" % value
    return repr(float(value))


def write_flow_trace(handle: IO[str], flows: Iterable[TraceFlow]) -> int:
    """Write flows in the trace format (all columns); returns how many."""
    handle.write(",".join(HEADER) + "\n")
    n = 0
    for f in flows:
        handle.write(",".join([
            _fmt(f.start_s), f.src, f.dst, _fmt(f.size_bytes), _fmt(f.rate_bps), f.flow_id,
            f.cls, f.job, "" if f.iter is None else str(f.iter), str(f.proto),
            "" if f.src_port is None else str(f.src_port),
            "" if f.dst_port is None else str(f.dst_port),
            ";".join(f.deps), _fmt(f.gap_s) if f.gap_s else "",
        ]) + "\n")
        n += 1
    return n


def save_flow_trace(path: str, flows: Iterable[TraceFlow]) -> int:
    """Write a trace file whole or not at all: a temporary file beside it, then a rename.

    Why: a half-written trace reads as a shorter, valid one.  Returns how many flows.
    """
    from controller.atomicfile import open_atomic
    with open_atomic(path) as fh:
        return write_flow_trace(fh, flows)

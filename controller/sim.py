"""Flow-level fabric simulator: max-min fair sharing plus an event loop.

Why flow-level: the question replay answers ("how long would each training
iteration have taken under this routing policy?") depends on which flows share
which links and for how long, not on packets.  Between events every flow runs
at its max-min fair rate (TCP's long-run share), so time can jump from one
event to the next: flow arrivals, completions and a control tick every
``poll_interval_s``.  At a tick the simulator hands a ``TickView`` (cumulative
per-port tx/rx byte counters of every switch, exactly what a port-stats reply
carries, plus the open connections) to a controller hook and applies the path
changes it returns.  The hook is where ``controller.replay`` plugs in the real
monitor, forecaster and planner; this module only borrows
``controller.paths.EqualCostPaths`` (a fast ``Fabric.paths``) so ECMP picks
what live picks.  The event steps it runs between ticks are in
``controller.sim_kernels``.

Routing follows the live fabric: a new connection (5-tuple) takes
``ecmp_choice(five, fabric.paths(src, dst))``; a path change pins the
connection, so its in-flight flows move at once and its later flows (the next
iterations of a training job on the same ports) follow the new path.

Deterministic: no clocks, no randomness except ephemeral source ports for
flows whose trace leaves ``src_port`` empty, which are a CRC32 of the seed and
the flow_id (order-independent, stable across processes).
"""
from __future__ import annotations

import gc
import math
from itertools import chain
from operator import attrgetter
import zlib
from dataclasses import dataclass
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from controller import fairshare
from controller.ecmp import FiveTuple
from controller.fabric import Fabric, FabricError, Link, Path
from controller.flowtrace import TraceFlow
from controller import sim_kernels as kernels
from controller.paths import EqualCostPaths

BIG_SWITCH = "bigswitch"
EPHEMERAL_LO = 32768
EPHEMERAL_SPAN = 60999 - 32768 + 1  # Linux ip_local_port_range default


class SimError(RuntimeError):
    """The simulation cannot continue (e.g. a controller returned an invalid path)."""


# --------------------------------------------------------------------------
# fabrics
# --------------------------------------------------------------------------
def big_switch_fabric(fabric: Fabric) -> Fabric:
    """The non-blocking fabric: every host on one switch, same host links.

    Flows there are limited only by their host links (and rate caps), which is
    the physical limit the ``ideal`` policy measures.
    """
    big = Fabric()
    big.add_switch(BIG_SWITCH, dpid=1)
    for port, host in enumerate(sorted(fabric.hosts(), key=_host_key), start=1):
        big.add_host(host, ip=fabric.node_attr(host, "ip"), mac=fabric.node_attr(host, "mac"))
        edge, _ = fabric.host_edge(host)
        up = fabric.capacity_bps(host, edge)
        down = fabric.capacity_bps(edge, host)
        big.add_link(host, 0, BIG_SWITCH, port, min(up, down))
    return big


def _host_key(name: str) -> Tuple[int, str]:
    digits = name.lstrip("h")
    return (int(digits), name) if digits.isdigit() else (1 << 30, name)


def ephemeral_port(seed: int, flow_id: str) -> int:
    """Source port for a flow whose trace gives none (stable for seed + flow_id)."""
    return EPHEMERAL_LO + zlib.crc32(("%d|%s" % (seed, flow_id)).encode("utf-8")) % EPHEMERAL_SPAN


def five_tuple(flow: TraceFlow, seed: int) -> FiveTuple:
    src_port = flow.src_port if flow.src_port is not None else ephemeral_port(seed, flow.flow_id)
    return FiveTuple(flow.src, flow.dst, flow.proto, src_port, flow.dst_port or 0)


# --------------------------------------------------------------------------
# what the controller hook sees and returns
# --------------------------------------------------------------------------
class ConnView(NamedTuple):
    """An open connection at a tick.

    ``rate_bps`` is its current max-min rate (0 between bursts).  ``demand_bps``
    is what a planner should assume it needs: the current rate while it sends,
    and between bursts of a training connection the mean rate of its last
    burst (size / duration), since its next burst will look like its last.
    A named tuple, not a frozen dataclass: a tick builds one per open
    connection (about 1,000 at k=8), and this is 5x cheaper to create.
    """

    flow_id: str
    five: FiveTuple
    path: Path
    rate_bps: float
    demand_bps: float
    cls: str
    in_flight: bool


@dataclass(frozen=True)
class PathChange:
    five: FiveTuple
    new_path: Path
    reason: str = ""


class TickView:
    """Everything a controller could know at a poll: counters and connections.

    ``counters`` (switch -> [(port_no, tx_bytes, rx_bytes)], cumulative since
    t=0, sorted by port) and ``connections`` (the open connections, as
    ``ConnView``, in 5-tuple order) are built on first use: a controller that
    finds nothing to do from the array forms below never pays for them.

    Array forms (for controllers that work on whole arrays):

    * ``link_bytes``: cumulative bytes per link of ``links``;
      ``interval_util``: exact utilization of ``links`` over the last interval;
    * ``switch_ports()``: per switch, (port numbers, tx link index, rx link index);
    * ``demand()``: per open connection (same order as ``connections``) its
      path's link indices (padded with ``len(links)``), ``demand_bps`` and
      whether it is a training connection.
    * ``planner_arrays()``: what a planner needs of every open connection
      without building its view (see there).
    """

    def __init__(self, now_s: float, links: List[Link], link_bytes: np.ndarray,
                 interval_util: np.ndarray, ports: "_PortLayout", conn_rows: np.ndarray,
                 conn_demand: np.ndarray, conn_training: np.ndarray,
                 build_connections: Callable[[Optional[Sequence[int]]], List[ConnView]],
                 build_arrays: Optional[Callable[[], Tuple[np.ndarray, np.ndarray]]] = None) -> None:
        self.now_s = now_s
        self.links = links
        self.link_bytes = link_bytes
        self.interval_util = interval_util
        self._ports = ports
        self._rows = conn_rows
        self._demand = conn_demand
        self._training = conn_training
        self._build = build_connections
        self._build_arrays = build_arrays
        self._connections: Optional[List[ConnView]] = None
        self._counters: Optional[Dict[str, List[Tuple[int, int, int]]]] = None

    def cumulative_bytes(self) -> List[int]:
        """Integer byte counters per link (what a switch port reports)."""
        return self.cumulative_bytes_array().tolist()

    def cumulative_bytes_array(self) -> np.ndarray:
        """``cumulative_bytes`` as int64 (replay's monitor reads arrays: no Python int per link)."""
        return np.floor(self.link_bytes).astype(np.int64)

    def switch_ports(self) -> List[Tuple[str, List[int], List[int], List[int]]]:
        return self._ports.rows

    @property
    def counters(self) -> Dict[str, List[Tuple[int, int, int]]]:
        if self._counters is None:
            cum = self.cumulative_bytes()
            self._counters = {sw: [(p, cum[t], cum[r]) for p, t, r in zip(ports, tx, rx)]
                              for sw, ports, tx, rx in self._ports.rows}
        return self._counters

    @property
    def connections(self) -> List[ConnView]:
        if self._connections is None:
            self._connections = self._build(None)
        return self._connections

    def connections_at(self, positions: Sequence[int]) -> List[ConnView]:
        """``[connections[p] for p in positions]``, building only those views."""
        if self._connections is not None:
            return [self._connections[p] for p in positions]
        return self._build(positions)

    def demand(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._rows, self._demand, self._training

    def planner_arrays(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per open connection (``connections`` order): link rows, ``demand_bps``, training?, name rank.

        ``demand_bps`` is exactly the views' (a connection with several flows in
        flight sums them in arrival order, as its view does; ``demand()`` has
        the per-slot sum).  The name rank orders the connections as their
        views' ``flow_id`` strings sort.  Neither needs a view built.
        """
        if self._build_arrays is None:
            conns = self.connections
            names = [c.flow_id for c in conns]
            rank = np.empty(len(names), dtype=np.int64)
            rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
            demand = np.array([c.demand_bps for c in conns], dtype=float)
            return self._rows, demand, self._training, rank
        demand, rank = self._build_arrays()
        return self._rows, demand, self._training, rank


class _PortLayout:
    """Per switch: port numbers and the directed links their tx/rx counters measure."""

    def __init__(self, fabric: Fabric, link_index: Dict[Link, int]) -> None:
        self.rows: List[Tuple[str, List[int], List[int], List[int]]] = []
        for sw in fabric.switches():
            entries = sorted((fabric.port(sw, nbr), link_index[(sw, nbr)], link_index[(nbr, sw)])
                             for nbr in fabric.graph.neighbors(sw))
            self.rows.append((sw, [e[0] for e in entries], [e[1] for e in entries],
                              [e[2] for e in entries]))


TickHook = Callable[[TickView], Sequence[PathChange]]
ProgressHook = Callable[[float, int, int], None]


@dataclass
class FlowRecord:
    flow_id: str
    start_s: float
    finish_s: float
    size_bytes: float
    path: Path
    flow: TraceFlow


class LinkEvent(NamedTuple):
    """A cable (``a``-``b``, both directions) going down or coming back up at ``t_s``."""

    t_s: float
    a: str
    b: str
    up: bool


def check_link_events(fabric: Fabric, events: Sequence[LinkEvent],
                      labels: Optional[Sequence[str]] = None) -> List[LinkEvent]:
    """``events`` in time order (stable for equal times), each checked: a switch-to-switch cable of
    ``fabric``, a time >= 0, and per cable down and up in turn, starting from up.  Raises ValueError,
    naming the event by its ``labels`` entry if given (say, the command-line option that gave it).

    Why switch cables only: a host's own link going down strands that host's
    flows, and the simulator has no model of flows that never finish.
    """
    events = [LinkEvent(float(e.t_s), str(e.a), str(e.b), bool(e.up)) for e in events]
    order = sorted(range(len(events)), key=lambda i: events[i].t_s)
    out = [events[i] for i in order]
    down = set()
    down_at: Dict[frozenset, float] = {}
    for i, e in zip(order, out):
        what = labels[i] if labels is not None else "link event %s-%s %s at t=%g s" % (
            e.a, e.b, "up" if e.up else "down", e.t_s)
        if not (math.isfinite(e.t_s) and e.t_s >= 0):
            raise ValueError("%s: the time must be a number of seconds >= 0" % what)
        if not fabric.graph.has_edge(e.a, e.b):
            raise ValueError("%s: there is no cable %s-%s in this fabric" % (what, e.a, e.b))
        if not (fabric.is_switch(e.a) and fabric.is_switch(e.b)):
            raise ValueError("%s: only a cable between two switches can fail here "
                             "(a host's own link would strand its flows)" % what)
        key = frozenset((e.a, e.b))
        if e.up and key not in down:
            raise ValueError("%s: the cable is not down at that time (a --restore needs an earlier --fail)"
                             % what)
        if not e.up and (key in down or not fabric.is_up(e.a, e.b)):
            raise ValueError("%s: the cable is already down at that time" % what)
        if e.up and down_at[key] == e.t_s:
            raise ValueError("%s: the cable fails at that same time; a --restore must come after its --fail "
                             "(at the same instant the cable would carry flows moved off it for nothing)" % what)
        if e.up:
            down.discard(key)
        else:
            down.add(key)
            down_at[key] = e.t_s
    return out


@dataclass
class SimResult:
    flows: List[FlowRecord]
    links: List[Link]
    capacity_bps: np.ndarray          # (n_links,)
    tick_s: np.ndarray                # (n_ticks,) end time of each interval
    interval_bytes: np.ndarray        # (n_ticks, n_links) bytes sent in each interval
    reroutes: int
    events: int
    link_events: int = 0              # cable downs and ups replayed
    failover_moves: int = 0           # connections moved off a cable when it went down

    def utilization(self) -> np.ndarray:
        """(n_ticks, n_links) mean utilization of each link in each interval."""
        if len(self.tick_s) == 0:
            return np.zeros((0, len(self.links)))
        dt = np.diff(np.concatenate([[0.0], self.tick_s]))
        return self.interval_bytes * 8.0 / (dt[:, None] * self.capacity_bps[None, :])


class _Conn:
    """A connection (5-tuple) of the trace: its path, class and flows in flight (in arrival order).

    A plain class with slots, not a dataclass: a replay makes one per connection
    of its trace (5,000 in the churny bench), and this is cheaper to create.
    """

    __slots__ = ("cid", "five", "path", "cls", "pending", "in_flight")

    def __init__(self, cid: int, five: FiveTuple, path: Path, cls: str, pending: int = 0) -> None:
        self.cid = cid
        self.five = five
        self.path = path
        self.cls = cls
        self.pending = pending               # flows of this connection not yet finished
        self.in_flight: List[int] = []


ConnKey = Tuple[str, str, int, int, int]
_FIVE_FIELDS = attrgetter("src", "dst", "proto", "src_port", "dst_port")


def _conn_keys(flows: Sequence[TraceFlow], flow_ids: Sequence[str], seed: int) -> List[ConnKey]:
    """Each flow's ``five_tuple(f, seed)`` as a plain tuple of its fields.

    Why: a replay indexes every flow of its trace before it starts; the fields
    come out in one C-level call per flow, and only a flow whose trace leaves a
    port out (src_port: ephemeral, dst_port: 0) takes the slow way.
    """
    return [k if k[3] is not None and k[4] else
            (k[0], k[1], k[2], k[3] if k[3] is not None else ephemeral_port(seed, fid), k[4] or 0)
            for k, fid in zip(map(_FIVE_FIELDS, flows), flow_ids)]


def _connections(flows: Sequence[TraceFlow], keys: Sequence[ConnKey]
                 ) -> Tuple[List[_Conn], np.ndarray, Dict[ConnKey, int]]:
    """The trace's connections in 5-tuple order (cid = position), each flow's cid, and key -> cid.

    A connection takes the class of its first flow and counts its flows as
    ``pending``.  Why not a loop over flows: indexing runs over every flow of
    the trace (8,000-11,000 in the k=8 bench), and the flow-by-flow loop was a
    fifth of a 20 s ECMP replay; here only the dictionary numbering is per
    flow, the rest per connection or in numpy.
    """
    first: Dict[ConnKey, int] = {}
    seen = np.array([first.setdefault(k, len(first)) for k in keys], dtype=np.int64)   # by first appearance
    uniq = list(first)
    rank = _key_order(uniq)                                       # cid -> number of first appearance
    cid_of_seen = np.empty(len(uniq), dtype=np.int64)
    cid_of_seen[rank] = np.arange(len(uniq))
    cid_of_flow = cid_of_seen[seen]
    pending = np.bincount(cid_of_flow, minlength=len(uniq)).tolist()
    # the first flow of each connection: where the running maximum of ``seen`` steps up
    first_flow = np.flatnonzero(np.diff(np.maximum.accumulate(seen), prepend=-1))
    fives = [FiveTuple(*uniq[a]) for a in rank.tolist()]
    classes = [flows[i].cls for i in first_flow[rank].tolist()]
    order = list(map(_Conn, range(len(uniq)), fives, [()] * len(uniq), classes, pending))
    return order, cid_of_flow, dict(zip(uniq, cid_of_seen.tolist()))


def _key_order(keys: Sequence[ConnKey]) -> np.ndarray:
    """``sorted(range(len(keys)), key=keys.__getitem__)`` as an array, for distinct keys.

    Why: sorting 129,643 tuples (a 60 s trace of short flows) took half a second;
    the host names are ranked once, and ``np.lexsort`` on the five columns gives the
    tuples' order (distinct keys: no ties).  Protocols and ports that are not
    integers within int64 take the plain sort.
    """
    n = len(keys)
    if n < 2:
        return np.arange(n, dtype=np.int64)
    src, dst, proto, src_port, dst_port = zip(*keys)
    number = {name: i for i, name in enumerate(sorted(set(src) | set(dst)))}
    try:
        cols = [np.array(col, dtype=np.int64) for col in (list(map(number.__getitem__, src)),
                                                          list(map(number.__getitem__, dst)),
                                                          proto, src_port, dst_port)]
    except (OverflowError, TypeError, ValueError):
        cols = []
    if not cols or any(col.tolist() != list(raw) for col, raw in zip(cols[2:], (proto, src_port, dst_port))):
        return np.array(sorted(range(n), key=keys.__getitem__), dtype=np.int64)   # not plain integers
    return np.lexsort(cols[::-1])


def _dependency_groups(deps_of: Sequence[Sequence[str]], index_of: Dict[str, int]
                       ) -> Tuple[List[List[int]], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dependencies by group: flows that list the same deps share one countdown.

    E.g. every flow of a ring iteration waits on the whole previous iteration,
    so a trace of 27,000 flows with 8 deps each costs 3,000 group entries, not
    200,000.  Groups are numbered in order of first appearance; a group's
    members (flow order) become ready together, as flow by flow did.

    Returns the members of each group, each group's count of deps (a dep
    listed twice counts twice), who waits on each flow as CSR arrays (the
    groups of flow ``i``, ascending and once per mention, are
    ``wait_groups[wait_ptr[i]:wait_ptr[i + 1]]``) and the flows without deps.
    Per flow only the dictionary numbering runs in Python (see ``_connections``).
    """
    n = len(deps_of)
    group_of: Dict[Tuple[str, ...], int] = {}
    if set(map(type, deps_of)) <= {tuple}:
        gid = [group_of.setdefault(d, len(group_of)) if d else -1 for d in deps_of]
    else:    # deps given as lists or other iterables: as tuples
        gid = [group_of.setdefault(d if type(d) is tuple else tuple(d), len(group_of)) if d else -1
               for d in deps_of]
    n_groups = len(group_of)
    group_left = np.fromiter(map(len, group_of), dtype=np.int64, count=n_groups)
    gid_arr = np.array(gid, dtype=np.int64)
    waits = np.flatnonzero(gid_arr >= 0)
    by_group = waits[np.argsort(gid_arr[waits], kind="stable")].tolist()
    ends = np.cumsum(np.bincount(gid_arr[waits], minlength=n_groups)).tolist()
    group_members = [by_group[a:b] for a, b in zip([0] + ends[:-1], ends)]
    try:
        dep_flow = np.fromiter(map(index_of.__getitem__, chain.from_iterable(group_of)), dtype=np.int64,
                               count=int(group_left.sum()))
    except KeyError as exc:   # read_flow_trace reports this with file and line; flows built in code come here
        who = next(i for i, d in enumerate(deps_of) if d and exc.args[0] in d)
        ids = list(index_of) if len(index_of) == n else None
        raise SimError("flow %s (number %d of the trace) depends on flow_id %r, which is not in the trace; "
                       "add that flow, or drop the dependency"
                       % (repr(ids[who]) if ids else "?", who, exc.args[0])) from None
    dep_group = np.repeat(np.arange(n_groups, dtype=np.int64), group_left)
    wait_groups = dep_group[np.argsort(dep_flow, kind="stable")]
    wait_ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(dep_flow, minlength=n), out=wait_ptr[1:])
    return group_members, group_left, wait_ptr, wait_groups, np.flatnonzero(gid_arr < 0)


def _dependency_depth(roots: np.ndarray, wait_ptr: np.ndarray, wait_groups: np.ndarray,
                      group_left: np.ndarray, member_ptr: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Each flow's dependency depth: 0 for a flow without deps, else 1 + the deepest of its deps
    (-1 for a flow that can never start: a cycle, or waiting on one).

    Why: flows become ready in about this order, so the simulator routes
    connections a few depths ahead of the replay (see ``Simulator._run``) rather
    than all of them before it starts, which a replay stopped early (a
    benchmark's horizon) would pay for in full.  Layer by layer, as the loop
    releases them: a group's members are ready when its countdown of deps reaches 0.
    """
    def rows_of(ptr: np.ndarray, values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``values[ptr[r]:ptr[r + 1]]`` for every r in ``rows``, concatenated (a CSR gather)."""
        lens = ptr[rows + 1] - ptr[rows]
        return values[np.repeat(ptr[rows] - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))]

    n = len(wait_ptr) - 1
    depth = np.full(n, -1, dtype=np.int64)
    left = group_left.copy()
    frontier = np.asarray(roots, dtype=np.int64)
    d = 0
    while frontier.size:
        depth[frontier] = d
        groups = rows_of(wait_ptr, wait_groups, frontier)       # the groups waiting on the frontier
        np.subtract.at(left, groups, 1)
        frontier = rows_of(member_ptr, members, np.unique(groups[left[groups] == 0]))
        d += 1
    return depth


class _Slots:
    """The flows in flight, packed at the front of growable arrays.

    Why packed: every event works on all flows in flight (time to finish,
    bytes sent), so their state lives in contiguous numpy arrays; a finished
    flow's slot is filled by the last one.  ``new`` marks the slots (re)placed
    since the last solve (the solver's ``is_new``); it moves with its slot.
    """

    def __init__(self, n_flows: int, width: int, pad: int) -> None:
        size = 64
        self.pad = pad
        self.m = 0
        self.flow = np.zeros(size, dtype=np.int64)
        self.links = np.full((size, width), pad, dtype=np.int64)
        self.rem = np.zeros(size)
        self.rate = np.zeros(size)
        self.fcap = np.full(size, np.inf)
        self.new = np.zeros(size, dtype=bool)
        self.slot_of = np.full(n_flows, -1, dtype=np.int64)

    def _grow(self) -> None:
        size = 2 * len(self.flow)
        self.flow = np.resize(self.flow, size)
        links = np.full((size, self.links.shape[1]), self.pad, dtype=np.int64)
        links[:self.m] = self.links[:self.m]
        self.links = links
        self.rem = np.resize(self.rem, size)
        self.rate = np.resize(self.rate, size)
        self.fcap = np.resize(self.fcap, size)
        self.new = np.resize(self.new, size)

    def widen(self, width: int) -> None:
        if width > self.links.shape[1]:
            extra = np.full((len(self.links), width - self.links.shape[1]), self.pad, dtype=np.int64)
            self.links = np.hstack([self.links, extra])

    def add(self, i: int, row: np.ndarray, remaining: float, fcap: float) -> int:
        if self.m == len(self.flow):
            self._grow()
        s = self.m
        self.flow[s] = i
        self.links[s] = row
        self.rem[s] = remaining
        self.rate[s] = 0.0
        self.fcap[s] = fcap
        self.new[s] = True
        self.slot_of[i] = s
        self.m += 1
        return s

    def add_many(self, ids: List[int], rows: np.ndarray, remaining: np.ndarray, fcap: np.ndarray) -> None:
        """``add`` for several flows at once, in the given order (same slots as one by one)."""
        k = len(ids)
        while self.m + k > len(self.flow):
            self._grow()
        a, b = self.m, self.m + k
        self.flow[a:b] = ids
        self.links[a:b] = rows
        self.rem[a:b] = remaining
        self.rate[a:b] = 0.0
        self.fcap[a:b] = fcap
        self.new[a:b] = True
        self.slot_of[ids] = np.arange(a, b)
        self.m = b

    def remove_many(self, fin_slots: List[int]) -> None:
        """``remove`` of every slot in ``fin_slots`` (ascending), in descending order, at once.

        The same final layout as one ``remove`` per slot: the moves are worked out
        on plain ints (each removed slot takes the element then last), then applied
        with one fancy-index copy per array.
        """
        self.slot_of[self.flow[fin_slots]] = -1
        m = self.m
        moves: Dict[int, int] = {}            # destination slot -> original slot of what lands there
        for s in reversed(fin_slots):
            last = m - 1
            if s != last:
                moves[s] = moves.pop(last, last)
            else:
                moves.pop(last, None)
            m = last
        self.m = m
        if moves:
            dst = np.fromiter(moves.keys(), dtype=np.int64, count=len(moves))
            src = np.fromiter(moves.values(), dtype=np.int64, count=len(moves))
            self.flow[dst] = self.flow[src]
            self.links[dst] = self.links[src]
            self.rem[dst] = self.rem[src]
            self.rate[dst] = self.rate[src]
            self.fcap[dst] = self.fcap[src]
            self.new[dst] = self.new[src]
            self.slot_of[self.flow[dst]] = dst

    def reserve(self, k: int) -> None:
        """Room for ``k`` more flows in flight."""
        while self.m + k > len(self.flow):
            self._grow()

    def retire(self, fin_slots: np.ndarray, link_count: np.ndarray, kernel: Optional[Callable]
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Remove the finished slots ``fin_slots`` (ascending) and count their links out of ``link_count``.

        Returns their flows (sorted), link rows and rates.  ``kernel`` (the
        compiled ``kernels.retire``) does it in one call; without it, numpy and
        ``remove_many``, the reference, give the same arrays and layout.
        """
        k = len(fin_slots)
        if kernel is not None:
            fin = np.empty(k, dtype=np.int64)
            rows = np.empty((k, self.links.shape[1]), dtype=np.int64)
            rates = np.empty(k)
            kernel(fin_slots, self.m, self.flow, self.links, self.rem, self.rate, self.fcap, self.new,
                   self.slot_of, link_count, fin, rows, rates)
            self.m -= k
            return fin, rows, rates
        fin = np.sort(self.flow[fin_slots])
        rows = self.links[fin_slots]
        rates = self.rate[fin_slots]
        np.subtract.at(link_count, rows.ravel(), 1)
        self.remove_many(fin_slots.tolist())
        return fin, rows, rates

    def remove(self, s: int) -> None:
        """Free slot ``s`` (callers remove in descending slot order within one event)."""
        last = self.m - 1
        self.slot_of[self.flow[s]] = -1
        if s != last:
            j = self.flow[last]
            self.flow[s] = j
            self.links[s] = self.links[last]
            self.rem[s] = self.rem[last]
            self.rate[s] = self.rate[last]
            self.fcap[s] = self.fcap[last]
            self.new[s] = self.new[last]
            self.slot_of[j] = s
        self.m = last


def _stall_message(t: float, unfinished: int, rates: np.ndarray) -> str:
    """Why time could not advance, in what the user can check: no flow in flight can finish and no
    start or tick is due (e.g. every flow left sits on a link of capacity 0)."""
    stuck = int(np.count_nonzero(~(rates > 0)))
    return ("simulation stalled at t=%.6f s with %d flows unfinished: %d of the %d in flight have no rate "
            "and nothing else is due; check the fabric's link capacities (--link-mbps, the topology) "
            "and report the trace if they are all > 0" % (t, unfinished, stuck, len(rates)))


class Simulator:
    """Replays ``flows`` on ``fabric``; ``run()`` returns a ``SimResult``.

    Rates are max-min fair at every instant.  An event (arrivals, completions,
    the path changes of a tick, all at one time) does not re-solve every flow:
    ``fairshare.refill_threshold`` gives a level below which the event changes no rate,
    and only the new flows and those at or above that level are re-solved, on
    the capacity the others leave (``fairshare.resolve_event``).
    """

    def __init__(self, fabric: Fabric, flows: Sequence[TraceFlow], *, seed: int = 0,
                 poll_interval_s: float = 1.0, hook: Optional[TickHook] = None,
                 progress: Optional[ProgressHook] = None, incremental: bool = True,
                 compiled: Optional[bool] = None, quantum_s: float = 0.0,
                 link_events: Sequence[LinkEvent] = ()) -> None:
        if not poll_interval_s > 0:
            raise ValueError("poll interval must be > 0 s, got %r" % poll_interval_s)
        if not (quantum_s >= 0 and math.isfinite(quantum_s)):
            raise ValueError("quantum must be a number of seconds >= 0, got %r" % quantum_s)
        # > 0: completions within quantum_s of each other are handled as one event (see kernels.advance_numpy);
        # 0: every completion is its own event, exact
        self.quantum = float(quantum_s)
        self.fabric = fabric
        self.flows = list(flows)
        self.seed = seed
        self.poll = float(poll_interval_s)
        self.hook = hook
        self.progress = progress
        self.incremental = incremental   # False: re-solve every flow at every event (for checks)
        # fair-share solver: None = compiled when Numba is installed; False = the numpy reference
        self.compiled = compiled
        self.links: List[Link] = fabric.directed_links()
        self.link_index: Dict[Link, int] = {l: i for i, l in enumerate(self.links)}
        # the same, as link_at[a][b]: a new connection's path row costs two string lookups per hop
        self._link_at: Dict[str, Dict[str, int]] = {}
        for (a, b), i in self.link_index.items():
            self._link_at.setdefault(a, {})[b] = i
        self.capacity = np.array([fabric.capacity_bps(a, b) for a, b in self.links])
        self._ports = _PortLayout(fabric, self.link_index)
        # the planner's fast, equal-to-Fabric.paths path enumerator (same paths, same order)
        self._paths = EqualCostPaths(fabric, compiled=compiled)
        self.solves = 0                  # re-solves done (for benchmarks)
        self.resolved_flows = 0          # flows re-solved in all
        self.in_flight = 0               # flows in flight at the last tick
        self.start_s = np.zeros(0)       # set by run(): each flow's start time so far, NaN if not started
        self.link_events = check_link_events(fabric, link_events)

    # ------------------------------------------------------------------
    def run(self) -> SimResult:
        """Replay every flow to its finish; deterministic for the given flows and seed.

        The objects that exist when the replay starts (the trace, the model, the
        modules) are set aside from the garbage collector meanwhile
        (``gc.freeze``): they outlive the replay, and a full collection walking
        them cost ~0.2 s each time one fell inside a k=8 replay, a quarter of a
        20 s reactive run.  The setup runs with the collector off, and what it
        makes (an object per connection, kept to the end) is set aside too; objects
        the events create are collected as usual.  Skipped if someone else froze
        objects already; undone on return (a collector the caller turned off stays off).
        """
        freeze = gc.get_freeze_count() == 0
        collecting = gc.isenabled()
        if freeze:
            gc.freeze()
            gc.disable()
        # the link events change the fabric; it is the caller's, and other policies replay on it next
        was_up = {(e.a, e.b): self.fabric.is_up(e.a, e.b) for e in self.link_events}
        try:
            return self._run(freeze, collecting)
        finally:
            for (a, b), up in was_up.items():
                self.fabric.set_link_up(a, b, up)
            if freeze:
                gc.unfreeze()
                if collecting:
                    gc.enable()

    def _run(self, freeze: bool = False, collecting: bool = False) -> SimResult:
        """``run``'s work; with ``freeze``, the setup's objects are frozen before the events
        start and the collector is turned back on if ``collecting``.  Why off for the setup:
        indexing a trace of 129,643 connections spent ~0.5 s in collections that freed nothing."""
        flows = self.flows
        n = len(flows)
        n_links = len(self.links)
        pad = n_links
        capacity = self.capacity
        flow_ids = [f.flow_id for f in flows]
        index_of = dict(zip(flow_ids, range(n)))
        group_members, group_left, wait_ptr, wait_groups, roots = _dependency_groups(
            [f.deps for f in flows], index_of)
        order, cid_of_flow, cid_of_key = _connections(flows, _conn_keys(flows, flow_ids, self.seed))
        conn_of = [order[c] for c in cid_of_flow.tolist()]
        n_conns = len(order)
        width = 6  # links in the longest fat-tree path (host-edge-agg-core-agg-edge-host)
        conn_rows = np.full((n_conns, width), pad, dtype=np.int64)
        conn_training = np.array([c.cls == "training" for c in order], dtype=bool)
        conn_inflight = np.zeros(n_conns, dtype=np.int64)
        conn_pending = np.array([c.pending for c in order], dtype=np.int64)
        conn_burst = np.zeros(n_conns)      # mean rate of the connection's last finished flow
        conn_last = np.full(n_conns, -1, dtype=np.int64)   # its last finished flow, -1: none yet
        path_of: List[Path] = [()] * n
        start = np.full(n, np.nan)
        self.start_s = start             # per flow, the start so far (NaN: not yet); for progress hooks
        finish = np.full(n, np.nan)
        slots = _Slots(n, width, pad)
        row_cache: Dict[Path, np.ndarray] = {}
        link_at = self._link_at

        size_of = np.array([f.size_bytes for f in flows], dtype=float)
        start_of = np.array([f.start_s for f in flows], dtype=float)
        gap_of = np.array([f.gap_s for f in flows], dtype=float)
        released = np.zeros(len(group_members), dtype=np.int64)
        # each group's members as CSR arrays, for kernels.release
        member_ptr = np.zeros(len(group_members) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, group_members), dtype=np.int64, count=len(group_members)),
                  out=member_ptr[1:])
        members = np.fromiter(chain.from_iterable(group_members), dtype=np.int64, count=int(member_ptr[-1]))
        conn_routed = np.zeros(n_conns, dtype=bool)   # the connection has a path (ECMP's or the planner's)
        # the per-event steps: compiled (one call each), or their numpy/Python references
        fast = fairshare._use_compiled(self.compiled)
        complete = kernels.complete_jit if fast else kernels.complete
        advance = kernels.advance_jit if fast else kernels.advance_numpy
        retire = kernels.retire_jit if fast else None
        admit = kernels.admit_jit if fast else None
        release = kernels.release_jit if fast else kernels.release
        event_run = kernels.run_events_jit if fast else None
        fin_log = np.empty(n, dtype=np.int64)     # the flows an event run finished, in event order
        arr_log = np.empty(n, dtype=np.int64)     # the flows it started, in start order
        fin_buf = np.empty(0, dtype=np.int64)      # the slots finishing at an event
        fcap_of = np.array([f.rate_bps or np.inf for f in flows], dtype=float)
        ecmp_path = self._paths.ecmp_path   # == ecmp_choice(five, fabric.paths(src, dst))
        # flows waiting to start, as a heap of (start time, flow) in two arrays (see kernels.heap_push);
        # sorted is a valid heap
        heap_t = np.empty(n)
        heap_i = np.empty(n, dtype=np.int64)
        heap_n = len(roots)
        by_start = np.lexsort((roots, start_of[roots]))
        heap_t[:heap_n] = start_of[roots][by_start]
        heap_i[:heap_n] = roots[by_start]
        link_rate = np.zeros(n_links)
        link_count = np.zeros(n_links + 1, dtype=np.int64)
        link_bytes = np.zeros(n_links)
        last_tick_bytes = np.zeros(n_links)
        ticks: List[float] = []
        interval_rows: List[np.ndarray] = []
        reroutes = 0
        events = 0
        done = 0
        t = 0.0
        tick_no = 1
        # changes since the last solve
        removed_rates: List[np.ndarray] = []
        removed_rows: List[np.ndarray] = []
        unsolved = False                 # flows (re)placed since the last solve

        def row_for(path: Path) -> np.ndarray:
            nonlocal width, conn_rows
            row = row_cache.get(path)
            if row is None:
                idx = [link_at[a][b] for a, b in zip(path, path[1:])]   # link_index of path_links(path)
                if len(idx) > width:  # a longer path than any so far: widen the tables
                    extra = len(idx) - width
                    width = len(idx)
                    slots.widen(width)
                    conn_rows = np.hstack([conn_rows, np.full((n_conns, extra), pad, dtype=np.int64)])
                    for key in list(row_cache):
                        row_cache[key] = np.concatenate([row_cache[key],
                                                         np.full(extra, pad, dtype=np.int64)])
                row = np.array(idx + [pad] * (width - len(idx)), dtype=np.int64)
                row_cache[path] = row
            return row

        def route_unstarted(cids: Sequence[int]) -> None:
            """Give connections ``cids`` (none of whose flows has started) their ECMP paths on the fabric as it is.

            Why ahead of a connection's first start (see ``conn_depth`` below for how far):
            a flow whose connection has no path yet stops the compiled event run (ECMP
            runs in Python), and with short random flows nearly every arrival is a new
            connection.  The path is
            the one the first start would pick as long as the fabric does not change,
            and it changes only in the tick's hook or progress call, after which the
            connections that have not started are routed again.  A connection with no
            path now is left without one: its first start tries again and reports it.
            """
            cids = list(cids)
            paths = self._paths.ecmp_paths([order[cid].five for cid in cids])
            longest = max(paths, key=lambda p: len(p) if p else 0, default=None)
            if longest and len(longest) - 1 > width:
                row_for(longest)                      # widens the tables first
            routed: List[int] = []
            rows: List[List[int]] = []
            for cid, path in zip(cids, paths):
                c = order[cid]
                if path is None:
                    c.path = ()
                    conn_routed[cid] = False
                    continue
                c.path = path
                routed.append(cid)
                # row_for's row, without keeping it: most of these paths are met once
                rows.append([link_at[a][b] for a, b in zip(path, path[1:])] + [pad] * (width + 1 - len(path)))
            if routed:
                conn_rows[routed] = np.array(rows, dtype=np.int64)
                conn_routed[routed] = True

        def solve() -> None:
            nonlocal link_rate, unsolved
            m = slots.m
            is_new = slots.new[:m].copy()      # the slots of the flows placed since the last solve
            slots.new[:m] = False
            gone = kernels.stacked(removed_rows) if removed_rows else np.zeros((0, width), dtype=np.int64)
            gone_rates = kernels.stacked(removed_rates) if removed_rates else np.zeros(0)
            try:
                link_rate, n_up = fairshare.resolve_event(
                    slots.links[:m], slots.rate[:m], slots.fcap[:m], is_new, gone,
                    gone_rates, link_rate, link_count, capacity,
                    incremental=self.incremental, compiled=self.compiled)
            except fairshare.FairShareError as exc:
                raise SimError(str(exc)) from None
            self.solves += 1
            self.resolved_flows += n_up
            removed_rates.clear()
            removed_rows.clear()
            unsolved = False

        def place(i: int, path: Path) -> None:
            """Put flow ``i`` (in flight) on ``path``."""
            nonlocal unsolved
            row = row_for(path)
            s = slots.slot_of[i]
            if s >= 0:
                old = slots.links[s].copy()
                removed_rows.append(old[None, :])
                removed_rates.append(slots.rate[s:s + 1].copy())
                np.subtract.at(link_count, old, 1)
                slots.links[s] = row
                slots.new[s] = True
            else:
                slots.add(i, row, flows[i].size_bytes, flows[i].rate_bps if flows[i].rate_bps else np.inf)
            np.add.at(link_count, row, 1)
            path_of[i] = path
            unsolved = True

        flow_rank: List[np.ndarray] = []     # rank of each flow's id in string order, made on first need

        def array_builder(flow_slots: np.ndarray, flow_rates: np.ndarray, demand: np.ndarray,
                          ids: np.ndarray) -> Callable[[], Tuple[np.ndarray, np.ndarray]]:
            """``TickView.planner_arrays``' demand and name rank for the open connections ``ids``."""
            def build() -> Tuple[np.ndarray, np.ndarray]:
                if not flow_rank:
                    rank = np.empty(n, dtype=np.int64)
                    rank[np.argsort(np.array(flow_ids), kind="stable")] = np.arange(n)
                    flow_rank.append(rank)
                busy = conn_inflight[ids]
                name = conn_last[ids].copy()
                sending = np.flatnonzero(busy > 0)
                name[sending] = [order[cid].in_flight[0] for cid in ids[sending].tolist()]
                exact = demand.copy()
                several = np.flatnonzero(busy > 1)
                if len(several):
                    rates = dict(zip(flow_slots.tolist(), flow_rates.tolist()))
                    for p, cid in zip(several.tolist(), ids[several].tolist()):
                        exact[p] = sum(rates.get(i, 0.0) for i in order[cid].in_flight)
                return exact, flow_rank[0][name]
            return build

        def connection_builder(flow_slots: np.ndarray, flow_rates: np.ndarray, conn_rate: np.ndarray,
                               ids: np.ndarray) -> Callable[[Optional[Sequence[int]]], List[ConnView]]:
            """Builds the ConnViews of open connections ``ids[positions]`` (all by default), in that order.

            ``conn_rate``: per connection, ``np.bincount`` of its in-flight flows' rates,
            which for one flow is ``0.0 + rate``, what ``sum()`` gives; a connection with
            several flows in flight sums them in arrival order, from ``flow_slots``/``flow_rates``.
            """
            rates: Dict[int, float] = {}

            def build(positions: Optional[Sequence[int]] = None) -> List[ConnView]:
                sel = ids if positions is None else ids[np.asarray(positions, dtype=np.int64)]
                views: List[ConnView] = []
                append = views.append
                for cid, one, last, burst in zip(sel.tolist(), conn_rate[sel].tolist(), conn_last[sel].tolist(),
                                                 conn_burst[sel].tolist()):
                    c = order[cid]
                    inf = c.in_flight
                    if inf:
                        if len(inf) == 1:
                            r = one
                        else:
                            if not rates:
                                rates.update(zip(flow_slots.tolist(), flow_rates.tolist()))
                            r = sum(rates.get(i, 0.0) for i in inf)
                        append(ConnView(flow_ids[inf[0]], c.five, c.path, r, r, c.cls, True))
                    else:
                        append(ConnView(flow_ids[last] if last >= 0 else "", c.five, c.path, 0.0, burst,
                                        c.cls, False))
                return views
            return build

        # Connections are routed a few dependency depths ahead of the flows that start: a connection
        # of depth d (its earliest flow's) when a flow of depth d needs its path, together with every
        # other one up to depth 2 * (the depth routed so far) + 1, so a replay stops for routing only a
        # handful of times and never routes much more than it reaches.
        flow_depth = _dependency_depth(roots, wait_ptr, wait_groups, group_left, member_ptr, members)
        conn_depth = np.full(n_conns, n + 1, dtype=np.int64)       # n + 1: no flow of it can start
        np.minimum.at(conn_depth, cid_of_flow, np.where(flow_depth >= 0, flow_depth, n + 1))
        routed_depth = 0
        route_unstarted(np.flatnonzero(conn_depth == 0).tolist())
        routed_version = self.fabric.version
        link_events = self.link_events
        next_event = 0                   # the next of link_events to apply
        failover_moves = 0

        def open_view(t: float, interval: np.ndarray) -> TickView:
            """What the hook sees now: the counters, and the connections open (in flight, or between bursts)."""
            m = slots.m
            in_flight_rate = np.bincount(cid_of_flow[slots.flow[:m]], weights=slots.rate[:m], minlength=n_conns)
            open_ = (conn_pending > 0) & ((conn_inflight > 0) | (conn_burst > 0))
            ids = np.flatnonzero(open_)
            demand = np.where(conn_inflight > 0, in_flight_rate, conn_burst)[ids]
            flow_slots, flow_rates = slots.flow[:m].copy(), slots.rate[:m].copy()
            return TickView(t, self.links, link_bytes.copy(), interval * 8.0 / (self.poll * capacity), self._ports,
                            conn_rows[ids], demand, conn_training[ids],
                            connection_builder(flow_slots, flow_rates, in_flight_rate, ids),
                            array_builder(flow_slots, flow_rates, demand, ids))

        def cable_down(t: float, a: str, b: str) -> int:
            """Move every connection that still has flows to send off the cable a-b (down now); returns how many.

            As the live controller on a port-down: where the hook places a connection
            (``failover``, the planner's load-aware placement) it goes there, every
            other one takes ECMP's choice over the surviving paths.  In-flight flows
            move at once; a connection between bursts sends its next flow on the new path.
            """
            dead = [self.link_index[(a, b)], self.link_index[(b, a)]]
            crossing = np.flatnonzero(conn_routed & (conn_pending > 0)
                                      & np.isin(conn_rows, dead).any(axis=1)).tolist()
            if not crossing:
                return 0
            placed: Dict[int, Path] = {}
            failover = getattr(self.hook, "failover", None)
            if failover is not None:
                for change in failover(open_view(t, link_bytes - last_tick_bytes), (a, b)):
                    five = change.five
                    cid = cid_of_key.get((five.src, five.dst, five.proto, five.src_port, five.dst_port))
                    try:
                        self.fabric.validate_path(change.new_path, five.src, five.dst)
                    except FabricError as exc:
                        raise SimError("controller returned a bad path for %s: %s" % (five.key(), exc)) from None
                    if cid is not None:
                        placed[cid] = tuple(change.new_path)
            for cid in crossing:
                c = order[cid]
                path = placed.get(cid)
                if path is None:
                    try:
                        path = ecmp_path(c.five)
                    except FabricError as exc:
                        raise SimError("connection %s has no path once %s-%s is down at t=%g s: %s"
                                       % (c.five.key(), a, b, t, exc)) from None
                c.path = path
                conn_rows[cid] = row_for(path)
                for i in c.in_flight:
                    place(i, path)
            # The moves a controller makes: connections it has seen (in flight or between bursts).  One
            # routed ahead of its first flow is re-hashed too, but a live controller would only meet it
            # later, on the fabric as it is then; counting it made the figure depend on that look-ahead.
            seen = np.asarray(crossing, dtype=np.intp)
            return int(np.count_nonzero((conn_inflight[seen] > 0) | (conn_last[seen] >= 0)))
        if freeze:
            gc.freeze()
            if collecting:
                gc.enable()
        while done < n or t > (tick_no - 1) * self.poll + 1e-12 * max(1.0, t):
            if unsolved or removed_rows:
                solve()
            m = slots.m
            next_tick = tick_no * self.poll
            # the events run up to the next tick or the next cable change, whichever is first
            stop = min(next_tick, link_events[next_event].t_s) if next_event < len(link_events) else next_tick
            if len(fin_buf) < len(slots.flow):
                fin_buf = np.empty(len(slots.flow), dtype=np.int64)
            t_arr = float(heap_t[0]) if heap_n else np.inf
            n_rel = 0
            if event_run is not None:     # the events up to the tick (or to one needing Python) in one call
                (t, slots.m, done, n_log, n_arr, heap_n, n_events, n_solves, n_resolved, status, link_rate,
                 gone_rows, gone_rates, unsolved) = event_run(
                    t, stop, n, done, m, slots.flow, slots.links, slots.rem, slots.rate, slots.fcap, slots.new,
                    slots.slot_of, link_rate, link_count, link_bytes, capacity, self.incremental, finish,
                    cid_of_flow, conn_pending, conn_inflight, conn_last, conn_burst, start, size_of, wait_ptr,
                    wait_groups, group_left, released, fin_buf, fin_log, heap_t, heap_i, heap_n, member_ptr,
                    members, start_of, gap_of, conn_rows, conn_routed, fcap_of, arr_log, self.quantum)
                events += n_events
                self.solves += n_solves
                self.resolved_flows += n_resolved
                if status == -1:
                    raise SimError(_stall_message(t, n - done, slots.rate[:slots.m]))
                if status == -2:
                    raise SimError(fairshare.NO_LIMIT)
                # a connection's in-flight list: its started flows in start order, less the finished ones
                for i in arr_log[:n_arr].tolist():
                    c = conn_of[i]
                    path_of[i] = c.path
                    c.in_flight.append(i)
                for i in fin_log[:n_log].tolist():
                    conn_of[i].in_flight.remove(i)
                if len(gone_rates):
                    removed_rows.append(gone_rows)
                    removed_rates.append(gone_rates)
            else:
                t_next, n_fin = advance(t, t_arr, stop, m, slots.rem, slots.rate,
                                        link_bytes, link_rate, fin_buf, self.quantum)
                if n_fin < 0:
                    raise SimError(_stall_message(t, n - done, slots.rate[:m]))
                t = t_next
                events += 1
                # completions
                early_flows: Optional[np.ndarray] = None
                if n_fin and self.quantum > 0:
                    # a flow that finished before the batch's end sent its bytes, not rate x (whole step),
                    # and finished when those bytes were done, at the rate it had
                    over = slots.rem[fin_buf[:n_fin]]
                    early = over < 0
                    if early.any():
                        slots_early = fin_buf[:n_fin][early]
                        rows_early = slots.links[slots_early]
                        link_bytes += np.bincount(rows_early.ravel(),
                                                  weights=np.repeat(over[early], rows_early.shape[1]),
                                                  minlength=n_links + 1)[:n_links]
                        early_flows = slots.flow[slots_early].copy()
                        early_s = over[early] * 8.0 / slots.rate[slots_early]      # <= 0: how much earlier
                if n_fin:
                    fin, gone_rows, gone_rates = slots.retire(fin_buf[:n_fin], link_count, retire)
                    removed_rows.append(gone_rows)
                    removed_rates.append(gone_rates)
                    for i in fin.tolist():
                        conn_of[i].in_flight.remove(i)
                    done += n_fin
                    n_rel = complete(fin, t, finish, cid_of_flow, conn_pending, conn_inflight, conn_last,
                                     conn_burst, start, size_of, wait_ptr, wait_groups, group_left, released)
                    if early_flows is not None:
                        finish[early_flows] = np.maximum(t + early_s, start[early_flows])
            if n_rel:      # their members are ready now (or at their start)
                heap_n = release(released, n_rel, member_ptr, members, start_of, gap_of, t, heap_t, heap_i, heap_n)
            # arrivals
            if heap_n and heap_t[0] <= t:
                arrived: List[int] = []
                while heap_n and heap_t[0] <= t:
                    _, i, heap_n = kernels.heap_pop_jit(heap_t, heap_i, heap_n)
                    i = int(i)
                    c = conn_of[i]
                    if not c.path and conn_depth[c.cid] > routed_depth:
                        top = max(int(conn_depth[c.cid]), 2 * routed_depth + 1)
                        route_unstarted(np.flatnonzero((conn_depth > routed_depth) & (conn_depth <= top)).tolist())
                        routed_depth = top
                    if not c.path:
                        try:
                            c.path = ecmp_path(c.five)
                        except FabricError as exc:
                            raise SimError("flow %s: %s" % (flows[i].flow_id, exc)) from None
                        conn_rows[c.cid] = row_for(c.path)
                        conn_routed[c.cid] = True
                    path_of[i] = c.path
                    c.in_flight.append(i)
                    arrived.append(i)
                # as place() one by one: new slots in arrival order
                if admit is not None:
                    slots.reserve(len(arrived))
                    admit(np.array(arrived, dtype=np.int64), t, slots.m, slots.flow, slots.links, slots.rem,
                          slots.rate, slots.fcap, slots.new, slots.slot_of, cid_of_flow, conn_rows, size_of,
                          fcap_of, link_count, conn_inflight, start)
                    slots.m += len(arrived)
                else:
                    cids = cid_of_flow[arrived]
                    rows = conn_rows[cids]
                    slots.add_many(arrived, rows, size_of[arrived], fcap_of[arrived])
                    np.add.at(link_count, rows.ravel(), 1)
                    start[arrived] = t
                    np.add.at(conn_inflight, cids, 1)
                unsolved = True
            # cable changes due now (before a tick at the same time, so its planner sees them)
            while next_event < len(link_events) and link_events[next_event].t_s <= t + 1e-12 * max(1.0, t):
                ev = link_events[next_event]
                next_event += 1
                if unsolved or removed_rows:
                    solve()               # the rates up to now, before anything moves
                self.fabric.set_link_up(ev.a, ev.b, ev.up)
                if not ev.up:
                    failover_moves += cable_down(t, ev.a, ev.b)
                # the connections not started yet take ECMP's choice on the fabric as it is now
                routed_version = self.fabric.version
                route_unstarted(np.flatnonzero((conn_inflight == 0) & (conn_last < 0)
                                               & (conn_depth <= routed_depth)).tolist())
            # control tick
            if t >= next_tick - 1e-12 * max(1.0, t):
                t = next_tick
                interval = link_bytes - last_tick_bytes
                last_tick_bytes = link_bytes.copy()
                ticks.append(t)
                interval_rows.append(interval)
                tick_no += 1
                if self.hook is not None:
                    if unsolved or removed_rows:
                        solve()
                    view = open_view(t, interval)
                    for change in self.hook(view):
                        five = change.five    # by_five.get(five), on plain tuples (see _connections)
                        cid = cid_of_key.get((five.src, five.dst, five.proto, five.src_port, five.dst_port)) \
                            if type(five) is FiveTuple else None
                        c = order[cid] if cid is not None else None
                        if c is None:
                            raise SimError("controller moved unknown connection %s" % change.five.key())
                        try:
                            self.fabric.validate_path(change.new_path, change.five.src, change.five.dst)
                        except FabricError as exc:
                            raise SimError("controller returned a bad path for %s: %s"
                                           % (change.five.key(), exc)) from None
                        if tuple(change.new_path) == c.path:
                            continue
                        c.path = tuple(change.new_path)
                        conn_rows[c.cid] = row_for(c.path)
                        conn_routed[c.cid] = True
                        for i in c.in_flight:
                            place(i, c.path)
                        reroutes += 1
                self.in_flight = slots.m
                if self.progress is not None:
                    self.progress(t, done, n)
                if self.fabric.version != routed_version:   # links went down or up: ECMP's paths may differ
                    routed_version = self.fabric.version
                    route_unstarted(np.flatnonzero((conn_inflight == 0) & (conn_last < 0)
                                                   & (conn_depth <= routed_depth)).tolist())
        records = list(map(FlowRecord, flow_ids, start.tolist(), finish.tolist(), [f.size_bytes for f in flows],
                           path_of, flows))
        return SimResult(records, self.links, self.capacity, np.asarray(ticks),
                         np.vstack(interval_rows) if interval_rows else np.zeros((0, n_links)),
                         reroutes, events, next_event, failover_moves)

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
monitor, forecaster and planner; this module only borrows the planner's
``EqualCostPaths`` (a fast ``Fabric.paths``) so ECMP picks what live picks.

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
import heapq
from itertools import chain
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from controller import fairshare
from controller.ecmp import FiveTuple
from controller.fabric import Fabric, FabricError, Link, Path, path_links
from controller.flowtrace import TraceFlow
from controller.jit import jit
from controller.planner import EqualCostPaths

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
        return np.floor(self.link_bytes).astype(np.int64).tolist()

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


@dataclass
class SimResult:
    flows: List[FlowRecord]
    links: List[Link]
    capacity_bps: np.ndarray          # (n_links,)
    tick_s: np.ndarray                # (n_ticks,) end time of each interval
    interval_bytes: np.ndarray        # (n_ticks, n_links) bytes sent in each interval
    reroutes: int
    events: int

    def utilization(self) -> np.ndarray:
        """(n_ticks, n_links) mean utilization of each link in each interval."""
        if len(self.tick_s) == 0:
            return np.zeros((0, len(self.links)))
        dt = np.diff(np.concatenate([[0.0], self.tick_s]))
        return self.interval_bytes * 8.0 / (dt[:, None] * self.capacity_bps[None, :])


@dataclass
class _Conn:
    cid: int
    five: FiveTuple
    path: Path
    cls: str
    pending: int = 0                     # flows of this connection not yet finished
    in_flight: List[int] = field(default_factory=list)


class _Slots:
    """The flows in flight, packed at the front of growable arrays.

    Why packed: every event works on all flows in flight (time to finish,
    bytes sent), so their state lives in contiguous numpy arrays; a finished
    flow's slot is filled by the last one.
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
            self.slot_of[self.flow[dst]] = dst

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
            self.slot_of[j] = s
        self.m = last


def _complete(fin, t, finish, cid_of_flow, conn_pending, conn_inflight, conn_last, conn_burst,
              start, size_of, wait_ptr, wait_groups, group_left, released):
    """The bookkeeping of flows ``fin`` (ascending) finishing at ``t``, flow by flow.

    Updates each flow's finish time and its connection's counts, last flow and
    last burst rate (size / duration), and counts down the dependency groups
    waiting on it; the groups that reach zero are written to ``released``, and
    their number is returned.  Plain loops over arrays, so that the same source
    runs compiled by Numba (one call per event instead of a dozen small array
    operations or a Python loop per flow) and, without Numba, as Python.
    """
    n_rel = 0
    for j in range(fin.shape[0]):
        i = fin[j]
        finish[i] = t
        c = cid_of_flow[i]
        conn_pending[c] -= 1
        conn_inflight[c] -= 1
        conn_last[c] = i
        dur = t - start[i]
        if dur > 0:
            conn_burst[c] = size_of[i] * 8.0 / dur
        for w in range(wait_ptr[i], wait_ptr[i + 1]):
            g = wait_groups[w]
            group_left[g] -= 1
            if group_left[g] == 0:
                released[n_rel] = g
                n_rel += 1
    return n_rel


_complete_jit = jit(_complete)


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
                 compiled: Optional[bool] = None) -> None:
        if not poll_interval_s > 0:
            raise ValueError("poll interval must be > 0 s, got %r" % poll_interval_s)
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
        self.capacity = np.array([fabric.capacity_bps(a, b) for a, b in self.links])
        self._ports = _PortLayout(fabric, self.link_index)
        # the planner's fast, equal-to-Fabric.paths path enumerator (same paths, same order)
        self._paths = EqualCostPaths(fabric)
        self.solves = 0                  # re-solves done (for benchmarks)
        self.resolved_flows = 0          # flows re-solved in all
        self.in_flight = 0               # flows in flight at the last tick
        self.start_s = np.zeros(0)       # set by run(): each flow's start time so far, NaN if not started

    # ------------------------------------------------------------------
    def run(self) -> SimResult:
        """Replay every flow to its finish; deterministic for the given flows and seed.

        The objects that exist when the replay starts (the trace, the model, the
        modules) are set aside from the garbage collector meanwhile
        (``gc.freeze``): they outlive the replay, and a full collection walking
        them cost ~0.2 s each time one fell inside a k=8 replay, a quarter of a
        20 s reactive run.  Objects the replay creates are collected as usual.
        Skipped if someone else froze objects already; undone on return.
        """
        freeze = gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        try:
            return self._run()
        finally:
            if freeze:
                gc.unfreeze()

    def _run(self) -> SimResult:
        flows = self.flows
        n = len(flows)
        n_links = len(self.links)
        pad = n_links
        capacity = self.capacity
        index_of = {f.flow_id: i for i, f in enumerate(flows)}
        # Dependencies by group: flows that list the same deps (e.g. every flow of a ring
        # iteration waits on the whole previous iteration) share one countdown, so a trace
        # of 27,000 flows with 8 deps each costs 3,000 group entries, not 200,000.
        # A group's members become ready together, in flow order, as flow by flow did.
        group_of: Dict[Tuple[str, ...], int] = {}
        group_members: List[List[int]] = []
        group_left: List[int] = []
        waiting: Dict[int, List[int]] = {}   # flow -> groups (one entry per mention)
        by_key: Dict[Tuple[str, str, int, int, int], _Conn] = {}
        conn_of: List[_Conn] = []
        seed = self.seed
        for i, f in enumerate(flows):
            deps = f.deps
            if deps:
                if type(deps) is not tuple:
                    deps = tuple(deps)
                g = group_of.get(deps)
                if g is None:
                    g = group_of[deps] = len(group_members)
                    group_members.append([i])
                    group_left.append(len(deps))
                    for d in deps:
                        waiting.setdefault(index_of[d], []).append(g)
                else:
                    group_members[g].append(i)
            sp = f.src_port if f.src_port is not None else ephemeral_port(seed, f.flow_id)
            key = (f.src, f.dst, f.proto, sp, f.dst_port or 0)   # five_tuple(f, seed), as a tuple
            c = by_key.get(key)
            if c is None:
                c = by_key[key] = _Conn(-1, FiveTuple(*key), (), f.cls)
            c.pending += 1
            conn_of.append(c)
        order = [by_key[key] for key in sorted(by_key)]
        for cid, c in enumerate(order):
            c.cid = cid
        by_five: Dict[FiveTuple, _Conn] = {c.five: c for c in order}
        n_conns = len(order)
        width = 6  # links in the longest fat-tree path (host-edge-agg-core-agg-edge-host)
        conn_rows = np.full((n_conns, width), pad, dtype=np.int64)
        conn_training = np.array([c.cls == "training" for c in order], dtype=bool)
        conn_inflight = np.zeros(n_conns, dtype=np.int64)
        conn_pending = np.array([c.pending for c in order], dtype=np.int64)
        conn_burst = np.zeros(n_conns)      # mean rate of the connection's last finished flow
        conn_last = np.full(n_conns, -1, dtype=np.int64)   # its last finished flow, -1: none yet
        cid_of_flow = np.array([c.cid for c in conn_of], dtype=np.int64)
        path_of: List[Path] = [()] * n
        start = np.full(n, np.nan)
        self.start_s = start             # per flow, the start so far (NaN: not yet); for progress hooks
        finish = np.full(n, np.nan)
        slots = _Slots(n, width, pad)
        row_cache: Dict[Path, np.ndarray] = {}

        flow_ids = [f.flow_id for f in flows]
        size_of = np.array([f.size_bytes for f in flows], dtype=float)
        start_list = [f.start_s for f in flows]
        gap_list = [f.gap_s for f in flows]
        # who waits on a flow, as arrays (CSR): groups of flow i are wait_groups[wait_ptr[i]:wait_ptr[i + 1]]
        waited = sorted(waiting)
        wait_ptr = np.zeros(n + 1, dtype=np.int64)
        wait_ptr[np.array(waited, dtype=np.int64) + 1] = [len(waiting[i]) for i in waited]
        np.cumsum(wait_ptr, out=wait_ptr)
        wait_groups = np.fromiter(chain.from_iterable(waiting[i] for i in waited), dtype=np.int64,
                                  count=int(wait_ptr[-1]))
        group_left = np.array(group_left, dtype=np.int64)
        released = np.zeros(len(group_members), dtype=np.int64)
        complete = _complete_jit if fairshare._use_compiled(self.compiled) else _complete
        fcap_of = np.array([f.rate_bps if f.rate_bps else np.inf for f in flows], dtype=float)
        ecmp_path = self._paths.ecmp_path   # == ecmp_choice(five, fabric.paths(src, dst))
        heap: List[Tuple[float, int]] = [(f.start_s, i) for i, f in enumerate(flows) if not f.deps]
        heapq.heapify(heap)
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
        removed_rates: List[float] = []
        removed_rows: List[np.ndarray] = []
        added: List[int] = []            # flow indices (re)placed since the last solve

        def row_for(path: Path) -> np.ndarray:
            nonlocal width, conn_rows
            row = row_cache.get(path)
            if row is None:
                idx = [self.link_index[l] for l in path_links(path)]
                if len(idx) > width:  # a longer path than any so far: widen the tables
                    extra = len(idx) - width
                    width = len(idx)
                    slots.widen(width)
                    conn_rows = np.hstack([conn_rows, np.full((n_conns, extra), pad, dtype=np.int64)])
                    for key in list(row_cache):
                        row_cache[key] = np.concatenate([row_cache[key],
                                                         np.full(extra, pad, dtype=np.int64)])
                row = np.full(width, pad, dtype=np.int64)
                row[:len(idx)] = idx
                row_cache[path] = row
            return row

        def solve() -> None:
            nonlocal link_rate
            m = slots.m
            is_new = np.zeros(m, dtype=bool)
            if added:
                new_slots = slots.slot_of[added]
                is_new[new_slots[new_slots >= 0]] = True
            gone = np.concatenate(removed_rows) if removed_rows else np.zeros((0, width), dtype=np.int64)
            try:
                link_rate, n_up = fairshare.resolve_event(
                    slots.links[:m], slots.rate[:m], slots.fcap[:m], is_new, gone,
                    np.asarray(removed_rates, dtype=float), link_rate, link_count, capacity,
                    incremental=self.incremental, compiled=self.compiled)
            except fairshare.FairShareError as exc:
                raise SimError(str(exc)) from None
            self.solves += 1
            self.resolved_flows += n_up
            removed_rates.clear()
            removed_rows.clear()
            added.clear()

        def place(i: int, path: Path) -> None:
            """Put flow ``i`` (in flight) on ``path``."""
            row = row_for(path)
            s = slots.slot_of[i]
            if s >= 0:
                old = slots.links[s].copy()
                removed_rows.append(old[None, :])
                removed_rates.append(float(slots.rate[s]))
                np.subtract.at(link_count, old, 1)
                slots.links[s] = row
            else:
                slots.add(i, row, flows[i].size_bytes, flows[i].rate_bps if flows[i].rate_bps else np.inf)
            np.add.at(link_count, row, 1)
            path_of[i] = path
            added.append(i)

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

        while done < n or t > (tick_no - 1) * self.poll + 1e-12 * max(1.0, t):
            if added or removed_rows:
                solve()
            m = slots.m
            next_tick = tick_no * self.poll
            t_done = np.inf
            first_done = -1
            if m:
                rate = slots.rate[:m]
                with np.errstate(divide="ignore"):
                    eta = slots.rem[:m] / rate * 8.0   # inf where a rate is 0
                first_done = int(np.argmin(eta))
                t_done = t + eta[first_done]
            t_arr = heap[0][0] if heap else np.inf
            t_next = min(t_done, t_arr, next_tick)
            if not np.isfinite(t_next):
                raise SimError("simulation stalled at t=%.6f s with %d flows unfinished" % (t, n - done))
            dt = max(t_next - t, 0.0)
            if m and dt > 0:
                slots.rem[:m] -= slots.rate[:m] * (dt / 8.0)
                link_bytes += link_rate * (dt / 8.0)
            t = t_next
            events += 1
            # completions
            if m:
                rem = slots.rem[:m]
                finished = rem <= np.maximum(1e-6, slots.rate[:m] * 1e-12)
                if t_next == t_done:
                    finished[first_done] = True
                fin_slots = np.flatnonzero(finished)
                if fin_slots.size:
                    fin = np.sort(slots.flow[fin_slots])
                    removed_rows.append(slots.links[fin_slots].copy())
                    removed_rates.extend(slots.rate[fin_slots].tolist())
                    np.subtract.at(link_count, slots.links[fin_slots].ravel(), 1)
                    slots.remove_many(fin_slots.tolist())
                    fin_list = fin.tolist()
                    for i in fin_list:
                        conn_of[i].in_flight.remove(i)
                    done += len(fin_list)
                    n_rel = complete(fin, t, finish, cid_of_flow, conn_pending, conn_inflight, conn_last,
                                     conn_burst, start, size_of, wait_ptr, wait_groups, group_left, released)
                    for g in released[:n_rel].tolist():     # their members are ready now (or at their start)
                        for k in group_members[g]:
                            heapq.heappush(heap, (max(start_list[k], t + gap_list[k]), k))
            # arrivals
            if heap and heap[0][0] <= t:
                arrived: List[int] = []
                while heap and heap[0][0] <= t:
                    _, i = heapq.heappop(heap)
                    c = conn_of[i]
                    if not c.path:
                        try:
                            c.path = ecmp_path(c.five)
                        except FabricError as exc:
                            raise SimError("flow %s: %s" % (flows[i].flow_id, exc)) from None
                        conn_rows[c.cid] = row_for(c.path)
                    path_of[i] = c.path
                    c.in_flight.append(i)
                    arrived.append(i)
                # as place() one by one: new slots in arrival order
                cids = cid_of_flow[arrived]
                rows = conn_rows[cids]
                slots.add_many(arrived, rows, size_of[arrived], fcap_of[arrived])
                np.add.at(link_count, rows.ravel(), 1)
                added.extend(arrived)
                start[arrived] = t
                np.add.at(conn_inflight, cids, 1)
            # control tick
            if t >= next_tick - 1e-12 * max(1.0, t):
                t = next_tick
                interval = link_bytes - last_tick_bytes
                last_tick_bytes = link_bytes.copy()
                ticks.append(t)
                interval_rows.append(interval)
                tick_no += 1
                if self.hook is not None:
                    if added or removed_rows:
                        solve()
                    m = slots.m
                    in_flight_rate = np.bincount(cid_of_flow[slots.flow[:m]], weights=slots.rate[:m],
                                                 minlength=n_conns)
                    open_ = (conn_pending > 0) & ((conn_inflight > 0) | (conn_burst > 0))
                    ids = np.flatnonzero(open_)
                    demand = np.where(conn_inflight > 0, in_flight_rate, conn_burst)[ids]
                    flow_slots, flow_rates = slots.flow[:m].copy(), slots.rate[:m].copy()
                    view = TickView(t, self.links, link_bytes.copy(),
                                    interval * 8.0 / (self.poll * capacity), self._ports,
                                    conn_rows[ids], demand, conn_training[ids],
                                    connection_builder(flow_slots, flow_rates, in_flight_rate, ids),
                                    array_builder(flow_slots, flow_rates, demand, ids))
                    for change in self.hook(view):
                        c = by_five.get(change.five)
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
                        for i in c.in_flight:
                            place(i, c.path)
                        reroutes += 1
                self.in_flight = slots.m
                if self.progress is not None:
                    self.progress(t, done, n)
        records = [FlowRecord(f.flow_id, float(start[i]), float(finish[i]), f.size_bytes,
                              path_of[i], f) for i, f in enumerate(flows)]
        return SimResult(records, self.links, self.capacity, np.asarray(ticks),
                         np.vstack(interval_rows) if interval_rows else np.zeros((0, n_links)),
                         reroutes, events)

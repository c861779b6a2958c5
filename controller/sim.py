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

import heapq
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from controller.ecmp import FiveTuple, ecmp_choice
from controller.fabric import Fabric, FabricError, Link, Path, path_links
from controller.flowtrace import TraceFlow
from controller.planner import EqualCostPaths

BIG_SWITCH = "bigswitch"
EPHEMERAL_LO = 32768
EPHEMERAL_SPAN = 60999 - 32768 + 1  # Linux ip_local_port_range default
_REL_TOL = 1e-9


class SimError(RuntimeError):
    """The simulation cannot continue (e.g. a controller returned an invalid path)."""


# --------------------------------------------------------------------------
# max-min fair sharing
# --------------------------------------------------------------------------
def max_min_rates(flow_links: np.ndarray, link_capacity: np.ndarray,
                  flow_cap: Optional[np.ndarray] = None) -> np.ndarray:
    """Max-min fair rates by progressive filling (water-filling).

    ``flow_links`` is an int array (n_flows, P): the link indices of each
    flow's path, padded with ``len(link_capacity)`` (a pad link of infinite
    capacity).  ``flow_cap`` gives optional per-flow rate caps (``inf`` for none).

    Progressive filling grows every flow together and freezes the flows of a
    link when it fills.  Doing that one fill level at a time costs one numpy
    round per distinct level (about 200 for 1,000 random flows at k=8), so
    each round here freezes *every* link that is a bottleneck already: a link
    whose fill level ``(capacity - frozen traffic) / unfrozen flows`` is the
    tightest constraint of every unfrozen flow crossing it.  Fill levels only
    rise as other flows freeze below them, so such a link fills at exactly that
    level, whatever happens elsewhere: freezing them all at once gives the same
    allocation in a handful of rounds (about 20 there).  A flow whose cap is
    below all its links' levels freezes at its cap for the same reason.
    """
    n_flows, width = flow_links.shape
    rate = np.zeros(n_flows)
    if n_flows == 0:
        return rate
    n_links = len(link_capacity)
    cap = np.append(np.asarray(link_capacity, dtype=float), np.inf)
    fcap = np.full(n_flows, np.inf) if flow_cap is None else np.asarray(flow_cap, dtype=float)
    frozen_sum = np.zeros(n_links + 1)
    idx = np.arange(n_flows)
    cols = np.ascontiguousarray(flow_links.T)  # (width, flows): column ops are contiguous
    fc = fcap
    if ((cols == n_links).all(axis=0) & ~np.isfinite(fcap)).any():
        raise SimError("a flow crosses no finite-capacity link and has no rate cap")
    with np.errstate(divide="ignore", invalid="ignore"):
        while idx.size:
            count = np.bincount(cols.ravel(), minlength=n_links + 1)
            level = (cap - frozen_sum) / count        # inf where unused (x/0), pad stays inf
            level[n_links] = np.inf
            col_level = level[cols]
            link_min = col_level.min(axis=0)
            fmin = np.minimum(link_min, fc)
            # entries whose flow is held lower elsewhere: their link is not (yet) a bottleneck
            loose = fmin < col_level * (1 - _REL_TOL)
            blocked = np.bincount(cols.ravel(), weights=loose.ravel(), minlength=n_links + 1)
            bottleneck = (count > 0) & (blocked == 0)
            bottleneck[n_links] = False
            freeze = bottleneck[cols].any(axis=0) | (fc <= link_min)
            value = np.maximum(fmin[freeze], 0.0)
            rate[idx[freeze]] = value
            frozen_sum += np.bincount(cols[:, freeze].ravel(), weights=np.tile(value, width),
                                      minlength=n_links + 1)
            keep = ~freeze
            idx = idx[keep]
            cols = cols[:, keep]
            fc = fc[keep]
    return rate


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
@dataclass(frozen=True)
class ConnView:
    """An open connection at a tick.

    ``rate_bps`` is its current max-min rate (0 between bursts).  ``demand_bps``
    is what a planner should assume it needs: the current rate while it sends,
    and between bursts of a training connection the mean rate of its last
    burst (size / duration), since its next burst will look like its last.
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


@dataclass
class TickView:
    """Everything a controller could know at a poll: counters and connections."""

    now_s: float
    # switch -> [(port_no, tx_bytes, rx_bytes)], cumulative since t=0, sorted by port
    counters: Dict[str, List[Tuple[int, int, int]]]
    connections: List[ConnView]
    links: List[Link]
    interval_util: np.ndarray      # exact utilization of ``links`` over the last interval (for checks)


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
    five: FiveTuple
    path: Path
    cls: str
    pending: int = 0                     # flows of this connection not yet finished
    in_flight: List[int] = field(default_factory=list)
    last_burst_bps: float = 0.0
    last_flow_id: str = ""


class Simulator:
    """Replays ``flows`` on ``fabric``; ``run()`` returns a ``SimResult``."""

    def __init__(self, fabric: Fabric, flows: Sequence[TraceFlow], *, seed: int = 0,
                 poll_interval_s: float = 1.0, hook: Optional[TickHook] = None,
                 progress: Optional[ProgressHook] = None) -> None:
        if not poll_interval_s > 0:
            raise ValueError("poll interval must be > 0 s, got %r" % poll_interval_s)
        self.fabric = fabric
        self.flows = list(flows)
        self.seed = seed
        self.poll = float(poll_interval_s)
        self.hook = hook
        self.progress = progress
        self.links: List[Link] = fabric.directed_links()
        self.link_index: Dict[Link, int] = {l: i for i, l in enumerate(self.links)}
        self.capacity = np.array([fabric.capacity_bps(a, b) for a, b in self.links])
        self._ports = self._port_table()
        # the planner's fast, equal-to-Fabric.paths path enumerator (same paths, same order)
        self._paths = EqualCostPaths(fabric)

    def _port_table(self) -> Dict[str, List[Tuple[int, int, int]]]:
        table: Dict[str, List[Tuple[int, int, int]]] = {}
        for sw in self.fabric.switches():
            rows = []
            for nbr in self.fabric.graph.neighbors(sw):
                rows.append((self.fabric.port(sw, nbr), self.link_index[(sw, nbr)],
                             self.link_index[(nbr, sw)]))
            table[sw] = sorted(rows)
        return table

    # ------------------------------------------------------------------
    def run(self) -> SimResult:
        flows = self.flows
        n = len(flows)
        n_links = len(self.links)
        pad = n_links
        index_of = {f.flow_id: i for i, f in enumerate(flows)}
        five = [five_tuple(f, self.seed) for f in flows]
        dependents: List[List[int]] = [[] for _ in range(n)]
        deps_left = np.zeros(n, dtype=int)
        for i, f in enumerate(flows):
            deps_left[i] = len(f.deps)
            for d in f.deps:
                dependents[index_of[d]].append(i)
        conns: Dict[FiveTuple, _Conn] = {}
        for i, f in enumerate(flows):
            c = conns.get(five[i])
            if c is None:
                c = conns[five[i]] = _Conn(five[i], (), f.cls)
            c.pending += 1
        self._conn_order = sorted(conns.values(), key=lambda c: (c.five.src, c.five.dst, c.five.proto,
                                                                 c.five.src_port, c.five.dst_port))
        width = 6  # links in the longest fat-tree path (host-edge-agg-core-agg-edge-host)
        flow_links = np.full((n, width), pad, dtype=np.int64)
        path_of: List[Path] = [()] * n
        remaining = np.array([f.size_bytes for f in flows], dtype=float)
        fcap = np.array([f.rate_bps if f.rate_bps else np.inf for f in flows])
        start = np.full(n, np.nan)
        finish = np.full(n, np.nan)

        heap: List[Tuple[float, int]] = [(f.start_s, i) for i, f in enumerate(flows) if not f.deps]
        heapq.heapify(heap)
        active: List[int] = []
        rate = np.zeros(0)
        link_rate = np.zeros(n_links)
        link_bytes = np.zeros(n_links)
        last_tick_bytes = np.zeros(n_links)
        ticks: List[float] = []
        interval_rows: List[np.ndarray] = []
        reroutes = 0
        events = 0
        done = 0
        t = 0.0
        tick_no = 1
        dirty = True
        act_idx = np.zeros(0, dtype=np.int64)

        def set_path(i: int, path: Path) -> None:
            nonlocal flow_links, width
            idx = [self.link_index[l] for l in path_links(path)]
            if len(idx) > width:  # a longer path than any so far: widen the table
                extra = np.full((n, len(idx) - width), pad, dtype=np.int64)
                flow_links = np.hstack([flow_links, extra])
                width = len(idx)
            flow_links[i, :] = pad
            flow_links[i, :len(idx)] = idx
            path_of[i] = path

        def solve() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
            idx = np.asarray(active, dtype=np.int64)
            rows = flow_links[idx]
            r = max_min_rates(rows, self.capacity, fcap[idx])
            per_link = np.bincount(rows.ravel(), weights=np.repeat(r, width),
                                   minlength=n_links + 1)[:n_links]
            return idx, r, per_link

        while done < n or t > (tick_no - 1) * self.poll + 1e-12 * max(1.0, t):
            if dirty:
                act_idx, rate, link_rate = solve()
                dirty = False
            next_tick = tick_no * self.poll
            t_done = np.inf
            first_done = -1
            if act_idx.size:
                with np.errstate(divide="ignore"):
                    eta = np.where(rate > 0, remaining[act_idx] / np.where(rate > 0, rate, 1.0) * 8.0,
                                   np.inf)
                first_done = int(np.argmin(eta))
                t_done = t + eta[first_done]
            t_arr = heap[0][0] if heap else np.inf
            t_next = min(t_done, t_arr, next_tick)
            if not np.isfinite(t_next):
                raise SimError("simulation stalled at t=%.6f s with %d flows unfinished" % (t, n - done))
            dt = max(t_next - t, 0.0)
            if act_idx.size:
                remaining[act_idx] -= rate * dt / 8.0
                link_bytes += link_rate * dt / 8.0
            t = t_next
            events += 1
            # completions
            if act_idx.size:
                rem = remaining[act_idx]
                finished = rem <= np.maximum(1e-6, rate * 1e-12)
                if t_next == t_done:
                    finished[first_done] = True
                if finished.any():
                    for j in np.flatnonzero(finished):
                        i = int(act_idx[j])
                        remaining[i] = 0.0
                        finish[i] = t
                        done += 1
                        c = conns[five[i]]
                        c.pending -= 1
                        c.in_flight.remove(i)
                        c.last_flow_id = flows[i].flow_id
                        dur = t - start[i]
                        if dur > 0:
                            c.last_burst_bps = flows[i].size_bytes * 8.0 / dur
                        for k in dependents[i]:
                            deps_left[k] -= 1
                            if deps_left[k] == 0:
                                heapq.heappush(heap, (max(flows[k].start_s, t + flows[k].gap_s), k))
                    active = act_idx[~finished].tolist()
                    dirty = True
            # arrivals
            while heap and heap[0][0] <= t:
                _, i = heapq.heappop(heap)
                c = conns[five[i]]
                if not c.path:
                    try:
                        c.path = ecmp_choice(five[i], self._paths(flows[i].src, flows[i].dst))
                    except FabricError as exc:
                        raise SimError("flow %s: %s" % (flows[i].flow_id, exc)) from None
                set_path(i, c.path)
                start[i] = t
                c.in_flight.append(i)
                active.append(i)
                dirty = True
            # control tick
            if t >= next_tick - 1e-12 * max(1.0, t):
                t = next_tick
                interval = link_bytes - last_tick_bytes
                last_tick_bytes = link_bytes.copy()
                ticks.append(t)
                interval_rows.append(interval)
                tick_no += 1
                if self.hook is not None:
                    if dirty:
                        act_idx, rate, link_rate = solve()
                        dirty = False
                    view = self._view(t, link_bytes, interval, conns, flows, act_idx, rate,
                                      remaining, path_of)
                    for change in self.hook(view):
                        c = conns.get(change.five)
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
                        for i in c.in_flight:
                            set_path(i, c.path)
                        reroutes += 1
                        dirty = True
                if self.progress is not None:
                    self.progress(t, done, n)
        records = [FlowRecord(f.flow_id, float(start[i]), float(finish[i]), f.size_bytes,
                              path_of[i], f) for i, f in enumerate(flows)]
        return SimResult(records, self.links, self.capacity, np.asarray(ticks),
                         np.vstack(interval_rows) if interval_rows else np.zeros((0, n_links)),
                         reroutes, events)

    def _view(self, now: float, link_bytes: np.ndarray, interval: np.ndarray,
              conns: Dict[FiveTuple, _Conn], flows: Sequence[TraceFlow], act_idx: np.ndarray,
              rate: np.ndarray, remaining: np.ndarray, path_of: List[Path]) -> TickView:
        cum = np.floor(link_bytes).astype(np.int64).tolist()
        counters = {sw: [(port, cum[tx], cum[rx]) for port, tx, rx in rows]
                    for sw, rows in self._ports.items()}
        rate_of = {int(i): float(r) for i, r in zip(act_idx, rate)}
        views: List[ConnView] = []
        for c in self._conn_order:
            if c.pending == 0:
                continue
            key = c.five
            if c.in_flight:
                r = sum(rate_of.get(i, 0.0) for i in c.in_flight)
                views.append(ConnView(flows[c.in_flight[0]].flow_id, key, c.path, r, r, c.cls, True))
            elif c.pending > 0 and c.last_burst_bps > 0:
                views.append(ConnView(c.last_flow_id, key, c.path, 0.0, c.last_burst_bps, c.cls, False))
        util = interval * 8.0 / (self.poll * self.capacity)
        return TickView(now, counters, views, self.links, util)


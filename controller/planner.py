"""The path planner: active flows + link utilization -> reroutes.

Why it exists: 5-tuple ECMP lets a few long-lived training connections land on
the same link while parallel links idle.  The fix is deliberate placement of
those few elephants (Hedera, NSDI 2010).  This module decides *which* flows to
move and *where*; it returns plain ``Reroute`` records and nothing else.  The
app turns a reroute into rules with ``controller.rules.consistent_update``.

Policies
--------
``ecmp``
    Never reroutes: the hash decides.  (Link failures are handled for every
    policy by ``reroute_failed_link``, which the app calls on port-down.)
``reactive``
    Hedera's Global First Fit on *measured* utilization: elephants on a link
    above ``hot_threshold`` are moved, training class first, then largest
    demand, onto the equal-cost path with the most headroom, if that lowers
    the flow's bottleneck by at least ``hysteresis``.
``predictive``
    The same placement on the *planning utilization*
    ``max(measured, forecast, demand of the flows the caller says are on the
    link)``.  The forecast gives early warning; ``measured`` keeps the planner
    from trusting a forecast that says a hot link is about to cool (a wasted
    move costs little, a missed one costs an iteration); the flow-demand floor
    stops the planner from chasing a flow it has just moved: the forecaster's
    history still shows the flow on its old path for a few samples, but the
    caller's flow table already has it on the new one, so the new path is not
    mistaken for empty.

How a move is scored (all policies)
-----------------------------------
For flow ``f`` with demand ``r`` and a link ``l`` of capacity ``c``,
``share = r / c``.  The load a path would carry with ``f`` on it is
``util[l] - share`` on links of the flow's current path (the flow's own
contribution, clipped at 0) ``+ share`` on every link of the candidate path.
On the current path this is ``max(util[l], share)``: a connection that is idle
in a compute gap (measured 0) still counts at its demand, because its next
burst takes the pinned path.  The bottleneck is taken over the *choosable*
links only (links not shared by every equal-cost path: the host links, for
instance), since no placement can change the load of a link every path uses.
After each move the working utilization is updated (``- share`` on the old
path, ``+ share`` on the new one), so the next decision sees the first.

What the caller must pass as ``ActiveFlow.rate_bps``: the connection's
*demand* -- for training traffic the rate during its bursts (e.g. the peak of
recent per-flow byte counts over poll intervals, or bytes per iteration /
communication phase length), not the average over the last poll, which reads 0
during the compute gap.  Background flows: their recent rate.

Classes: only ``training`` flows are moved unless ``move_background`` is set;
moving training flows is the product, and moving someone else's bulk transfer
changes their latency without them asking.  Background flows always count as
load.

Determinism: flows are processed in a total order (class, -demand, flow_id),
candidate paths are compared by (bottleneck, sum of loads, path), so the same
inputs give the same output in the live app, in replay and in tests.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import (Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence,
                    Tuple)

from controller.classify import BACKGROUND, TRAINING
from controller.ecmp import FiveTuple
from controller.fabric import Fabric, FabricError, Link, Path, path_links

__all__ = [
    "POLICIES", "TRAINING", "BACKGROUND", "CLASSES", "PlannerError", "ActiveFlow",
    "PlannerConfig", "Reroute", "EqualCostPaths", "plan_reroutes", "reroute_failed_link",
    "planning_utilization", "flow_demand_utilization", "apply_reroutes",
]

POLICIES = ("ecmp", "reactive", "predictive")
CLASSES = (TRAINING, BACKGROUND)

PathsFn = Callable[[str, str], Sequence[Path]]

_EPS = 1e-9


class PlannerError(ValueError):
    """A planner input or setting that makes no sense; the message names it."""


@dataclass(frozen=True)
class ActiveFlow:
    """A connection the planner may place.

    ``path`` is the full current path (source host, switches..., destination
    host); ``rate_bps`` is its demand (see the module docstring); ``cls`` is
    ``training`` or ``background`` (``controller.classify`` decides).
    """

    flow_id: str
    five: FiveTuple
    path: Tuple[str, ...]
    rate_bps: float
    cls: str = TRAINING

    def __post_init__(self) -> None:
        if not isinstance(self.flow_id, str) or not self.flow_id:
            raise PlannerError("flow_id must be a non-empty string, got %r" % (self.flow_id,))
        path = tuple(self.path)
        object.__setattr__(self, "path", path)
        if len(path) < 2 or path[0] != self.five.src or path[-1] != self.five.dst:
            raise PlannerError("flow %s: path %s must run from %s to %s"
                               % (self.flow_id, "->".join(path), self.five.src, self.five.dst))
        rate = self.rate_bps
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                or rate < 0:
            raise PlannerError("flow %s: rate_bps must be a finite number >= 0, got %r"
                               % (self.flow_id, rate))
        if self.cls not in CLASSES:
            raise PlannerError("flow %s: cls must be one of %s, got %r"
                               % (self.flow_id, "|".join(CLASSES), self.cls))


def _number(name: str, value: object, lo: float, hi: float = math.inf,
            lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PlannerError("%s must be a finite number, got %r" % (name, value))
    if value < lo or (lo_open and value == lo) or value > hi:
        bound = ("> %g" if lo_open else ">= %g") % lo
        if hi != math.inf:
            bound += " and <= %g" % hi
        raise PlannerError("%s must be %s, got %r" % (name, bound, value))
    return float(value)


@dataclass(frozen=True)
class PlannerConfig:
    """Planner settings; validated on construction (``PlannerError`` names the field).

    Defaults and why:

    * ``hot_threshold=0.8``: a link above 80% of capacity has queues building
      under bursty traffic; Hedera-style schedulers act around there.
    * ``elephant_bps=None`` -> ``elephant_fraction=0.1`` of the flow's access
      link capacity: Hedera's definition of a large flow (10% of the NIC rate).
      Set ``elephant_bps`` for an absolute threshold instead.
    * ``hysteresis=0.1``: move only if the flow's bottleneck utilization drops
      by at least 0.1 (10 points of capacity); smaller gains are inside the
      measurement noise of one poll and would make flows flap.
    * ``max_reroutes_per_tick=4``: bounds the rule churn per control tick (each
      move is ~2 * path length flow-mods plus barriers) and limits the damage
      of one bad forecast.
    * ``move_background=False``: see the module docstring.
    * ``joint_search_nodes=2000``, ``joint_max_flows=8``: when greedy leaves a
      hot link, a bounded joint search over the first 8 hot elephants (at most
      2000 path choices tried, ~ a few ms) looks for a placement greedy cannot
      reach one flow at a time; 0 disables it.
    """

    policy: str = "ecmp"
    hot_threshold: float = 0.8
    elephant_bps: Optional[float] = None
    elephant_fraction: float = 0.1
    hysteresis: float = 0.1
    max_reroutes_per_tick: int = 4
    move_background: bool = False
    joint_search_nodes: int = 2000
    joint_max_flows: int = 8

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise PlannerError("policy must be one of %s, got %r" % ("|".join(POLICIES), self.policy))
        _number("hot_threshold", self.hot_threshold, 0.0, lo_open=True)
        if self.elephant_bps is not None:
            _number("elephant_bps", self.elephant_bps, 0.0)
        _number("elephant_fraction", self.elephant_fraction, 0.0, 1.0)
        _number("hysteresis", self.hysteresis, 0.0)
        cap = self.max_reroutes_per_tick
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise PlannerError("max_reroutes_per_tick must be an integer >= 0, got %r" % (cap,))
        for name in ("joint_search_nodes", "joint_max_flows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PlannerError("%s must be an integer >= 0, got %r" % (name, value))
        if not isinstance(self.move_background, bool):
            raise PlannerError("move_background must be true or false, got %r" % (self.move_background,))

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> "PlannerConfig":
        """Build from plain config data; unknown keys are refused, not ignored."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlannerError("unknown planner setting(s) %s; known settings are %s"
                               % (", ".join(unknown), ", ".join(sorted(known))))
        return cls(**dict(data))  # type: ignore[arg-type]

    def elephant_threshold_bps(self, access_capacity_bps: float) -> float:
        if self.elephant_bps is not None:
            return self.elephant_bps
        return self.elephant_fraction * access_capacity_bps


@dataclass(frozen=True)
class Reroute:
    """Move ``flow_id`` from ``old_path`` to ``new_path``; ``reason`` is for logs and reports."""

    flow_id: str
    old_path: Tuple[str, ...]
    new_path: Tuple[str, ...]
    reason: str


class EqualCostPaths:
    """``Fabric.paths`` computed on the switch graph, cached per (ingress, egress) switch.

    Why: ``Fabric.paths`` runs a breadth-first search over every node, hosts
    included, for each host pair (about 18 ms per pair at k=16, 140 ms at
    k=32).  Hosts are single-homed leaves, so the equal-cost paths between two
    hosts are those between their edge switches; this computes distances to an
    egress switch once and shares them among all its host pairs.  Results equal
    ``Fabric.paths`` (same paths, same order); anything unusual (a
    multi-homed or detached host, a non-host endpoint) falls back to it.  The
    cache follows ``fabric.version``, so topology changes invalidate it.
    The object holds state: make one per fabric and keep it across ticks.
    """

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self._version = -1
        self._adj: Dict[str, List[str]] = {}
        self._dist: Dict[str, Dict[str, int]] = {}
        self._segs: Dict[Tuple[str, str], List[Tuple[str, ...]]] = {}
        self._attach: Dict[str, Optional[str]] = {}

    def _sync(self) -> None:
        if self._version == self.fabric.version:
            return
        graph = self.fabric.graph
        adj: Dict[str, List[str]] = {}
        for sw in self.fabric.switches():
            adj[sw] = sorted(n for n in graph.neighbors(sw)
                             if self.fabric.is_switch(n) and graph.edges[sw, n]["up"])
        self._adj = adj
        self._dist.clear()
        self._segs.clear()
        self._attach.clear()
        self._version = self.fabric.version

    def _attachment(self, host: str) -> Optional[str]:
        if host in self._attach:
            return self._attach[host]
        found: Optional[str] = None
        if self.fabric.is_host(host):
            graph = self.fabric.graph
            nbrs = list(graph.neighbors(host))
            if len(nbrs) == 1 and graph.edges[host, nbrs[0]]["up"] and self.fabric.is_switch(nbrs[0]):
                found = nbrs[0]
        self._attach[host] = found
        return found

    def _distances(self, target: str) -> Dict[str, int]:
        dist = self._dist.get(target)
        if dist is None:
            dist = {target: 0}
            frontier = [target]
            adj = self._adj
            while frontier:
                nxt = []
                for node in frontier:
                    d = dist[node] + 1
                    for nbr in adj[node]:
                        if nbr not in dist:
                            dist[nbr] = d
                            nxt.append(nbr)
                frontier = nxt
            self._dist[target] = dist
        return dist

    def _segments(self, a: str, b: str) -> List[Tuple[str, ...]]:
        key = (a, b)
        segs = self._segs.get(key)
        if segs is None:
            dist = self._distances(b)
            segs = []
            if a in dist:
                adj = self._adj
                stack: List[Tuple[str, ...]] = [(a,)]
                while stack:
                    seg = stack.pop()
                    node = seg[-1]
                    if node == b:
                        segs.append(seg)
                        continue
                    want = dist[node] - 1
                    for nbr in adj[node]:
                        if dist.get(nbr) == want:
                            stack.append(seg + (nbr,))
                segs.sort()
            self._segs[key] = segs
        return segs

    def __call__(self, src: str, dst: str) -> List[Path]:
        self._sync()
        a, b = self._attachment(src), self._attachment(dst)
        if a is None or b is None or src == dst:
            return self.fabric.paths(src, dst)
        segs = self._segments(a, b)
        if not segs:
            raise FabricError("no path from %s to %s over links that are up" % (src, dst))
        return [(src,) + seg + (dst,) for seg in segs]


class _Capacities(dict):
    """Link -> capacity_bps, looked up in the fabric on first use."""

    def __init__(self, fabric: Fabric) -> None:
        super().__init__()
        self.fabric = fabric
        # networkx's own adjacency dict: the public views allocate an object per lookup,
        # which is most of the cost of a planning round at k=16.
        self._adj = fabric.graph._adj

    def __missing__(self, link: Link) -> float:
        try:
            cap = self._adj[link[0]][link[1]]["capacity_bps"]
        except KeyError:
            cap = self.fabric.capacity_bps(*link)  # raises FabricError naming the link
        self[link] = cap
        return cap


def _clean(value: object) -> Optional[float]:
    """A usable utilization, or None for missing/NaN; negatives clip to 0."""
    if type(value) is float and value >= 0.0:  # the common case, fast (NaN fails >=)
        return value
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if math.isnan(v):
        return None
    return max(v, 0.0) if v != math.inf else v


def _check_unique(flows: Sequence[ActiveFlow]) -> None:
    seen = set()
    for f in flows:
        if f.flow_id in seen:
            raise PlannerError("flow_id %r appears twice in the active flows" % f.flow_id)
        seen.add(f.flow_id)


def flow_demand_utilization(fabric: Fabric, flows: Iterable[ActiveFlow]) -> Dict[Link, float]:
    """Per directed link, the sum of the flows' demands on it over its capacity.

    Summed in flow_id order, so the floating-point result does not depend on
    the order the caller lists the flows in.
    """
    caps = _Capacities(fabric)
    out: Dict[Link, float] = {}
    get = out.get
    for f in sorted(flows, key=lambda f: f.flow_id):
        rate, path = f.rate_bps, f.path
        if rate <= 0:
            continue
        for i in range(len(path) - 1):
            link = (path[i], path[i + 1])
            try:
                share = rate / caps[link]
            except FabricError:
                continue
            out[link] = get(link, 0.0) + share
    return out


def planning_utilization(fabric: Fabric, flows: Sequence[ActiveFlow],
                         measured: Mapping[Link, float], predicted: Optional[Mapping[Link, float]],
                         config: PlannerConfig) -> Dict[Link, float]:
    """The utilization a policy plans on (a fresh dict; NaN/missing entries dropped).

    ``ecmp``/``reactive``: measured.  ``predictive``: per link the max of
    measured, forecast (where given) and the flows' own demand.
    """
    util: Dict[Link, float] = {}
    for link, value in measured.items():
        v = _clean(value)
        if v is not None:
            util[link] = v
    if config.policy != "predictive":
        return util
    for link, value in (predicted or {}).items():
        v = _clean(value)
        if v is not None and v > util.get(link, 0.0):
            util[link] = v
    for link, v in flow_demand_utilization(fabric, flows).items():
        if v > util.get(link, 0.0):
            util[link] = v
    return util


def apply_reroutes(fabric: Fabric, flows: Sequence[ActiveFlow], util: Mapping[Link, float],
                   reroutes: Sequence[Reroute]) -> Dict[Link, float]:
    """``util`` after the moves: each moved flow's share leaves its old path and joins the new one."""
    out = dict(util)
    caps = _Capacities(fabric)
    by_id = {f.flow_id: f for f in flows}
    for rr in reroutes:
        flow = by_id.get(rr.flow_id)
        if flow is None:
            raise PlannerError("reroute of unknown flow %r" % rr.flow_id)
        _move(out, caps, flow.rate_bps, rr.old_path, rr.new_path)
    return out


def _move(util: Dict[Link, float], caps: _Capacities, rate: float,
          old: Sequence[str], new: Sequence[str]) -> None:
    for link in path_links(old):
        try:
            share = rate / caps[link]
        except FabricError:
            continue  # the old path's link is gone from the fabric: nothing to subtract
        util[link] = max(util.get(link, 0.0) - share, 0.0)
    for link in path_links(new):
        util[link] = util.get(link, 0.0) + rate / caps[link]


def _priority(flow: ActiveFlow) -> Tuple[int, float, str]:
    return (0 if flow.cls == TRAINING else 1, -flow.rate_bps, flow.flow_id)


class _Placer:
    """Scores candidate paths for one flow against the working utilization."""

    def __init__(self, fabric: Fabric, util: Dict[Link, float], paths: PathsFn) -> None:
        self.fabric = fabric
        self.util = util
        self.paths = paths
        self.caps = _Capacities(fabric)
        self._shared: Dict[Tuple[str, str], FrozenSet[Link]] = {}
        self._links: Dict[Tuple[str, ...], List[Link]] = {}

    def links(self, path: Sequence[str]) -> List[Link]:
        """``path_links``, memoised for the round (paths are scored many times)."""
        key = tuple(path)
        got = self._links.get(key)
        if got is None:
            got = self._links[key] = path_links(key)
        return got

    def alternatives(self, flow: ActiveFlow) -> List[Path]:
        return list(self.paths(flow.five.src, flow.five.dst))

    def shared(self, flow: ActiveFlow, alts: Sequence[Path]) -> FrozenSet[Link]:
        key = (flow.five.src, flow.five.dst)
        got = self._shared.get(key)
        if got is None:
            sets = [set(self.links(p)) for p in alts]
            got = frozenset(set.intersection(*sets)) if sets else frozenset()
            self._shared[key] = got
        return got

    def score(self, flow: ActiveFlow, path: Sequence[str], old_links: FrozenSet[Link],
              shared: FrozenSet[Link]) -> Tuple[float, float, Optional[Link]]:
        """(bottleneck over choosable links, sum of loads, the bottleneck link) with the flow on ``path``."""
        util, caps, rate = self.util, self.caps, flow.rate_bps
        worst, total, where = 0.0, 0.0, None
        for link in self.links(path):
            share = rate / caps[link]
            u = util.get(link, 0.0)
            load = max(u, share) if link in old_links else u + share
            total += load
            if link in shared:
                continue
            if where is None or load > worst:
                worst, where = load, link
        return worst, total, where

    def best(self, flow: ActiveFlow, alts: Sequence[Path], old_links: FrozenSet[Link],
             shared: FrozenSet[Link]) -> Tuple[Optional[Path], float]:
        best_key = None
        best_path: Optional[Path] = None
        for path in alts:
            worst, total, _ = self.score(flow, path, old_links, shared)
            key = (round(worst, 9), round(total, 9), path)  # float noise must not break ties
            if best_key is None or key < best_key:
                best_key, best_path = key, path
        if best_path is None:
            return None, math.inf
        return best_path, self.score(flow, best_path, old_links, shared)[0]

    def move(self, flow: ActiveFlow, old: Sequence[str], new: Sequence[str]) -> None:
        _move(self.util, self.caps, flow.rate_bps, old, new)


def _path_usable(fabric: Fabric, path: Sequence[str]) -> bool:
    """Every link of ``path`` exists and is up (per-path cost only: no scan of the fabric)."""
    adj = fabric.graph._adj  # see _Capacities
    prev = path[0]
    for node in path[1:]:
        nbrs = adj.get(prev)
        data = nbrs.get(node) if nbrs is not None else None
        if data is None or not data["up"]:
            return False
        prev = node
    return True


def _fmt(link: Optional[Link]) -> str:
    return "%s->%s" % link if link else "-"


def plan_reroutes(fabric: Fabric, flows: Sequence[ActiveFlow], measured: Mapping[Link, float],
                  predicted: Optional[Mapping[Link, float]], config: PlannerConfig, *,
                  paths: Optional[PathsFn] = None) -> List[Reroute]:
    """One planning round: which flows to move, and where.

    ``measured``/``predicted`` map directed links to utilization (fraction of
    capacity; missing links count as 0, NaN as missing).  ``predicted`` is used
    only by ``predictive`` (None -> plan on measured and demand).  ``paths``
    gives the equal-cost paths of a host pair (default ``fabric.paths``; pass a
    long-lived ``EqualCostPaths(fabric)`` for speed).

    Returns at most ``max_reroutes_per_tick`` hot-spot moves, each flow moved at
    most once, plus (reactive/predictive only, not capped) a move for every
    flow whose current path crosses a link that is down.  Every new path is one
    of ``paths(src, dst)``.  ``ecmp`` returns ``[]``.
    """
    if not isinstance(config, PlannerConfig):
        raise PlannerError("config must be a PlannerConfig, got %r" % type(config).__name__)
    if config.policy == "ecmp":
        return []
    _check_unique(flows)
    paths_fn: PathsFn = paths or fabric.paths
    util = planning_utilization(fabric, flows, measured, predicted, config)
    placer = _Placer(fabric, util, paths_fn)
    basis = "forecast" if config.policy == "predictive" else "measured"
    reroutes: List[Reroute] = []
    moved = set()

    # Flows stranded on a down link first: safety before optimisation.
    stranded = [f for f in flows if not _path_usable(fabric, f.path)]
    stranded_ids = {f.flow_id for f in stranded}
    for flow in sorted(stranded, key=_priority):
        try:
            alts = placer.alternatives(flow)
        except FabricError:
            continue  # partitioned: nothing to move it to
        new, worst = placer.best(flow, alts, frozenset(path_links(flow.path)), frozenset())
        if new is None or new == flow.path:
            continue
        placer.move(flow, flow.path, new)
        moved.add(flow.flow_id)
        reroutes.append(Reroute(flow.flow_id, flow.path, new,
                                "%s: current path is down; new path peaks at %.2f" % (config.policy, worst)))

    hot = config.hot_threshold
    candidates = []
    for flow in flows:
        if flow.rate_bps <= 0 or flow.flow_id in stranded_ids:
            continue
        if flow.cls != TRAINING and not config.move_background:
            continue
        access = placer.caps[(flow.path[0], flow.path[1])]
        if flow.rate_bps < config.elephant_threshold_bps(access):
            continue
        candidates.append(flow)
    candidates.sort(key=_priority)

    start = dict(util)
    greedy = _global_first_fit(placer, candidates, config, basis)
    if config.joint_search_nodes > 0 and any(v > hot for v in util.values()):
        placer.util = start
        joint = _joint_placement(placer, candidates, config, basis, greedy)
        if joint is not None:
            greedy = joint
    return reroutes + greedy


def _crosses_hot(placer: "_Placer", flow: ActiveFlow, hot: float) -> bool:
    """Does any link of the flow's path carry more than ``hot`` with the flow on it?"""
    util, caps, rate = placer.util, placer.caps, flow.rate_bps
    return any(max(util.get(l, 0.0), rate / caps[l]) > hot for l in path_links(flow.path))


def _global_first_fit(placer: "_Placer", candidates: Sequence[ActiveFlow], config: PlannerConfig,
                      basis: str) -> List[Reroute]:
    """Hedera's Global First Fit with most-headroom choice; works on ``placer.util`` in place."""
    hot = config.hot_threshold
    reroutes: List[Reroute] = []
    moved = set()
    budget = config.max_reroutes_per_tick
    progress = True
    while budget > 0 and progress:
        progress = False
        for flow in candidates:
            if budget == 0:
                break
            if flow.flow_id in moved or not _crosses_hot(placer, flow, hot):
                continue
            old = flow.path
            alts = placer.alternatives(flow)
            if len(alts) < 2 and (not alts or alts[0] == old):
                continue
            shared = placer.shared(flow, alts)
            old_links = frozenset(path_links(old))
            cur, _, cur_link = placer.score(flow, old, old_links, shared)
            if cur <= hot:
                continue
            new, worst = placer.best(flow, alts, old_links, shared)
            if new is None or new == old or worst > cur - config.hysteresis + _EPS:
                continue
            placer.move(flow, old, new)
            moved.add(flow.flow_id)
            budget -= 1
            progress = True
            reroutes.append(Reroute(flow.flow_id, old, new, "%s: %s at %.2f (%s); new path peaks at %.2f"
                                    % (config.policy, _fmt(cur_link), cur, basis, worst)))
    return reroutes


def _joint_placement(placer: "_Placer", candidates: Sequence[ActiveFlow], config: PlannerConfig,
                     basis: str, greedy: Sequence[Reroute]) -> Optional[List[Reroute]]:
    """A bounded branch-and-bound over the hot elephants' paths, for when greedy gets stuck.

    Why: moving one flow at a time stops in a local optimum when the only fix
    is to move two flows together (two flows share an edge switch and each
    blocks the other's free path); the property tests find such cases on k=4.
    The search places the first ``joint_max_flows`` hot elephants (priority
    order) jointly, minimising the peak load of the links their choice can
    change, with at most ``max_reroutes_per_tick`` of them moved, trying at
    most ``joint_search_nodes`` path choices.  Its answer replaces greedy's
    only if its peak is lower than greedy's and beats the current peak by at
    least ``hysteresis``.  ``placer.util`` must hold the state before greedy.
    """
    hot = config.hot_threshold
    group: List[ActiveFlow] = []
    options: List[List[Path]] = []
    for flow in candidates:
        if len(group) == config.joint_max_flows:
            break
        if not _crosses_hot(placer, flow, hot):
            continue
        alts = placer.alternatives(flow)
        old_links = frozenset(path_links(flow.path))
        # Only flows whose hot link is one a placement can change (not, say, their host link).
        if len(alts) < 2 or placer.score(flow, flow.path, old_links, placer.shared(flow, alts))[0] <= hot:
            continue
        group.append(flow)
        options.append(alts)
    if not group:
        return None
    caps = placer.caps
    var = set()
    links_of = placer.links
    for flow, alts in zip(group, options):
        sets = [set(links_of(p)) for p in alts] + [set(links_of(flow.path))]
        var |= set.union(*sets) - set.intersection(*sets)
    if not var:
        return None
    load = {l: placer.util.get(l, 0.0) for l in var}
    for flow in group:
        for l in path_links(flow.path):
            if l in load:
                load[l] = max(load[l] - flow.rate_bps / caps[l], 0.0)
    floor = max(load.values())
    # Per flow: (path, [(link, share)] on variable links); current path first, then by static score.
    choices: List[List[Tuple[Path, List[Tuple[Link, float]]]]] = []
    for flow, alts in zip(group, options):
        rate = flow.rate_bps
        touched = {p: [(l, rate / caps[l]) for l in links_of(p) if l in var]
                   for p in list(alts) + [flow.path]}
        others = sorted((p for p in alts if p != flow.path),
                        key=lambda p: (max([load[l] + s for l, s in touched[p]] or [0.0]), p))
        choices.append([(flow.path, touched[flow.path])] + [(p, touched[p]) for p in others])

    for opts in choices:
        for l, s in opts[0][1]:
            load[l] += s
    current = max(load.values())
    for opts in choices:
        for l, s in opts[0][1]:
            load[l] -= s

    best: Dict[str, object] = {"value": current, "assign": None}
    state = {"nodes": config.joint_search_nodes}
    pick: List[int] = []

    def search(i: int, peak: float, moves: int) -> None:
        if i == len(group):
            if peak < best["value"] - _EPS:  # type: ignore[operator]
                best["value"], best["assign"] = peak, list(pick)
            return
        for j, (_, touch) in enumerate(choices[i]):
            if state["nodes"] <= 0:
                return
            state["nodes"] -= 1
            m = moves + (j > 0)
            if m > config.max_reroutes_per_tick:
                continue
            new_peak = max([peak] + [load[l] + s for l, s in touch])
            if new_peak >= best["value"] - _EPS:  # type: ignore[operator]
                continue
            for l, s in touch:
                load[l] += s
            pick.append(j)
            search(i + 1, new_peak, m)
            pick.pop()
            for l, s in touch:
                load[l] -= s

    search(0, floor, 0)
    assign = best["assign"]
    value = float(best["value"])  # type: ignore[arg-type]
    if assign is None or value > current - config.hysteresis + _EPS:
        return None
    # Greedy's peak over the same links, for comparison.
    greedy_util = dict(placer.util)
    by_id = {f.flow_id: f for f in candidates}
    for rr in greedy:
        _move(greedy_util, caps, by_id[rr.flow_id].rate_bps, rr.old_path, rr.new_path)
    if value >= max(greedy_util.get(l, 0.0) for l in var) - _EPS:
        return None
    out = []
    n_moved = sum(1 for j in assign if j > 0)
    for flow, opts, j in zip(group, choices, assign):
        if j == 0:
            continue
        new = opts[j][0]
        placer.move(flow, flow.path, new)
        out.append(Reroute(flow.flow_id, flow.path, new, "%s: joint move of %d flows; peak %.2f -> %.2f (%s)"
                           % (config.policy, n_moved, current, value, basis)))
    return out


def reroute_failed_link(fabric: Fabric, flows: Sequence[ActiveFlow], link: Link, *,
                        measured: Optional[Mapping[Link, float]] = None,
                        paths: Optional[PathsFn] = None) -> List[Reroute]:
    """Move every flow whose path uses the cable ``link`` (either direction) off it.

    Called on port-down, before the next poll, for every policy.  The fabric
    must already have the link down (``set_link_up(a, b, False)``).  New paths
    are placed, in priority order, on the equal-cost path with the lowest
    bottleneck of ``measured`` (if given) or else of the load the flows
    themselves imply.  A flow with no surviving path (its host link failed, or
    the fabric is partitioned) is left out of the result: there is nowhere to
    move it, and its rules will idle out.
    """
    a, b = link
    dead = {(a, b), (b, a)}
    _check_unique(flows)
    paths_fn: PathsFn = paths or fabric.paths
    if measured is None:
        util = flow_demand_utilization(fabric, [f for f in flows if dead.isdisjoint(path_links(f.path))])
    else:
        util = {l: v for l, v in ((l, _clean(x)) for l, x in measured.items()) if v is not None}
        for l in dead:
            util.pop(l, None)
    placer = _Placer(fabric, util, paths_fn)
    reroutes: List[Reroute] = []
    for flow in sorted(flows, key=_priority):
        old_links = frozenset(path_links(flow.path))
        if dead.isdisjoint(old_links):
            continue
        try:
            alts = [p for p in placer.alternatives(flow) if dead.isdisjoint(path_links(p))]
        except FabricError:
            continue
        if not alts:
            continue
        # The old path carries nothing any more: score as a fresh placement.
        new, worst = placer.best(flow, alts, frozenset(), frozenset())
        if new is None:
            continue
        if measured is None:
            placer.move(flow, (), new)
        else:
            placer.move(flow, flow.path, new)
        reroutes.append(Reroute(flow.flow_id, flow.path, new,
                                "link-down %s-%s; new path peaks at %.2f" % (a, b, worst)))
    return reroutes

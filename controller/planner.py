"""The path planner: active flows + link utilization -> reroutes.

Why it exists: 5-tuple ECMP lets a few long-lived training connections land on
the same link while parallel links idle.  The fix is deliberate placement of
those few elephants (Hedera, NSDI 2010).  This module decides *which* flows to
move and *where*; it returns plain ``Reroute`` records and nothing else.  The
app turns a reroute into rules with ``controller.rules.consistent_update``.

Policies
--------
``ecmp``
    Never reroutes: the hash decides.  (On a port-down, the flows of the failed
    cable move at once: under ``ecmp`` to ECMP's choice over the surviving
    paths, under ``reactive`` and ``predictive`` where ``reroute_failed_link``
    places them on the measured load; ``ControllerRuntime._failover``.)
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
import weakref
from dataclasses import dataclass, fields
from itertools import chain, repeat
from operator import add, attrgetter, itemgetter, truediv
from typing import (AbstractSet, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence,
                    Tuple)

import numpy as np

from controller.classify import BACKGROUND, TRAINING
from controller.ecmp import FiveTuple
from controller.fabric import Fabric, FabricError, Link, Path, path_links
from controller.paths import EqualCostPaths

__all__ = [
    "POLICIES", "TRAINING", "BACKGROUND", "CLASSES", "PlannerError", "ActiveFlow",
    "PlannerConfig", "Reroute", "plan_reroutes", "reroute_failed_link", "with_demand_floor",
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
    ``movable`` False keeps a planning round from moving it (the live app's
    cooldown after a move) while its load still counts; a failover moves it
    anyway.
    """

    flow_id: str
    five: FiveTuple
    path: Tuple[str, ...]
    rate_bps: float
    cls: str = TRAINING
    movable: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.flow_id, str) or not self.flow_id:
            raise PlannerError("flow_id must be a non-empty string, got %r" % (self.flow_id,))
        path = self.path
        if type(path) is not tuple:  # already a tuple (the usual case): nothing to convert or store
            path = tuple(path)
            object.__setattr__(self, "path", path)
        if len(path) < 2 or path[0] != self.five.src or path[-1] != self.five.dst:
            raise PlannerError("flow %s: path %s must run from %s to %s"
                               % (self.flow_id, "->".join(path), self.five.src, self.five.dst))
        rate = self.rate_bps
        if type(rate) is float and 0.0 <= rate < math.inf:  # the usual case, in one test
            pass
        elif isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                or rate < 0:
            raise PlannerError("flow %s: rate_bps must be a finite number >= 0, got %r"
                               % (self.flow_id, rate))
        if self.cls not in CLASSES:
            raise PlannerError("flow %s: cls must be one of %s, got %r"
                               % (self.flow_id, "|".join(CLASSES), self.cls))

    @classmethod
    def unchecked(cls, flow_id: str, five: FiveTuple, path: Tuple[str, ...], rate_bps: float,
                  flow_cls: str) -> "ActiveFlow":
        """The same object without ``__post_init__``'s checks, 4x cheaper.

        Only for producers whose values hold by construction: replay builds
        about 500 of these per tick from its own state (a path the fabric
        validated, a solver's finite rate >= 0, a class the trace reader checked).
        """
        flow = object.__new__(cls)
        flow.__dict__.update(flow_id=flow_id, five=five, path=path, rate_bps=rate_bps, cls=flow_cls)
        return flow


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


class _Capacities(dict):
    """Link -> capacity_bps, looked up in the fabric on first use."""

    def __init__(self, fabric: Fabric) -> None:
        super().__init__()
        self._fabric = weakref.ref(fabric)  # a kept index must not keep its fabric alive (see _index_for)
        # networkx's own adjacency dict: the public views allocate an object per lookup,
        # which is most of the cost of a planning round at k=16.
        self._adj = fabric.graph._adj

    def __missing__(self, link: Link) -> float:
        try:
            cap = self._adj[link[0]][link[1]]["capacity_bps"]
        except KeyError:
            cap = self._fabric().capacity_bps(*link)  # raises FabricError naming the link
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
    ids = [f.flow_id for f in flows]
    if len(set(ids)) == len(ids):  # the common case, without a Python-level loop
        return
    seen = set()
    for flow_id in ids:
        if flow_id in seen:
            raise PlannerError("flow_id %r appears twice in the active flows" % flow_id)
        seen.add(flow_id)


def flow_demand_utilization(fabric: Fabric, flows: Iterable[ActiveFlow]) -> Dict[Link, float]:
    """Per directed link, the sum of the flows' demands on it over its capacity.

    Summed in flow_id order, so the floating-point result does not depend on
    the order the caller lists the flows in.
    """
    return _flow_demand(_Capacities(fabric), flows)


def with_demand_floor(fabric: Fabric, flows: Iterable[ActiveFlow],
                      measured: Mapping[Link, float]) -> Dict[Link, float]:
    """``measured`` raised, link by link, to the utilization the flows' own demands add up to.

    Why: a full link reads 1.0 however many flows want it, and Hedera's
    placement works on the flows' natural demands, so the live app plans (and
    places a failed cable's flows) on at least their sum.
    """
    basis = dict(measured)
    for link, util in flow_demand_utilization(fabric, flows).items():
        if util > basis.get(link, 0.0):
            basis[link] = util
    return basis


def _flow_demand(caps: _Capacities, flows: Iterable[ActiveFlow]) -> Dict[Link, float]:
    """``flow_demand_utilization`` with the capacities given (a round's index has them)."""
    out: Dict[Link, float] = {}
    get = out.get
    for f in sorted(flows, key=_flow_id):
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
    return _planning_utilization(measured, predicted, config, lambda: flow_demand_utilization(fabric, flows))


def _planning_utilization(measured: Mapping[Link, float], predicted: Optional[Mapping[Link, float]],
                          config: PlannerConfig, demand: Callable[[], Dict[Link, float]]
                          ) -> Dict[Link, float]:
    """``planning_utilization`` with the flows' demand supplied by the caller (the round has it indexed)."""
    # Each pass is a comprehension over the common case (float values; _clean keeps those >= 0 as they
    # are) and falls back to the plain loop, same order, when some value needs _clean.
    util = {link: v for link, v in measured.items() if type(v) is float and v >= 0.0}
    if len(util) != len(measured):
        util = {}
        for link, value in measured.items():
            v = _clean(value)
            if v is not None:
                util[link] = v
    if config.policy != "predictive":
        return util
    get = util.get
    predicted = predicted or {}
    if all(type(v) is float for v in predicted.values()):
        # v > get(...) >= 0 implies v >= 0.0, so _clean would keep v; a NaN fails the test as _clean drops it
        util.update({link: v for link, v in predicted.items() if v > get(link, 0.0)})
    else:
        for link, value in predicted.items():
            v = _clean(value)
            if v is not None and v > get(link, 0.0):
                util[link] = v
    util.update({link: v for link, v in demand().items() if v > get(link, 0.0)})
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


def _flow_id(flow: ActiveFlow) -> str:
    return flow.flow_id


_known_ids = attrgetter("known_ids")
_known_caps = attrgetter("known_caps")


def _path_usable(adj: Mapping[str, Mapping[str, Mapping[str, object]]], path: Sequence[str]) -> bool:
    """Every link of ``path`` exists and is up in ``adj`` (the fabric graph's ``_adj``, see _Capacities)."""
    prev = path[0]
    for node in path[1:]:
        nbrs = adj.get(prev)
        data = nbrs.get(node) if nbrs is not None else None
        if data is None or not data["up"]:
            return False
        prev = node
    return True


class _PathInfo:
    """A flow path: ``_path_usable`` and, if usable, its first link's capacity (``access``); then, once
    ``_PathIndex.detail`` fills them, its links, their set, their capacities (None: not a link of the
    fabric) and the smallest of those.

    ``known_ids``/``known_caps`` (filled by ``_PathIndex.known``): the number
    and the capacity of each link the fabric has, in path order (what
    ``flow_demand_utilization`` sums).  Filled on first need because a round
    that does not need them (a first round, say) should not pay for them.
    """

    __slots__ = ("path", "usable", "access", "links", "link_set", "caps", "min_cap", "known_ids",
                 "known_caps")

    def __init__(self, path: Path, adj: Mapping[str, Mapping[str, Mapping[str, object]]],
                 caps: _Capacities) -> None:
        self.path = path
        self.usable = _path_usable(adj, path)
        self.access: Optional[float] = caps[(path[0], path[1])] if self.usable else None
        self.link_set: FrozenSet[Link] = frozenset()
        self.caps: Tuple[Optional[float], ...] = ()
        self.min_cap: Optional[float] = None
        self.known_ids: Optional[Tuple[int, ...]] = None
        self.known_caps: Optional[Tuple[float, ...]] = None
        self.links: Optional[Tuple[Link, ...]] = None  # None: not filled yet (set last, see detail)


class _Choices:
    """The equal-cost paths of one host pair as index lists into the union of their links.

    Why: the greedy pass scores every alternative of each hot flow.  The paths
    of a pair overlap (at k=8, 16 paths of 6 links touch 42 distinct links), so
    a flow's load on each link -- a division and a dict lookup -- is computed
    once per link (``_Placer.loads``), and each path's sum and bottleneck are
    list indexing.  The floats are the same as ``_Placer.score``'s: the same
    operations on the same values, summed left to right along the path from 0.0.
    """

    __slots__ = ("paths", "links", "caps", "cap", "rows", "picks", "pickers", "_at")

    def __init__(self, index: "_PathIndex", paths: Sequence[Path], shared: FrozenSet[Link]) -> None:
        pos: Dict[Link, int] = {}
        links: List[Link] = []
        rows: List[Tuple[int, ...]] = []
        picks: List[Tuple[int, ...]] = []
        for path in paths:
            row, pick = [], []
            for link in index.links(path):
                i = pos.get(link)
                if i is None:
                    i = pos[link] = len(links)
                    links.append(link)
                row.append(i)
                if link not in shared:
                    pick.append(i)
            rows.append(tuple(row))
            picks.append(tuple(pick))
        caps = index.caps
        self.caps = [caps[link] for link in links]  # in path order: a missing link is named as score names it
        # One capacity for every link (a fat-tree): then one division gives every share.
        self.cap: Optional[float] = self.caps[0] if self.caps and len(set(self.caps)) == 1 else None
        self.paths = list(paths)
        self.links = links
        self.rows = rows
        self.picks = picks  # each path's choosable links (not in the pair's shared set), in path order
        self.pickers = [_picker(pick) for pick in picks]
        self._at: Dict[Path, int] = {}
        for j, path in enumerate(self.paths):
            self._at.setdefault(tuple(path), j)

    def index_of(self, path: Sequence[str]) -> Optional[int]:
        return self._at.get(tuple(path))

    def on_path(self, path: Sequence[str], link_set: FrozenSet[Link]) -> Sequence[int]:
        """Indices of the union links that ``path`` (whose links are ``link_set``) uses."""
        j = self._at.get(tuple(path))
        if j is not None:
            return self.rows[j]
        return [i for i, link in enumerate(self.links) if link in link_set]

    def bottleneck(self, j: int, loads: Sequence[float]) -> Tuple[float, Optional[Link]]:
        """``score(...)[0::2]`` of path ``j``: its highest choosable load and the first link carrying it."""
        worst, where = 0.0, None
        for i in self.picks[j]:
            load = loads[i]
            if where is None or load > worst:
                worst, where = load, i
        return worst, (None if where is None else self.links[where])


def _picker(idx: Sequence[int]) -> Callable[[Sequence[float]], Tuple[float, ...]]:
    """``lambda seq: tuple(seq[i] for i in idx)``, at C speed where ``itemgetter`` allows.

    ``max`` of the result is a path's bottleneck; no choosable link gives (0.0,), score's start value.
    """
    if len(idx) > 1:
        return itemgetter(*idx)
    if len(idx) == 1:
        i = idx[0]
        return lambda seq: (seq[i],)
    return lambda seq: (0.0,)


def _near(low: float) -> float:
    """Above this, a bottleneck cannot round (to 9 places) to the same value as ``low``.

    Why it is safe: two values more than 1e-9 apart round to different
    multiples of 1e-9, and those convert to different doubles below 2**23;
    from 2**23 up, a double's spacing exceeds 1e-9 and round(x, 9) == x.  The
    float sum ``low + 1e-8`` is at least ``low + 1e-9`` wherever the spacing
    is below 1.8e-8, and never below ``low`` elsewhere.
    """
    return low + 1e-8


class _PathIndex:
    """What the planner derives from the fabric alone: per path and per host pair, for one fabric version.

    Why: most of a round at k=8 was rebuilding the same link lists, capacity
    lookups and equal-cost path sets, tick after tick.  None of it depends on
    utilization or flows, so one index is kept across rounds (``_index_for``)
    and rebuilt when ``fabric.version`` changes, as the fabric's own path cache
    is.  Within an index, ``paths(src, dst)`` is asked once per pair (the
    shared-link sets always assumed it is fixed).  It refers to the fabric
    weakly, so that keeping it does not keep the fabric.
    """

    MAX_PATHS = 20_000  # then start afresh: ~2 kB a path, so this bounds memory over a long replay

    def __init__(self, fabric: Fabric, paths: Optional[PathsFn]) -> None:
        """``paths`` None: the fabric's own ``paths``, looked up when used (the fabric is held weakly)."""
        self._fabric = weakref.ref(fabric)
        self.adj = fabric.graph._adj
        self.paths_fn = paths
        self.version = fabric.version
        self.caps = _Capacities(fabric)
        self._info: Dict[Path, _PathInfo] = {}  # flow paths
        self._links: Dict[Path, Tuple[Link, ...]] = {}  # every path seen
        self._ids: Dict[Link, int] = {}
        self._by_id: List[Link] = []
        self._summed = False  # has demand() been asked before?
        self._alts: Dict[Tuple[str, str], List[Path]] = {}
        self._shared: Dict[Tuple[str, str], FrozenSet[Link]] = {}
        self._choices: Dict[Tuple[str, str], _Choices] = {}

    def current(self, fabric: Fabric) -> bool:
        """Still valid for ``fabric`` (same object, same version, not grown past its bound)?"""
        return (fabric is self._fabric() and fabric.version == self.version
                and len(self._links) < self.MAX_PATHS)

    def info(self, path: Sequence[str]) -> _PathInfo:
        key = tuple(path)
        got = self._info.get(key)
        if got is None:
            got = self._info[key] = _PathInfo(key, self.adj, self.caps)
        return got

    def detail(self, info: _PathInfo) -> _PathInfo:
        """Fill the links, link set and capacities of ``info`` if not yet done."""
        if info.links is None:
            links = self.links(info.path)
            caps = self.caps
            found: List[Optional[float]] = []
            for link in links:
                try:
                    found.append(caps[link])
                except FabricError:
                    found.append(None)
            info.link_set = frozenset(links)
            info.caps = tuple(found)
            # The largest share of a flow on this path is rate / min_cap (division is monotonic).
            info.min_cap = min(found) if found and None not in found else None
            info.links = links  # last: a filled info is a complete one
        return info

    def links(self, path: Sequence[str]) -> Tuple[Link, ...]:
        """``path_links``, remembered (alternative paths need no more than this)."""
        key = tuple(path)
        got = self._links.get(key)
        if got is None:
            got = self._links[key] = tuple(path_links(key))
        return got

    def known(self, info: _PathInfo) -> _PathInfo:
        """Fill ``info.known_ids``/``known_caps``: number (for array sums) and capacity of its links."""
        if info.known_ids is None:
            self.detail(info)
            if not self._by_id:  # every directed link of the fabric, numbered once (ids before the list)
                by_id = self._fabric().directed_links()
                self._ids = {link: i for i, link in enumerate(by_id)}
                self._by_id = by_id
            known = [(link, cap) for link, cap in zip(info.links, info.caps) if cap is not None]
            info.known_caps = tuple(cap for _, cap in known)  # first: known_ids set means "filled"
            info.known_ids = tuple(self._ids[link] for link, _ in known)
        return info

    def infos(self, flows: Sequence[ActiveFlow]) -> List[_PathInfo]:
        """``info(f.path)`` for every flow (one C-level pass over the cache, then the misses)."""
        paths = [f.path for f in flows]
        got = list(map(self._info.get, paths))
        if None in got:
            info = self.info
            got = [g if g is not None else info(path) for g, path in zip(got, paths)]
        return got

    def pair_paths(self, src: str, dst: str) -> List[Path]:
        """``paths(src, dst)`` (a FabricError is raised again on every ask, not remembered)."""
        key = (src, dst)
        got = self._alts.get(key)
        if got is None:
            paths = self.paths_fn if self.paths_fn is not None else self._fabric().paths
            got = self._alts[key] = list(paths(src, dst))
        return got

    def shared(self, src: str, dst: str, alts: Sequence[Path]) -> FrozenSet[Link]:
        """Links every one of the pair's paths uses: no placement changes their load."""
        key = (src, dst)
        got = self._shared.get(key)
        if got is None:
            sets = [set(self.links(p)) for p in alts]
            got = frozenset(set.intersection(*sets)) if sets else frozenset()
            self._shared[key] = got
        return got

    def choices(self, src: str, dst: str) -> _Choices:
        key = (src, dst)
        got = self._choices.get(key)
        if got is None:
            alts = self.pair_paths(src, dst)
            got = self._choices[key] = _Choices(self, alts, self.shared(src, dst, alts))
        return got

    def demand(self, flows: Sequence[ActiveFlow], infos: Sequence[_PathInfo]) -> Dict[Link, float]:
        """``flow_demand_utilization`` (same floats) from the flows' path infos.

        The shares ``rate / capacity`` are divided as arrays, and summed per
        link by ``np.bincount``, which adds each weight to its bin in input
        order starting from 0.0: the same left-to-right sums, flows in flow_id
        order, as the dict loop.  The first round of an index sums with that loop
        itself: numbering every link of every path costs more than it saves once.
        """
        if not self._summed:
            self._summed = True
            return _flow_demand(self.caps, flows)
        ids = [f.flow_id for f in flows]
        rates: List[float] = []
        used: List[_PathInfo] = []
        for k in sorted(range(len(ids)), key=ids.__getitem__):  # flow_id order, stable, as there
            rate = flows[k].rate_bps
            if rate > 0:
                rates.append(rate)
                used.append(self.known(infos[k]))
        counts = [len(p.known_ids) for p in used]
        n = sum(counts)
        if n == 0:
            return {}
        link_ids = np.fromiter(chain.from_iterable(map(_known_ids, used)), dtype=np.intp, count=n)
        caps = np.fromiter(chain.from_iterable(map(_known_caps, used)), dtype=float, count=n)
        shares = np.repeat(np.array(rates, dtype=float), counts) / caps
        size = len(self._by_id)
        sums = np.bincount(link_ids, weights=shares, minlength=size).tolist()
        touched = np.flatnonzero(np.bincount(link_ids, minlength=size)).tolist()
        # Keys in link-number order, not first-touch order: the planner only looks values up.
        return dict(zip(map(self._by_id.__getitem__, touched), map(sums.__getitem__, touched)))


def _index_for(fabric: Fabric, paths: PathsFn) -> _PathIndex:
    """The index to plan with: kept across rounds in an ``EqualCostPaths`` over ``fabric``.

    Any other ``paths`` function (the default ``fabric.paths`` included) gets a
    fresh index for the round: callers that plan every tick keep an
    ``EqualCostPaths`` and pass it, as the app and replay do.
    """
    if isinstance(paths, EqualCostPaths) and paths.fabric is fabric:
        index = paths.planner_index
        if index is None or not index.current(fabric):
            index = paths.planner_index = _PathIndex(fabric, paths)
        return index
    return _PathIndex(fabric, paths)


class _Placer:
    """Scores candidate paths for one flow against the working utilization."""

    def __init__(self, index: _PathIndex, util: Dict[Link, float], hot: float = math.inf) -> None:
        self.index = index
        self.caps = index.caps
        self.links = index.links
        self.util = util
        self.hot = hot
        self._hot_links: Optional[set] = None

    def set_util(self, util: Dict[Link, float]) -> None:
        self.util = util
        self._hot_links = None

    def link_set(self, path: Sequence[str]) -> FrozenSet[Link]:
        return self.index.detail(self.index.info(path)).link_set

    def pair_paths(self, flow: ActiveFlow) -> List[Path]:
        return self.index.pair_paths(flow.five.src, flow.five.dst)

    def alternatives(self, flow: ActiveFlow) -> List[Path]:
        return list(self.pair_paths(flow))

    def shared(self, flow: ActiveFlow, alts: Sequence[Path]) -> FrozenSet[Link]:
        return self.index.shared(flow.five.src, flow.five.dst, alts)

    def choices(self, flow: ActiveFlow) -> _Choices:
        return self.index.choices(flow.five.src, flow.five.dst)

    def choices_or_none(self, flow: ActiveFlow) -> Optional[_Choices]:
        """``choices``, or None if a path of the pair is not in the fabric.

        The caller then takes the plain ``score``/``best`` route, which raises (or not) where it always did.
        """
        try:
            return self.choices(flow)
        except FabricError:
            return None

    def hot_links(self) -> set:
        """Links whose working utilization is above ``hot``; kept up to date by ``move``."""
        if self._hot_links is None:
            hot = self.hot
            self._hot_links = {link for link, v in self.util.items() if v > hot}
        return self._hot_links

    def crosses_hot(self, flow: ActiveFlow, info: _PathInfo) -> bool:
        """Does any link of the flow's path (``info``) carry more than ``hot`` with the flow on it?

        That is ``max(util, share) > hot`` on some link.  When no share exceeds
        ``hot`` (the flow's largest share is rate / min capacity), it is
        exactly "the path meets a hot link": a set test instead of a loop.
        """
        if info.links is None:
            self.index.detail(info)
        rate, hot = flow.rate_bps, self.hot
        if info.min_cap is not None and not rate / info.min_cap > hot:
            return not self.hot_links().isdisjoint(info.link_set)
        get, caps = self.util.get, self.caps
        for link in info.links:
            if max(get(link, 0.0), rate / caps[link]) > hot:
                return True
        return False

    def score(self, flow: ActiveFlow, path: Sequence[str], old_links: FrozenSet[Link],
              shared: FrozenSet[Link]) -> Tuple[float, float, Optional[Link]]:
        """(bottleneck over choosable links, sum of loads, the bottleneck link) with the flow on ``path``."""
        get, caps, rate = self.util.get, self.caps, flow.rate_bps
        worst, total, where = 0.0, 0.0, None
        for link in self.links(path):
            share = rate / caps[link]
            u = get(link, 0.0)
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

    def loads(self, flow: ActiveFlow, choices: _Choices) -> List[float]:
        """Per union link, the load ``score`` gives it: max(u, share) on the flow's path, else u + share."""
        rate = flow.rate_bps
        olds = choices.on_path(flow.path, self.link_set(flow.path))
        us = list(map(self.util.get, choices.links, repeat(0.0)))
        if choices.cap is not None:
            share = rate / choices.cap
            loads = list(map(add, us, repeat(share)))
            for i in olds:
                loads[i] = max(us[i], share)
            return loads
        shares = list(map(truediv, repeat(rate), choices.caps))
        loads = list(map(add, us, shares))
        for i in olds:
            loads[i] = max(us[i], shares[i])
        return loads

    def best_of(self, choices: _Choices, loads: List[float], ceiling: float = math.inf
                ) -> Tuple[Optional[Path], float]:
        """``best(flow, choices.paths, <flow.path's links>, <the pair's shared links>)`` from
        ``loads(flow, choices)``, or ``(None, inf)`` when no path's bottleneck is at most
        ``ceiling`` (the caller would not move the flow).

        Same answer, cheaper: each link's load was computed once, not once per
        path through it, and only paths whose bottleneck can round to the
        lowest one get a full key (see ``_near``).
        """
        worsts = [max(get(loads)) for get in choices.pickers]  # max keeps the first of equals, as score
        if not worsts:
            return None, math.inf
        low = min(worsts)  # skips a NaN, as best()'s key comparisons do, unless it comes first ...
        if low != low:  # ... where best() keeps it whatever follows: rank as best() does
            return self._rank(choices, loads, worsts, low, every=True)
        if low > ceiling:
            return None, math.inf
        return self._rank(choices, loads, worsts, _near(low), every=False)

    @staticmethod
    def _rank(choices: _Choices, loads: List[float], worsts: List[float], near: float,
              every: bool) -> Tuple[Optional[Path], float]:
        """The lowest (round(worst, 9), round(total, 9), path) of the paths with worst <= near (or all)."""
        best_key = None
        best_worst = math.inf
        paths = choices.paths
        for j, worst in enumerate(worsts):
            if not every and not worst <= near:
                continue
            total = 0.0
            for i in choices.rows[j]:
                total += loads[i]
            key = (round(worst, 9), round(total, 9), paths[j])  # float noise must not break ties
            if best_key is None or key < best_key:
                best_key, best_worst = key, worst
        return best_key[2], best_worst

    def move(self, flow: ActiveFlow, old: Sequence[str], new: Sequence[str]) -> None:
        _move(self.util, self.caps, flow.rate_bps, old, new)
        hot_links = self._hot_links
        if hot_links is not None:  # only the two paths' links changed
            get, hot = self.util.get, self.hot
            for link in path_links(old) + path_links(new):
                if get(link, 0.0) > hot:
                    hot_links.add(link)
                else:
                    hot_links.discard(link)


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
    long-lived ``EqualCostPaths(fabric)`` for speed: it also keeps the
    planner's per-path index across rounds).

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
    index = _index_for(fabric, paths_fn)
    util = _planning_utilization(measured, predicted, config, lambda: index.demand(flows, index.infos(flows)))
    infos = index.infos(flows)  # (after util, so that errors in the inputs surface in the original order)
    hot = config.hot_threshold
    placer = _Placer(index, util, hot)
    # what the hot links were judged on: predictive without a forecast plans on measured load
    basis = "forecast" if config.policy == "predictive" and predicted is not None else "measured"
    reroutes: List[Reroute] = []
    moved = set()

    # Flows stranded on a down link first: safety before optimisation.
    stranded = [f for f, info in zip(flows, infos) if not info.usable]
    stranded_ids = {f.flow_id for f in stranded}
    for flow in sorted(stranded, key=_priority):
        try:
            alts = placer.alternatives(flow)
        except FabricError:
            continue  # partitioned: nothing to move it to
        new, worst = placer.best(flow, alts, placer.link_set(flow.path), frozenset())
        if new is None or new == flow.path:
            continue
        placer.move(flow, flow.path, new)
        moved.add(flow.flow_id)
        reroutes.append(Reroute(flow.flow_id, flow.path, new,
                                "%s: current path is down; new path peaks at %.2f" % (config.policy, worst)))

    candidates, cand_infos = _candidates(flows, infos, stranded_ids, config)
    start = dict(util)
    greedy = _global_first_fit(placer, candidates, cand_infos, config, basis)
    if config.joint_search_nodes > 0 and placer.hot_links():  # some link of util is above hot
        placer.set_util(start)
        joint = _joint_placement(placer, candidates, cand_infos, config, basis, greedy)
        if joint is not None:
            greedy = joint
    return reroutes + greedy


def _candidates(flows: Sequence[ActiveFlow], infos: Sequence[_PathInfo], stranded_ids: AbstractSet[str],
                config: PlannerConfig) -> Tuple[List[ActiveFlow], List[_PathInfo]]:
    """The flows the round may move, in priority order, with their path infos.

    Candidates are elephants of a movable class that are not stranded.  The
    order is ``_priority``'s, built by stable sorts on C-level keys (flow_id,
    then demand descending, then class), which is the same total order.
    """
    all_rates = [f.rate_bps for f in flows]
    move_background = config.move_background
    picked = [k for k, (flow, rate) in enumerate(zip(flows, all_rates))
              if rate > 0 and (move_background or flow.cls == TRAINING) and flow.movable]
    if stranded_ids:
        picked = [k for k in picked if flows[k].flow_id not in stranded_ids]
    access = [infos[k].access for k in picked]  # not stranded: the first link exists
    thresholds = {cap: config.elephant_threshold_bps(cap) for cap in set(access)}
    picked = [k for k, cap in zip(picked, access) if not all_rates[k] < thresholds[cap]]
    ids = [flows[k].flow_id for k in picked]
    rates = [all_rates[k] for k in picked]
    background = [flows[k].cls != TRAINING for k in picked]
    order = sorted(range(len(picked)), key=ids.__getitem__)
    order.sort(key=rates.__getitem__, reverse=True)  # reverse keeps equal keys in order: stable
    order.sort(key=background.__getitem__)
    return [flows[picked[o]] for o in order], [infos[picked[o]] for o in order]


def _global_first_fit(placer: "_Placer", candidates: Sequence[ActiveFlow], infos: Sequence[_PathInfo],
                      config: PlannerConfig, basis: str) -> List[Reroute]:
    """Hedera's Global First Fit with most-headroom choice; works on ``placer.util`` in place."""
    reroutes: List[Reroute] = []
    moved = set()
    budget = config.max_reroutes_per_tick
    progress = True
    while budget > 0 and progress:
        progress = False
        for flow, info in zip(candidates, infos):
            if budget == 0:
                break
            if flow.flow_id in moved or not placer.crosses_hot(flow, info):
                continue
            found = _first_fit_move(placer, flow, info, config)
            if found is None:
                continue
            new, worst, cur, cur_link = found
            placer.move(flow, flow.path, new)
            moved.add(flow.flow_id)
            budget -= 1
            progress = True
            reroutes.append(Reroute(flow.flow_id, flow.path, new,
                                    "%s: %s at %.2f (%s); new path peaks at %.2f"
                                    % (config.policy, _fmt(cur_link), cur, basis, worst)))
    return reroutes


def _first_fit_move(placer: "_Placer", flow: ActiveFlow, info: _PathInfo, config: PlannerConfig
                    ) -> Optional[Tuple[Path, float, float, Optional[Link]]]:
    """(new path, its peak, current peak, current bottleneck link) if greedy moves ``flow`` now, else None.

    The flow moves if its bottleneck over the links a placement can change is
    above ``hot_threshold`` and its best path lowers that by ``hysteresis``.
    Scored through the pair's ``_Choices`` (one load per link); the plain
    ``score``/``best`` route remains for a flow whose path is not one of its
    pair's paths, or whose pair has a path the fabric lacks.
    """
    old = flow.path
    alts = placer.pair_paths(flow)
    if len(alts) < 2 and (not alts or alts[0] == old):
        return None
    shared = placer.shared(flow, alts)
    choices = placer.choices_or_none(flow)
    j = choices.index_of(old) if choices is not None else None
    if j is None:  # the plain way, in the original order of operations
        cur, _, cur_link = placer.score(flow, old, info.link_set, shared)
        if cur <= config.hot_threshold:
            return None
        ceiling = cur - config.hysteresis + _EPS
        if choices is None:
            new, worst = placer.best(flow, alts, info.link_set, shared)
        else:
            new, worst = placer.best_of(choices, placer.loads(flow, choices), ceiling)
    else:
        loads = placer.loads(flow, choices)
        cur, cur_link = choices.bottleneck(j, loads)
        if cur <= config.hot_threshold:
            return None
        ceiling = cur - config.hysteresis + _EPS
        new, worst = placer.best_of(choices, loads, ceiling)
    if new is None or new == old or worst > ceiling:
        return None
    return new, worst, cur, cur_link


def _joint_placement(placer: "_Placer", candidates: Sequence[ActiveFlow], infos: Sequence[_PathInfo],
                     config: PlannerConfig, basis: str, greedy: Sequence[Reroute]) -> Optional[List[Reroute]]:
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
    for flow, info in zip(candidates, infos):
        if len(group) == config.joint_max_flows:
            break
        if not placer.crosses_hot(flow, info):
            continue
        alts = placer.alternatives(flow)
        old_links = info.link_set
        # Only flows whose hot link is one a placement can change (not, say, their host link).
        if len(alts) < 2 or placer.score(flow, flow.path, old_links, placer.shared(flow, alts))[0] <= hot:
            continue
        group.append(flow)
        options.append(alts)
    if not group:
        return None
    return _joint_search(placer, group, options, config, basis, greedy,
                         {f.flow_id: f.rate_bps for f in candidates})


def _joint_search(placer: "_Placer", group: Sequence[ActiveFlow], options: Sequence[Sequence[Path]],
                  config: PlannerConfig, basis: str, greedy: Sequence[Reroute],
                  rate_of: Mapping[str, float]) -> Optional[List[Reroute]]:
    """``_joint_placement`` once its group is chosen: the search, and its answer if it beats greedy's.

    ``options``: each group flow's equal-cost paths; ``rate_of``: the demand of
    (at least) every flow greedy moved.  Shared with ``plan_arrays``, which
    picks the same group on arrays.
    """
    caps = placer.caps
    var = set()
    links_of = placer.links
    for flow, alts in zip(group, options):
        sets = [set(links_of(p)) for p in alts] + [set(links_of(flow.path))]
        var |= set.union(*sets) - set.intersection(*sets)
    if not var:
        return None
    # The variable links as list positions, in var's own order (max over them sees the same sequence).
    order = list(var)
    pos = {l: i for i, l in enumerate(order)}
    get = placer.util.get
    load = [get(l, 0.0) for l in order]
    for flow in group:
        for l in placer.links(flow.path):
            i = pos.get(l)
            if i is not None:
                load[i] = max(load[i] - flow.rate_bps / caps[l], 0.0)
    floor = max(load)
    # Per flow: (path, [(link position, share)] on variable links); current path first, then by static score.
    choices: List[List[Tuple[Path, List[Tuple[int, float]]]]] = []
    for flow, alts in zip(group, options):
        touched = _touched(placer, flow, alts, pos)
        others = sorted((p for p in alts if p != flow.path),
                        key=lambda p: (max([load[i] + s for i, s in touched[p]] or [0.0]), p))
        choices.append([(flow.path, touched[flow.path])] + [(p, touched[p]) for p in others])

    for opts in choices:
        for i, s in opts[0][1]:
            load[i] += s
    current = max(load)
    for opts in choices:
        for i, s in opts[0][1]:
            load[i] -= s

    value, assign = _branch_and_bound(load, [[touch for _, touch in opts] for opts in choices],
                                      floor, current, config.joint_search_nodes, config.max_reroutes_per_tick)
    if assign is None or value > current - config.hysteresis + _EPS:
        return None
    # Greedy's peak over the same links, for comparison.
    greedy_util = dict(placer.util)
    for rr in greedy:
        _move(greedy_util, caps, rate_of[rr.flow_id], rr.old_path, rr.new_path)
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


def _touched(placer: "_Placer", flow: ActiveFlow, alts: Sequence[Path], pos: Mapping[Link, int]
             ) -> Dict[Path, List[Tuple[int, float]]]:
    """Per path (the alternatives and the flow's own), its (position, share) on the variable links ``pos``.

    ``{p: [(pos[l], rate / caps[l]) for l in links(p) if l in pos] for p in alts + [flow.path]}``,
    with each union link of the pair looked up and divided once (via its ``_Choices``).
    """
    rate, caps, links_of = flow.rate_bps, placer.caps, placer.links
    choices = placer.choices_or_none(flow)
    if choices is None or choices.paths != list(alts):
        return {p: [(pos[l], rate / caps[l]) for l in links_of(p) if l in pos]
                for p in list(alts) + [flow.path]}
    spots = [pos.get(l) for l in choices.links]
    shares = [rate / cap for cap in choices.caps]
    touched = {p: [(spots[i], shares[i]) for i in row if spots[i] is not None]
               for p, row in zip(choices.paths, choices.rows)}
    # The flow's own path last, as in the expression above (normally it is an alternative: same list).
    touched[flow.path] = [(pos[l], rate / caps[l]) for l in links_of(flow.path) if l in pos]
    return touched


def _branch_and_bound(load: List[float], touches: List[List[List[Tuple[int, float]]]], floor: float,
                      current: float, nodes: int, max_moves: int) -> Tuple[float, Optional[List[int]]]:
    """The joint search proper: (lowest peak found, one option index per flow) or (current, None).

    Flow ``i``'s option ``j`` adds ``touches[i][j]`` (position, share) to ``load``;
    option 0 is its current path, and at most ``max_moves`` flows may take
    another.  Depth-first, options in order, pruned when a partial peak cannot
    beat the best by ``_EPS``; at most ``nodes`` options are tried.  ``load``
    is updated in place and restored by subtraction (the float results are
    part of the answer: keep the order of these operations).
    """
    n = len(touches)
    best_value, best_bar = current, current - _EPS
    best_assign: Optional[List[int]] = None
    left = nodes
    pick: List[int] = []

    def visit(i: int, peak: float, moves: int) -> None:
        nonlocal best_value, best_bar, best_assign, left
        if i == n:
            if peak < best_bar:
                best_value, best_bar, best_assign = peak, peak - _EPS, list(pick)
            return
        for j, touch in enumerate(touches[i]):
            if left <= 0:
                return
            left -= 1
            m = moves + (j > 0)
            if m > max_moves:
                continue
            new_peak = peak  # max([peak] + loads), first of equals kept
            for k, s in touch:
                v = load[k] + s
                if v > new_peak:
                    new_peak = v
            if new_peak >= best_bar:
                continue
            for k, s in touch:
                load[k] += s
            pick.append(j)
            visit(i + 1, new_peak, m)
            pick.pop()
            for k, s in touch:
                load[k] -= s

    visit(0, floor, 0)
    return best_value, best_assign


def reroute_failed_link(fabric: Fabric, flows: Sequence[ActiveFlow], link: Link, *,
                        measured: Optional[Mapping[Link, float]] = None,
                        paths: Optional[PathsFn] = None) -> List[Reroute]:
    """Move every flow whose path uses the cable ``link`` (either direction) off it.

    Called on port-down, before the next poll, under the planner policies
    (``ControllerRuntime._failover``; flows with no measured rate yet are left
    to ECMP there).  The fabric
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
    placer = _Placer(_index_for(fabric, paths_fn), util)
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
        # Measured loads still hold the flow's own share on the links its old path keeps (its host
        # links, at least): there it counts once, as in plan_reroutes.  Loads made from the other
        # flows' demands do not hold it anywhere: a fresh placement.
        own = placer.link_set(flow.path) - dead if measured is not None else frozenset()
        new, worst = placer.best(flow, alts, own, frozenset())
        if new is None:
            continue
        if measured is None:
            placer.move(flow, (), new)
        else:
            placer.move(flow, flow.path, new)
        reroutes.append(Reroute(flow.flow_id, flow.path, new,
                                "link-down %s-%s; new path peaks at %.2f" % (a, b, worst)))
    return reroutes

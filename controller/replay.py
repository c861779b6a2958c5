"""Replay a flow trace under each routing policy and report what training would have gained.

Policies
--------
``ecmp``        the 5-tuple hash only (no control loop).
``reactive``    at every tick the simulated port counters go through the real
                ``LinkMonitor``; the real planner moves elephants off links
                measured hot (``PlannerConfig(policy="reactive")``).
``predictive``  the same, plus the real forecaster: ``Predictor.predict`` on
                ``LinkMonitor.history`` gives the forecast the planner uses.
``ideal``       every host on one non-blocking switch with the same host
                links: flows limited only by their host links (the physical limit).

Demand passed to the planner (``ActiveFlow.rate_bps``): a connection's current
max-min rate while it sends; between bursts a training connection's rate is 0,
so it is passed the mean rate of its last burst (size / duration), which is
what its next burst will ask for.  Idle connections with no burst yet, or with
no flows left in the trace, are not shown to the planner.

Metrics (``summary.json``)
--------------------------
* ``mean_fct_s``/``p99_fct_s``: flow completion time, finish - actual start
  (the start after dependencies), numpy linear-interpolated percentile.
* ``max_link_util``: per poll interval, exact bytes over capacity, the most
  over every directed link of the fabric the policy runs on (host links
  included; for ``ideal`` that is only host links) and every interval.
* ``mean_link_util``: the bytes each of those links carried over [0, makespan],
  over its capacity times the makespan, averaged over the links.  (It was the
  mean over poll intervals, and the last interval, which runs on to the next
  poll after the last finish, counted whole: a flow ending just past a poll
  halved it.)
* ``reroutes``: connection moves the planner applied at its ticks.
* ``link_events``/``failover_moves`` (only for a replay with ``--fail``): cable
  changes replayed, and connections moved off a cable when it went down (by
  the planner's failover under reactive/predictive, else by ECMP's re-hash).
* ``jobs``: iteration time of iteration i = last finish of i minus last finish
  of the iteration before it (the previous number the trace has), so the first
  iteration has none.
* ``aggregate_throughput_bps``: sum over flows of size / FCT (Hedera's
  aggregate of per-flow throughputs); ``makespan_s``: last finish.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import IO, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from controller.fabric import Fabric, Link
from controller.flowtrace import TraceFlow, write_flow_trace
from controller.sim import (ConnView, LinkEvent, PathChange, ProgressHook, SimResult, Simulator, TickHook,
                            TickView, big_switch_fabric)

POLICIES = ("ecmp", "reactive", "predictive", "ideal")


class ReplayError(ValueError):
    """Bad replay input (policy, model, output folder); the message says what to do."""


# --------------------------------------------------------------------------
# the control loop: simulated counters -> real monitor, forecaster, planner
# --------------------------------------------------------------------------
class MeasuredUtilization(Mapping):
    """A tick's measured utilization: ``values`` over ``links`` (NaN: none), read as
    ``LinkMonitor.utilization()``'s dict, which is built only if something asks for it.

    Why: the control loop's array paths read ``values``; only ``plan_reroutes``
    (rounds ``ArrayPlanner`` declines) needs the dict, and building it every
    tick cost more than the checks that use the array.  Equal to the monitor's
    dict when ``links`` holds every link the monitor knows (``ControlLoop``
    checks that); the values are this tick's, however late the dict is built.
    """

    def __init__(self, links: Sequence[Link], values: np.ndarray, order: np.ndarray) -> None:
        """``order``: positions into ``links`` in the monitor's order (``LinkMonitor.link_rows``)."""
        self.links = links
        self.values = values
        self._order = order
        self._dict: Optional[Dict[Link, float]] = None

    def _as_dict(self) -> Dict[Link, float]:
        if self._dict is None:
            valid = self._order[~np.isnan(self.values[self._order])]
            links = self.links
            self._dict = {links[i]: v for i, v in zip(valid.tolist(), self.values[valid].tolist())}
        return self._dict

    def __getitem__(self, link: Link) -> float:
        return self._as_dict()[link]

    def __iter__(self):
        return iter(self._as_dict())

    def __len__(self) -> int:
        return len(self._as_dict())


class ControlLoop:
    """The live app's per-poll decision, fed by the simulator instead of OpenFlow.

    Every tick the simulated port counters go through ``LinkMonitor.observe``
    and, for ``predictive``, the forecaster runs on ``LinkMonitor.history``,
    exactly as live.  The planner is then called whenever it could move a
    flow.  When it provably could not, the call is skipped: that is most
    ticks of a large replay, and building 1,000 ``ActiveFlow`` records plus a
    planning round cost more than the rest of the tick.  ``plan_reroutes``
    returns no move when no flow is stranded on a down link (``stranded``) and no candidate (a training
    elephant, by the planner's own rules) has a link that a placement can
    change (not its host's access link, which every equal-cost path shares)
    whose planning load ``max(utilization, the flow's own share)`` is above
    ``hot_threshold``: its greedy pass and its joint search both start only
    from such a flow.  ``planning utilization`` is the planner's: measured,
    and for ``predictive`` also the forecast and the flows' own demand.
    ``may_move`` checks that on arrays, with a margin of 1e-9 so float
    rounding can only make it call the planner more often.

    For ``reactive`` the planner is given the candidates only: it plans on
    measured load, so other flows never change its answer (when none is
    stranded).  ``predictive`` gets every connection, because their
    demand is part of its planning load.

    A round is planned by ``ArrayPlanner`` (controller/plan_arrays.py) on the
    tick's arrays, with ``plan_reroutes``' exact answer; ``plan_reroutes``
    itself plans the rounds it declines (a flow stranded on a down link, say)
    and every round when ``use_arrays`` is False.  A link that is down but
    carries no flow changes only the equal-cost paths, which both take from
    the same path index.
    """

    def __init__(self, fabric: Fabric, policy: str, *, poll_interval_s: float,
                 predictor: object = None, planner_overrides: Optional[Dict[str, object]] = None,
                 always_plan: bool = False) -> None:
        from controller.monitor import LinkMonitor
        from controller.paths import EqualCostPaths
        from controller.planner import PlannerConfig

        if policy not in ("reactive", "predictive"):
            raise ReplayError("no control loop for policy %r" % policy)
        if policy == "predictive" and predictor is None:
            raise ReplayError("the predictive policy needs a predictor: pass load_model(MODEL, poll_interval_s), "
                              "or load_model('persistence', ...) for the baseline")
        self.fabric = fabric
        self.policy = policy
        self.predictor = predictor
        window = int(getattr(predictor, "window", 1)) if predictor is not None else 1
        self.monitor = LinkMonitor(fabric, history=max(128, window), period_s=poll_interval_s)
        self.config = PlannerConfig.from_mapping(dict(planner_overrides or {}, policy=policy))
        self.paths = EqualCostPaths(fabric, compiled=None)
        self.links: List[Link] = fabric.directed_links()
        self.reasons: List[Tuple[float, str, str]] = []
        self.always_plan = always_plan
        self.ticks = 0
        self.planner_calls = 0
        pad = len(self.links)
        # capacity and "a placement can change it" per link, plus the pad entry of view rows
        self.capx = np.append([fabric.capacity_bps(a, b) for a, b in self.links], np.inf)
        single = {h for h in fabric.hosts() if len(list(fabric.graph.neighbors(h))) == 1}
        self.access = np.array([a in single or b in single for a, b in self.links] + [True])
        self._choosable_rows = np.flatnonzero(~self.access[:-1])          # what ``forecast`` forecasts
        self._choosable_links = [self.links[i] for i in self._choosable_rows.tolist()]
        self._up_version: Optional[int] = None
        self._down = np.zeros(len(self.links) + 1, dtype=bool)   # per link (and the pad): down
        self._pad = pad
        # (the monitor's rows of self.links, their positions in its order, or None if it knows other links)
        self._monitor_order: Optional[Tuple[np.ndarray, Optional[np.ndarray]]] = None
        self._flow_cache: Dict[Tuple[str, Tuple[str, ...], float], object] = {}
        self._threads: object = None    # threadpoolctl's controller, made at the first forecast
        from controller.plan_arrays import ArrayPlanner
        self.arrays = ArrayPlanner(fabric, self.paths, self.config, self.links)
        self.use_arrays = True           # False: every round through plan_reroutes (for checks)
        self.array_rounds = 0            # rounds answered by ArrayPlanner (the rest: plan_reroutes)

    def _forecast(self, history: np.ndarray) -> np.ndarray:
        """The predictor's forecast, run on one thread.

        Why one thread: the tick is serial anyway, and OpenMP threads on a busy
        machine made a forecast 40x slower here (same numbers either way).  The
        ``ThreadpoolController`` is made once: ``threadpool_limits`` makes a new
        one per call, scanning the process's libraries (2.8 ms, a quarter of a
        k=8 forecast).  It is made at the first forecast, after the predictor
        has loaded its libraries.
        """
        if self._threads is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # pragma: no cover - a scikit-learn dependency
                self._threads = False
            else:
                self._threads = ThreadpoolController()
        if self._threads is False:
            return np.asarray(self.predictor.predict(history), dtype=float)
        with self._threads.limit(limits=1):
            return np.asarray(self.predictor.predict(history), dtype=float)

    def stranded(self, view: TickView) -> bool:
        """True when an open connection's path crosses a link that is down.

        ``plan_reroutes`` moves such flows first, every one of them, candidate
        or not; the shortcuts of ``decide`` (``may_move``, candidates only, the
        array planner) hold when none is.  Replay moves a failed cable's
        connections at once (``failover``), so after a failure none is, and
        the planners keep their fast rounds with the cable down.
        """
        if self._up_version != self.fabric.version:
            self._down = np.array([not self.fabric.is_up(a, b) for a, b in self.links] + [False])
            self._up_version = self.fabric.version
        if not self._down.any():
            return False
        rows, _, _ = view.demand()
        return bool(self._down[rows].any())

    def candidates(self, view: TickView) -> np.ndarray:
        """Mask over ``view.connections``: the flows the planner may move (training elephants)."""
        rows, demand, training = view.demand()
        cfg = self.config
        if cfg.elephant_bps is not None:
            threshold = np.full(len(demand), cfg.elephant_bps)
        else:
            threshold = cfg.elephant_fraction * self.capx[rows[:, 0]] if len(rows) else np.zeros(0)
        movable = training if not cfg.move_background else np.ones(len(demand), dtype=bool)
        return (demand > 0) & movable & (demand >= threshold)

    def _plans_regardless(self, view: TickView) -> bool:
        """True when the loads do not decide whether to plan (asked to always, other links, a flow stranded)."""
        return self.always_plan or view.links != self.links or self.stranded(view)

    def could_move(self, view: TickView, cand: np.ndarray) -> bool:
        """``may_move``'s answer when no flow is a candidate; True: the loads decide (``may_move``)."""
        return self._plans_regardless(view) or bool(cand.any())

    def may_move(self, view: TickView, measured: Mapping[Link, float],
                 forecast: Optional[np.ndarray], cand: np.ndarray) -> bool:
        """False only when ``plan_reroutes`` would certainly return no move (see the class doc)."""
        if self._plans_regardless(view):
            return True
        if not cand.any():
            return False
        rows, demand, _ = view.demand()
        util = self._measured_values(measured)
        util = np.where(np.isnan(util), 0.0, np.maximum(util, 0.0))
        if self.policy == "predictive":
            if forecast is not None:
                util = np.fmax(util, forecast)            # NaN forecasts are ignored, as the planner does
            share = demand[:, None] / self.capx[rows]
            util = np.maximum(util, np.bincount(rows.ravel(), weights=share.ravel(),
                                                minlength=self._pad + 1)[:self._pad])
        utilx = np.append(util, 0.0)
        crow = rows[cand]
        load = np.maximum(utilx[crow], demand[cand][:, None] / self.capx[crow])
        load[self.access[crow]] = 0.0
        return bool(load.max() > self.config.hot_threshold - 1e-9)

    def __call__(self, view: TickView) -> List[PathChange]:
        measured, _ = self.observe(view, forecast=False)
        return self.decide(view, measured, self.forecast if self.policy == "predictive" else None)

    def forecast(self) -> np.ndarray:
        """The predictor's forecast of ``self.links`` from the monitor's history as it is now; NaN on host links.

        Why not the host links: every equal-cost path of a connection crosses its
        own two host links, so no placement changes their load, and the planners
        decide on the other links only (``plan_reroutes``' "choosable" links; a
        NaN forecast is ignored, the measured load stays).  Their load still
        enters the sum that breaks ties between paths, but as the same term in
        every path of a connection.  At k=8 they are 256 of 768 links; a forecast
        of the other 512 took 2.1 ms instead of 3.3 ms (2026-11-29).  The live app
        forecasts every link: ``/predictions`` serves them.
        """
        rows = self._choosable_rows
        out = np.full(len(self.links), np.nan)
        out[rows] = self._forecast(self.monitor.history(self._choosable_links, int(self.predictor.window)))
        return out

    def observe(self, view: TickView, *, forecast: bool = True
                ) -> Tuple[Mapping[Link, float], Optional[np.ndarray]]:
        """Feed the counters to the monitor; (measured utilization, forecast or None).

        ``forecast=False`` leaves the forecast out (None): the tick asks for
        it (``self.forecast``) only if the planner could use it.

        One ``LinkMonitor.ingest_ports`` call with every switch's counters,
        the same monitor state as ``ingest`` switch by switch (each port's
        duration is the tick time, as before) at a fraction of the cost.  The
        ``PortLayout`` and row -> link gathers are built once per port layout
        (the simulator hands the same ``switch_ports()`` list every tick) and
        kept on the loop.
        """
        from controller.monitor import PortLayout

        now = view.now_s
        rows = view.switch_ports()
        cached = getattr(self, "_port_rows", None)
        if cached is None or cached[0] is not rows:
            layout = PortLayout((switch, ports) for switch, ports, _, _ in rows)
            tx_of = np.array([i for _, _, tx, _ in rows for i in tx], dtype=np.intp)
            rx_of = np.array([i for _, _, _, rx in rows for i in rx], dtype=np.intp)
            cached = self._port_rows = (rows, layout, tx_of, rx_of)
        _, layout, tx_of, rx_of = cached
        cum = view.cumulative_bytes_array()
        if self.ticks == 0 and now > 0:
            # The controller was there before the trace: every counter read 0 at t=0.  Without this
            # baseline the first poll only set one, and traffic of the first interval went unseen
            # (a collision from t=0 was first measured at the second poll).
            zeros = np.zeros(len(tx_of), dtype=cum.dtype)
            self.monitor.ingest_ports(layout, zeros, zeros, 0.0, 0.0)
        self.monitor.ingest_ports(layout, cum[tx_of], cum[rx_of], now, now)
        self.ticks += 1
        forecast = self.forecast() if forecast and self.policy == "predictive" else None
        ours = self.monitor.link_rows(self.links)
        if self._monitor_order is None or self._monitor_order[0] is not ours:
            known = bool((ours >= 0).all()) and len(self.monitor.links()) == self._pad
            self._monitor_order = (ours, np.argsort(ours, kind="stable") if known else None)
        if self._monitor_order[1] is None:     # the monitor knows other links (the fabric changed): its dict
            return self.monitor.utilization(), forecast
        return MeasuredUtilization(self.links, self.monitor.utilization_of(self.links),
                                   self._monitor_order[1]), forecast

    def _measured_values(self, measured: Mapping[Link, float]) -> np.ndarray:
        """``measured`` over ``self.links``, NaN where it has no value."""
        if isinstance(measured, MeasuredUtilization) and measured.links is self.links:
            return measured.values
        return np.fromiter((measured.get(l, np.nan) for l in self.links), dtype=float, count=self._pad)

    def decide(self, view: TickView, measured: Dict[Link, float],
               forecast: Union[None, np.ndarray, Callable[[], np.ndarray]], *,
               full: bool = False) -> List[PathChange]:
        """The planner's moves; ``full`` calls it every time with every connection (for checks).

        ``forecast`` may be a function that makes it (``self.forecast``): it is
        then called only when the planner could move a flow.  Why: the forecast
        of every link costs as much as the rest of a predictive tick, and with
        no training elephant in flight (background traffic only) no tick needs
        it.  The predictor is a pure function of the monitor's history, which
        does not change within the tick, so the moves are the same.
        """
        from controller.planner import plan_reroutes

        cand = None if full else self.candidates(view)
        if callable(forecast) and (full or self.could_move(view, cand)):
            forecast = forecast()
        if full:
            conns = view.connections
            flows = self._active_flows(conns)
            self.planner_calls += 1
            return self._changes(view, conns, plan_reroutes(
                self.fabric, flows, measured, self._predicted(forecast), self.config, paths=self.paths))
        if callable(forecast) or not self.may_move(view, measured, forecast, cand):
            return []       # (a forecast still to make: could_move said no)
        self.planner_calls += 1
        positions: Optional[np.ndarray] = None
        if self.policy == "reactive" and not self.always_plan and not self.stranded(view):
            positions = np.flatnonzero(cand)          # candidates only: see the class doc
        if self.use_arrays and self.arrays.compiled and view.links == self.links and not self.stranded(view):
            got = self._plan_arrays(view, positions, measured, forecast)
            if got is not None:
                self.array_rounds += 1
                return got
        conns = view.connections if positions is None else view.connections_at(positions.tolist())
        flows = self._active_flows(conns)
        return self._changes(view, conns, plan_reroutes(
            self.fabric, flows, measured, self._predicted(forecast), self.config, paths=self.paths))

    def _plan_arrays(self, view: TickView, positions: Optional[np.ndarray], measured: Mapping[Link, float],
                     forecast: Optional[np.ndarray]) -> Optional[List[PathChange]]:
        """``plan_reroutes``' moves from ``ArrayPlanner`` (None: it does not replicate this round; see
        controller/plan_arrays.py).  Every link is up and numbered as ``self.links``.

        The connections come as ``TickView.planner_arrays`` (the views' own demands, the flow_id
        order); a view, and its ``ActiveFlow``, is built only for a flow a reason or the joint
        search names.
        """
        from controller.planner import ActiveFlow

        rows, rates, training, rank = view.planner_arrays()
        if positions is not None:
            rows, rates, training, rank = rows[positions], rates[positions], training[positions], rank[positions]
        order = np.argsort(rank, kind="stable")
        meas = self._measured_values(measured)
        util = self.arrays.planning_util(meas, forecast, rows, rates, order)
        views: Dict[str, ConnView] = {}

        def flow(k: int) -> ActiveFlow:
            c = view.connections_at([int(positions[k]) if positions is not None else k])[0]
            views[c.flow_id] = c
            return ActiveFlow.unchecked(c.flow_id, c.five, c.path, c.demand_bps, c.cls)

        got = self.arrays.plan(rows, rates, training, order, util, flow, forecast=forecast is not None)
        return None if got is None else self._changes(view, views, got)

    def failover(self, view: TickView, cable: Link) -> List[PathChange]:
        """Where the live app puts the connections of a cable that just went down (``ControllerRuntime._failover``).

        ``reroute_failed_link`` on the measured load of the last poll, raised to
        the connections' own demands, for the connections with a demand (in
        flight, or between bursts with the last burst's rate); the simulator
        gives every other connection of the cable ECMP's choice over the
        surviving paths, as the live core does.
        """
        from controller.planner import reroute_failed_link, with_demand_floor

        conns = [c for c in view.connections if c.demand_bps > 0]
        flows = self._active_flows(conns)
        if not flows:
            return []
        basis = with_demand_floor(self.fabric, flows, self.monitor.utilization())
        return self._changes(view, conns, reroute_failed_link(self.fabric, flows, cable, measured=basis,
                                                              paths=self.paths))

    def _predicted(self, forecast: Optional[np.ndarray]) -> Optional[Dict[Link, float]]:
        if forecast is None:
            return None
        return {link: float(v) for link, v in zip(self.links, forecast.tolist())}

    def _active_flows(self, conns: Sequence[ConnView]) -> List[object]:
        """``ActiveFlow`` per connection view, reused from the last tick when identical
        (same flow_id, path and demand: flow_id fixes the 5-tuple and class)."""
        from controller.planner import ActiveFlow

        old = self._flow_cache
        new: Dict[Tuple[str, Tuple[str, ...], float], object] = {}
        out = []
        for c in conns:
            key = (c.flow_id, c.path, c.demand_bps)
            f = old.get(key)
            if f is None:
                f = ActiveFlow.unchecked(c.flow_id, c.five, c.path, c.demand_bps, c.cls)   # values from the simulator
            new[key] = f
            out.append(f)
        self._flow_cache = new
        return out

    def _changes(self, view: TickView, conns: object, reroutes: Sequence[object]) -> List[PathChange]:
        """PathChanges of ``reroutes`` (their reasons logged); ``conns``: the views, or a dict of them by flow_id."""
        by_id: Dict[str, ConnView] = conns if isinstance(conns, dict) else {c.flow_id: c for c in conns}
        out = []
        for rr in reroutes:
            conn = by_id[rr.flow_id]
            self.reasons.append((view.now_s, rr.flow_id, rr.reason))
            out.append(PathChange(conn.five, tuple(rr.new_path), rr.reason))
        return out

class PersistencePredictor:
    """Baseline forecast "next = last sample" with the agreed ``Predictor`` interface.

    ``--model persistence`` selects it: it shows how much of ``predictive``'s
    gain comes from the forecaster rather than from the planner's
    flow-demand floor, and lets a replay run before any model is trained.
    """

    name = "persistence"
    horizon = 1

    def __init__(self, sampling_period_s: float, window: int = 4) -> None:
        self.sampling_period_s = sampling_period_s
        self.window = window

    def predict(self, history: np.ndarray) -> np.ndarray:
        history = np.asarray(history, dtype=float)
        out = np.zeros(history.shape[0])
        seen = ~np.isnan(history)
        has = seen.any(axis=1)
        last = history.shape[1] - 1 - np.argmax(seen[:, ::-1], axis=1)
        out[has] = history[has, last[has]]
        return np.clip(out, 0.0, None)


def load_model(model: Optional[str], poll_interval_s: float) -> object:
    """The forecaster the live app would load (``models.runtime.load_predictor``);
    ``"persistence"`` gives the baseline ``PersistencePredictor``."""
    if model == "persistence":
        return PersistencePredictor(poll_interval_s)
    try:
        from models.runtime import load_predictor
    except ImportError as exc:
        raise ReplayError("the forecaster runtime (models/runtime.py) is not available: %s" % exc) from None
    return load_predictor(model, sampling_period_s=poll_interval_s)


def make_hook(policy: str, fabric: Fabric, *, poll_interval_s: float = 1.0, model: Optional[str] = None,
              predictor: object = None, planner_overrides: Optional[Dict[str, object]] = None
              ) -> Optional[TickHook]:
    """The tick hook for ``policy`` (None for ecmp and ideal: no control loop)."""
    if policy not in POLICIES:
        raise ReplayError("unknown policy %r; choose one of %s" % (policy, "|".join(POLICIES)))
    if policy in ("ecmp", "ideal"):
        return None
    if policy == "predictive" and predictor is None:
        predictor = load_model(model, poll_interval_s)
    return ControlLoop(fabric, policy, poll_interval_s=poll_interval_s, predictor=predictor,
                       planner_overrides=planner_overrides)


# --------------------------------------------------------------------------
# running and summarising
# --------------------------------------------------------------------------
@dataclass
class PolicyRun:
    policy: str
    result: SimResult
    summary: Dict[str, object]


def run_policy(policy: str, fabric: Fabric, flows: Sequence[TraceFlow], *, seed: int = 0,
               poll_interval_s: float = 1.0, model: Optional[str] = None, predictor: object = None,
               planner_overrides: Optional[Dict[str, object]] = None,
               progress: Optional[ProgressHook] = None, quantum_s: float = 0.0,
               link_events: Sequence[LinkEvent] = ()) -> PolicyRun:
    """Simulate ``flows`` under one policy and summarise the run.

    ``link_events``: cables of ``fabric`` going down and up; ``ideal`` (one
    non-blocking switch, no such cables) replays without them.
    """
    hook = make_hook(policy, fabric, poll_interval_s=poll_interval_s, model=model,
                     predictor=predictor, planner_overrides=planner_overrides)
    net = big_switch_fabric(fabric) if policy == "ideal" else fabric
    result = Simulator(net, flows, seed=seed, poll_interval_s=poll_interval_s, hook=hook,
                       progress=progress, quantum_s=quantum_s,
                       link_events=() if policy == "ideal" else link_events).run()
    return PolicyRun(policy, result, summarize(result))


def _r(x: float) -> float:
    """Round for the report: stable text, no float noise in summary.json."""
    return float(round(float(x), 6))


def iteration_times(result: SimResult) -> Dict[str, List[Tuple[int, float]]]:
    """job -> [(iteration i, last finish of i - last finish of the iteration before it)].

    "Before it" is the previous iteration number the trace has, so a job
    numbered 0, 2, 4 gets two times (it used to get none, and vanished from
    the summary).  A job with a single iteration has no iteration time.
    """
    last: Dict[str, Dict[int, float]] = {}
    for rec in result.flows:
        f = rec.flow
        if not f.job or f.iter is None:
            continue
        per = last.setdefault(f.job, {})
        per[f.iter] = max(per.get(f.iter, -np.inf), rec.finish_s)
    out: Dict[str, List[Tuple[int, float]]] = {}
    for job in sorted(last):
        per = last[job]
        its = sorted(per)
        out[job] = [(i, per[i] - per[prev]) for prev, i in zip(its, its[1:])]
    return out


def _mean_link_util(result: SimResult, makespan_s: float, util: np.ndarray) -> float:
    carried = getattr(result, "interval_bytes", None)
    if carried is None:     # a live run (mininet_topos.livereplay): the mean of the recorded samples
        return float(util.mean()) if util.size else 0.0
    if not makespan_s > 0 or not len(result.links):
        return 0.0
    return float(np.mean(carried.sum(axis=0) * 8.0 / (result.capacity_bps * makespan_s)))


def summarize(result: SimResult) -> Dict[str, object]:
    start = np.array([r.start_s for r in result.flows])
    finish = np.array([r.finish_s for r in result.flows])
    size = np.array([r.size_bytes for r in result.flows])
    fct = finish - start
    util = result.utilization()
    with np.errstate(divide="ignore"):
        per_flow_tput = np.where(fct > 0, size * 8.0 / np.where(fct > 0, fct, 1.0), 0.0)
    jobs: Dict[str, Dict[str, float]] = {}
    for job, series in iteration_times(result).items():
        if not series:
            continue
        times = np.array([t for _, t in series])
        jobs[job] = {"mean_iteration_s": _r(times.mean()),
                     "p99_iteration_s": _r(np.percentile(times, 99)),
                     "iterations": len(times)}
    out = {
        "flows": len(result.flows),
        "mean_fct_s": _r(fct.mean()),
        "p99_fct_s": _r(np.percentile(fct, 99)),
        "max_link_util": _r(util.max() if util.size else 0.0),
        "mean_link_util": _r(_mean_link_util(result, float(finish.max()) if finish.size else 0.0, util)),
        "reroutes": int(result.reroutes),
        "aggregate_throughput_bps": _r(per_flow_tput.sum()),
        "makespan_s": _r(finish.max()),
        "jobs": jobs,
    }
    if getattr(result, "link_events", 0):    # only then: a replay without cable changes keeps its summary
        out["link_events"] = int(result.link_events)
        out["failover_moves"] = int(result.failover_moves)
    return out


def mean_iteration_s(summary: Dict[str, object]) -> Optional[float]:
    """Mean over jobs of each job's mean iteration time (None without jobs)."""
    jobs = summary.get("jobs") or {}
    vals = [j["mean_iteration_s"] for j in jobs.values()]  # type: ignore[union-attr]
    return float(np.mean(vals)) if vals else None


# --------------------------------------------------------------------------
# output folder
# --------------------------------------------------------------------------
def write_flows_csv(handle: IO[str], runs: Sequence[PolicyRun]) -> None:
    handle.write("policy,flow_id,start_s,finish_s,size_bytes,path\n")
    for run in runs:
        for r in run.result.flows:
            handle.write("%s,%s,%.6f,%.6f,%.0f,%s\n" % (run.policy, r.flow_id, r.start_s, r.finish_s,
                                                         r.size_bytes, ";".join(r.path)))


def write_loads_csv(handle: IO[str], result: SimResult) -> int:
    """The run's link loads in the recording format (``read_link_loads`` reads it back)."""
    from controller.loadtrace import HEADER, format_link, write_tick
    handle.write(",".join(HEADER) + "\n")
    util = result.utilization()
    names = [format_link(link) for link in result.links]
    caps = result.capacity_bps.tolist()
    # Whole bytes per interval that add up to what each link carried: the differences of the rounded
    # running totals (each interval's fraction of a byte used to be cut off, so 100 rows of 12.5 bytes
    # read as 1,200 of 1,250).
    totals = np.rint(np.cumsum(result.interval_bytes, axis=0))
    whole = np.diff(totals, axis=0, prepend=np.zeros((1, totals.shape[1]))) if len(totals) else totals
    n = 0
    for t_i, t in enumerate(result.tick_s):
        n += write_tick(handle, float(t), names, caps, util[t_i].tolist(), whole[t_i].tolist())
    return n


def loads_policy(policies: Sequence[str]) -> str:
    """Which run ``loads.csv`` holds: the one policy asked for, or ecmp when several
    (the traffic as the hash places it, undisturbed by the planner: what a
    forecaster should learn the fabric's own rhythm from)."""
    if len(policies) == 1:
        return policies[0]
    return "ecmp" if "ecmp" in policies else policies[0]


MAX_POLL_LINKS = 100_000_000
"""Polls x directed links a replay may keep: its link-load trace is a dense float64 array of that size
(800 MB at this limit; the outputs need a few times more)."""


def check_span(flows: Sequence[TraceFlow], fabric: Fabric, poll_interval_s: float, source: str) -> None:
    """Refuse a trace whose replay could not fit in memory, before it starts.

    Why: a replay polls every link every ``poll_interval_s`` from t=0 until the
    last flow ends, and keeps every poll.  A trace with Unix timestamps in
    ``start_s`` (t=1.7e9 s) or a flow capped at a few bit/s ran for ever and
    grew without bound.  Each flow's earliest finish (its start, after its
    dependencies and gap, plus its size at its host link's rate or its own cap)
    is a lower bound on the span, so a trace refused here could not have fitted.
    """
    links = 2 * fabric.graph.number_of_edges()
    if not flows or links == 0:
        return
    host_bps = {h: min(fabric.capacity_bps(*l) for l in fabric.graph.edges(h)) for h in fabric.hosts()}
    by_id = {f.flow_id: f for f in flows}
    finish: Dict[str, float] = {}
    for top in flows:
        stack = [top]
        while stack:              # dependencies first (the reader has refused cycles)
            f = stack[-1]
            pending = [by_id[d] for d in f.deps if d not in finish]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            if f.flow_id in finish:
                continue
            start = max([f.start_s] + [finish[d] + f.gap_s for d in f.deps])
            bps = min(host_bps[f.src], host_bps[f.dst], f.rate_bps or float("inf"))
            finish[f.flow_id] = start + 8.0 * f.size_bytes / bps
    last = max(flows, key=lambda f: finish[f.flow_id])
    end = finish[last.flow_id]
    limit_s = MAX_POLL_LINKS / links * poll_interval_s
    if end <= limit_s:
        return
    where = "%s:%d: " % (source, last.line) if last.line else "%s: " % source
    raise ReplayError(
        "%sflow %s cannot finish before t=%.4g s, and a replay of this fabric (%d links) with %g s polls keeps at "
        "most %.4g s; if start_s holds Unix timestamps, make them relative to the first flow; otherwise check "
        "that flow's size_bytes and rate_bps, or pass a longer --poll-interval"
        % (where, last.flow_id, end, links, poll_interval_s, limit_s))


OUTPUT_FILES = ("summary.json", "flows.csv", "loads.csv", "trace.csv", "iterations.png")


def _is_output_file(name: str) -> bool:
    return name in OUTPUT_FILES or (name.startswith("heatmap-") and name.endswith(".png"))


def check_output_folder(out_dir: str, force: bool = False, keep: Sequence[str] = ()) -> None:
    """Refuse an ``out_dir`` that a replay must not write or replace.

    Why so strict: ``--force`` moves the old folder away and deletes it, so it
    may only ever take a folder a replay wrote (or an empty one).  A folder
    that holds anything else, a file, the current folder, or a folder that
    holds one of the ``keep`` paths (the trace being replayed) is refused with
    the reason, as is an ``out_dir`` whose parent folder does not exist (the
    command checks all this before the replay, not after it).
    """
    from controller.atomicfile import folder_problem

    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    problem = folder_problem(parent, "--out")
    if problem:
        raise ReplayError("cannot write %s: %s" % (out_dir, problem))
    if not os.path.lexists(out_dir):
        return
    if not force:
        raise ReplayError("output folder %s exists; pick another --out or pass --force to replace it"
                          % out_dir)
    if os.path.islink(out_dir) or not os.path.isdir(out_dir):
        raise ReplayError("--out %s is not a folder; --force replaces only a previous replay's output "
                          "folder; pick another --out" % out_dir)
    cwd = os.getcwd()
    inside = [(p, what) for p, what in [(cwd, "the current folder")] + [(os.path.abspath(k), "the trace") for k in keep]
              if os.path.commonpath([out_dir, p]) == out_dir]
    if inside:
        path, what = inside[0]
        raise ReplayError("--force would delete %s, which %s %s (%s); pick another --out"
                          % (out_dir, "is" if path == out_dir else "holds", what, path))
    others = sorted(n for n in os.listdir(out_dir) if not _is_output_file(n))
    if others:
        shown = ", ".join(others[:3]) + (" and %d more" % (len(others) - 3) if len(others) > 3 else "")
        raise ReplayError("--force replaces only a previous replay's output folder, and %s also holds %s; "
                          "pick another --out" % (out_dir, shown))


def write_outputs(out_dir: str, runs: Sequence[PolicyRun], *, force: bool = False,
                  plots: bool = True, meta: Optional[Dict[str, object]] = None,
                  trace: Optional[Sequence[TraceFlow]] = None, keep: Sequence[str] = ()) -> Dict[str, object]:
    """Write summary.json, flows.csv, loads.csv and plots into a temp folder, then rename it into place.

    An existing ``out_dir`` is refused unless ``force``, and then replaced
    only if it is a previous replay's output (``check_output_folder``), once
    the new folder is complete.
    """
    out_dir = os.path.abspath(out_dir)
    check_output_folder(out_dir, force, keep)
    parent = os.path.dirname(out_dir)
    summary: Dict[str, object] = {"policies": {r.policy: r.summary for r in runs}}
    names = [r.policy for r in runs]
    chosen = loads_policy(names)
    summary["loads_policy"] = chosen
    if meta:
        summary["replay"] = meta
    tmp = tempfile.mkdtemp(prefix=".%s.tmp-" % os.path.basename(out_dir), dir=parent)
    try:
        with open(os.path.join(tmp, "summary.json"), "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2, sort_keys=True)
            fh.write("\n")
        with open(os.path.join(tmp, "flows.csv"), "w", encoding="utf-8") as fh:
            write_flows_csv(fh, runs)
        with open(os.path.join(tmp, "loads.csv"), "w", encoding="utf-8") as fh:
            write_loads_csv(fh, next(r.result for r in runs if r.policy == chosen))
        if trace is not None:
            with open(os.path.join(tmp, "trace.csv"), "w", encoding="utf-8") as fh:
                write_flow_trace(fh, trace)
        if plots:
            from controller import plots as plotting
            plotting.plot_iterations(os.path.join(tmp, "iterations.png"),
                                     {r.policy: iteration_times(r.result) for r in runs})
            for r in runs:
                plotting.plot_heatmap(os.path.join(tmp, "heatmap-%s.png" % r.policy), r.result,
                                      title="link utilization, %s" % r.policy)
        os.chmod(tmp, 0o755)
        if os.path.lexists(out_dir):
            old = tempfile.mkdtemp(prefix=".%s.old-" % os.path.basename(out_dir), dir=parent)
            os.rename(out_dir, os.path.join(old, "x"))
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):     # a full disk, say: name the folder and the option
            raise ReplayError("cannot write %s (--out): %s; nothing was written; free space or choose "
                              "another --out" % (out_dir, exc.strerror or exc)) from None
        raise
    return summary


def comparison_table(summary: Dict[str, object]) -> str:
    """A short fixed-width table: one row per policy, iteration time as a ratio to ideal."""
    pols: Dict[str, Dict[str, object]] = summary["policies"]  # type: ignore[assignment]
    ideal = mean_iteration_s(pols["ideal"]) if "ideal" in pols else None
    ideal_tput = pols["ideal"]["aggregate_throughput_bps"] if "ideal" in pols else None
    head = "%-11s %10s %8s %10s %10s %8s %8s %9s" % ("policy", "iter_s", "x_ideal", "mean_fct", "p99_fct",
                                                     "max_util", "tput/id", "reroutes")
    lines = [head, "-" * len(head)]
    for name in POLICIES:
        if name not in pols:
            continue
        s = pols[name]
        it = mean_iteration_s(s)
        ratio = "%.3f" % (it / ideal) if it is not None and ideal else "-"
        tput = "%.3f" % (s["aggregate_throughput_bps"] / ideal_tput) if ideal_tput else "-"  # type: ignore
        lines.append("%-11s %10s %8s %10.3f %10.3f %8.3f %8s %9d" % (
            name, "%.3f" % it if it is not None else "-", ratio, s["mean_fct_s"], s["p99_fct_s"],
            s["max_link_util"], tput, s["reroutes"]))
    return "\n".join(lines)

"""Everything the live controller does between OpenFlow events, with time as an input.

``ControllerRuntime`` wires the pure parts together: the core (discovery,
ARP, ECMP paths), the poll scheduler, the link monitor, the recorder, the
forecaster and the planner.  The OS-Ken shell calls it with ``now`` and
executes the commands it returns; replay and tests can drive it the same way.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from typing import TYPE_CHECKING, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from threadpoolctl import threadpool_limits

from controller.api import (Health, LinkUtil, PathInfo, Topology, topology_from_fabric,
                            utilization_from_monitor)
from controller.classify import TrafficClassifier
from controller.config import Config
from controller.core import Command, ControllerCore
from controller.demand import estimate_demands
from controller.ecmp import FiveTuple
from controller.fabric import FabricError, Link, Path
from controller.loadtrace import LoadRecorder
from controller.monitor import LinkMonitor, counters_from_stats
from controller.paths import EqualCostPaths
from controller.planner import (ActiveFlow, PlannerConfig, plan_reroutes,
                                reroute_failed_link, with_demand_floor)
from controller.poller import PollScheduler

if TYPE_CHECKING:  # pragma: no cover - names for the type checker only
    from models.runtime import Predictor

LOG = logging.getLogger("sidestep.runtime")
MOVE_COOLDOWN_POLLS = 3
ELEPHANT_FRACTION = 0.1  # of the host link: Hedera's elephant threshold, for demand estimation


def load_predictor_or_fallback(config: Config, logger: logging.Logger = LOG) -> Predictor:
    """The configured forecaster, or persistence with a loud warning if it is unusable."""
    from models.runtime import ModelError, fallback_predictor, load_predictor

    try:
        return load_predictor(config.model, sampling_period_s=config.poll_interval, logger=logger)
    except ModelError as exc:
        logger.error("FORECASTER UNUSABLE, falling back to persistence (next = now): %s", exc)
        return fallback_predictor(str(exc))


class ControllerRuntime:
    """State of one running controller; the app shell owns exactly one."""

    def __init__(self, config: Config, start_s: float) -> None:
        self.config = config
        self.start_s = start_s
        classifier = TrafficClassifier.from_config(config.training.classifier_data())
        self.core = ControllerCore(config.capacity_bps, lldp_interval_s=config.lldp_interval,
                                   idle_timeout_s=config.idle_timeout, classify=classifier.classify)
        self.planner_config = PlannerConfig(**config.planner.planner_kwargs(config.policy))
        # kept across ticks: equal-cost paths and the planner's per-path index follow fabric.version
        self.paths = EqualCostPaths(self.core.fabric)
        self.predictor = load_predictor_or_fallback(config) if config.policy != "ecmp" or config.model \
            else None
        window = self.predictor.window if self.predictor is not None else 0
        self.monitor = LinkMonitor(self.core.fabric, history=max(128, window), period_s=config.poll_interval)
        self.poller = PollScheduler((), config.poll_interval, now_s=start_s)
        self.recorder = LoadRecorder(config.record, config.record_flush_s) if config.record else None
        self.handler_errors = 0
        self.predictions: Dict[Link, float] = {}
        self._next_plan_s = start_s + config.poll_interval
        self._expected = 0
        self.update_latencies_ms: Deque[float] = deque(maxlen=1000)
        self.last_now_s = start_s  # the latest time the app has told us; we never read a clock
        if self.planner_config.policy != "ecmp":
            self.core.failover = self._failover

    @property
    def predictor_name(self) -> Optional[str]:
        return self.predictor.name if self.predictor is not None else None

    # -- switches --------------------------------------------------------------
    def switch_connected(self, dpid: int, now_s: float) -> List[Command]:
        name = self.core.name_of(dpid)
        self.poller.add(name, now_s)
        cmds = self.core.switch_connected(dpid, now_s)
        self._expected = max(self._expected, len(self.core.connected_switches()))
        return cmds

    def switch_disconnected(self, dpid: int, now_s: float) -> List[Command]:
        name = self.core.name_of(dpid)
        self.poller.remove(name)
        self.monitor.forget(name)
        return self.core.switch_disconnected(dpid, now_s)

    def port_status(self, dpid: int, port: int, up: bool, now_s: float) -> List[Command]:
        self.last_now_s = max(self.last_now_s, now_s)
        return self.core.port_status(dpid, port, up, now_s)

    def _failover(self, cable: Link) -> Dict[FiveTuple, Path]:
        """Where the planner puts the flows of a failed cable: ``reroute_failed_link`` on the measured load.

        Why not ECMP's re-hash: it can land two training elephants on one
        surviving link, and that hotspot would last until the next poll.  The
        flows go in the planner's priority order (training first, then largest
        demand), each onto the surviving path with the lowest bottleneck of the
        measured load plus the flows placed before it.  Flows with no measured
        rate yet are left to ECMP: with nothing to weigh, the placement would
        stack them all on one path.  (``ControllerCore.link_down`` calls this
        with the cable already down; under ``ecmp`` it is not installed.)
        """
        flows = [f for f in self.active_flows(self.last_now_s) if f.rate_bps > 0]
        if not flows:
            return {}
        try:
            basis = with_demand_floor(self.core.fabric, flows, self.monitor.utilization())
            reroutes = reroute_failed_link(self.core.fabric, flows, cable, measured=basis, paths=self.paths)
        except FabricError as exc:
            LOG.warning("link %s-%s down: planner placement skipped (%s); ECMP picks the new paths",
                        cable[0], cable[1], exc)
            return {}
        except Exception:  # a planner bug must not leave the flows on a dead cable: ECMP still moves them
            LOG.exception("link %s-%s down: planner placement failed; ECMP picks the new paths", *cable)
            return {}
        five_of = {f.flow_id: five for five, f in self.core.flows.items()}
        return {five_of[r.flow_id]: tuple(r.new_path) for r in reroutes if r.flow_id in five_of}

    # -- polling ---------------------------------------------------------------
    def polls_due(self, now_s: float) -> List[int]:
        out = []
        for due in self.poller.due(now_s):
            if due.missed:
                LOG.warning("switch %s: previous port-stats poll unanswered (missed polls: %d)",
                            due.switch, self.poller.missed.get(due.switch, 0))
            dpid = self.core.dpid_of(due.switch)
            if dpid is not None:
                out.append(dpid)
        return out

    def wants_flow_stats(self, dpid: int) -> bool:
        """Per-flow rates feed only the planner, and only ingress (host-facing) switches count them.

        Under ``ecmp`` nobody reads them; elsewhere, asking transit switches
        would multiply the reply sizes (k=6 pingall: thousands of entries a
        second) for numbers the planner never uses.
        """
        if self.planner_config.policy == "ecmp":
            return False
        name = self.core.name_of(dpid)
        return self.core.fabric.is_switch(name) and bool(self.core.fabric.host_ports(name))

    def port_stats(self, dpid: int, body: Sequence[object], now_s: float) -> List[Command]:
        name = self.core.name_of(dpid)
        self.poller.replied(name, now_s)
        samples = self.monitor.observe(name, counters_from_stats(body), now_s)
        if self.recorder is not None and samples:
            self.recorder.write(now_s, samples)
        return []

    # -- planning --------------------------------------------------------------
    def tick(self, now_s: float) -> List[Command]:
        """Once per poll interval: forecast every link, then let the planner re-pin flows."""
        self.last_now_s = max(self.last_now_s, now_s)
        if now_s < self._next_plan_s:
            return []
        self._next_plan_s = now_s + self.config.poll_interval
        measured = self.monitor.utilization()
        if self.predictor is not None and measured:
            links = sorted(measured)
            history = self.monitor.history(links, self.predictor.window)
            # One thread: the app runs in one eventlet hub, and OpenMP workers
            # spinning up on a busy 2-core box once stalled it for seconds.
            with threadpool_limits(limits=1):
                pred = self.predictor.predict(history)
            self.predictions = {l: float(p) for l, p in zip(links, pred) if not math.isnan(p)}
        elif self.predictor is not None:
            # nothing measured (every switch gone): old forecasts must not be served or planned on
            self.predictions = {}
        if self.planner_config.policy == "ecmp":
            return []
        flows = self.active_flows(now_s)
        if not flows:
            return []
        predicted = self.predictions if self.planner_config.policy == "predictive" else None
        basis = with_demand_floor(self.core.fabric, flows, measured)
        try:
            reroutes = plan_reroutes(self.core.fabric, flows, basis, predicted, self.planner_config,
                                     paths=self.paths)
        except FabricError as exc:
            LOG.warning("planning skipped this tick: %s", exc)
            return []
        cmds: List[Command] = []
        by_id = {f.flow_id: f for f in self.core.flows.values()}
        for rr in reroutes:
            flow = by_id.get(rr.flow_id)
            if flow is None:
                continue
            LOG.info("reroute %s %s: %s -> %s (%s)", rr.flow_id, flow.five.key(), "->".join(rr.old_path),
                     "->".join(rr.new_path), rr.reason)
            cmds.extend(self.core.repin(flow.five, tuple(rr.new_path), now_s))
        return cmds

    def active_flows(self, now_s: float) -> List[ActiveFlow]:
        """The planner's view of the installed connections.

        A connection moved less than ``MOVE_COOLDOWN_POLLS`` polls ago is
        handed over as not ``movable``: its load still counts, but it is not
        moved again until TCP has ramped up on its new path and the counters
        show the result (otherwise it flaps on stale measurements).  It used
        to be relabelled ``background``, which did nothing under
        ``move_background: true``.
        """
        cooldown = MOVE_COOLDOWN_POLLS * self.config.poll_interval
        flows = sorted(self.core.flows.values(), key=lambda f: f.flow_id)
        natural = self._natural_demands(flows)
        out = []
        for flow in flows:
            if len(flow.path) < 4:  # same edge switch: nothing to choose
                continue
            cooling = flow.last_move_s is not None and now_s - flow.last_move_s < cooldown
            rate = max(flow.demand_bps, flow.rate_bps, natural.get(flow.flow_id, 0.0))
            out.append(ActiveFlow(flow.flow_id, flow.five, tuple(flow.path), rate, flow.cls, movable=not cooling))
        return out

    def _natural_demands(self, flows) -> Dict[str, float]:
        """Hedera's estimate for the elephants: what each would take if only host links limited it.

        A flow squeezed onto a shared link shows its share, not its demand;
        placing it by that share would put it right back on a shared link.
        Only connections sending as elephants at the last poll take part: one
        that has stopped (ended, or between bursts) keeps its remembered,
        fading ``demand_bps``.  With the remembered rate as the test, a
        connection that had ended seconds ago was handed a whole host link's
        share: the planner moved it, using up moves of the next tick, and its
        share was taken from the live flows at the same hosts.
        """
        ends, caps = [], {}
        for flow in flows:
            src, dst = flow.five.src, flow.five.dst
            try:
                cap_src = self.core.fabric.capacity_bps(src, self.core.fabric.host_edge(src)[0])
                cap_dst = self.core.fabric.capacity_bps(dst, self.core.fabric.host_edge(dst)[0])
            except FabricError:
                continue
            if flow.rate_bps < ELEPHANT_FRACTION * cap_src:
                continue
            caps[src], caps[dst] = cap_src, cap_dst
            ends.append((flow.flow_id, src, dst))
        return estimate_demands(ends, caps) if ends else {}

    def update_done(self, flow: FiveTuple, latency_ms: float) -> None:
        """A path update finished (ingress rule confirmed by barrier)."""
        self.update_latencies_ms.append(latency_ms)
        LOG.info("path update of %s done in %.1f ms", flow.key(), latency_ms)

    def pin_request(self, body: Mapping[str, object], now_s: float) -> Tuple[List[Command], Dict[str, object]]:
        """``POST /pins``: validate an operator's pin and turn it into a consistent update."""
        from controller.api import PIN_EXAMPLE, ActionError, parse_pin
        from controller.ecmp import FiveTuple

        src, dst, proto, src_port, dst_port, path = parse_pin(body)
        five = FiveTuple(src, dst, proto, src_port, dst_port)
        try:
            cmds = self.core.repin(five, path, now_s)
        except FabricError as exc:     # a path this fabric does not have: name the field, as the other 400s do
            raise ActionError("path: %s; give one of the equal-cost paths from src to dst (GET /paths shows "
                              "the current ones), e.g. %s" % (exc, PIN_EXAMPLE)) from None
        flow = self.core.flows.get(five)
        return cmds, {"pinned": five.key(), "path": list(path), "moved": bool(cmds),
                      "version": flow.version if flow else None}

    # -- REST ------------------------------------------------------------------
    def api_state(self) -> "RuntimeApiState":
        return RuntimeApiState(self)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()


class RuntimeApiState:
    """Read-only views for the REST API, built on request from the live state."""

    def __init__(self, runtime: ControllerRuntime) -> None:
        self.rt = runtime

    def topology(self) -> Topology:
        connected = {self.rt.core.name_of(d) for d in self.rt.core.connected_switches()}
        return topology_from_fabric(self.rt.core.fabric, connected)

    def utilization(self) -> Sequence[LinkUtil]:
        return utilization_from_monitor(self.rt.monitor, self.rt.predictions)

    def paths(self) -> Sequence[PathInfo]:
        return [PathInfo(f.flow_id, f.five.src, f.five.dst, f.five.proto, f.five.src_port, f.five.dst_port,
                         tuple(f.path), f.version, f.since_s, f.cls, f.rate_bps,
                         self.rt.core.pins.get(f.five) == tuple(f.path))
                for f in sorted(self.rt.core.flows.values(), key=lambda f: f.flow_id)]

    def health(self) -> Health:
        rt = self.rt
        return Health(len(rt.core.connected_switches()), rt._expected, dict(rt.poller.missed),
                      max(0.0, rt.last_now_s - rt.start_s), rt.config.policy, rt.predictor_name,
                      reroutes_total=rt.core.counters.reroutes, packet_in_total=rt.core.counters.packet_in,
                      handler_errors_total=rt.handler_errors,
                      packet_in_by_type={"lldp": rt.core.counters.packet_in_lldp,
                                         "arp": rt.core.counters.packet_in_arp,
                                         "ipv4": rt.core.counters.packet_in_ip},
                      links_discovered=sum(1 for a, b in rt.core.fabric.graph.edges
                                           if rt.core.fabric.is_switch(a) and rt.core.fabric.is_switch(b)),
                      settled=rt.core.settled(rt.last_now_s),
                      updates=_latency_summary(rt.update_latencies_ms),
                      monitor=dict(vars(rt.monitor.stats)))


def _latency_summary(values: Sequence[float]) -> Dict[str, Optional[float]]:
    if not values:      # the same keys before the first update: a dashboard reads null, not a missing key
        return {"count": 0, "mean_ms": None, "p99_ms": None, "max_ms": None}
    arr = np.asarray(values, dtype=float)
    return {"count": int(arr.size), "mean_ms": float(arr.mean()), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max())}

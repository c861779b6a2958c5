"""The live controller's forecasts follow its measurements, and go when the measurements go."""
import math

from controller.config import load_config
from controller.monitor import PortCounters
from controller.runtime import ControllerRuntime
from mininet_topos.fattree_spec import fat_tree

from tests.unit.test_failover import discover

SPEC = fat_tree(4, 10)


def poll_every_switch(rt, now_s, bytes_per_port):
    """Every switch's every port, with cumulative counters of ``bytes_per_port`` each way."""
    for sw in SPEC.switches:                             # k=4: ports 1..4 on every switch
        rt.monitor.observe(sw.name, [PortCounters(p, bytes_per_port, bytes_per_port, math.nan)
                                     for p in range(1, 5)], now_s)


def test_forecasts_are_dropped_when_no_link_is_measured_any_more():
    """A fabric-wide outage left the last forecasts on /predictions, /metrics and in the planner for good."""
    rt = ControllerRuntime(load_config(None, {"policy": "predictive"}), 0.0)
    discover(rt.core)
    for t in range(1, 6):
        poll_every_switch(rt, float(t), t * 600_000)     # 4.8 Mbit/s on every port
        rt.tick(float(t))
    assert len(rt.predictions) >= 64 and all(p > 0.2 for p in rt.predictions.values())
    assert rt.api_state().utilization() and any(r.pred is not None for r in rt.api_state().utilization())
    for sw in SPEC.switches:                             # every switch goes
        rt.switch_disconnected(sw.dpid, 6.0)
    rt.tick(7.0)
    assert rt.predictions == {}
    assert all(r.pred is None for r in rt.api_state().utilization())

"""The demands the live runtime hands the planner: Hedera's natural demand for the elephants sending now."""
from controller.config import load_config
from controller.runtime import ControllerRuntime
from tests.unit.test_core import DPID, ip_packet, learn, SPEC
from tests.unit.test_failover import discover

LINK_BPS = 10e6   # SPEC's host links


def runtime_with(flows):
    """A reactive runtime on a discovered k=4 fabric with one UDP connection per (src, dst, rate, demand)."""
    rt = ControllerRuntime(load_config(None, {"policy": "reactive"}), 0.0)
    discover(rt.core)
    fives = []
    for i, (src, dst, rate, demand) in enumerate(flows):
        learn(rt.core, src)
        learn(rt.core, dst)
        h = SPEC.host(src)
        rt.core.packet_in(DPID[h.edge], h.edge_port, ip_packet(src, dst, sport=40000 + i, dport=4791, proto=17), 1.0)
        five = next(f for f in rt.core.flows if f.src_port == 40000 + i)
        rt.core.flows[five].rate_bps = rate
        rt.core.flows[five].demand_bps = demand
        fives.append(five)
    return rt, fives


def test_a_connection_that_stopped_sending_keeps_its_fading_demand_and_takes_no_share_of_its_host():
    # h1 -> h13 ended (measured 0, remembered 3 Mbit/s); h1 -> h14 sends 5 Mbit/s (squeezed on a shared link)
    rt, (ended, live) = runtime_with([("h1", "h13", 0.0, 3e6), ("h1", "h14", 5e6, 5e6)])
    rates = {f.five: f.rate_bps for f in rt.active_flows(2.0)}
    assert rates[ended] == 3e6                 # not half of h1's link
    assert rates[live] == LINK_BPS             # alone on h1's link: it could take all of it


def test_elephants_sending_now_split_their_hosts_links():
    rt, (a, b) = runtime_with([("h1", "h13", 4e6, 4e6), ("h1", "h14", 5e6, 5e6)])
    rates = {f.five: f.rate_bps for f in rt.active_flows(2.0)}
    assert rates[a] == rates[b] == LINK_BPS / 2


def test_a_mouse_is_left_out_of_the_estimate():
    rt, (mouse, big) = runtime_with([("h1", "h13", 0.5e6, 0.5e6), ("h1", "h14", 5e6, 5e6)])
    rates = {f.five: f.rate_bps for f in rt.active_flows(2.0)}
    assert rates[mouse] == 0.5e6
    assert rates[big] == LINK_BPS

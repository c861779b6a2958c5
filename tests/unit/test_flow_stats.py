"""Per-connection rates from the ingress rule's flow stats, across a move that replaces the rule."""
from controller.ecmp import FiveTuple
from controller.rules import make_cookie
from tests.unit.test_core import DPID, discovered_core, ip_packet, learn, SPEC

FIVE = FiveTuple("h1", "h13", 6, 40000, 5201)


def core_with_connection():
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h13")
    h = SPEC.host("h1")
    core.packet_in(DPID[h.edge], h.edge_port, ip_packet("h1", "h13"), 11.0)
    return core, core.flows[FIVE], DPID[h.edge]


def move(core, flow, now_s):
    """Repin the connection to another of its paths (a new rule version on the same ingress switch)."""
    other = next(p for p in core.fabric.paths("h1", "h13") if p != flow.path)
    core.repin(FIVE, other, now_s)


def stats(core, flow, dpid, nbytes, duration_s, version=None):
    cookie = make_cookie(flow.five, flow.version if version is None else version)
    core.flow_stats(dpid, [(cookie, nbytes, duration_s)], 0.0)


def test_rates_come_from_the_rules_own_readings():
    core, flow, dpid = core_with_connection()
    stats(core, flow, dpid, 500_000, 1.0)              # first sight: its own age
    assert flow.rate_bps == 4e6
    stats(core, flow, dpid, 1_000_000, 2.0)
    assert flow.rate_bps == 4e6
    stats(core, flow, dpid, 1_125_000, 3.0)
    assert flow.rate_bps == 1e6 and flow.demand_bps == 4e6 * 0.5


def test_a_replaced_ingress_rule_with_copied_counters_and_a_new_duration_gives_no_false_rate():
    core, flow, dpid = core_with_connection()
    stats(core, flow, dpid, 500_000, 0.6)              # 0.6 s old at the first poll
    rate_before = flow.rate_bps
    move(core, flow, 11.5)
    assert flow.version == 1
    # the replaced rule: counters copied (OpenFlow 1.3 without RESET_COUNTS), duration restarted
    stats(core, flow, dpid, 1_000_000, 0.7)
    assert flow.rate_bps == rate_before                 # not 500 kB over 0.1 s (40 Mbit/s)
    stats(core, flow, dpid, 1_500_000, 1.7)
    assert flow.rate_bps == 4e6


def test_a_replaced_rule_with_reset_counters_gives_no_false_rate_either():
    core, flow, dpid = core_with_connection()
    stats(core, flow, dpid, 2_000_000, 4.0)
    move(core, flow, 15.0)
    stats(core, flow, dpid, 400_000, 0.8)              # fewer bytes than the old reading: a new rule
    assert flow.rate_bps == 4e6
    stats(core, flow, dpid, 900_000, 1.8)
    assert flow.rate_bps == 4e6


def test_a_connection_moved_before_its_first_reading_gets_no_rate_from_the_replaced_rules_age():
    core, flow, dpid = core_with_connection()
    move(core, flow, 11.3)                      # moved 0.3 s after it started, never read
    stats(core, flow, dpid, 700_000, 0.8)              # bytes of both rules over the new one's age
    assert flow.rate_bps == 0.0
    stats(core, flow, dpid, 1_200_000, 1.8)
    assert flow.rate_bps == 4e6


def test_readings_of_the_old_version_are_ignored_after_a_move():
    core, flow, dpid = core_with_connection()
    stats(core, flow, dpid, 500_000, 1.0)
    move(core, flow, 11.5)
    stats(core, flow, dpid, 9_000_000, 1.1, version=0)  # a late reply about the old rule
    assert flow.rate_bps == 4e6 and flow.last_bytes == 500_000

"""The controller core with plain data: discovery, hosts, ARP, ECMP paths, re-pinning, failures."""
import pytest

from controller.core import (ArpReply, ControllerCore, ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_LLDP,
                             InstallRule, PacketInfo, PacketOut, PathUpdate, SendLldp)
from controller.ecmp import FiveTuple
from controller.fabric import path_links
from controller.rules import OP_ADD, OP_BARRIER, is_sidestep_cookie, make_cookie
from mininet_topos.fattree_spec import fat_tree

SPEC = fat_tree(4, 10)
DPID = {s.name: s.dpid for s in SPEC.switches}


def discovered_core(now=0.0):
    """A core that has seen every switch and every LLDP probe of a k=4 fat-tree."""
    core = ControllerCore(lambda a, b: 10e6, lldp_interval_s=1.0)
    for sw in SPEC.switches:
        core.switch_connected(sw.dpid, now)
        core.ports_described(sw.dpid, [(p, True) for p in range(1, 5)], now)
    for link in SPEC.links:
        if link.a.startswith("h"):
            continue
        core.packet_in(DPID[link.b], link.b_port, lldp(link.a, link.a_port), now + 0.1)
        core.packet_in(DPID[link.a], link.a_port, lldp(link.b, link.b_port), now + 0.1)
    return core


def lldp(switch, port):
    return PacketInfo(ETH_TYPE_LLDP, "02:51:de:00:00:01", "01:80:c2:00:00:0e", b"", lldp_dpid=DPID[switch],
                      lldp_port=port)


def arp_request(src, dst):
    hs, hd = SPEC.host(src), SPEC.host(dst)
    return PacketInfo(ETH_TYPE_ARP, hs.mac, "ff:ff:ff:ff:ff:ff", b"arp", arp_op=1, arp_spa=hs.ip,
                      arp_tpa=hd.ip, arp_sha=hs.mac)


def ip_packet(src, dst, sport=40000, dport=5201, proto=6):
    hs, hd = SPEC.host(src), SPEC.host(dst)
    return PacketInfo(ETH_TYPE_IP, hs.mac, hd.mac, b"ip", ipv4_src=hs.ip, ipv4_dst=hd.ip, ip_proto=proto,
                      src_port=sport, dst_port=dport)


def learn(core, host, now=10.0):
    h = SPEC.host(host)
    return core.packet_in(DPID[h.edge], h.edge_port, arp_request(host, "h16" if host != "h16" else "h1"), now)


def test_discovery_builds_the_same_graph_as_the_description():
    core = discovered_core()
    assert len(core.fabric.switches()) == 20
    switch_links = [(a, b) for a, b in core.fabric.graph.edges if not a.startswith("h") and not b.startswith("h")]
    assert len(switch_links) == 32
    for link in SPEC.links:
        if not link.a.startswith("h"):
            assert core.fabric.port(link.a, link.b) == link.a_port


def test_no_flooding_before_discovery_settles_and_never_over_fabric_links():
    core = discovered_core()
    early = core.packet_in(DPID["e0_0"], 1, arp_request("h1", "h16"), 1.0)
    assert early == []  # nothing known yet, and too early to tell host ports from fabric ports
    cmds = core.packet_in(DPID["e0_0"], 1, arp_request("h1", "h16"), 10.0)
    floods = [c for c in cmds if isinstance(c, PacketOut)]
    assert floods
    for out in floods:
        name = core.name_of(out.dpid)
        assert name.startswith("e"), "flooded on a non-edge switch %s" % name
        assert set(out.ports) <= {1, 2}, "flooded on an uplink of %s: %s" % (name, out.ports)
    assert all(not (core.name_of(o.dpid) == "e0_0" and 1 in o.ports) for o in floods)


def test_arp_answered_from_host_table():
    core = discovered_core()
    learn(core, "h16")
    cmds = core.packet_in(DPID["e0_0"], 1, arp_request("h1", "h16"), 11.0)
    assert cmds == [ArpReply(DPID["e0_0"], 1, SPEC.host("h16").mac, SPEC.host("h16").ip, SPEC.host("h1").mac,
                             SPEC.host("h1").ip)]


def test_first_packet_installs_an_ecmp_path_egress_first():
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    cmds = core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16"), 12.0)
    rules = [c for c in cmds if isinstance(c, InstallRule)]
    assert len(rules) == 5
    assert core.name_of(rules[0].dpid).startswith("e3_") and core.name_of(rules[-1].dpid) == "e0_0"
    assert rules[-1].flow_removed and all(is_sidestep_cookie(r.rule.cookie) for r in rules)
    assert isinstance(cmds[-1], PacketOut)
    flow = core.flows[FiveTuple("h1", "h16", 6, 40000, 5201)]
    core.fabric.validate_path(flow.path, "h1", "h16")


def test_repin_is_a_consistent_update_with_ingress_last():
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16"), 12.0)
    five = FiveTuple("h1", "h16", 6, 40000, 5201)
    old = core.flows[five].path
    new = next(p for p in core.fabric.paths("h1", "h16") if p != old)
    (update,) = core.repin(five, new, 13.0)
    assert isinstance(update, PathUpdate)
    adds = [op for op in update.ops if op.kind == OP_ADD]
    assert adds[-1].switch == "e0_0"
    kinds = [op.kind for op in update.ops if op.kind != "delete"]
    assert kinds == [OP_ADD, OP_BARRIER] * len(adds)
    assert core.flows[five].path == new and core.pins[five] == new
    # REST's since_s is when this version was installed: it stayed at the first install (12.0)
    assert (core.flows[five].version, core.flows[five].since_s) == (1, 13.0)
    # the pin outlives the flow: the next connection with this 5-tuple gets the pinned path
    del core.flows[five]
    core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16"), 100.0)
    assert core.flows[five].path == new


def test_link_down_moves_flows_off_it_at_once():
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    for sport in range(40000, 40016):
        core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16", sport=sport), 12.0)
    on_link = [f for f in core.flows.values() if ("a0_0", "c0") in path_links(f.path)]
    assert on_link
    port = core.fabric.port("a0_0", "c0")
    cmds = core.port_status(DPID["a0_0"], port, False, 13.0)
    assert len([c for c in cmds if isinstance(c, PathUpdate)]) == len(on_link)
    for f in core.flows.values():
        assert ("a0_0", "c0") not in path_links(f.path)
        core.fabric.validate_path(f.path, f.five.src, f.five.dst)


def test_lldp_on_a_port_forgets_a_host_wrongly_learned_there():
    core = ControllerCore(lambda a, b: 10e6, lldp_interval_s=1.0)
    for name in ("e0_0", "a0_0"):
        core.switch_connected(DPID[name], 0.0)
        core.ports_described(DPID[name], [(p, True) for p in range(1, 5)], 0.0)
    # a frame from h1 arrives on e0_0's uplink port 3 before LLDP has seen that port
    h1 = SPEC.host("h1")
    core.packet_in(DPID["e0_0"], 3, arp_request("h1", "h2"), 10.0)
    assert core.hosts["h1"].port == 3
    core.packet_in(DPID["a0_0"], 1, lldp("e0_0", 3), 10.5)
    assert "h1" not in core.hosts
    core.packet_in(DPID["e0_0"], h1.edge_port, arp_request("h1", "h2"), 11.0)
    assert core.hosts["h1"].port == h1.edge_port


def test_switch_reconnect_resets_its_rules_and_flows():
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16"), 12.0)
    assert core.flows
    core.switch_disconnected(DPID["e0_0"], 13.0)
    assert not core.flows
    cmds = core.switch_connected(DPID["e0_0"], 14.0)
    assert cmds  # control rules re-installed
    assert DPID["e0_0"] in core.connected_switches()
    assert [c for c in core.ports_described(DPID["e0_0"], [(1, True), (3, True)], 14.0)
            if isinstance(c, SendLldp)]


@pytest.mark.parametrize("src_ip,dst_ip", [("10.0.0.1", "10.0.0.99"), ("10.9.9.9", "10.0.0.16")])
def test_unknown_end_is_dropped_not_flooded_and_learns_nothing(src_ip, dst_ip):
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    pkt = PacketInfo(ETH_TYPE_IP, SPEC.host("h1").mac, "b", b"", ipv4_src=src_ip, ipv4_dst=dst_ip, ip_proto=6)
    assert core.packet_in(DPID["e0_0"], 1, pkt, 12.0) == []
    assert sorted(core.hosts) == ["h1", "h16"]
    assert core.hosts["h1"].port == 1


def test_a_slow_controller_does_not_expire_links_but_a_silent_link_does():
    core = discovered_core()
    n_links = core.fabric.graph.number_of_edges()
    core.lldp_due(100.0)  # no LLDP processed for 100 s: the controller fell behind, links stay
    assert core.fabric.graph.number_of_edges() == n_links
    # LLDP keeps arriving for every link but a0_0-c0: only that one goes
    for link in SPEC.links:
        if link.a.startswith("h") or {link.a, link.b} == {"a0_0", "c0"}:
            continue
        core.packet_in(DPID[link.b], link.b_port, lldp(link.a, link.a_port), 100.5)
        core.packet_in(DPID[link.a], link.a_port, lldp(link.b, link.b_port), 100.5)
    core.lldp_due(101.0)
    assert not core.fabric.graph.has_edge("a0_0", "c0")
    assert core.fabric.graph.number_of_edges() == n_links - 1


# -- what a production fabric does to a controller: flaps, moves, dead switches, lost rules -------

def test_a_host_cable_that_flaps_comes_back():
    """Hosts never answer LLDP: the host link stayed down for good, and the host unreachable."""
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    core.port_status(DPID["e0_0"], 1, False, 11.0)
    assert not core.fabric.is_up("e0_0", "h1")
    assert core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16"), 11.5) == []     # no path while down
    core.port_status(DPID["e0_0"], 1, True, 12.0)
    assert core.fabric.is_up("e0_0", "h1")
    cmds = core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16"), 12.5)
    assert [c for c in cmds if isinstance(c, InstallRule)]
    # and if the port-up was missed, the host's own ARP says its cable is up
    core.port_status(DPID["e3_1"], SPEC.host("h16").edge_port, False, 13.0)
    learn(core, "h16", now=14.0)
    assert core.fabric.is_up("e3_1", "h16")


def _deletes(cmds):
    from controller.core import DeleteRules
    return [c for c in cmds if isinstance(c, DeleteRules)]


def test_a_host_that_moves_has_its_old_rules_deleted_and_is_reached_again():
    """The old rules kept sending its traffic where it was, and the traffic kept them from idling out."""
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    core.packet_in(DPID["e3_1"], SPEC.host("h16").edge_port, ip_packet("h16", "h1"), 12.0)
    old = core.flows[FiveTuple("h16", "h1", 6, 40000, 5201)]
    h1 = SPEC.host("h1")
    # h1 reappears on e1_0 port 2 (its IP and MAC, a new port)
    cmds = core.packet_in(DPID["e1_0"], 2, PacketInfo(ETH_TYPE_ARP, h1.mac, "ff:ff:ff:ff:ff:ff", b"arp", arp_op=1,
                                                      arp_spa=h1.ip, arp_tpa=SPEC.host("h16").ip,
                                                      arp_sha=h1.mac), 13.0)
    deleted = _deletes(cmds)
    assert sorted(d.dpid for d in deleted) == sorted(DPID[sw] for sw in old.path[1:-1])
    from controller.rules import make_cookie
    for d in deleted:                       # every version of that connection's rules, and only those
        assert d.cookie & d.cookie_mask == make_cookie(old.five, 7) & d.cookie_mask
        assert dict(d.match)["tcp_src"] == 40000 and dict(d.match)["ipv4_dst"] == h1.ip
    assert core.hosts["h1"].switch == "e1_0" and not core.flows
    # the next packet is learned on a path to where h1 is now
    core.packet_in(DPID["e3_1"], SPEC.host("h16").edge_port, ip_packet("h16", "h1"), 14.0)
    new = core.flows[FiveTuple("h16", "h1", 6, 40000, 5201)]
    assert new.path[-2:] == ("e1_0", "h1")
    # the deleted old ingress rule reports its removal with the same cookie (version 0 both times):
    # it is not a timeout, and it is not the current ingress's rule either way
    from controller.rules import make_cookie as cookie_of
    core.flow_removed(DPID["e3_1"], cookie_of(new.five, new.version), {}, timed_out=False)
    assert FiveTuple("h16", "h1", 6, 40000, 5201) in core.flows
    core.flow_removed(DPID["e0_0"], cookie_of(new.five, new.version), {}, timed_out=True)
    assert FiveTuple("h16", "h1", 6, 40000, 5201) in core.flows
    core.flow_removed(DPID["e3_1"], cookie_of(new.five, new.version), {}, timed_out=True)
    assert FiveTuple("h16", "h1", 6, 40000, 5201) not in core.flows          # its own idle timeout


def test_a_switch_that_disconnects_has_its_transit_flows_moved_off_it():
    """Forgetting them left the upstream rules sending long-lived connections into it for good."""
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    learn(core, "h13")
    for sport in range(40000, 40016):
        core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16", sport=sport), 12.0)
    through = [f.five for f in core.flows.values() if "c1" in f.path]
    assert through
    cmds = core.switch_disconnected(DPID["c1"], 13.0)
    moved = {c.flow for c in cmds if isinstance(c, PathUpdate)}
    assert moved == set(through)
    for f in core.flows.values():
        assert "c1" not in f.path
        core.fabric.validate_path(f.path, f.five.src, f.five.dst)
    assert len(core.flows) == 16
    # its own hosts' flows cannot move: forgotten, and learned again when it is back
    core.packet_in(DPID["e3_0"], SPEC.host("h13").edge_port, ip_packet("h13", "h1"), 14.0)
    assert FiveTuple("h13", "h1", 6, 40000, 5201) in core.flows
    core.switch_disconnected(DPID["e3_0"], 15.0)
    assert FiveTuple("h13", "h1", 6, 40000, 5201) not in core.flows
    # c1 comes back: LLDP brings its links up again
    core.switch_connected(DPID["c1"], 20.0)
    core.ports_described(DPID["c1"], [(p, True) for p in range(1, 5)], 20.0)
    for link in SPEC.links:
        if "c1" in (link.a, link.b):
            core.packet_in(DPID[link.b], link.b_port, lldp(link.a, link.a_port), 21.0)
            core.packet_in(DPID[link.a], link.a_port, lldp(link.b, link.b_port), 21.0)
    assert all(core.fabric.is_up("c1", n) for n in core.fabric.graph.neighbors("c1"))


def test_a_transit_switch_that_lost_its_rule_gets_it_again():
    """A known flow's packet-in past the ingress got a PacketOut and nothing else, for every packet."""
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16"), 12.0)
    flow = core.flows[FiveTuple("h1", "h16", 6, 40000, 5201)]
    transit = flow.path[3]
    in_port = core.fabric.port(transit, flow.path[2])
    cmds = core.packet_in(DPID[transit], in_port, ip_packet("h1", "h16"), 13.0)
    installs = [c for c in cmds if isinstance(c, InstallRule)]
    assert [(c.dpid, c.rule.out_port) for c in installs] == [(DPID[transit], core.fabric.port(transit, flow.path[4]))]
    assert installs[0].rule.cookie == make_cookie(flow.five, flow.version) and not installs[0].flow_removed
    assert [c for c in cmds if isinstance(c, PacketOut)]
    assert core.counters.rules_rewritten == 1
    # at the ingress the flow is simply forwarded (its rule there answers the next packets)
    cmds = core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16"), 13.5)
    assert not [c for c in cmds if isinstance(c, InstallRule)]


def test_pins_of_gone_connections_are_bounded(monkeypatch):
    import controller.core as core_module
    monkeypatch.setattr(core_module, "MAX_PINS", 5)
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    paths = core.fabric.paths("h1", "h16")
    core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16", sport=39999), 12.0)
    live = FiveTuple("h1", "h16", 6, 39999, 5201)
    core.repin(live, paths[0], 12.0)
    for sport in range(40000, 40020):
        core.repin(FiveTuple("h1", "h16", 6, sport, 5201), paths[sport % len(paths)], 13.0)
    assert len(core.pins) == 5
    assert live in core.pins                                   # a live connection's pin is kept
    assert FiveTuple("h1", "h16", 6, 40019, 5201) in core.pins  # and the newest


SPEC_PORT = {}
for _link in SPEC.links:
    SPEC_PORT[_link.a, _link.b] = _link.a_port
    SPEC_PORT[_link.b, _link.a] = _link.b_port


def lldp_both_ways(core, a, b, now):
    core.packet_in(DPID[b], SPEC_PORT[b, a], lldp(a, SPEC_PORT[a, b]), now)
    core.packet_in(DPID[a], SPEC_PORT[a, b], lldp(b, SPEC_PORT[b, a]), now)


def udp(sport):
    return FiveTuple("h1", "h16", 17, sport, 5302)


def e0_0_back_with_one_uplink(sports):
    """e0_0 reconnects at 14 s; h1's connections ``sports`` send while only its uplink to a0_0 is known."""
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    full = {sport: core.choose_path(udp(sport)) for sport in sports}
    core.switch_disconnected(DPID["e0_0"], 13.0)
    core.switch_connected(DPID["e0_0"], 14.0)
    core.ports_described(DPID["e0_0"], [(p, True) for p in range(1, 5)], 14.0)
    for link in SPEC.links:   # the rest of the fabric keeps answering
        if not link.a.startswith("h") and "e0_0" not in (link.a, link.b):
            lldp_both_ways(core, link.a, link.b, 14.0)
    lldp_both_ways(core, "e0_0", "a0_0", 14.01)
    for sport in sports:
        core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16", sport=sport, dport=5302, proto=17), 14.02)
    assert all(core.flows[udp(sport)].path[2] == "a0_0" for sport in sports)
    lldp_both_ways(core, "e0_0", "a0_1", 14.03)
    return core, full


def test_flows_placed_while_a_switch_is_rediscovered_return_to_ecmp_once_discovery_settles():
    """A reconnected edge switch gets its uplinks back one LLDP reply at a time; a flow placed
    in between took ECMP's pick among the paths known then, and kept it for as long as it sent."""
    core, full = e0_0_back_with_one_uplink(range(41000, 41032))
    via_a0_1 = sorted(sport for sport, path in full.items() if path[2] == "a0_1")
    assert via_a0_1 and len(via_a0_1) < len(full)
    assert not [c for c in core.lldp_due(15.0) if isinstance(c, PathUpdate)]  # not settled yet
    cmds = core.lldp_due(14.0 + 2.5)
    assert sorted(c.flow.src_port for c in cmds if isinstance(c, PathUpdate)) == via_a0_1
    for sport, path in full.items():
        assert core.flows[udp(sport)].path == path
        assert udp(sport) not in core.pins  # still ECMP's, not pinned
    assert core.counters.reroutes == len(via_a0_1)
    # once settled, nothing more moves, and flows placed now are not provisional
    assert not [c for c in core.lldp_due(20.0) if isinstance(c, PathUpdate)]
    core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16", sport=42000, dport=5302, proto=17), 20.1)
    assert not core.flows[udp(42000)].provisional


def test_pinned_flows_placed_before_discovery_settled_keep_their_pins():
    sports = range(41000, 41032)
    core, full = e0_0_back_with_one_uplink(sports)
    pinned = next(sport for sport in sports if full[sport][2] == "a0_1")
    early = core.flows[udp(pinned)].path
    core.repin(udp(pinned), early, 14.5)   # e.g. POST /pins, or the planner
    cmds = core.lldp_due(17.0)
    assert pinned not in {c.flow.src_port for c in cmds if isinstance(c, PathUpdate)}
    assert core.flows[udp(pinned)].path == early and core.pins[udp(pinned)] == early


def test_a_switch_that_never_settles_keeps_no_record_of_gone_flows():
    core = discovered_core()
    learn(core, "h1")
    learn(core, "h16")
    for i in range(300):
        now = 20.0 + i * 0.5
        core.switch_connected(DPID["c1"], now)   # flapping: discovery never settles
        core.packet_in(DPID["e0_0"], 1, ip_packet("h1", "h16", sport=40000 + i), now + 0.1)
        del core.flows[FiveTuple("h1", "h16", 6, 40000 + i, 5201)]   # as an idle timeout does
        core.lldp_due(now + 0.2)
    assert len(core._provisional) <= 64 + 1

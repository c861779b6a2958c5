"""A failed cable under the planner policies: its flows are placed by load at once, not re-hashed."""
from controller.config import load_config
from controller.core import ControllerCore
from controller.ecmp import FiveTuple, ecmp_choice
from controller.fabric import path_links
from controller.runtime import ControllerRuntime
from tests.unit.test_core import DPID, discovered_core, ip_packet, learn, lldp, SPEC

CABLE = ("a0_0", "c0")
PAIRS = [("h1", "h13"), ("h2", "h14"), ("h3", "h15")]      # h1, h2 on e0_0; h3 on e0_1


def discover(core):
    for sw in SPEC.switches:
        core.switch_connected(sw.dpid, 0.0)
        core.ports_described(sw.dpid, [(p, True) for p in range(1, 5)], 0.0)
    for link in SPEC.links:
        if not link.a.startswith("h"):
            core.packet_in(DPID[link.b], link.b_port, lldp(link.a, link.a_port), 0.1)
            core.packet_in(DPID[link.a], link.a_port, lldp(link.b, link.b_port), 0.1)


def flows_across_the_cable(core, pairs, dport=4791, proto=17):
    """One connection per pair whose ECMP path crosses ``CABLE`` (the first such source port)."""
    fives = []
    for src, dst in pairs:
        learn(core, src)
        learn(core, dst)
        for sport in range(40000, 41000):
            five = FiveTuple(src, dst, proto, sport, dport)
            if CABLE in path_links(ecmp_choice(five, core.fabric.paths(src, dst))):
                break
        h = SPEC.host(src)
        core.packet_in(DPID[h.edge], h.edge_port, ip_packet(src, dst, sport=sport, dport=dport, proto=proto), 12.0)
        fives.append(five)
    return fives


def fail(rt_or_core, now=20.0):
    core = getattr(rt_or_core, "core", rt_or_core)
    return rt_or_core.port_status(DPID[CABLE[0]], core.fabric.port(*CABLE), False, now)


def runtime_with_elephants(policy, rate_bps=8e6):
    """A runtime of ``policy`` on a discovered k=4 fabric, with ``PAIRS``' flows on ``CABLE`` at ``rate_bps``
    (as measured: 0.8 of a 10 Mbit/s link each by default)."""
    rt = ControllerRuntime(load_config(None, {"policy": policy}), 0.0)
    discover(rt.core)
    fives = flows_across_the_cable(rt.core, PAIRS)
    for five in fives:
        rt.core.flows[five].rate_bps = rate_bps
    return rt, fives


def test_planner_policies_put_the_elephants_of_a_failed_cable_on_separate_paths():
    rt, fives = runtime_with_elephants("reactive")
    assert rt.core.flows[fives[0]].cls == "training"
    fail(rt)
    paths = [rt.core.flows[five].path for five in fives]
    for five, path in zip(fives, paths):
        assert CABLE not in path_links(path) and tuple(reversed(CABLE)) not in path_links(path)
        rt.core.fabric.validate_path(path, five.src, five.dst)
        assert rt.core.pins[five] == path               # a planner placement stays pinned
    # three 0.8 elephants, three surviving core paths out of pod 0: one each, no shared fabric link
    fabric_links = [l for path in paths for l in path_links(path)[1:-1]]
    assert len(fabric_links) == len(set(fabric_links)), paths
    assert sorted(path[3] for path in paths) == ["c1", "c2", "c3"]
    shown = {(p.src, p.src_port): p for p in rt.api_state().paths()}
    assert all(shown[(five.src, five.src_port)].pinned for five in fives)          # GET /paths says so
    # what ECMP's re-hash over the surviving paths would have done here: two on one core
    rehash = [ecmp_choice(five, rt.core.fabric.paths(five.src, five.dst))[3] for five in fives]
    assert len(set(rehash)) < 3, rehash


def test_flows_without_a_measured_rate_take_ecmp_over_the_surviving_paths():
    rt, fives = runtime_with_elephants("reactive", rate_bps=0.0)
    fail(rt)
    for five in fives:
        assert rt.core.flows[five].path == ecmp_choice(five, rt.core.fabric.paths(five.src, five.dst))
        assert five not in rt.core.pins


def test_ecmp_policy_re_hashes_and_installs_no_failover():
    rt, fives = runtime_with_elephants("ecmp")
    assert rt.core.failover is None
    fail(rt)
    for five in fives:
        assert rt.core.flows[five].path == ecmp_choice(five, rt.core.fabric.paths(five.src, five.dst))


def test_a_failover_path_that_is_not_usable_is_ignored():
    """The core checks what it is handed: a path over the dead cable, or between other hosts, gets ECMP's."""
    core = discovered_core()
    fives = flows_across_the_cable(core, PAIRS[:2])
    asked = []

    def bad(cable):
        asked.append(cable)
        return {fives[0]: core.flows[fives[0]].path,                 # still over the dead cable
                fives[1]: core.fabric.paths("h1", "h14")[0]}              # not this connection's hosts
    core.failover = bad
    fail(core)
    assert asked == [CABLE]
    for five in fives:
        assert core.flows[five].path == ecmp_choice(five, core.fabric.paths(five.src, five.dst))
        assert five not in core.pins


def test_no_failover_call_when_no_flow_crossed_the_cable():
    core = ControllerCore(lambda a, b: 10e6)
    discover(core)
    core.failover = lambda cable: (_ for _ in ()).throw(AssertionError("called"))
    assert fail(core) == []


def test_a_planner_failure_still_moves_every_flow_by_ecmp(monkeypatch, caplog):
    """Failing safe: whatever goes wrong in the placement, no flow is left on the dead cable."""
    import controller.runtime as runtime

    def broken(*args, **kwargs):
        raise RuntimeError("planner bug")
    monkeypatch.setattr(runtime, "reroute_failed_link", broken)
    rt, fives = runtime_with_elephants("predictive")
    fail(rt)
    for five in fives:
        assert rt.core.flows[five].path == ecmp_choice(five, rt.core.fabric.paths(five.src, five.dst))
    assert "planner placement failed" in caplog.text


def test_a_moved_flow_cools_down_as_itself_and_a_failover_still_moves_it():
    rt, fives = runtime_with_elephants("reactive")          # cooldown: 3 polls of 1 s
    flow = rt.core.flows[fives[0]]
    other = next(p for p in rt.core.fabric.paths(flow.five.src, flow.five.dst) if p != flow.path)
    rt.core.repin(flow.five, other, 10.0)
    by_id = {f.flow_id: f for f in rt.active_flows(11.0)}
    assert by_id[flow.flow_id].movable is False and by_id[flow.flow_id].cls == flow.cls
    assert all(f.movable for i, f in by_id.items() if i != flow.flow_id)
    assert {f.flow_id: f for f in rt.active_flows(13.5)}[flow.flow_id].movable is True
    rt.last_now_s = 11.0                                     # a cable of its new path fails mid-cooldown
    a, b = other[2], other[3]
    cmds = rt.port_status(DPID[a], rt.core.fabric.port(a, b), False, 11.0)
    assert flow.five in {c.flow for c in cmds if hasattr(c, "flow")}
    assert (a, b) not in path_links(rt.core.flows[flow.five].path)

"""Cables going down (and back up) during a replay: connections move at once, as the live app moves them."""
import json
import os

import numpy as np
import pytest

from controller.cli import main as cli_main
from controller.ecmp import FiveTuple, ecmp_choice
from controller.fabric import Fabric, path_links
from controller.flowtrace import TraceFlow, write_flow_trace
from controller.replay import run_policy
from controller.sim import LinkEvent, SimError, Simulator, check_link_events
from mininet_topos.fattree_spec import fat_tree

CABLE = ("a0_0", "c0")
MBPS = 10.0
PAIRS = [("h1", "h13"), ("h2", "h14"), ("h3", "h15")]      # h1, h2 on e0_0; h3 on e0_1


@pytest.fixture
def fabric():
    return Fabric.from_spec(fat_tree(4, MBPS))


def crossing_port(fabric, src, dst, cable=CABLE, dport=5201, start=40000):
    """The first source port whose ECMP path from src to dst crosses ``cable``."""
    for sport in range(start, start + 1000):
        if cable in path_links(ecmp_choice(FiveTuple(src, dst, 6, sport, dport), fabric.paths(src, dst))):
            return sport
    raise AssertionError("no port crosses %s" % (cable,))


def elephants(fabric, size=8e6):
    """Three long flows from pod 0 to pod 3, every one hashed onto a0_0->c0."""
    return [TraceFlow("e%d" % i, 0.0, src, dst, size, src_port=crossing_port(fabric, src, dst), dst_port=5201)
            for i, (src, dst) in enumerate(PAIRS)]


def crosses(path, cable=CABLE):
    links = set(path_links(path))
    return cable in links or tuple(reversed(cable)) in links


def test_a_flow_leaves_the_failed_cable_at_once_and_loses_nothing(fabric):
    sport = crossing_port(fabric, "h1", "h13")
    flows = [TraceFlow("f", 0.0, "h1", "h13", 10e6, src_port=sport, dst_port=5201)]   # 8 s at 10 Mbit/s
    res = Simulator(fabric, flows, link_events=[LinkEvent(2.5, *CABLE, False)]).run()
    (rec,) = res.flows
    assert not crosses(rec.path)
    assert rec.finish_s == pytest.approx(8.0)        # alone on either path: the move costs no time
    up = res.links.index(CABLE)
    util = res.utilization()[:, up]
    assert util[0] == pytest.approx(1.0) and util[1] == pytest.approx(1.0)   # [0,1], [1,2]: on it
    assert util[2] == pytest.approx(0.5)            # [2,3]: half the interval, until 2.5 s
    assert np.all(util[3:] == 0.0)
    assert (res.link_events, res.failover_moves) == (1, 1)
    assert fabric.is_up(*CABLE)                     # the caller's fabric is as it was


def test_the_planner_spreads_the_elephants_of_a_failed_cable_where_ecmp_stacks_them(fabric):
    """As live (tests/unit/test_failover.py): reroute_failed_link at once, on the flows' demands."""
    flows = elephants(fabric)
    down = [LinkEvent(0.5, *CABLE, False)]
    runs = {p: run_policy(p, fabric, flows, link_events=down) for p in ("ecmp", "reactive")}
    cores = {p: sorted(r.path[3] for r in run.result.flows) for p, run in runs.items()}
    assert cores["reactive"] == ["c1", "c2", "c3"], cores
    assert len(set(cores["ecmp"])) < 3, cores       # the re-hash puts two on one core
    for p, run in runs.items():
        assert not any(crosses(r.path) for r in run.result.flows)
        assert run.summary["failover_moves"] == 3 and run.summary["link_events"] == 1
    assert runs["reactive"].summary["reroutes"] == 0   # nothing left for the ticks to fix
    assert runs["reactive"].summary["makespan_s"] < runs["ecmp"].summary["makespan_s"]


def test_a_connection_between_bursts_sends_its_next_flow_around_the_failed_cable(fabric):
    sport = crossing_port(fabric, "h1", "h13")
    flows = [TraceFlow("i0", 0.0, "h1", "h13", 1.25e6, src_port=sport, dst_port=5201, job="j", iter=0),
             TraceFlow("i1", 0.0, "h1", "h13", 1.25e6, src_port=sport, dst_port=5201, job="j", iter=1,
                       deps=("i0",), gap_s=2.0)]
    res = Simulator(fabric, flows, link_events=[LinkEvent(1.5, *CABLE, False)]).run()
    first, second = res.flows
    assert crosses(first.path) and first.finish_s == pytest.approx(1.0)
    assert not crosses(second.path) and second.start_s == pytest.approx(3.0)
    assert res.failover_moves == 1


def test_a_restored_cable_carries_new_connections_again(fabric):
    """From the moment it is back: the flow starts 0.25 s after the restore, before the next tick."""
    sport = crossing_port(fabric, "h2", "h14")
    flows = [TraceFlow("late", 4.5, "h2", "h14", 1e6, src_port=sport, dst_port=5201)]
    events = [LinkEvent(1.0, *CABLE, False), LinkEvent(4.25, *CABLE, True)]
    (rec,) = Simulator(fabric, flows, link_events=events).run().flows
    assert crosses(rec.path)
    (gone,) = Simulator(fabric, flows, link_events=events[:1]).run().flows
    assert not crosses(gone.path)


def test_replays_with_failures_are_deterministic(fabric):
    flows = elephants(fabric) + [TraceFlow("x", 1.0, "h4", "h16", 3e6)]
    events = [LinkEvent(0.5, *CABLE, False), LinkEvent(2.0, "a3_1", "c3", False), LinkEvent(3.0, *CABLE, True)]
    a = run_policy("reactive", fabric, flows, link_events=events)
    b = run_policy("reactive", fabric, flows, link_events=events)
    assert a.summary == b.summary
    assert [(r.flow_id, r.finish_s, r.path) for r in a.result.flows] == \
        [(r.flow_id, r.finish_s, r.path) for r in b.result.flows]


def test_a_failure_that_cuts_a_host_off_says_which_connection_and_cable(fabric):
    flows = [TraceFlow("f", 0.0, "h1", "h13", 10e6)]
    events = [LinkEvent(1.0, "e0_0", "a0_0", False), LinkEvent(1.0, "e0_0", "a0_1", False)]
    with pytest.raises(SimError, match=r"connection h1\|h13\|.* has no path once e0_0-a0_[01] is down at t=1 s"):
        Simulator(fabric, flows, link_events=events).run()
    assert fabric.is_up("e0_0", "a0_0") and fabric.is_up("e0_0", "a0_1")


@pytest.mark.parametrize("events, message", [
    ([LinkEvent(1.0, "h1", "e0_0", False)], "only a cable between two switches"),
    ([LinkEvent(1.0, "a0_0", "c2", False)], "no cable a0_0-c2"),
    ([LinkEvent(-1.0, *CABLE, False)], "seconds >= 0"),
    ([LinkEvent(float("inf"), *CABLE, False)], "seconds >= 0"),
    ([LinkEvent(1.0, *CABLE, True)], "not down at that time"),
    ([LinkEvent(2.0, *CABLE, False), LinkEvent(1.0, "c0", "a0_0", False)], "already down"),
    ([LinkEvent(3.0, *CABLE, True), LinkEvent(1.0, *CABLE, False), LinkEvent(2.0, *CABLE, True)], "not down"),
    ([LinkEvent(5.0, *CABLE, False), LinkEvent(5.0, *CABLE, True)], "fails at that same time"),
])
def test_bad_link_events_are_refused(fabric, events, message):
    with pytest.raises(ValueError, match=message):
        check_link_events(fabric, events)


def test_link_events_are_put_in_time_order(fabric):
    got = check_link_events(fabric, [LinkEvent(3.0, *CABLE, True), LinkEvent(1.0, *CABLE, False)])
    assert [(e.t_s, e.up) for e in got] == [(1.0, False), (3.0, True)]


def test_cli_replays_failures_and_records_them(tmp_path, fabric, capsys):
    trace = str(tmp_path / "flows.csv")
    with open(trace, "w") as fh:
        write_flow_trace(fh, elephants(fabric))
    out = str(tmp_path / "out")
    code = cli_main(["replay", trace, "--k", "4", "--policy", "all", "--jobs", "1", "--no-plots", "--quiet",
                     "--fail", "a0_0-c0@0.5", "--fail", "c3-a3_1@2", "--restore", "c0-a0_0@4", "--out", out])
    assert code == 0
    with open(os.path.join(out, "summary.json")) as fh:
        summary = json.load(fh)
    assert summary["replay"]["link_events"] == [
        {"t_s": 0.5, "cable": "a0_0-c0", "up": False}, {"t_s": 2.0, "cable": "c3-a3_1", "up": False},
        {"t_s": 4.0, "cable": "c0-a0_0", "up": True}]
    pol = summary["policies"]
    assert pol["reactive"]["failover_moves"] >= 3 and pol["ecmp"]["link_events"] == 3
    assert "failover_moves" not in pol["ideal"]       # one non-blocking switch: no cables to fail


@pytest.mark.parametrize("value, message", [
    ("a0_0-c0", "write the cable and the time as A-B@SECONDS"),
    ("a0_0-c9@3", "no cable a0_0-c9 in this fat-tree"),
    ("h1-e0_0@3", "only a cable between two switches"),
])
def test_cli_refuses_a_bad_failure_and_writes_nothing(tmp_path, fabric, capsys, value, message):
    trace = str(tmp_path / "flows.csv")
    with open(trace, "w") as fh:
        write_flow_trace(fh, elephants(fabric))
    out = str(tmp_path / "out")
    assert cli_main(["replay", trace, "--k", "4", "--fail", value, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("--fail %s: " % value) in err and message in err, err
    assert not os.path.exists(out)


def test_the_python_event_loop_replays_failures_as_the_compiled_one(fabric):
    """Simulator(compiled=False) (numpy solver, Python event loop) stops at the same cable events."""
    flows = elephants(fabric) + [TraceFlow("x", 1.0, "h4", "h16", 3e6)]
    events = [LinkEvent(0.5, *CABLE, False), LinkEvent(2.0, "a3_1", "c3", False), LinkEvent(3.0, *CABLE, True)]
    got = {}
    for compiled in (None, False):
        res = Simulator(fabric, flows, link_events=events, compiled=compiled).run()
        got[compiled] = ([(r.flow_id, round(r.finish_s, 9), r.path) for r in res.flows],
                         res.link_events, res.failover_moves)
    assert got[None] == got[False]
    assert got[None][1] == 3 and got[None][2] >= 3


def test_failover_moves_count_only_connections_the_controller_has_seen(fabric):
    """A connection routed ahead of its first flow is re-hashed off the cable, but it is not a failover move:
    the count used to depend on that look-ahead (1 for a lone later flow, 0 behind a tiny dependency)."""
    sport = crossing_port(fabric, "h1", "h13")
    late = [TraceFlow("late", 3.0, "h1", "h13", 1.25e6, src_port=sport, dst_port=5201)]
    res = Simulator(fabric, late, link_events=[LinkEvent(1.0, *CABLE, False)]).run()
    assert not crosses(res.flows[0].path) and res.failover_moves == 0
    behind = [TraceFlow("tiny", 0.0, "h4", "h16", 125.0),
              TraceFlow("late", 3.0, "h1", "h13", 1.25e6, src_port=sport, dst_port=5201, deps=("tiny",))]
    res = Simulator(fabric, behind, link_events=[LinkEvent(1.0, *CABLE, False)]).run()
    assert not crosses(res.flows[1].path) and res.failover_moves == 0
    for compiled in (True, False):          # in flight at the failure: one move, either event loop
        busy = [TraceFlow("busy", 0.0, "h1", "h13", 5e6, src_port=sport, dst_port=5201)]
        res = Simulator(fabric, busy, link_events=[LinkEvent(1.0, *CABLE, False)], compiled=compiled).run()
        assert res.failover_moves == 1

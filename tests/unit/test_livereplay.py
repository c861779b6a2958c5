"""Live replay without a lab: the scheduler on a fake clock, trace checks, and the flow agents on 127.0.0.1.

The agents are real processes and sockets on localhost (no Mininet, no root);
every wait has a deadline and no test asserts a wall-clock duration.
"""
import csv
import json
import os
import queue
import subprocess
import sys

import pytest

from controller.flowtrace import TraceFlow
from controller.replay import summarize
from controller.sim import ephemeral_port
from controller.tracefile import TraceError
from mininet_topos import livereplay as lr

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = "start_s,src,dst,size_bytes,flow_id,cls,job,iter,proto,src_port,dst_port,deps,gap_s\n"


def flow(fid, start=0.0, deps=(), gap=0.0, src="h1", dst="h2", size=1000.0, **kw):
    return TraceFlow(flow_id=fid, start_s=start, src=src, dst=dst, size_bytes=size, deps=tuple(deps), gap_s=gap, **kw)


def write(tmp_path, rows, header=HEADER, name="t.csv"):
    path = tmp_path / name
    path.write_text(header + "".join(r + "\n" for r in rows))
    return str(path)


# -- LiveScheduler on a fake clock ------------------------------------------
def test_scheduler_start_times_deps_and_gap():
    s = lr.LiveScheduler([flow("a", 0.0), flow("b", 1.0), flow("c", 0.5, deps=["a", "b"], gap=2.0)])
    assert [f.flow_id for f in s.due(0.0)] == ["a"]
    assert s.next_wakeup() == 1.0
    assert s.due(0.9) == []
    assert [f.flow_id for f in s.due(1.0)] == ["b"]
    assert s.next_wakeup() is None          # c waits on finishes, not on the clock
    s.finished("a", 3.0)
    assert s.due(10.0) == [] or False       # b not finished yet
    s.finished("b", 4.0)
    assert s.next_wakeup() == 6.0           # last dep finish 4.0 + gap 2.0
    assert s.due(5.99) == []
    assert [f.flow_id for f in s.due(6.0)] == ["c"]
    s.finished("c", 7.0)
    assert s.done() and s.unfinished() == []


def test_scheduler_start_s_is_a_lower_bound_after_deps():
    s = lr.LiveScheduler([flow("a", 0.0), flow("b", 5.0, deps=["a"], gap=0.1)])
    s.due(0.0)
    s.finished("a", 1.0)
    assert s.next_wakeup() == 5.0
    assert [f.flow_id for f in s.due(5.0)] == ["b"]


def test_scheduler_caps_in_flight_and_orders_by_ready_time():
    flows = [flow("x%d" % i, start=float(3 - i)) for i in range(4)]  # ready at 3, 2, 1, 0
    s = lr.LiveScheduler(flows, max_in_flight=2)
    assert [f.flow_id for f in s.due(10.0)] == ["x3", "x2"]
    assert s.in_flight == 2 and s.next_wakeup() is None and s.due(10.0) == []
    s.finished("x3", 10.5)
    assert [f.flow_id for f in s.due(11.0)] == ["x1"]
    s.finished("x2", 11.0)
    s.finished("x1", 11.0)
    assert [f.flow_id for f in s.due(11.0)] == ["x0"]


def test_scheduler_rejects_bad_finishes():
    s = lr.LiveScheduler([flow("a")])
    with pytest.raises(KeyError):
        s.finished("a", 1.0)
    s.due(0.0)
    s.finished("a", 1.0)
    with pytest.raises(KeyError):
        s.finished("a", 2.0)
    with pytest.raises(ValueError):
        lr.LiveScheduler([flow("a")], max_in_flight=0)


# -- trace checks (before any lab) --------------------------------------------
def test_unknown_host_refused_with_file_line_host_before_any_lab(tmp_path, capsys):
    path = write(tmp_path, ["0,h1,h2,1000,a,,,,6,,,,", "0,h1,h99,1000,b,,,,6,,,,"])
    with pytest.raises(TraceError) as exc:
        lr.load_trace(path)
    assert "t.csv:3" in str(exc.value) and "h99" in str(exc.value) and "dst" in str(exc.value)
    # run_live_replay refuses it with exit 2 before importing or starting anything of the lab
    assert lr.run_live_replay(path, str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "h99" in err and "t.csv:3" in err
    assert not (tmp_path / "out").exists()


def test_too_many_flows_refused(tmp_path):
    rows = ["0,h1,h2,1000,f%d,,,,6,,,," % i for i in range(lr.MAX_FLOWS + 1)]
    with pytest.raises(lr.LiveReplayError, match="at most %d" % lr.MAX_FLOWS):
        lr.load_trace(write(tmp_path, rows))


def test_too_long_refused(tmp_path):
    # 800 MB at 10 Mbit/s is 640 s alone on the wire
    with pytest.raises(lr.LiveReplayError, match="at least 640 s"):
        lr.load_trace(write(tmp_path, ["0,h1,h2,800000000,a,,,,6,,,,"]))
    # a chain of deps and gaps adds up too
    rows = ["0,h1,h2,1250,a0,,,,6,,,,"] + ["0,h1,h2,1250,a%d,,,,6,,,a%d,100" % (i, i - 1) for i in range(1, 8)]
    with pytest.raises(lr.LiveReplayError):
        lr.load_trace(write(tmp_path, rows))


def test_udp_and_port_clash_refused(tmp_path):
    with pytest.raises(TraceError, match="TCP flows only"):
        lr.load_trace(write(tmp_path, ["0,h1,h2,1000,a,,,,17,,,,"]))
    rows = ["0,h1,h2,1000,a,,,,6,,7000,,", "0,h2,h1,1000,b,,,,6,7000,,,"]
    with pytest.raises(TraceError, match="source port 7000"):
        lr.load_trace(write(tmp_path, rows))


def test_shipped_traces_fit_the_lab():
    for name in ("example.csv", "collide-k4-10mbps.csv", "bursts-k4-10mbps.csv", "stride4-k4-10mbps.csv"):
        flows = lr.load_trace(os.path.join(ROOT, "traces", name))
        assert flows and max(lr.ideal_finishes(flows).values()) < lr.MAX_TRACE_S


def test_ideal_finishes_honour_caps_deps_and_gaps():
    flows = [flow("a", 0.0, size=1.25e6), flow("b", 0.0, deps=["a"], gap=0.5, size=1.25e6, rate_bps=5e6)]
    fin = lr.ideal_finishes(flows)
    assert fin["a"] == pytest.approx(1.0) and fin["b"] == pytest.approx(1.0 + 0.5 + 2.0)


def test_ports_commands_and_classification():
    a = flow("a", src="h1", dst="h2", src_port=29500, dst_port=29600, cls="training")
    b = flow("b", src="h3", dst="h2")  # no ports: the simulator's ephemeral port, default dst port
    assert lr.listen_ports([a, b]) == {"h2": [lr.DEFAULT_DST_PORT, 29600]}
    ca, cb = lr.send_command(a, "10.0.0.2"), lr.send_command(b, "10.0.0.2")
    assert ca == {"op": "send", "id": "a", "dst": "10.0.0.2", "dport": 29600, "sport": 29500, "persistent": True,
                  "size": 1000, "rate_bps": None}
    assert cb["sport"] == ephemeral_port(0, "b") and cb["dport"] == lr.DEFAULT_DST_PORT and not cb["persistent"]
    assert lr.training_section([a, b]) == {"tcp_ports": [29500]}
    clash = flow("c", src="h4", dst="h5", src_port=29500, dst_port=1, cls="background")
    assert lr.training_section([a, clash]) == {"host_groups": [["h1", "h2"]]}
    assert lr.training_section([b]) == {}


def test_paths_by_key():
    doc = {"paths": [{"src": "h1", "dst": "h5", "src_port": 1, "dst_port": 2, "path": ["h1", "e0_0", "h5"]},
                     {"src": "h1"}]}
    assert lr.paths_by_key(doc) == {("h1", "h5", 1, 2): ("h1", "e0_0", "h5")}


# -- the agents and the orchestrator on 127.0.0.1 -------------------------------
@pytest.fixture
def agents_on_localhost(tmp_path):
    started = []

    def start(listen, connect_timeout_s=lr.CONNECT_TIMEOUT_S):
        events = queue.Queue()
        handles = {}
        for host, ports in listen.items():
            with open(str(tmp_path / ("%s.err" % host)), "wb") as err:
                proc = subprocess.Popen(lr.agent_command(sys.executable, ports, connect_timeout_s), cwd=ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
            started.append(proc)
            handles[host] = lr.AgentHandle(host, proc, events)
        lr._wait_ready(handles, events, 20.0)
        return handles, events

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def free_ports(n):
    import socket
    from contextlib import ExitStack
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def test_play_on_localhost_writes_offline_format(agents_on_localhost, tmp_path):
    p2, p3, sp = free_ports(3)
    flows = [
        flow("w0.i0", 0.0, src="h1", dst="h2", size=300_000, src_port=sp, dst_port=p2, cls="training", job="j", iter=0),
        flow("w0.i1", 0.0, deps=["w0.i0"], gap=0.05, src="h1", dst="h2", size=300_000, src_port=sp, dst_port=p2,
             cls="training", job="j", iter=1),   # same connection, reused
        flow("bg", 0.1, src="h2", dst="h3", size=200_000, dst_port=p3, rate_bps=20e6),
    ]
    handles, events = agents_on_localhost({"h1": [], "h2": [p2], "h3": [p3]})
    ticks = []
    records = lr.play(flows, handles, lambda h: "127.0.0.1", events, timeout_s=60.0,
                      get_paths=lambda: ticks.append(1) or {"paths": [
                          {"src": "h1", "dst": "h2", "src_port": sp, "dst_port": p2, "path": ["h1", "e0_0", "h2"]}]})
    for h in handles.values():
        h.quit()
    for h in handles.values():
        assert h.proc.wait(timeout=15) == 0
    by = {r.flow_id: r for r in records}
    assert [r.flow_id for r in records] == ["w0.i0", "w0.i1", "bg"]
    assert all(r.finish_s >= r.start_s >= 0 for r in records)
    assert by["w0.i1"].start_s >= by["w0.i0"].finish_s + 0.05 - 1e-6   # dep + gap honoured
    assert by["bg"].start_s >= 0.1 - 1e-6
    assert by["w0.i0"].path == ("h1", "e0_0", "h2") and by["bg"].path == ()
    assert ticks  # the controller's /paths was consulted

    result = lr.LiveResult(records, [0.1, 0.5, 0.9], reroutes=2)
    out = tmp_path / "out"
    out.mkdir()
    summary = lr.write_results(str(out), "live-predictive", result, {"mode": "live"})
    s = summary["policies"]["live-predictive"]
    assert s["flows"] == 3 and s["reroutes"] == 2 and s["max_link_util"] == 0.9
    assert s["jobs"]["j"]["iterations"] == 1
    assert s == summarize(result)
    with open(str(out / "flows.csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["policy", "flow_id", "start_s", "finish_s", "size_bytes", "path"]
    assert {r["policy"] for r in rows} == {"live-predictive"} and rows[0]["path"] == "h1;e0_0;h2"
    assert json.loads((out / "summary.json").read_text())["loads_policy"] == "live-predictive"


def test_play_reports_an_unreachable_receiver(agents_on_localhost):
    (dead,) = free_ports(1)   # nobody listens there
    handles, events = agents_on_localhost({"h1": []}, connect_timeout_s=1.0)
    with pytest.raises(lr.ReplayFailed, match="flow a from h1 failed"):
        lr.play([flow("a", src="h1", dst="h2", dst_port=dead)], handles, lambda h: "127.0.0.1", events,
                timeout_s=60.0)


def test_recorded_utilization_window(tmp_path):
    path = tmp_path / "loads.csv"
    path.write_text("t_s,link,util\n1,a->b,0.1\n2,a->b,0.7\n3,a->b,0.2\n2,b->a,0.4\n")
    assert sorted(lr.recorded_utilization(str(path), 1.5, 2.5)) == [0.4, 0.7]
    assert lr.recorded_utilization(str(tmp_path / "missing.csv")) == []

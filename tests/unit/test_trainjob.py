"""The lab's traffic programs on 127.0.0.1: the ring all-reduce job and the on/off burst sender.

Real processes and sockets on localhost (no Mininet, no root); every wait has a
deadline and nothing asserts wall-clock durations: bytes, counts and phases only.
"""
import json
import os
import signal
import socket
import subprocess
import sys
from contextlib import ExitStack
from typing import List

import pytest

from mininet_topos.burst import SenderConfig, phase_schedule
from mininet_topos.trainjob import (FORMAT, HELLO, HELLO_MAGIC, PROTOCOL_VERSION, HelloMismatch, ReportError,
                                    check_hello, chunk_sizes, parse_peers, percentile, ring_schedule,
                                    WorkerConfig, summarize, write_json_atomic, write_report_atomic)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROC_DEADLINE_S = 30.0


def free_ports(n: int) -> List[int]:
    """n distinct ports the kernel just handed out (held together, so they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen):
    """Wait (with a deadline) and return (rc, stdout, stderr); kill on timeout."""
    try:
        out, err = proc.communicate(timeout=PROC_DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail("%s did not finish within %.0f s; stderr:\n%s" % (proc.args, PROC_DEADLINE_S, err))
    return proc.returncode, out, err


# --------------------------------------------------------------------------
# ring all-reduce, end to end
# --------------------------------------------------------------------------
def test_four_worker_ring_on_localhost(tmp_path):
    n, iterations, message = 4, 5, 100_003  # not a multiple of N: chunks differ by a byte
    ports = free_ports(2 * n)
    listen, src = ports[:n], ports[n:]
    peers = ",".join("127.0.0.1:%d" % p for p in listen)
    procs = [spawn("mininet_topos.trainjob", "worker", "--rank", str(r), "--peers", peers,
                   "--iterations", str(iterations), "--message-bytes", str(message),
                   "--compute-s", "0.05", "--src-port", str(src[r]), "--connect-timeout-s", "20",
                   "--out", str(tmp_path / ("w%d.json" % r)))
             for r in range(n)]
    results = [finish(p) for p in procs]
    for r, (rc, _, err) in enumerate(results):
        assert rc == 0, "rank %d failed:\n%s" % (r, err)
        assert "iteration %d" % (iterations - 1) in err  # per-iteration log lines on stderr
    files = [str(tmp_path / ("w%d.json" % r)) for r in range(n)]
    chunks = chunk_sizes(message, n)
    for r, path in enumerate(files):
        with open(path) as handle:
            data = json.load(handle)
        assert data["format"] == FORMAT and data["ok"] and data["error"] is None
        assert data["rank"] == r and data["world_size"] == n
        assert data["shutdown"] == "clean"
        # one long-lived connection per hop, from the fixed source port to the next rank
        assert data["connection"]["local"] == "127.0.0.1:%d" % src[r]
        assert data["connection"]["remote"] == "127.0.0.1:%d" % listen[(r + 1) % n]
        assert data["connection"]["accepted_from"] == "127.0.0.1:%d" % src[(r - 1) % n]
        its = data["iterations"]
        assert [it["index"] for it in its] == list(range(iterations))
        expect_sent = sum(chunks[c_out] for c_out, _ in ring_schedule(r, n))
        for it in its:
            assert it["bytes_sent"] == expect_sent
            assert it["bytes_received"] == sum(chunks[c_in] for _, c_in in ring_schedule(r, n))
            assert it["end_s"] >= it["start_s"]
        assert data["total_bytes_sent"] == iterations * expect_sent
    # every byte sent by rank r was received by rank r+1, and each sends 2(N-1)/N of the message
    loaded = [json.load(open(f)) for f in files]
    for r in range(n):
        nxt = loaded[(r + 1) % n]["iterations"]
        assert [it["bytes_sent"] for it in loaded[r]["iterations"]] == [it["bytes_received"] for it in nxt]
    assert sum(d["total_bytes_sent"] for d in loaded) == iterations * 2 * (n - 1) * message
    # the kernel's TCP_INFO of each worker's sending connection, every iteration (loopback: no loss)
    for d in loaded:
        for it in d["iterations"]:
            assert it["tcp"]["retrans"] == 0 and 0 < it["tcp"]["max_srtt_ms"] < 1000, it
    summary = summarize(files, warmup=1)
    assert summary["workers"] == n and summary["iterations"] == iterations - 1
    counted = [it["tcp"]["max_srtt_ms"] for d in loaded for it in d["iterations"][1:]]
    assert summary["tcp"] == {"retrans": 0, "max_srtt_ms_median": pytest.approx(percentile(counted, 50)),
                              "max_srtt_ms_max": max(counted)}
    assert summary["mean_iteration_s"] > 0 and summary["p99_iteration_s"] >= summary["mean_iteration_s"] * 0.999
    assert summary["throughput_bps"] > 0

    rc = subprocess.run([sys.executable, "-m", "mininet_topos.trainjob", "report", "--warmup", "1", *files],
                        cwd=ROOT, capture_output=True, text=True, timeout=PROC_DEADLINE_S)
    assert rc.returncode == 0, rc.stderr
    assert json.loads(rc.stdout)["iterations"] == iterations - 1


def test_unreachable_peer_fails_with_clear_message(tmp_path):
    listen, nobody, src = free_ports(3)
    out = tmp_path / "w0.json"
    proc = spawn("mininet_topos.trainjob", "worker", "--rank", "0",
                 "--peers", "127.0.0.1:%d,127.0.0.1:%d" % (listen, nobody), "--iterations", "3",
                 "--message-bytes", "1000", "--compute-s", "0", "--src-port", str(src),
                 "--connect-timeout-s", "0.5", "--out", str(out))
    rc, _, err = finish(proc)
    assert rc == 1
    assert "next rank 1 (127.0.0.1:%d) unreachable" % nobody in err
    data = json.loads(out.read_text())
    assert data["ok"] is False and "unreachable" in data["error"] and data["iterations"] == []


def test_bad_arguments_exit_2():
    proc = spawn("mininet_topos.trainjob", "worker", "--rank", "2", "--peers", "127.0.0.1:1,127.0.0.1:2",
                 "--iterations", "1", "--message-bytes", "10", "--compute-s", "0", "--out", "/nonexistent/x")
    rc, _, err = finish(proc)
    assert rc == 2 and "--rank 2 is not in 0..1" in err


# --------------------------------------------------------------------------
# pure parts: chunks, schedule, hello, peers
# --------------------------------------------------------------------------
@pytest.mark.parametrize("message,n", [(0, 2), (7, 4), (100, 4), (100_003, 8)])
def test_chunks_and_ring_schedule_are_consistent(message, n):
    chunks = chunk_sizes(message, n)
    assert sum(chunks) == message and max(chunks) - min(chunks) <= 1
    for r in range(n):
        steps, prev = ring_schedule(r, n), ring_schedule((r - 1) % n, n)
        assert len(steps) == 2 * (n - 1)
        # what r receives at each step is what r-1 sends at that step
        assert [c_in for _, c_in in steps] == [c_out for c_out, _ in prev]
        # reduce-scatter ends with r owning its reduced chunk (r+1), all-gather sends every chunk once more
        assert sorted(c for c, _ in steps[: n - 1]) == sorted(set(range(n)) - {(r + 1) % n})
        assert sorted(c for c, _ in steps[n - 1:]) == sorted(set(range(n)) - {(r + 2) % n})


def test_hello_mismatch_names_the_problem():
    data = HELLO.pack(HELLO_MAGIC, PROTOCOL_VERSION, 3, 4)
    check_hello(data, 3, 4, "next rank 3")
    with pytest.raises(HelloMismatch, match="says it is rank 3 of 4, expected rank 1 of 4"):
        check_hello(data, 1, 4, "next rank 1")


def test_parse_peers():
    assert parse_peers("10.0.0.1:5000, 10.0.0.2:5001") == (("10.0.0.1", 5000), ("10.0.0.2", 5001))
    for bad in ("10.0.0.1", "10.0.0.1:x", "10.0.0.1:0", ":5000"):
        with pytest.raises(ValueError):
            parse_peers(bad)


# --------------------------------------------------------------------------
# summary math on hand-made files
# --------------------------------------------------------------------------
def _worker_file(path, rank, spans, bytes_sent=600, ok=True):
    data = {"format": FORMAT, "ok": ok, "error": None if ok else "boom", "rank": rank,
            "iterations": [{"index": i, "start_s": a, "end_s": b, "duration_s": b - a, "bytes_sent": bytes_sent}
                           for i, (a, b) in enumerate(spans)]}
    write_json_atomic(str(path), data)
    return str(path)


def test_a_late_sigterm_does_not_cut_a_report_short(tmp_path, monkeypatch):
    """A worker writes its report after the lab's SIGTERM or after its peer stopped; a SIGTERM arriving
    during the write killed it there and left an empty temporary file instead of the report."""
    import json
    import signal

    import mininet_topos.trainjob as trainjob

    class Late(Exception):
        pass

    def late(*_):
        raise Late()

    real_dump = json.dump

    def dump_with_a_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)     # arrives in the middle of the write
        return real_dump(*args, **kwargs)

    monkeypatch.setattr(trainjob.json, "dump", dump_with_a_signal)
    before = signal.getsignal(signal.SIGTERM)
    try:
        path = tmp_path / "burst0.json"
        write_report_atomic(str(path), {"ok": True}, {signal.SIGTERM: late})
        assert json.loads(path.read_text()) == {"ok": True}
        assert signal.getsignal(signal.SIGTERM) is late          # the caller's handler is back afterwards
        assert [p.name for p in tmp_path.iterdir()] == ["burst0.json"]   # no temporary file left
        with pytest.raises(Late):                                 # while with it in place, the write dies
            write_json_atomic(str(tmp_path / "other.json"), {"ok": True})
        assert not (tmp_path / "other.json").exists()
    finally:
        signal.signal(signal.SIGTERM, before)


def test_summary_uses_slowest_worker_per_iteration(tmp_path):
    # worker 0 ends iterations at 11, 13, 16, 17; worker 1 at 12, 13.5, 15, 19
    f0 = _worker_file(tmp_path / "a.json", 0, [(10, 11), (12, 13), (13.5, 16), (16, 17)])
    f1 = _worker_file(tmp_path / "b.json", 1, [(10.5, 12), (12.1, 13.5), (13.6, 15), (16.1, 19)])
    s = summarize([f0, f1])
    # t0 = 12 - 10.5 ; t1 = 13.5 - 12 ; t2 = 16 - 13.5 ; t3 = 19 - 16
    assert s["iteration_s"] == pytest.approx([1.5, 1.5, 2.5, 3.0])
    assert s["iterations"] == 4 and s["workers"] == 2
    assert s["mean_iteration_s"] == pytest.approx(8.5 / 4)
    assert s["total_s"] == pytest.approx(19 - 10.5)
    assert s["p99_iteration_s"] == pytest.approx(2.5 + 0.97 * 0.5)  # linear interpolation
    assert s["bytes_per_worker"] == 4 * 600
    assert s["throughput_bps"] == pytest.approx(8 * 2400 / 8.5)

    w = summarize([f0, f1], warmup=2)  # iteration 1's end still anchors iteration 2
    assert w["iteration_s"] == pytest.approx([2.5, 3.0])
    assert w["bytes_per_worker"] == 1200
    assert w["throughput_bps"] == pytest.approx(8 * 1200 / 5.5)


def test_summary_adds_up_the_tcp_readings_of_the_counted_iterations(tmp_path):
    f0 = _worker_file(tmp_path / "a.json", 0, [(10, 11), (12, 13), (13.5, 16)])
    f1 = _worker_file(tmp_path / "b.json", 1, [(10.5, 12), (12.1, 13.5), (13.6, 15)])
    assert summarize([f0, f1])["tcp"] is None                 # files from before the readings
    readings = {f0: [(40.0, 1), (3.0, 2), (9.0, 0)], f1: [(50.0, 7), (5.0, 0), (200.0, 4)]}
    for path, tcp in readings.items():
        data = json.load(open(path))
        for it, (srtt, retrans) in zip(data["iterations"], tcp):
            it["tcp"] = {"max_srtt_ms": srtt, "retrans": retrans}
        write_json_atomic(path, data)
    got = summarize([f0, f1], warmup=1)["tcp"]                # iteration 0 left out
    assert got == {"retrans": 2 + 0 + 0 + 4, "max_srtt_ms_median": pytest.approx(7.0), "max_srtt_ms_max": 200.0}
    data = json.load(open(f1))
    del data["iterations"][2]["tcp"]
    write_json_atomic(f1, data)
    assert summarize([f0, f1], warmup=1)["tcp"] is None      # all counted iterations, or nothing


def test_tcp_info_reads_the_kernels_struct():
    """The layout of struct tcp_info read back from a real loopback connection and from packed bytes."""
    import struct

    from mininet_topos.trainjob import parse_tcp_info, tcp_info
    values = [1, 0, 0, 0, 0, 7, 0x77, 0] + list(range(100, 124))
    got = parse_tcp_info(struct.pack("=8B24I", *values))
    assert got == {"srtt_ms": 115 / 1000.0, "cwnd": 118, "total_retrans": 123}
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname(), timeout=PROC_DEADLINE_S) as client:
            server, _ = listener.accept()
            with server:
                client.sendall(b"x" * 200_000)
                got_bytes = 0
                while got_bytes < 200_000:
                    got_bytes += len(server.recv(65536))
                info = tcp_info(client)
                raw = client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    assert raw[0] == 1                                        # tcpi_state: TCP_ESTABLISHED
    assert struct.unpack_from("=I", raw, 8 + 13 * 4)[0] == 65535   # tcpi_pmtu of loopback
    assert info["total_retrans"] == 0 and info["cwnd"] >= 10 and 0 < info["srtt_ms"] < 1000


def test_percentile_matches_numpy_default():
    np = pytest.importorskip("numpy")
    vals = [0.3, 1.2, 0.7, 5.0, 2.2, 0.9, 1.1]
    for q in (0, 50, 90, 99, 100):
        assert percentile(vals, q) == pytest.approx(float(np.percentile(vals, q)))


def test_summary_refuses_inconsistent_input(tmp_path):
    f0 = _worker_file(tmp_path / "a.json", 0, [(0, 1), (1, 2)])
    f1 = _worker_file(tmp_path / "b.json", 1, [(0, 1)])
    bad = _worker_file(tmp_path / "c.json", 2, [(0, 1), (1, 2)], ok=False)
    dup = _worker_file(tmp_path / "d.json", 0, [(0, 1), (1, 2)])
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ReportError, match="different numbers of iterations"):
        summarize([f0, f1])
    with pytest.raises(ReportError, match="rank 2 failed: boom"):
        summarize([f0, bad])
    with pytest.raises(ReportError, match="rank 0 already read"):
        summarize([f0, dup])
    with pytest.raises(ReportError, match="leaves no iteration"):
        summarize([f0], warmup=2)
    with pytest.raises(ReportError, match="junk.json: not valid JSON"):
        summarize([str(tmp_path / "junk.json")])
    rc = subprocess.run([sys.executable, "-m", "mininet_topos.trainjob", "report", f0, f1], cwd=ROOT,
                        capture_output=True, text=True, timeout=PROC_DEADLINE_S)
    assert rc.returncode == 2 and rc.stderr.startswith("trainjob report: error:")


# --------------------------------------------------------------------------
# burst sender and sink
# --------------------------------------------------------------------------
def test_phase_schedule():
    assert list(phase_schedule(2, 3, 12)) == [("on", 0, 2), ("off", 2, 5), ("on", 5, 7), ("off", 7, 10),
                                              ("on", 10, 12)]
    assert list(phase_schedule(2, 3, 6, delay_s=1)) == [("off", 0, 1), ("on", 1, 3), ("off", 3, 6)]
    assert list(phase_schedule(2, 0, 5)) == [("on", 0, 5)]
    endless = phase_schedule(1, 1, 0)
    assert [next(endless)[0] for _ in range(5)] == ["on", "off", "on", "off", "on"]
    with pytest.raises(ValueError, match="--on-s must be > 0"):
        SenderConfig(dst="127.0.0.1", port=1, src_port=0, on_s=0, off_s=1, rate_mbps=1, duration_s=1)


def test_burst_sender_and_sink_move_bytes_in_on_phases_only(tmp_path):
    port, src = free_ports(2)
    sink_out, send_out = tmp_path / "sink.json", tmp_path / "send.json"
    sink = spawn("mininet_topos.burst", "sink", "--port", str(port), "--out", str(sink_out))
    try:
        on_s, off_s, duration, rate_mbps = 0.2, 0.15, 0.9, 8.0
        sender = spawn("mininet_topos.burst", "send", "--dst", "127.0.0.1", "--port", str(port),
                       "--src-port", str(src), "--on-s", str(on_s), "--off-s", str(off_s),
                       "--rate-mbps", str(rate_mbps), "--duration-s", str(duration),
                       "--connect-timeout-s", "20", "--out", str(send_out))
        rc, _, err = finish(sender)
        assert rc == 0, err
    finally:
        sink.send_signal(signal.SIGTERM)
        sink_rc, _, sink_err = finish(sink)
    assert sink_rc == 0, sink_err

    log = json.loads(send_out.read_text())
    assert log["ok"] and log["stopped"] == "schedule" and log["local"] == "127.0.0.1:%d" % src
    phases = log["phases"]
    assert [(p["phase"], p["planned_start_s"], p["planned_end_s"]) for p in phases] == \
        [(k, pytest.approx(a), pytest.approx(b)) for k, a, b in phase_schedule(on_s, off_s, duration)]
    assert [p["phase"] for p in phases] == ["on", "off", "on", "off", "on", "off"][:len(phases)]
    assert len(phases) == 5
    cap = rate_mbps * 1e6 / 8
    for p in phases:
        if p["phase"] == "off":
            assert p["bytes"] == 0
        else:
            # the token bucket never runs ahead of the rate over the planned phase length
            assert 0 < p["bytes"] <= cap * (p["planned_end_s"] - p["planned_start_s"]) + 1
    assert log["total_bytes"] == sum(p["bytes"] for p in phases)
    assert sum(1 for line in err.splitlines() if " phase " in line) == len(phases)

    received = json.loads(sink_out.read_text())
    assert received["connections"][0]["peer"] == "127.0.0.1:%d" % src
    assert received["total_bytes"] == log["total_bytes"]  # the sender waits for the sink's close


@pytest.mark.parametrize("field, value", [("connect_timeout_s", 0.0), ("io_timeout_s", float("nan")),
                                          ("io_timeout_s", float("inf")), ("connect_timeout_s", -1.0)])
def test_a_bad_timeout_is_named_with_its_value(field, value):
    """Both workers refuse a timeout that is not a finite number of seconds > 0 (NaN used to pass)."""
    option = "--" + field.replace("_", "-")
    with pytest.raises(ValueError, match="^%s must be a finite number of seconds > 0 \\(got %s\\)$"
                       % (option, repr(value).replace("(", "\\(").replace(")", "\\)"))):
        SenderConfig(dst="127.0.0.1", port=1, src_port=0, on_s=1, off_s=1, rate_mbps=1, duration_s=1,
                     **{field: value})
    with pytest.raises(ValueError, match="^%s must be" % option):
        WorkerConfig(rank=0, peers=(("127.0.0.1", 5000), ("127.0.0.1", 5001)), iterations=1, message_bytes=1,
                     compute_s=0.0, out="x.json", **{field: value})

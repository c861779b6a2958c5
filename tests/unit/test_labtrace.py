"""A lab run folder becomes a flow trace that replays (mininet_topos.labtrace)."""
import json
import os

import pytest

from controller.fabric import Fabric
from controller.flowtrace import HEADER, read_flow_trace
from controller.replay import iteration_times, run_policy
from mininet_topos.fattree_spec import fat_tree
from mininet_topos.labtrace import LabTraceError, lab_run_flows, main, write_lab_trace

SPEC = fat_tree(4, 10.0)
IP = {h.name: h.ip for h in SPEC.hosts}
T0 = 1_800_000_000.0
RING = ("h1", "h5", "h9", "h13")          # one worker per pod, as the lab's job


def _worker(rank, iterations=3, compute_s=0.3, sent=750_000):
    src, dst = RING[rank], RING[(rank + 1) % len(RING)]
    its = []
    for i in range(iterations):
        start = T0 + 4.0 + 2.0 * i + 0.01 * rank
        its.append({"index": i, "start_s": start, "end_s": start + 1.5, "duration_s": 1.5,
                    "compute_s": compute_s + 0.001 * i, "comm_s": 1.2, "barrier_s": 0.001,
                    "bytes_sent": sent, "bytes_received": sent})
    return {"format": "sidestep-trainjob-worker/1", "ok": True, "error": None, "rank": rank, "world_size": 4,
            "connection": {"local": "%s:%d" % (IP[src], 41000 + rank), "remote": "%s:%d" % (IP[dst], 7000 + rank + 1),
                           "accepted_from": "x", "setup_s": 0.2},
            "iterations": its, "total_bytes_sent": sent * iterations, "shutdown": "clean"}


def _run_folder(path, *, iperf_end=True):
    os.makedirs(path, exist_ok=True)
    for r in range(4):
        with open(os.path.join(path, "worker%d.json" % r), "w") as fh:
            json.dump(_worker(r), fh)
    burst = {"format": "sidestep-burst-send/1", "ok": True, "stopped": "signal", "dst": "%s:6002" % IP["h14"],
             "local": "%s:52200" % IP["h2"], "phases": [
                 {"index": 0, "phase": "on", "start_s": T0 + 1.0, "end_s": T0 + 4.0, "bytes": 3_000_000},
                 {"index": 1, "phase": "off", "start_s": T0 + 4.0, "end_s": T0 + 7.0, "bytes": 0},
                 {"index": 2, "phase": "on", "start_s": T0 + 7.0, "end_s": T0 + 8.5, "bytes": 1_500_000}]}
    with open(os.path.join(path, "burst1.json"), "w") as fh:
        json.dump(burst, fh)
    iperf = ["Connecting to host 10.0.0.15, port 6000",
             "[  5] local 10.0.0.3 port 50001 connected to 10.0.0.15 port 6000",
             "[ ID] Interval           Transfer     Bitrate         Retr  Cwnd",
             "[  5]   0.00-1.00   sec  1.19 MBytes  9.99 Mbits/sec    0   85.5 KBytes",
             "[  5]   1.00-2.00   sec  1.12 MBytes  9.40 Mbits/sec    0   85.5 KBytes",
             "[  5]   2.00-2.50   sec   512 KBytes  8.39 Mbits/sec    0   85.5 KBytes"]
    if iperf_end:
        iperf += ["- - - - - - - - - - - - - - - - - - - - - - - - -",
                  "[ ID] Interval           Transfer     Bitrate         Retr",
                  "[  5]   0.00-2.50   sec  2.81 MBytes  9.43 Mbits/sec    0             sender",
                  "[  5]   0.00-2.50   sec  0.00 Bytes  0.00 bits/sec                  receiver",
                  "iperf3: interrupt - the client has terminated"]
    with open(os.path.join(path, "iperf0.txt"), "w") as fh:
        fh.write("\n".join(iperf) + "\n")
    listing = {"format": "sidestep-lab-background/1", "flows": [
        {"kind": "long", "src": "h3", "dst": "h15", "src_port": 50001, "dst_port": 6000,
         "launched_s": T0 + 0.5, "report": "iperf0.txt"},
        {"kind": "burst", "src": "h2", "dst": "h14", "src_port": 52200, "dst_port": 6002,
         "launched_s": T0 + 0.6, "report": "burst1.json"}]}
    with open(os.path.join(path, "background.json"), "w") as fh:
        json.dump(listing, fh)
    return str(path)


def test_a_run_folder_becomes_a_trace_of_what_was_measured(tmp_path):
    flows = {f.flow_id: f for f in lab_run_flows(_run_folder(tmp_path / "run"))}
    assert sorted(flows) == sorted(["long0", "burst1.p0", "burst1.p2"]
                                   + ["train.i%d.w%d" % (i, r) for i in range(3) for r in range(4)])
    long0 = flows["long0"]
    assert (long0.start_s, long0.src, long0.dst, long0.cls) == (0.0, "h3", "h15", "background")
    assert long0.size_bytes == round(2.81 * 1024 ** 2)       # the sender's summary line, whole bytes
    assert (long0.src_port, long0.dst_port) == (50001, 6000)
    assert flows["burst1.p2"].start_s == pytest.approx(6.5) and flows["burst1.p2"].size_bytes == 1.5e6
    w1 = flows["train.i0.w1"]
    assert (w1.src, w1.dst, w1.src_port, w1.dst_port) == ("h5", "h9", 41001, 7002)
    assert w1.start_s == pytest.approx(4.0 + 0.01 + 0.3 - 0.5) and w1.deps == ()
    later = flows["train.i2.w3"]
    assert later.deps == tuple("train.i1.w%d" % r for r in range(4)) and later.gap_s == pytest.approx(0.302)
    assert (later.job, later.iter, later.cls, later.size_bytes) == ("train", 2, "training", 750_000)


def test_the_trace_file_replays_with_its_iterations(tmp_path, capsys):
    run = _run_folder(tmp_path / "run", iperf_end=False)     # iperf3 killed before its summary: the intervals
    out = str(tmp_path / "trace.csv")
    assert main([run, "-o", out]) == 0
    assert "sidestep replay %s --k 4 --link-mbps 10" % out in capsys.readouterr().err
    fabric = Fabric.from_spec(SPEC)
    flows = read_flow_trace(out, fabric.hosts())
    assert {f.flow_id: f.size_bytes for f in flows}["long0"] == round((1.19 + 1.12) * 1024 ** 2 + 512 * 1024)
    result = run_policy("ecmp", fabric, flows).result
    assert [i for i, _ in iteration_times(result)["train"]] == [1, 2]
    assert len(result.flows) == len(flows)


def test_an_existing_trace_is_replaced_only_with_force(tmp_path, capsys):
    run = _run_folder(tmp_path / "run")
    out = tmp_path / "trace.csv"
    out.write_text("mine\n")
    assert main([run, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "%s exists" % out in err[0] and "--force" in err[0]
    assert out.read_text() == "mine\n"
    assert main([run, "-o", str(out), "--force"]) == 0
    assert out.read_text().splitlines()[0] == ",".join(HEADER)


def test_an_incomplete_run_folder_is_refused_by_name(tmp_path):
    run = _run_folder(tmp_path / "run")
    os.remove(os.path.join(run, "burst1.json"))
    with pytest.raises(LabTraceError, match="burst1.json: cannot read"):
        lab_run_flows(run)
    bad = _worker(2)
    bad["ok"], bad["error"] = False, "connection reset"
    with open(os.path.join(run, "worker2.json"), "w") as fh:
        json.dump(bad, fh)
    with pytest.raises(LabTraceError, match="worker2.json: the worker failed"):
        lab_run_flows(run)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabTraceError, match="not a lab run folder"):
        write_lab_trace(str(tmp_path / "empty"), str(tmp_path / "t.csv"))
    assert not (tmp_path / "t.csv").exists()

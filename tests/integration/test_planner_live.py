"""Issue 5 in the real lab: reactive separation, loss-free consistent updates, link failure."""
import json
import os
import subprocess
import time
import urllib.request

import pytest

from controller.ecmp import FiveTuple, ecmp_choice
from controller.fabric import Fabric, path_links
from mininet_topos.fattree_spec import fat_tree
from mininet_topos.lab import ControllerProcess, Lab, wait_for
from mininet_topos.scenario import find_colliding_port

from .helpers import flow_path, iperf3_server, path_row

pytestmark = pytest.mark.integration

POLL_S = 1.0
FABRIC = Fabric.from_spec(fat_tree(4, 10))


def find_port(src, dst, dport, want, start=40000):
    """A source port whose ECMP path satisfies ``want(path)``."""
    paths = FABRIC.paths(src, dst)
    for sport in range(start, start + 5000):
        path = ecmp_choice(FiveTuple(src, dst, 6, sport, dport), paths)
        if want(path):
            return sport, path
    raise AssertionError("no port found")




def lab_with(tmp_path_factory, name, **overrides):
    out = str(tmp_path_factory.mktemp(name))
    overrides.setdefault("poll_interval", POLL_S)
    ctrl = ControllerProcess(out, overrides=overrides)
    return Lab(k=4, bw_mbps=10, out_dir=out, controller=ctrl)


def start_h1_to_h13(lab, sport, dport, path, what):
    """A 12 s iperf3 flow h1 -> h13 from ``sport``, once the controller shows it on ``path``."""
    h1, h13 = lab.host("h1"), lab.host("h13")
    iperf3_server(h13, dport)
    proc = h1.popen(["iperf3", "-c", h13.IP(), "-p", str(dport), "--cport", str(sport), "-t", "12", "-i", "1",
                     "-J"], stdout=-1)
    wait_for(lambda: flow_path(lab.controller, "h1", "h13", 6, sport) == path, 10, what)
    return proc


def iperf_json(proc):
    out, _ = proc.communicate(timeout=120)
    text = out.decode() if isinstance(out, bytes) else out
    return json.loads(text[text.find("{"):])


def test_reactive_separates_two_colliding_tcp_flows(tmp_path_factory):
    sport_a, path_a = 40001, ecmp_choice(FiveTuple("h1", "h13", 6, 40001, 5401), FABRIC.paths("h1", "h13"))
    sport_b, shared = find_colliding_port(FABRIC, "h3", "h15", 5402, path_a, start=41000)
    with lab_with(tmp_path_factory, "reactive", policy="reactive",
                  training={"host_groups": [["h1", "h3", "h13", "h15"]]}) as lab:
        ctrl = lab.controller
        h1, h3, h13, h15 = (lab.host(n) for n in ("h1", "h3", "h13", "h15"))
        iperf3_server(h13, 5401)
        iperf3_server(h15, 5402)
        t0 = time.monotonic()
        pa = h1.popen(["iperf3", "-c", h13.IP(), "-p", "5401", "--cport", str(sport_a), "-t", "20", "-i", "1", "-J"],
                      stdout=-1)
        pb = h3.popen(["iperf3", "-c", h15.IP(), "-p", "5402", "--cport", str(sport_b), "-t", "20", "-i", "1", "-J"],
                      stdout=-1)
        wait_for(lambda: flow_path(ctrl, "h1", "h13", 6, sport_a) and flow_path(ctrl, "h3", "h15", 6, sport_b),
                 10, "both flows installed")
        # they start where ECMP puts them, together on the shared links (else nothing here tests a move)
        first_a = path_row(ctrl, "h1", "h13", 6, sport_a)
        first_b = path_row(ctrl, "h3", "h15", 6, sport_b)
        assert tuple(first_a["path"]) == path_a and not first_a["pinned"], first_a
        assert set(shared) <= set(path_links(first_b["path"])) and not first_b["pinned"], first_b
        reroutes0 = ctrl.get("/health")["reroutes_total"]
        hot = shared[0]

        def measured_hot():
            for r in ctrl.get("/utilization")["links"]:
                if (r["src"], r["dst"]) == hot and (r["util"] or 0) >= 0.8:
                    return time.monotonic()
            return None

        def separated():
            a = flow_path(ctrl, "h1", "h13", 6, sport_a)
            b = flow_path(ctrl, "h3", "h15", 6, sport_b)
            if a and b and not (set(path_links(a)) & set(path_links(b)) & set(shared)):
                return time.monotonic()
            return None

        t_hot = wait_for(lambda: measured_hot() or separated(), 15, "the shared link %s->%s to be hot" % hot)
        t_sep = wait_for(separated, 15, "reactive to separate the flows")
        # the forecaster runs live beside the measurements: REST and /metrics carry its predictions
        preds = ctrl.get("/predictions")
        assert preds["model"] and len(preds["links"]) >= 64
        assert all(l["pred"] >= 0 for l in preds["links"])
        metrics = urllib.request.urlopen(ctrl.url + "/metrics", timeout=5).read().decode()
        assert "sidestep_link_predicted_utilization_ratio{" in metrics
        # the separation is reactive's move: one of the two is on a planner-chosen path now
        assert ctrl.get("/health")["reroutes_total"] > reroutes0
        assert path_row(ctrl, "h1", "h13", 6, sport_a)["pinned"] or path_row(ctrl, "h3", "h15", 6, sport_b)["pinned"]
        ra, rb = iperf_json(pa), iperf_json(pb)
    # Timings are printed, not asserted (the shared 2-core host decides them); the wait above has a deadline.
    print("hot at %.1f s, separated at %.1f s after start (%.1f s after hot)"
          % (t_hot - t0, t_sep - t0, t_sep - t_hot))
    ia = [i["sum"]["bits_per_second"] for i in ra["intervals"]]
    ib = [i["sum"]["bits_per_second"] for i in rb["intervals"]]
    first = ia[1] + ib[1]
    last = (sum(ia[-5:]) + sum(ib[-5:])) / 5
    print("combined Mbit/s: second 2 = %.1f, last 5 s = %.1f" % (first / 1e6, last / 1e6))
    # Two flows sharing one 10 Mbit/s link cannot exceed 10 Mbit/s together, so 15 proves they are
    # apart; the userspace datapath on a busy 2-core host has given 15.9-19.2 here, not the full 20.
    # (No check against second 2: the planner has separated them within the first second, 13.0 there.)
    assert last >= 1.5 * 10e6


def test_consistent_updates_lose_nothing(tmp_path_factory):
    moves = 100
    with lab_with(tmp_path_factory, "updates", policy="ecmp", rest_allow_pin=True) as lab:
        ctrl = lab.controller
        h1, h13 = lab.host("h1"), lab.host("h13")
        report = os.path.join(lab.out_dir, "udp-server.json")
        iperf3_server(h13, 5403, report=report)
        proc = h1.popen(["iperf3", "-c", h13.IP(), "-p", "5403", "-u", "-b", "5M", "-l", "1000",
                         "--cport", "42001", "-t", "60", "-J"], stdout=-1)
        wait_for(lambda: flow_path(ctrl, "h1", "h13", 17, 42001), 10, "the UDP flow installed")
        cores = [p for p in FABRIC.paths("h1", "h13")]
        done0 = ctrl.get("/health")["path_updates"]["count"]
        for i in range(moves):
            current = flow_path(ctrl, "h1", "h13", 17, 42001)
            target = [p for p in cores if p != current][i % (len(cores) - 1)]
            result = ctrl.post("/pins", {"src": "h1", "dst": "h13", "proto": 17, "src_port": 42001,
                                         "dst_port": 5403, "path": list(target)})
            assert result["moved"], result
            wait_for(lambda: ctrl.get("/health")["path_updates"]["count"] >= done0 + i + 1, 10,
                     "update %d to finish" % (i + 1))
        updates = ctrl.get("/health")["path_updates"]
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        wait_for(lambda: _complete_json(report), 30, "the iperf3 server's report")
        received = json.load(open(report))["end"]["sum"]
    text = out.decode()
    sent = json.loads(text[text.find("{"):])["end"]["sum"]
    print("moves=%d: the receiver lost %d of %d datagrams (the sender sent %d), out-of-order=%s; "
          "update latency mean %.1f ms p99 %.1f ms"
          % (moves, received["lost_packets"], received["packets"], sent["packets"],
             received.get("out_of_order"), updates["mean_ms"], updates["p99_ms"]))
    assert updates["count"] >= moves
    # the receiver's count is its highest sequence number seen, so a datagram lost in the last update
    # shows as a gap only if later ones arrived: the tail must have (at most 50 in flight at the stop)
    assert received["packets"] > 1000 and received["packets"] >= sent["packets"] - 50
    assert received["lost_packets"] == 0


def test_a_connection_moved_after_its_first_reading_is_never_measured_above_its_links(tmp_path_factory):
    """A move replaces the ingress rule in place: OVS keeps its byte count and restarts its duration.

    The controller took a rate from the old rule's last reading against the new
    rule's first, so a connection moved at the tick after its first reading (as
    the planners move a colliding elephant) read as (one poll of bytes) over
    (the difference of the two rules' ages): in a live Hedera run the planner saw a
    4 Mbit/s link planned at 24.5 times its capacity.  Here: eight fresh 5 Mbit/s
    UDP streams, each moved right after the poll that first read it, and every
    rate the controller reports for them over the next three polls (the old
    code read 21.6 and 37.8 Mbit/s in one of two runs of four streams).
    """
    with lab_with(tmp_path_factory, "rates", policy="reactive", rest_allow_pin=True) as lab:
        ctrl = lab.controller
        h13 = lab.host("h13")
        cores = FABRIC.paths("h1", "h13")
        seen = []

        def sample_time():
            """When h1's edge switch last answered a poll (it reads the stream's flow stats too)."""
            return max((l["t_s"] for l in ctrl.get("/utilization")["links"]
                        if l["t_s"] is not None and "h1" in (l["src"], l["dst"])), default=0.0)

        def polls_after(t, n):
            """Wait for the n-th poll of h1's edge switch after time t, reading the stream's rate meanwhile."""
            times = set()

            def enough():
                row = path_row(ctrl, "h1", "h13", 17, sport)
                if row is not None and (not seen or seen[-1] != (sport, row["version"], row["rate_bps"])):
                    seen.append((sport, row["version"], row["rate_bps"]))
                now = sample_time()
                if now > t:
                    times.add(now)
                return len(times) >= n
            wait_for(enough, 10 + 2 * n, "%d polls of stream %d" % (n, sport))

        for j in range(8):
            sport, dport = 42002 + j, 5404 + j
            iperf3_server(h13, dport)
            proc = lab.popen("h1", ["iperf3", "-c", h13.IP(), "-p", str(dport), "-u", "-b", "5M", "-l", "1000",
                                    "--cport", str(sport), "-t", "10"], stdout=-1)
            wait_for(lambda: flow_path(ctrl, "h1", "h13", 17, sport), 10, "stream %d installed" % sport)
            polls_after(sample_time(), 1)              # its first reading
            current = flow_path(ctrl, "h1", "h13", 17, sport)
            target = next(p for p in cores if p != current)
            result = ctrl.post("/pins", {"src": "h1", "dst": "h13", "proto": 17, "src_port": sport,
                                         "dst_port": dport, "path": list(target)})
            assert result["moved"], result
            polls_after(sample_time(), 3)
            proc.terminate()
            proc.communicate(timeout=30)
    readings = ", ".join("%d v%d %.2f" % (p, v, r / 1e6) for p, v, r in seen)
    print("rate readings (stream, version, Mbit/s) of 8 streams moved after their first reading: " + readings)
    rates = [r for _, _, r in seen]
    assert len({p for p, v, r in seen if v > 0 and r > 4e6}) == 8, readings   # each measured after its move
    # and never as more than their 10 Mbit/s links carry (the streams are ~5.2 Mbit/s of frames; one
    # poll's reading varies with when the userspace datapath credits a rule's bytes, so no tighter bound)
    assert max(rates) < 10e6, readings


def _complete_json(path):
    try:
        return "end" in json.load(open(path))
    except (OSError, ValueError):
        return False


def test_link_failure_moves_the_flow_and_tcp_survives(tmp_path_factory):
    sport, path = find_port("h1", "h13", 5404, lambda p: p[2] == "a0_0" and p[3] == "c0")
    with lab_with(tmp_path_factory, "failure", policy="reactive") as lab:
        ctrl = lab.controller
        proc = start_h1_to_h13(lab, sport, 5404, path, "the flow on a0_0-c0")
        wait_for(lambda: proc.poll() is None and
                 any((r["util"] or 0) > 0.5 for r in ctrl.get("/utilization")["links"]
                     if (r["src"], r["dst"]) == ("a0_0", "c0")), 10, "traffic on a0_0->c0")
        # the flow's own rate measured (flow stats), so the planner places it rather than ECMP
        wait_for(lambda: (path_row(ctrl, "h1", "h13", 6, sport) or {}).get("rate_bps", 0) > 1e6, 10,
                 "the flow's measured rate")
        t_down = time.monotonic()
        lab.net.configLinkStatus("a0_0", "c0", "down")

        def moved():
            p = flow_path(ctrl, "h1", "h13", 6, sport)
            return p is not None and ("a0_0", "c0") not in path_links(p)

        wait_for(moved, 5, "the flow to leave a0_0-c0", interval_s=0.05)
        t_moved = time.monotonic() - t_down
        placed = path_row(ctrl, "h1", "h13", 6, sport)
        result = iperf_json(proc)
        with open(ctrl.log_path) as handle:
            log_text = handle.read()
    print("moved %.2f s after the link went down; path now avoids a0_0-c0" % t_moved)
    key = "h1|h13|6|%d|5404" % sport
    # moved by the port-down event itself, not by a later planning round
    assert any("link %s down: planner moves %s" % (cable, key) in log_text for cable in ("a0_0-c0", "c0-a0_0")), \
        log_text[-3000:]
    assert placed["pinned"], placed          # the planner's failover placed it (ECMP's re-hash is not pinned)
    assert "error" not in result, result.get("error")
    tail = [i["sum"]["bits_per_second"] for i in result["intervals"][-3:]]
    assert min(tail) > 5e6, tail


def test_a_switch_that_loses_its_controller_has_its_flows_moved_off_and_comes_back(tmp_path_factory):
    """A core switch's OpenFlow connection drops: the flows through it move at once, TCP survives, and
    the switch and its links are back in the topology once it reconnects.

    Before, its flows were only forgotten: the ingress rules kept sending a long-lived connection
    into the switch, and its traffic kept them from idling out.
    """
    sport, path = find_port("h1", "h13", 5405, lambda p: p[3] == "c0")
    with lab_with(tmp_path_factory, "disconnect", policy="reactive") as lab:
        ctrl = lab.controller
        proc = start_h1_to_h13(lab, sport, 5405, path, "the flow through c0")
        target = ctrl.get("/health")["switches_connected"]
        subprocess.run(["ovs-vsctl", "del-controller", "c0"], check=True)
        wait_for(lambda: ctrl.get("/health")["switches_connected"] == target - 1, 10, "c0 to disconnect")

        def moved():
            p = flow_path(ctrl, "h1", "h13", 6, sport)
            return p is not None and "c0" not in p

        wait_for(moved, 5, "the flow to leave c0", interval_s=0.05)
        result = iperf_json(proc)
        subprocess.run(["ovs-vsctl", "set-controller", "c0", "tcp:127.0.0.1:%d" % lab.ofp_port], check=True)
        lab.wait_discovered()                    # c0 and all its links up again
        links = [l for l in ctrl.get("/topology")["links"] if "c0" in (l["a"], l["b"])]
    assert "error" not in result, result.get("error")
    tail = [i["sum"]["bits_per_second"] for i in result["intervals"][-3:]]
    assert min(tail) > 5e6, tail
    assert len(links) == 4 and all(l["up"] for l in links), links

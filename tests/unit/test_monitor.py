"""LinkMonitor with real OpenFlow 1.3 port-stats replies (no switch).

Replies are packed into wire bytes and parsed back by os_ken's OpenFlow 1.3
parser, so ``counters_from_stats`` sees exactly what the app receives.
"""
from __future__ import annotations

import math
import struct
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from os_ken.ofproto import ofproto_parser, ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from controller.fabric import Fabric, path_links
from controller.loadtrace import LoadRecorder, read_link_loads
from controller.monitor import (UINT64_MAX, LinkMonitor, PortCounters,
                                counters_from_stats)
from mininet_topos.fattree_spec import fat_tree

DP = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)
MBPS = 1e6
# (port_no, tx_bytes, rx_bytes, duration_s)
Row = Tuple[int, int, int, float]


def port_stats(port_no: int, tx: int, rx: int, duration_s: float) -> parser.OFPPortStats:
    sec = int(duration_s)
    nsec = int(round((duration_s - sec) * 1e9))
    return parser.OFPPortStats(port_no=port_no, rx_packets=rx // 1000, tx_packets=tx // 1000,
                               rx_bytes=rx, tx_bytes=tx, rx_dropped=0, tx_dropped=0,
                               rx_errors=0, tx_errors=0, rx_frame_err=0, rx_over_err=0,
                               rx_crc_err=0, collisions=0, duration_sec=sec, duration_nsec=nsec)


def wire_reply(stats: Sequence[parser.OFPPortStats], xid: int = 7):
    """Pack an OFPT_MULTIPART_REPLY/OFPMP_PORT_STATS and parse it with os_ken."""
    body = b"".join(struct.pack(ofp.OFP_PORT_STATS_PACK_STR, *s) for s in stats)
    length = ofp.OFP_MULTIPART_REPLY_SIZE + len(body)
    buf = (struct.pack(ofp.OFP_HEADER_PACK_STR, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, length, xid)
           + struct.pack(ofp.OFP_MULTIPART_REPLY_PACK_STR, ofp.OFPMP_PORT_STATS, 0) + body)
    msg = ofproto_parser.msg(DP, ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, length, xid, buf)
    assert isinstance(msg, parser.OFPPortStatsReply)
    return msg


def counters(rows: Sequence[Row]) -> List[PortCounters]:
    return counters_from_stats(wire_reply([port_stats(*r) for r in rows]).body)


@pytest.fixture
def fabric() -> Fabric:
    return Fabric.from_spec(fat_tree(4, 10))


class FakeSwitches:
    """Cumulative counters of every switch port for flows at fixed rates.

    A switch forwarding a->S->b counts rx on its port toward a and tx on its
    port toward b, like a real switch; durations advance with time.
    """

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self.tx: Dict[Tuple[str, int], float] = {}
        self.rx: Dict[Tuple[str, int], float] = {}
        self.t = 0.0

    def advance(self, dt: float, flows: Sequence[Tuple[Sequence[str], float]]) -> None:
        for path, rate_bps in flows:
            nbytes = rate_bps * dt / 8
            for a, b in path_links(path):
                if self.fabric.is_switch(a):
                    key = (a, self.fabric.port(a, b))
                    self.tx[key] = self.tx.get(key, 0) + nbytes
                if self.fabric.is_switch(b):
                    key = (b, self.fabric.port(b, a))
                    self.rx[key] = self.rx.get(key, 0) + nbytes
        self.t += dt

    def rows(self, switch: str) -> List[Row]:
        ports = sorted(self.fabric.port(switch, n) for n in self.fabric.graph.neighbors(switch))
        return [(p, int(self.tx.get((switch, p), 0)), int(self.rx.get((switch, p), 0)), 50.0 + self.t)
                for p in ports]

    def poll(self, monitor: LinkMonitor, now_s: float):
        out = []
        for s in self.fabric.switches():
            out += monitor.observe(s, counters(self.rows(s)), now_s)
        return out


# -- conversion ----------------------------------------------------------------

def test_counters_from_parsed_reply_reads_attributes_and_skips_reserved_ports():
    reply = wire_reply([port_stats(1, 1000, 2000, 3.25),
                        port_stats(ofp.OFPP_LOCAL, 5, 5, 3.25),
                        port_stats(2, UINT64_MAX, 0, 4.5)])
    got = counters_from_stats(reply.body)
    assert got == [PortCounters(1, 1000, 2000, 3.25), PortCounters(2, UINT64_MAX, 0, 4.5)]


def test_counters_from_constructed_reply_objects():
    reply = parser.OFPPortStatsReply(DP, body=[port_stats(3, 10, 20, 1.5)])
    assert counters_from_stats(reply.body) == [PortCounters(3, 10, 20, 1.5)]


def test_unavailable_duration_becomes_nan():
    stat = port_stats(1, 0, 0, 0)._replace(duration_sec=0xFFFFFFFF)
    (c,) = counters_from_stats([stat])
    assert math.isnan(c.duration_s)


# -- rates ---------------------------------------------------------------------

def test_first_reply_sets_baseline_second_gives_rate_from_switch_duration(fabric):
    mon = LinkMonitor(fabric)
    port = fabric.port("e0_0", "a0_0")
    assert mon.observe("e0_0", counters([(port, 1000, 0, 10.0)]), now_s=100.0) == []
    # The controller clock says 5 s passed, the switch says 0.5 s: the switch wins.
    (sample,) = [s for s in mon.observe("e0_0", counters([(port, 1000 + 312_500, 0, 10.5)]), now_s=105.0)
                 if s.link == ("e0_0", "a0_0")]
    assert sample.util == pytest.approx(312_500 * 8 / 0.5 / 10e6)   # 0.5
    assert sample.bytes == 312_500
    assert sample.t_s == 105.0
    assert sample.capacity_bps == 10e6
    assert sample.rate_bps == pytest.approx(5e6)
    assert mon.utilization()[("e0_0", "a0_0")] == pytest.approx(0.5)


def test_per_direction_correctness_on_k4_path(fabric):
    """5 Mbit/s from h1 (pod 0) to h13 (pod 3) on 10 Mbit/s links: 0.5 on the
    path in the flow's direction, 0 on the reverse and everywhere else."""
    path = fabric.paths("h1", "h13")[0]
    sw = FakeSwitches(fabric)
    mon = LinkMonitor(fabric)
    assert sw.poll(mon, 0.0) == []
    for t in range(1, 4):
        sw.advance(1.0, [(path, 5e6)])
        samples = sw.poll(mon, float(t))
    assert len(samples) == len(fabric.directed_links())
    on_path = set(path_links(path))
    util = mon.utilization()
    assert set(util) == set(fabric.directed_links())
    for link, u in util.items():
        if link in on_path:
            assert u == pytest.approx(0.5), link
        else:
            assert u == pytest.approx(0.0), link
    # Host links: h1->e0_0 from the edge's rx, e3_x->h13 from the edge's tx.
    assert util[("h1", path[1])] == pytest.approx(0.5)
    assert util[(path[-2], "h13")] == pytest.approx(0.5)
    assert util[(path[1], "h1")] == pytest.approx(0.0)


def test_capacity_comes_from_the_fabric(fabric):
    port = fabric.port("e0_0", "a0_0")
    fabric.add_link("e0_0", port, "a0_0", fabric.port("a0_0", "e0_0"), 20e6)
    mon = LinkMonitor(fabric)
    mon.observe("e0_0", counters([(port, 0, 0, 1.0)]), 0.0)
    (s,) = [s for s in mon.observe("e0_0", counters([(port, 625_000, 0, 2.0)]), 1.0)
            if s.link == ("e0_0", "a0_0")]
    assert s.util == pytest.approx(0.25)
    assert s.capacity_bps == 20e6


def test_capacity_change_after_start_is_followed(fabric):
    mon = LinkMonitor(fabric)
    port = fabric.port("e0_0", "a0_0")
    mon.observe("e0_0", counters([(port, 0, 0, 1.0)]), 0.0)
    fabric.add_link("e0_0", port, "a0_0", fabric.port("a0_0", "e0_0"), 5e6)
    (s,) = mon.observe("e0_0", counters([(port, 625_000, 0, 2.0)]), 1.0)
    assert s.util == pytest.approx(1.0)


# -- resets, unavailable values, gaps -----------------------------------------

def test_duration_going_backwards_restarts_baseline(fabric):
    mon = LinkMonitor(fabric)
    p = fabric.port("e0_0", "a0_0")
    mon.observe("e0_0", counters([(p, 5_000_000, 0, 100.0)]), 0.0)
    # Switch reconnected: port recreated, counters and duration restart.
    assert mon.observe("e0_0", counters([(p, 6_000_000, 0, 0.5)]), 1.0) == []
    assert mon.stats.resets == 1
    (s,) = mon.observe("e0_0", counters([(p, 6_125_000, 0, 1.5)]), 2.0)
    assert s.util == pytest.approx(0.1)


def test_counter_going_backwards_restarts_baseline(fabric):
    mon = LinkMonitor(fabric)
    p = fabric.port("e0_0", "a0_0")
    mon.observe("e0_0", counters([(p, 5_000_000, 0, 10.0)]), 0.0)
    assert mon.observe("e0_0", counters([(p, 100, 0, 11.0)]), 1.0) == []
    (s,) = mon.observe("e0_0", counters([(p, 125_100, 0, 12.0)]), 2.0)
    assert s.util == pytest.approx(0.1)


def test_counter_wrap_is_a_reset_not_an_absurd_rate(fabric):
    mon = LinkMonitor(fabric)
    p = fabric.port("e0_0", "a0_0")
    mon.observe("e0_0", counters([(p, UINT64_MAX - 10, 0, 10.0)]), 0.0)
    assert mon.observe("e0_0", counters([(p, 1000, 0, 11.0)]), 1.0) == []
    (s,) = mon.observe("e0_0", counters([(p, 1000 + 1_250_000, 0, 12.0)]), 2.0)
    assert s.util == pytest.approx(1.0)


def test_ovs_unavailable_value_is_skipped_and_next_reading_spans_the_gap(fabric):
    mon = LinkMonitor(fabric)
    p = fabric.port("e0_0", "h1")
    mon.observe("e0_0", counters([(p, 0, 0, 10.0)]), 0.0)
    got = mon.observe("e0_0", counters([(p, UINT64_MAX, 250_000, 11.0)]), 1.0)
    # rx still works (host->edge), tx (edge->host) is skipped.
    assert [(s.link, round(s.util, 6)) for s in got] == [(("h1", "e0_0"), 0.2)]
    assert mon.stats.unavailable == 1
    got = {s.link: s.util for s in mon.observe("e0_0", counters([(p, 500_000, 250_000, 12.0)]), 2.0)}
    assert got[("e0_0", "h1")] == pytest.approx(500_000 * 8 / 2.0 / 10e6)
    assert got[("h1", "e0_0")] == pytest.approx(0.0)


def test_duplicate_reply_gives_no_sample_and_keeps_baseline(fabric):
    mon = LinkMonitor(fabric)
    p = fabric.port("e0_0", "a0_0")
    mon.observe("e0_0", counters([(p, 0, 0, 10.0)]), 0.0)
    assert mon.observe("e0_0", counters([(p, 0, 0, 10.0)]), 0.5) == []
    assert mon.stats.stale == 1
    (s,) = mon.observe("e0_0", counters([(p, 1_250_000, 0, 11.0)]), 1.0)
    assert s.util == pytest.approx(1.0)


def test_missed_poll_rate_over_longer_interval_and_history_padded(fabric):
    mon = LinkMonitor(fabric, period_s=1.0)
    p = fabric.port("e0_0", "a0_0")
    link = ("e0_0", "a0_0")
    mon.observe("e0_0", counters([(p, 0, 0, 10.0)]), 0.0)
    mon.observe("e0_0", counters([(p, 125_000, 0, 11.0)]), 1.0)      # 0.1
    # Polls at 2 and 3 lost; 4 s of traffic arrive as one reading: mean 0.3.
    (s,) = mon.observe("e0_0", counters([(p, 125_000 + 1_500_000, 0, 15.0)]), 5.0)
    assert s.util == pytest.approx(0.3)
    assert mon.history([link], 6)[0] == pytest.approx([np.nan, 0.1, 0.3, 0.3, 0.3, 0.3], nan_ok=True)


def test_without_period_a_gap_is_one_sample(fabric):
    mon = LinkMonitor(fabric)
    p = fabric.port("e0_0", "a0_0")
    mon.observe("e0_0", counters([(p, 0, 0, 10.0)]), 0.0)
    mon.observe("e0_0", counters([(p, 1_250_000 * 3, 0, 13.0)]), 3.0)
    assert mon.history([("e0_0", "a0_0")], 2)[0] == pytest.approx([np.nan, 1.0], nan_ok=True)


def test_implausible_rate_is_dropped(fabric):
    mon = LinkMonitor(fabric, max_util=1.5)
    p = fabric.port("e0_0", "a0_0")
    mon.observe("e0_0", counters([(p, 0, 0, 10.0)]), 0.0)
    assert mon.observe("e0_0", counters([(p, 10_000_000, 0, 11.0)]), 1.0) == []   # 8x capacity
    assert mon.stats.implausible == 1
    (s,) = mon.observe("e0_0", counters([(p, 10_125_000, 0, 12.0)]), 2.0)
    assert s.util == pytest.approx(0.1)


def test_ports_and_switches_not_in_the_fabric_are_ignored(fabric):
    mon = LinkMonitor(fabric)
    for t in (0.0, 1.0):
        assert mon.observe("e0_0", counters([(99, 1000 * int(t), 0, 10 + t)]), t) == []
        assert mon.observe("nosuch", counters([(1, 1000 * int(t), 0, 10 + t)]), t) == []
    assert mon.stats.unknown_switch == 2
    assert mon.utilization() == {}


def test_link_down_gives_no_sample_and_a_fresh_baseline_when_back_up(fabric):
    mon = LinkMonitor(fabric)
    p = fabric.port("e0_0", "a0_0")
    link = ("e0_0", "a0_0")
    mon.observe("e0_0", counters([(p, 0, 0, 10.0)]), 0.0)
    mon.observe("e0_0", counters([(p, 125_000, 0, 11.0)]), 1.0)
    other = ("a0_0", "e0_0")
    assert mon.utilization_of([link, other, ("x", "y")]).tolist()[0] == mon.utilization()[link]
    fabric.set_link_up("e0_0", "a0_0", False)
    assert link not in mon.utilization()
    got = mon.utilization_of([link, other, ("x", "y")])   # down, never measured, unknown
    assert np.isnan(got).all() and got.shape == (3,)
    assert mon.observe("e0_0", counters([(p, 9_000_000, 0, 12.0)]), 2.0) == []
    fabric.set_link_up("e0_0", "a0_0", True)
    assert mon.observe("e0_0", counters([(p, 9_000_000, 0, 13.0)]), 3.0) == []   # new baseline
    (s,) = mon.observe("e0_0", counters([(p, 9_250_000, 0, 14.0)]), 4.0)
    assert s.util == pytest.approx(0.2)


def test_forget_switch_then_reconnect_never_gives_a_negative_rate(fabric):
    mon = LinkMonitor(fabric)
    p = fabric.port("e0_0", "a0_0")
    mon.observe("e0_0", counters([(p, 5_000_000, 0, 100.0)]), 0.0)
    mon.observe("e0_0", counters([(p, 5_125_000, 0, 101.0)]), 1.0)
    mon.forget("e0_0")
    assert ("e0_0", "a0_0") not in mon.utilization()
    assert mon.observe("e0_0", counters([(p, 10, 0, 0.5)]), 5.0) == []
    (s,) = mon.observe("e0_0", counters([(p, 125_010, 0, 1.5)]), 6.0)
    assert s.util == pytest.approx(0.1)


def test_link_discovered_after_start_is_measured(fabric):
    empty = Fabric()
    for sw in ("s1", "s2"):
        empty.add_switch(sw)
    mon = LinkMonitor(empty)
    assert mon.observe("s1", counters([(3, 0, 0, 1.0)]), 0.0) == []
    empty.add_link("s1", 3, "s2", 4, 10e6)
    mon.observe("s1", counters([(3, 0, 0, 2.0)]), 1.0)
    (s,) = mon.observe("s1", counters([(3, 125_000, 0, 3.0)]), 2.0)
    assert s.link == ("s1", "s2") and s.util == pytest.approx(0.1)


# -- history -------------------------------------------------------------------

def test_history_is_oldest_first_bounded_and_nan_padded(fabric):
    mon = LinkMonitor(fabric, history=4)
    p = fabric.port("e0_0", "a0_0")
    link = ("e0_0", "a0_0")
    for t in range(7):   # samples 0.1 .. 0.6 (first reading is the baseline)
        mon.observe("e0_0", counters([(p, sum(125_000 * i for i in range(t + 1)), 0, 10.0 + t)]), float(t))
    hist = mon.history([link, ("a0_0", "e0_0"), ("no", "such")], 6)
    assert hist.shape == (3, 6)
    assert hist[0] == pytest.approx([np.nan, np.nan, 0.3, 0.4, 0.5, 0.6], nan_ok=True)
    assert np.isnan(hist[1:]).all()
    assert mon.history([link], 2)[0] == pytest.approx([0.5, 0.6])
    assert mon.history([], 3).shape == (0, 3)


def _history_reference(mon: LinkMonitor, links: Sequence[Tuple[str, str]], n: int) -> np.ndarray:
    """``history`` as a per-sample gather (what it was before its block-copy path)."""
    out = np.full((len(links), n), np.nan)
    rows = np.array([mon._index.get(link, -1) for link in links], dtype=np.intp)
    known = np.flatnonzero(rows >= 0)
    if n <= 0 or known.size == 0:
        return out
    ix = rows[known]
    count = mon._count[ix][:, None]
    seq = count - n + np.arange(n)[None, :]
    ok = (seq >= 0) & (seq >= count - mon.history_len)
    out[known] = np.where(ok, mon._ring[ix[:, None], seq % mon.history_len], np.nan)
    return out


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), history=st.sampled_from([1, 3, 8, 128]),
       counts=st.sampled_from(["same", "mixed", "zero"]), order=st.sampled_from(["index", "shuffled", "some"]))
def test_history_block_copy_equals_gather(seed, history, counts, order):
    """Every link with the same sample count (the replay) takes a block copy of ring columns: the
    same bits as the gather, NaN, -0.0 and wrap-around included; asked again, the cached rows too."""
    rng = np.random.default_rng(seed)
    mon = LinkMonitor(Fabric.from_spec(fat_tree(4, 10)), history=history)
    links = mon.links()
    m = len(links)
    mon._ring[:m] = rng.choice([np.nan, -0.0, 0.0, 0.25, 1.5, 1e-300], size=(m, history))
    mon._ring[:m] += np.where(rng.random((m, history)) < 0.5, rng.random((m, history)), 0.0)
    base = int(rng.integers(0, 3 * history + 2))
    if counts == "same":
        mon._count[:m] = base
    elif counts == "mixed":
        mon._count[:m] = base + rng.integers(0, 2, size=m)
    else:
        mon._count[:m] = 0
    if order == "shuffled":
        links = [links[i] for i in rng.permutation(m)]
    elif order == "some":
        links = [links[i] for i in rng.integers(0, m, size=7)] + [("no", "such")]
    for n in (0, 1, 2, history - 1, history, history + 1, 2 * history + 3):
        for _ in range(2):
            got = mon.history(links, n)
            want = _history_reference(mon, links, max(n, 0))
            assert got.shape == want.shape and got.dtype == np.float64
            assert np.array_equal(got.view(np.uint64), want.view(np.uint64)), (n, counts, order)


def test_history_rows_follow_newly_indexed_links(fabric):
    """A link unknown at one call (NaN row) reads its samples once the monitor indexes it."""
    empty = Fabric()
    for sw in ("s1", "s2"):
        empty.add_switch(sw)
    mon = LinkMonitor(empty)
    links = [("s1", "s2")]
    assert np.isnan(mon.history(links, 3)).all()
    empty.add_link("s1", 3, "s2", 4, 10e6)
    mon.observe("s1", counters([(3, 0, 0, 2.0)]), 1.0)
    mon.observe("s1", counters([(3, 125_000, 0, 3.0)]), 2.0)
    assert mon.history(links, 3)[0] == pytest.approx([np.nan, np.nan, 0.1], nan_ok=True)



def test_history_rows_of_several_link_lists_each_stay_their_own(fabric):
    """Replay asks with two lists in turn (every link, the links it forecasts): each call answers
    for its own list, from the kept rows or not, and a link indexed later is seen by every list."""
    empty = Fabric()
    for sw in ("s1", "s2", "s3"):
        empty.add_switch(sw)
    empty.add_link("s1", 1, "s2", 1, 10e6)
    mon = LinkMonitor(empty)
    mon.observe("s1", counters([(1, 0, 0, 1.0)]), 1.0)
    mon.observe("s1", counters([(1, 250_000, 0, 2.0)]), 2.0)
    one = [("s1", "s2")]
    both = [("s2", "s3"), ("s1", "s2")]
    lists = [one, both, list(reversed(both)), [("s2", "s1")], one, both]
    for links in lists:
        got = mon.history(links, 2)
        assert np.array_equal(got, _history_reference(mon, links, 2), equal_nan=True), links
    assert np.isnan(mon.history(both, 2)[0]).all()      # s2-s3 unknown so far
    empty.add_link("s2", 2, "s3", 1, 10e6)
    mon.observe("s2", counters([(2, 0, 0, 1.0)]), 1.0)
    mon.observe("s2", counters([(2, 125_000, 0, 2.0)]), 2.0)
    for links in lists:
        got = mon.history(links, 2)
        assert np.array_equal(got, _history_reference(mon, links, 2), equal_nan=True), links
    assert mon.history(both, 2)[0][-1] == pytest.approx(0.1)

# -- recording round trip ------------------------------------------------------

def test_samples_record_as_a_readable_link_load_trace(fabric, tmp_path):
    path = fabric.paths("h1", "h13")[0]
    sw = FakeSwitches(fabric)
    mon = LinkMonitor(fabric)
    out = tmp_path / "loads.csv"
    rec = LoadRecorder(str(out))
    sw.poll(mon, 0.0)
    for t in (1.0, 2.0):
        sw.advance(1.0, [(path, 5e6)])
        rec.write(t, sw.poll(mon, t))
    rec.close()
    trace = read_link_loads(str(out))
    assert trace.latest()[(path[1], path[2])] == pytest.approx(0.5)
    assert len(trace.links()) == len(fabric.directed_links())


# -- property: whatever the counters do, no negative or absurd sample ---------

reading = st.tuples(
    st.sampled_from(["grow", "grow", "grow", "reset", "unavailable", "same", "gap"]),
    st.integers(min_value=0, max_value=2_000_000),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(reading, min_size=1, max_size=30))
def test_samples_are_never_negative_or_absurd(steps):
    fabric = Fabric.from_spec(fat_tree(2, 10))
    mon = LinkMonitor(fabric)
    p = fabric.port("e0_0", "h1")
    tx = rx = 0
    dur = 5.0
    now = 0.0
    for kind, nbytes in steps:
        now += 1.0
        if kind == "reset":
            tx, rx, dur = nbytes // 10, 0, 0.25
        elif kind != "same":
            dur += 2.0 if kind == "gap" else 1.0
            tx += nbytes
            rx += nbytes // 3
        report_tx = UINT64_MAX if kind == "unavailable" else tx
        for s in mon.observe("e0_0", counters([(p, report_tx, rx, dur)]), now):
            assert 0.0 <= s.util <= 1.5
            assert s.bytes >= 0


def test_polls_without_a_sample_stay_gaps_in_the_history(fabric):
    """A link down for a while (or reset, or its switch reconnecting) produced no sample for those polls,
    and its samples before and after were glued together; training histories hold NaN there."""
    mon = LinkMonitor(fabric, period_s=1.0)
    p = fabric.port("e0_0", "a0_0")
    link = ("e0_0", "a0_0")
    nbytes = 0
    for t in range(6):                       # t=0 baseline, then 0.1 at t=1..5
        mon.observe("e0_0", counters([(p, nbytes, 0, 50.0 + t)]), float(t))
        nbytes += 125_000
    fabric.set_link_up("e0_0", "a0_0", False)
    for t in range(6, 16):                   # down: readings, no samples
        mon.observe("e0_0", counters([(p, nbytes, 0, 50.0 + t)]), float(t))
    fabric.set_link_up("e0_0", "a0_0", True)
    for t in range(16, 19):                  # t=16 new baseline, then samples at 17 and 18
        mon.observe("e0_0", counters([(p, nbytes, 0, 50.0 + t)]), float(t))
        nbytes += 125_000 * 9
    hist = mon.history([link], 15)[0]
    assert list(hist[:2]) == pytest.approx([0.1, 0.1])          # t=4, t=5
    assert np.isnan(hist[2:13]).all()                            # t=6..t=16: no sample
    assert list(hist[13:]) == pytest.approx([0.9, 0.9])          # t=17, t=18
    assert mon.stats.gaps_marked == 11
    # a reply that spans missed polls still fills them with its mean rate, no NaN
    mon.observe("e0_0", counters([(p, nbytes - 9 * 125_000 + 3 * 125_000, 0, 50.0 + 21)]), 21.0)
    assert list(mon.history([link], 3)[0]) == pytest.approx([0.1, 0.1, 0.1]) and mon.stats.gaps_marked == 11

"""``LinkMonitor.ingest_ports`` (array form) against ``ingest`` switch by switch.

Replay relies on the array form giving exactly what the live path gives, so
every test here feeds the same readings to two monitors, one through
``ingest`` per switch and one through ``ingest_ports``, and compares every
piece of monitor state bit for bit after every poll: baselines, ring history,
counts, latest values, stats, and the query results.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.fabric import Fabric
from controller.monitor import UINT64_MAX, LinkMonitor, PortCounters, PortLayout
from mininet_topos.fattree_spec import fat_tree

INT64_MAX = (1 << 63) - 1


# -- comparing two monitors ----------------------------------------------------

def _same_floats(a: Sequence[float], b: Sequence[float]) -> bool:
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    return x.shape == y.shape and np.array_equal(x, y, equal_nan=True) and x.tobytes() == y.tobytes()


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True) and a.tobytes() == b.tobytes()
    return np.array_equal(a, b)


def assert_same_state(ref: LinkMonitor, arr: LinkMonitor) -> None:
    """Every list, dict and array the monitor keeps, and what its queries return."""
    assert ref._version == arr._version
    assert ref._links == arr._links
    assert ref._index == arr._index
    assert ref._chans == arr._chans
    assert ref._where == arr._where
    assert ref._up == arr._up
    assert _same_floats(ref._cap, arr._cap)
    ref_base, arr_base = ref.baselines(), arr.baselines()
    assert [b and b[0] for b in ref_base] == [b and b[0] for b in arr_base]      # None where there is none
    for base in (ref_base, arr_base):   # exact Python ints and floats, never numpy scalars
        assert all(b is None or (type(b[0]) is int and type(b[1]) is float and type(b[2]) is float) for b in base)
    n = len(ref._links)
    # durations and times as written, also where the baseline was dropped since
    assert _same_floats(ref._base_dur[:n], arr._base_dur[:n]), (ref._base_dur[:n], arr._base_dur[:n])
    assert _same_floats(ref._base_now[:n], arr._base_now[:n])
    for name in ("_ring", "_count", "_latest", "_latest_t", "_latest_bytes"):
        assert _same_array(getattr(ref, name), getattr(arr, name)), name
    assert dataclasses.asdict(ref.stats) == dataclasses.asdict(arr.stats)
    assert ref.utilization() == arr.utilization()
    assert ref.latest() == arr.latest()
    links = ref.links() + [("no", "such")]
    for n in (1, ref.history_len + 2):
        assert _same_array(ref.history(links, n), arr.history(links, n))


def feed_by_switch(mon: LinkMonitor, layout: PortLayout, tx: Sequence[int], rx: Sequence[int],
                   dur: Sequence[float], now: float) -> int:
    """The reference: ``ingest`` per switch, in layout order."""
    ports = layout.port_no.tolist()
    off = layout.offsets.tolist()
    total = 0
    for s, switch in enumerate(layout.switches):
        rows = range(off[s], off[s + 1])
        total += mon.ingest(switch, [PortCounters(ports[r], tx[r], rx[r], dur[r]) for r in rows], now)
    return total


def as_input(values: List[int], form: str):
    """The same counters as one of the forms ``ingest_ports`` accepts."""
    if form == "int64" and all(-(1 << 63) <= v <= INT64_MAX for v in values):
        return np.array(values, dtype=np.int64)
    if form == "uint64" and all(0 <= v <= UINT64_MAX for v in values):
        return np.array(values, dtype=np.uint64)
    if form == "object":
        return np.array(values, dtype=object)
    return list(values)


# -- a random fabric life: counters, resets, failures, gaps --------------------

class Lab:
    """Two monitors on one fabric and cumulative counters for every switch port.

    ``rng`` decides everything, so a failing seed replays exactly.
    """

    def __init__(self, rng: np.random.Generator, *, history: int, period_s: Optional[float],
                 max_util: Optional[float], dur_mode: str, big: str) -> None:
        self.rng = rng
        self.fabric = Fabric.from_spec(fat_tree(4, 10.0))
        self.ref = LinkMonitor(self.fabric, history=history, period_s=period_s, max_util=max_util)
        self.arr = LinkMonitor(self.fabric, history=history, period_s=period_s, max_util=max_util)
        self.dur_mode = dur_mode
        self.now = 100.0
        self.switches = self.fabric.switches()
        self.ports = {s: sorted(self.fabric.port(s, n) for n in self.fabric.graph.neighbors(s))
                      for s in self.switches}
        start = {"no": 0, "int64": INT64_MAX - 10**10, "uint64": UINT64_MAX - 10**10}[big]
        self.tx: Dict[Tuple[str, int], int] = {}
        self.rx: Dict[Tuple[str, int], int] = {}
        self.dur: Dict[Tuple[str, int], float] = {}
        for s in self.switches:
            for p in self.ports[s]:
                self.tx[(s, p)] = start + int(rng.integers(0, 10**9))
                self.rx[(s, p)] = start + int(rng.integers(0, 10**9))
                self.dur[(s, p)] = float(rng.uniform(0, 1000))
        self.standard = PortLayout((s, self.ports[s]) for s in self.switches)
        self.removed: List[Tuple[str, int, str, int, float]] = []

    def capacity(self, s: str, p: int) -> float:
        nbr = self.fabric.neighbor(s, p)
        return self.fabric.capacity_bps(s, nbr) if nbr is not None else 10e6

    def _grow(self, old: int, nbytes: int) -> int:
        new = old + nbytes
        return new - (1 << 64) if new >= UINT64_MAX else new      # a 64-bit counter wraps

    def fabric_event(self) -> None:
        rng, fabric = self.rng, self.fabric
        u = rng.random()
        edges = sorted(tuple(sorted(e)) for e in fabric.graph.edges())
        if u < 0.12 and edges:
            a, b = edges[rng.integers(len(edges))]
            fabric.set_link_up(a, b, not fabric.is_up(a, b))
        elif u < 0.16 and edges:                  # capacity change (same ports)
            a, b = edges[rng.integers(len(edges))]
            fabric.add_link(a, fabric.port(a, b), b, fabric.port(b, a), float(rng.choice([5e6, 10e6, 20e6])))
        elif u < 0.19 and edges:                  # cable unplugged ...
            a, b = edges[rng.integers(len(edges))]
            self.removed.append((a, fabric.port(a, b), b, fabric.port(b, a), fabric.capacity_bps(a, b)))
            fabric.remove_link(a, b)
        elif u < 0.23 and self.removed:           # ... and plugged back
            fabric.add_link(*self.removed.pop(int(rng.integers(len(self.removed)))))
        elif u < 0.25:
            s = self.switches[rng.integers(len(self.switches))]
            self.ref.forget(s)
            self.arr.forget(s)

    def layout(self) -> PortLayout:
        """Mostly the same layout object (the cached plan); sometimes a fresh, odd one."""
        rng = self.rng
        if rng.random() < 0.75:
            return self.standard
        chosen = [s for s in self.switches if rng.random() < 0.7]
        rng.shuffle(chosen)
        entries = []
        for s in chosen:
            ports = [p for p in self.ports[s] if rng.random() < 0.85]
            rng.shuffle(ports)
            if rng.random() < 0.1:
                ports.append(99)                  # a port the fabric does not know
            if ports and rng.random() < 0.05:
                ports.append(ports[0])            # the same port twice in one reply
            entries.append((s, ports))
        if rng.random() < 0.1:
            entries.insert(int(rng.integers(len(entries) + 1)), ("zz9", [1, 2]))   # unknown switch
        if entries and rng.random() < 0.05:
            entries.append(entries[0])            # the same switch twice in one poll
        return PortLayout(entries)

    def tick(self) -> None:
        rng = self.rng
        dt = float(rng.choice([1.0] * 8 + [2.0, 3.0, 0.0, 0.5, 1.49, 1.5, 1.51, 0.97, 7.0]))
        self.now += dt
        if rng.random() < 0.4:
            self.fabric_event()
        report_tx: Dict[Tuple[str, int], int] = {}
        report_rx: Dict[Tuple[str, int], int] = {}
        for key in self.tx:
            cap = self.capacity(*key)
            if self.dur_mode == "port":
                if rng.random() < 0.03:
                    self.dur[key] = 0.25                       # port recreated
                elif rng.random() < 0.02:
                    self.dur[key] -= 0.5                       # reordered reply
                else:
                    self.dur[key] += dt
            for counters, report in ((self.tx, report_tx), (self.rx, report_rx)):
                u = rng.random()
                if u < 0.03:
                    counters[key] = int(rng.integers(0, 10**6))            # reset
                elif u < 0.05:
                    counters[key] = self._grow(counters[key], int(cap * dt * 3))   # implausible
                elif u < 0.07:
                    pass                                                   # idle
                else:
                    counters[key] = self._grow(counters[key], int(rng.uniform(0, 1.1) * cap / 8 * dt))
                v = rng.random()
                report[key] = UINT64_MAX if v < 0.03 else (-1 if v < 0.04 else counters[key])
        layout = self.layout()
        ports, off = layout.port_no.tolist(), layout.offsets.tolist()
        rows = [(s, ports[r]) for i, s in enumerate(layout.switches) for r in range(off[i], off[i + 1])]
        tx = [report_tx.get(r, 0) for r in rows]
        rx = [report_rx.get(r, 0) for r in rows]
        if self.dur_mode == "port":
            dur = [self.dur.get(r, 1.0) for r in rows]
        else:
            dur = [math.nan if self.dur_mode == "nan" else self.now] * len(rows)
        durations = dur if self.dur_mode == "port" or rng.random() < 0.5 else dur[0] if dur else math.nan
        form = str(rng.choice(["list", "int64", "uint64", "object"]))
        got_ref = feed_by_switch(self.ref, layout, tx, rx, dur, self.now)
        got_arr = self.arr.ingest_ports(layout, as_input(tx, form), as_input(rx, form), durations, self.now)
        assert got_arr == got_ref
        assert_same_state(self.ref, self.arr)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       history=st.sampled_from([1, 3, 8]),
       period_s=st.sampled_from([None, 1.0, 0.5]),
       max_util=st.sampled_from([None, 1.5, 0.8]),
       dur_mode=st.sampled_from(["nan", "now", "port"]),
       big=st.sampled_from(["no", "no", "int64", "uint64"]))
def test_array_ingest_equals_ingest_per_switch(seed, history, period_s, max_util, dur_mode, big):
    lab = Lab(np.random.default_rng(seed), history=history, period_s=period_s, max_util=max_util,
              dur_mode=dur_mode, big=big)
    for _ in range(25):
        lab.tick()


# -- targeted cases ------------------------------------------------------------

@pytest.fixture
def pair():
    fabric = Fabric.from_spec(fat_tree(4, 10.0))
    return fabric, LinkMonitor(fabric, period_s=1.0), LinkMonitor(fabric, period_s=1.0)


def _both(ref: LinkMonitor, arr: LinkMonitor, layout: PortLayout, tx, rx, dur, now: float) -> int:
    got = feed_by_switch(ref, layout, tx, rx, dur, now)
    assert arr.ingest_ports(layout, tx, rx, dur, now) == got
    assert_same_state(ref, arr)
    return got


def test_values_beyond_int64_are_exact_and_deltas_beyond_2_53_round_alike():
    """Counters near 2**64 (list, object and uint64 input) and huge deltas (no max_util).

    Deltas stay below 2**63: ``ingest`` itself cannot store a larger one
    (``latest_bytes`` is int64), and no link sends 8 EB in one poll.
    """
    fabric = Fabric.from_spec(fat_tree(2, 10.0))
    layout = PortLayout((s, sorted(fabric.port(s, n) for n in fabric.graph.neighbors(s)))
                        for s in fabric.switches())
    assert len(layout) == 10
    steps = [
        [1, 2**62, 2**63 - 5, 2**64 - 10, 7, 2**53 - 1, 2**53 + 1, 0, 2**63, 12345],
        [1 + 2**60 + 12345, 2**63 - 2, 2**63 + 7, 2**64 - 2, UINT64_MAX, 2**53 + 3, 2**54, -1,
         2**63 + 2**62, 12345 + 2**55],
        [5, 2**64 - 3, 2**63 + 7, 2**64 - 2, 2**62, 2**53 + 3, 2**54 + 2**53, 2**63 - 1,
         2**63 + 2**62 + 1, UINT64_MAX],
    ]
    for form in ("list", "object", "uint64"):
        ref = LinkMonitor(fabric, max_util=None)
        arr = LinkMonitor(fabric, max_util=None)
        for t, vals in enumerate(steps):
            got = feed_by_switch(ref, layout, vals, vals, [float(t)] * 10, float(t))
            assert arr.ingest_ports(layout, as_input(vals, form), as_input(vals, form), float(t), float(t)) == got
            assert_same_state(ref, arr)
        assert ref.stats.unavailable > 0 and ref.stats.resets > 0
        assert np.nanmax(ref.history(ref.links(), 2)) > 1e9     # the huge deltas were samples


@pytest.mark.parametrize("form", ["list", "object", "uint64"])
def test_counter_jumping_from_zero_past_int64_is_implausible_in_both(form):
    fabric = Fabric.from_spec(fat_tree(2, 10.0))
    layout = PortLayout([("e0_0", [1, 2])])
    ref, arr = LinkMonitor(fabric), LinkMonitor(fabric)
    for t, vals in enumerate([[0, 0], [2**63 + 5, 2**64 - 2], [2**63 + 6, 2**64 - 2]]):
        got = feed_by_switch(ref, layout, vals, vals, [math.nan] * 2, float(t))
        assert arr.ingest_ports(layout, as_input(vals, form), as_input(vals, form), math.nan, float(t)) == got
        assert_same_state(ref, arr)
    assert ref.stats.implausible == 3 and len(ref.utilization()) == 3


def test_duplicate_switch_or_port_in_a_layout_goes_switch_by_switch(pair):
    fabric, ref, arr = pair
    sw = "e0_0"
    ports = sorted(fabric.port(sw, n) for n in fabric.graph.neighbors(sw))
    twice = PortLayout([(sw, ports), ("a0_0", [1]), (sw, ports)])
    port_twice = PortLayout([(sw, ports + ports[:1])])
    for t in range(4):
        for layout in (twice, port_twice):
            m = len(layout)
            now = 2.0 * t + (layout is port_twice)
            tx = [1000 * (t + 1) * (r + 1) for r in range(m)]
            _both(ref, arr, layout, tx, tx, [now + r * 0.1 for r in range(m)], now)


def test_unknown_switches_and_ports_are_counted_and_ignored_alike(pair):
    fabric, ref, arr = pair
    layout = PortLayout([("nosuch", [1, 2]), ("e0_0", [99, 3]), ("other", [])])
    for t in range(3):
        _both(ref, arr, layout, [5, 6, 7, 8], [1, 2, 3, 4], [math.nan] * 4, float(t))
    assert arr.stats.unknown_switch == 6
    _both(ref, arr, PortLayout([]), [], [], [], 4.0)


def test_bad_input_is_refused(pair):
    _, _, arr = pair
    layout = PortLayout([("e0_0", [1, 2])])
    with pytest.raises(TypeError):
        arr.ingest_ports(layout, np.array([1.0, 2.0]), [1, 2], math.nan, 0.0)
    with pytest.raises(TypeError):
        arr.ingest_ports(layout, [1, 2.5], [1, 2], math.nan, 0.0)
    with pytest.raises(ValueError):
        arr.ingest_ports(layout, [1, 2, 3], [1, 2], math.nan, 0.0)
    with pytest.raises(ValueError):
        arr.ingest_ports(layout, np.array([1, 2, 3]), [1, 2], math.nan, 0.0)
    with pytest.raises(ValueError):
        arr.ingest_ports(layout, [1, 2], [1, 2], [0.0, 1.0, 2.0], 0.0)


def test_replay_control_loop_matches_the_per_switch_feed():
    """``ControlLoop.observe`` over a real simulation gives the per-switch monitor state."""
    from controller.replay import ControlLoop
    from controller.scenarios import Shape, bursts
    from controller.sim import Simulator

    fabric = Fabric.from_spec(fat_tree(4, 1000.0))
    loop = ControlLoop(fabric, "reactive", poll_interval_s=1.0)
    ref = LinkMonitor(fabric, history=loop.monitor.history_len, period_s=1.0)
    seen = {"ticks": 0}

    def hook(view):
        if seen["ticks"] == 5:              # a failure mid-run: a link down, then back
            fabric.set_link_up("a0_0", "c0", False)
        if seen["ticks"] == 8:
            fabric.set_link_up("a0_0", "c0", True)
        now = view.now_s
        cum = view.cumulative_bytes()
        if seen["ticks"] == 0:              # the controller was there before the trace: every counter 0 at t=0
            for switch, ports, tx, rx in view.switch_ports():
                ref.ingest(switch, [PortCounters(p, 0, 0, 0.0) for p in ports], 0.0)
        for switch, ports, tx, rx in view.switch_ports():
            ref.ingest(switch, [PortCounters(p, cum[a], cum[b], now) for p, a, b in zip(ports, tx, rx)], now)
        measured, forecast = loop.observe(view)
        assert_same_state(ref, loop.monitor)
        # the tick's measured utilization, read as a dict: the monitor's, item for item, in its order
        assert list(measured.items()) == list(ref.utilization().items())
        seen["ticks"] += 1
        return loop.decide(view, measured, forecast)

    flows = sorted(bursts(Shape(4, 1000.0, 1), iterations=8), key=lambda f: (f.start_s, f.flow_id))
    Simulator(fabric, flows, poll_interval_s=1.0, hook=hook).run()
    assert seen["ticks"] > 10

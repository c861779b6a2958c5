"""PollScheduler: spread, one outstanding request per switch, missed polls; time is driven by the test."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.poller import Due, PollScheduler, start_offset

SWITCHES = ["c0", "c1", "a0_0", "a0_1", "e0_0", "e0_1"]


def run(sched: PollScheduler, until: float, step: float = 0.05, reply: bool = True):
    """Drive time forward; reply instantly if ``reply``. Returns [(t, Due)]."""
    out = []
    t = 0.0
    while t <= until + 1e-9:
        for d in sched.due(t):
            out.append((t, d))
            if reply:
                sched.replied(d.switch, t)
        t = round(t + step, 6)
    return out


def test_interval_must_be_positive():
    for bad in (0, -1, float("nan"), "1"):
        with pytest.raises(ValueError, match="poll interval"):
            PollScheduler(["s1"], bad)


def test_start_is_spread_deterministically_over_one_interval():
    offsets = [start_offset(s, 1.0) for s in SWITCHES]
    assert all(0 <= o < 1.0 for o in offsets)
    assert len(set(offsets)) == len(SWITCHES)
    assert offsets == [start_offset(s, 1.0) for s in SWITCHES]
    sched = PollScheduler(SWITCHES, 1.0)
    first = {}
    for t, d in run(sched, 0.999, step=0.001):
        first.setdefault(d.switch, t)
    assert set(first) == set(SWITCHES)
    assert len(set(first.values())) > 1


def test_each_switch_polled_once_per_interval_without_drift():
    sched = PollScheduler(SWITCHES, 0.5)
    polls = run(sched, 10.0)
    for s in SWITCHES:
        times = [t for t, d in polls if d.switch == s]
        assert len(times) in (20, 21)
        gaps = {round(b - a, 6) for a, b in zip(times, times[1:])}
        assert gaps <= {0.5, 0.45, 0.55}   # 0.05 s step quantisation only
    assert sched.missed_total() == 0


def test_unanswered_request_counts_one_missed_poll_and_is_replaced_not_queued():
    sched = PollScheduler(["s1"], 1.0, spread=False)
    assert sched.due(0.0) == [Due("s1", False)]
    assert sched.outstanding("s1")
    assert sched.due(0.5) == []
    assert sched.due(1.0) == [Due("s1", True)]       # previous never answered
    assert sched.missed == {"s1": 1}
    assert sched.replied("s1", 1.2) == pytest.approx(0.2)
    assert not sched.outstanding("s1")
    assert sched.replied("s1", 1.3) is None          # late duplicate: nothing outstanding
    assert sched.unexpected == {"s1": 1}
    assert sched.due(2.0) == [Due("s1", False)]
    assert sched.missed == {"s1": 1}


def test_falling_behind_skips_slots_instead_of_bursting():
    sched = PollScheduler(["s1"], 1.0, spread=False)
    sched.due(0.0)
    sched.replied("s1", 0.1)
    assert sched.due(5.5) == [Due("s1", False)]
    assert sched.due(5.9) == []
    assert sched.next_due_s() == pytest.approx(6.0)


def test_add_and_remove_switches():
    sched = PollScheduler([], 1.0, spread=False)
    assert sched.next_due_s() is None
    sched.add("s1", 10.0)
    assert sched.due(10.0) == [Due("s1", False)]
    sched.remove("s1")
    assert sched.due(20.0) == []
    assert sched.replied("s1", 20.0) is None
    sched.add("s1", 30.0)                           # reconnect: fresh state, totals kept
    assert sched.due(30.0) == [Due("s1", False)]
    assert sched.due(31.0) == [Due("s1", True)]
    sched.remove("s1")
    sched.add("s1", 40.0)
    assert not sched.outstanding("s1")
    assert sched.missed["s1"] == 1
    assert sched.switches() == ["s1"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 3.0), st.booleans()), min_size=1, max_size=40))
def test_never_more_than_one_outstanding_and_misses_match(events):
    """Over arbitrary time steps and replies: at most one outstanding request,
    and every due-with-outstanding is exactly one missed poll."""
    sched = PollScheduler(["a", "b", "c"], 0.7)
    now = 0.0
    misses = 0
    for dt, answer in events:
        now += dt
        for d in sched.due(now):
            misses += d.missed
            assert sched.outstanding(d.switch)
            assert sched.next_due_s() is not None and sched.next_due_s() > now - 1e-9
        if answer:
            for s in sched.switches():
                sched.replied(s, now)
    assert sched.missed_total() == misses

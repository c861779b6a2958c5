"""Hedera's demand estimator on the cases of its paper and a few hand-computed ones."""
import pytest

from controller.demand import estimate_demands

CAP = {h: 1.0 for h in "ABCDEFGH"}


def test_one_flow_per_host_takes_the_whole_link():
    assert estimate_demands([(1, "A", "B"), (2, "C", "D")], CAP) == {1: 1.0, 2: 1.0}


def test_sender_splits_its_link():
    d = estimate_demands([(1, "A", "B"), (2, "A", "C"), (3, "A", "D")], CAP)
    assert all(v == pytest.approx(1 / 3) for v in d.values())


def test_receiver_limits_and_leaves_room_for_sender_limited_flow():
    # A sends to X and Y (1/2 each); B, C send to X only. X: A's 1/2 is sender-limited?
    # X gets A(1/2) + B(1) + C(1) > 1: share 1/3 each < 1/2, so all three are receiver-limited at 1/3;
    # A's other flow to Y then rises to 2/3.
    flows = [(1, "A", "X"), (2, "A", "Y"), (3, "B", "X"), (4, "C", "X")]
    d = estimate_demands(flows, dict(CAP, X=1.0, Y=1.0))
    assert d[1] == pytest.approx(1 / 3) and d[3] == pytest.approx(1 / 3) and d[4] == pytest.approx(1 / 3)
    assert d[2] == pytest.approx(2 / 3)


def test_hedera_paper_example_sums_fit_every_host():
    # four senders each to two receivers, crossing (the paper's Fig. 7 shape)
    flows = [(i, s, r) for i, (s, r) in enumerate(
        [("A", "E"), ("A", "F"), ("B", "E"), ("B", "G"), ("C", "E"), ("C", "H"), ("D", "H")])]
    d = estimate_demands(flows, CAP)
    for host in "ABCDEFGH":
        assert sum(v for (i, s, r), v in zip(flows, [d[f[0]] for f in flows]) if host in (s, r)) <= 1 + 1e-9
    assert d[6] == pytest.approx(0.5)  # D's only flow shares H with C's second flow

"""The compiled fair-share kernel gives the numpy reference's rates, bit for bit."""
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from controller import fairshare
from controller.fabric import Fabric
from controller.sim import Simulator
from mininet_topos.fattree_spec import fat_tree
from controller.flowtrace import TraceFlow

numba = pytest.importorskip("numba", reason="Numba is not installed: the compiled kernel is not in use")
# without the compiled kernels max_min_rates is the numpy reference: these tests would compare it with itself
needs_jit = pytest.mark.skipif(not fairshare.COMPILED,
                               reason="the compiled kernels are off (SIDESTEP_NO_JIT is set)")


def _problem(rng, n_flows, n_links, width, capped):
    rows = rng.integers(0, n_links, size=(n_flows, width))
    rows[:, 2:][rng.random((n_flows, width - 2)) < 0.4] = n_links     # shorter paths: padded
    caps = rng.choice([1.0, 2.5, 10.0, 40.0], size=n_links) * rng.choice([1.0, 1.0 / 3.0], size=n_links)
    fcap = np.where(rng.random(n_flows) < capped, rng.uniform(0.05, 3.0, n_flows), np.inf)
    return rows, caps, fcap


@pytest.mark.skipif(bool(os.environ.get("SIDESTEP_NO_JIT")), reason="SIDESTEP_NO_JIT is set")
def test_the_kernel_is_compiled_when_numba_is_installed():
    assert fairshare.COMPILED


@needs_jit
@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n_flows=st.integers(1, 60), n_links=st.integers(1, 12),
       width=st.integers(2, 6), capped=st.sampled_from([0.0, 0.3, 1.0]))
def test_compiled_equals_numpy_bitwise(seed, n_flows, n_links, width, capped):
    rows, caps, fcap = _problem(np.random.default_rng(seed), n_flows, n_links, width, capped)
    fast = fairshare.max_min_rates(rows, caps, fcap)
    ref = fairshare.max_min_rates_numpy(rows, caps, fcap)
    assert fast.tobytes() == ref.tobytes()


@needs_jit
@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n_flows=st.integers(1, 40), n_links=st.integers(1, 8),
       width=st.integers(2, 5))
def test_compiled_equals_numpy_bitwise_with_zero_and_infinite_capacities(seed, n_flows, n_links, width):
    """Links of capacity 0 or inf and caps of 0: levels of 0 and inf reach the loops.

    Every flow keeps a finite limit (a finite link or a cap); a flow with none would
    get an infinite rate and turn its links' levels into NaN, whose sign bit the two
    implementations need not agree on.
    """
    rng = np.random.default_rng(seed)
    rows, _, fcap = _problem(rng, n_flows, n_links, width, 0.5)
    caps = rng.choice([0.0, 1.0, 3.0, np.inf], size=n_links)
    fcap[rng.random(n_flows) < 0.2] = 0.0
    finite_link = np.append(np.isfinite(caps), False)[rows].any(axis=1)
    fcap[~finite_link & ~np.isfinite(fcap)] = 2.0
    fast = fairshare.max_min_rates(rows, caps, fcap)
    ref = fairshare.max_min_rates_numpy(rows, caps, fcap)
    assert fast.tobytes() == ref.tobytes()


@needs_jit
def test_compiled_equals_numpy_on_a_large_problem():
    # k=8 sized: 1,000 flows over 768 links, many distinct fill levels and ties
    rows, caps, fcap = _problem(np.random.default_rng(7), 1000, 768, 6, 0.2)
    fast = fairshare.max_min_rates(rows, caps, fcap)
    ref = fairshare.max_min_rates_numpy(rows, caps, fcap)
    assert fast.tobytes() == ref.tobytes()
    assert (fast > 0).all()


@needs_jit
def test_replays_row_width_has_its_own_compiled_copy_with_the_same_bits():
    """Rows 6 wide (replay's) go to the copy compiled for that width; both copies give the reference's bits."""
    rows, caps, fcap = _problem(np.random.default_rng(11), 400, 96, 6, 0.2)
    ref = fairshare.max_min_rates_numpy(rows, caps, fcap)
    fast, ok_fast = fairshare._fill_fast(rows, caps, fcap)
    general, ok_general = fairshare._fill_any(rows, caps, fcap)
    assert ok_fast and ok_general
    assert fast.tobytes() == ref.tobytes() == general.tobytes()
    assert fairshare._FAST_WIDTH == rows.shape[1]
    # without caps (every generated trace) the copy that carries none: the same bits as the capped copy
    no_caps = np.full(len(rows), np.inf)
    ref = fairshare.max_min_rates_numpy(rows, caps, no_caps)
    uncapped, ok_uncapped = fairshare._fill_fast_uncapped(rows, caps, no_caps)
    capped, _ = fairshare._fill_fast(rows, caps, no_caps)
    assert ok_uncapped
    assert uncapped.tobytes() == ref.tobytes() == capped.tobytes()
    assert fairshare.max_min_rates(rows, caps, no_caps).tobytes() == ref.tobytes()
    narrow = rows[:, :4]
    assert fairshare.max_min_rates(narrow, caps, fcap).tobytes() == \
        fairshare.max_min_rates_numpy(narrow, caps, fcap).tobytes()


@needs_jit
@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n_flows=st.integers(1, 60), n_used=st.integers(1, 12),
       width=st.integers(2, 6), capped=st.sampled_from([0.0, 0.3, 1.0]), odd_caps=st.booleans())
def test_few_flows_on_many_links_take_the_sparse_kernel_with_the_same_bits(seed, n_flows, n_used, width, capped,
                                                                          odd_caps):
    """Flows crossing a few of 2,000 links are solved on those links, renumbered: the reference's bits."""
    rng = np.random.default_rng(seed)
    rows, caps, fcap = _problem(rng, n_flows, n_used, width, capped)
    n_links = 2000
    ids = np.append(rng.choice(n_links, size=n_used, replace=False), n_links)     # pad stays the pad
    rows = ids[rows]
    all_caps = rng.choice([1.0, 7.0], size=n_links)
    all_caps[ids[:-1]] = caps
    if odd_caps:
        all_caps[ids[:-1][rng.random(n_used) < 0.3]] = 0.0
        all_caps[ids[:-1][rng.random(n_used) < 0.2]] = np.inf
        finite_link = np.append(np.isfinite(all_caps), False)[rows].any(axis=1)
        fcap[~finite_link & ~np.isfinite(fcap)] = 2.0
    assert rows.size * fairshare._SPARSE_RATIO < n_links        # the dispatch takes the sparse kernel
    ref = fairshare.max_min_rates_numpy(rows, all_caps, fcap)
    assert fairshare.max_min_rates(rows, all_caps, fcap).tobytes() == ref.tobytes()
    local_rows, local_caps = fairshare._compact_jit(rows, all_caps)
    assert local_caps.tolist() == [all_caps[l] for l in dict.fromkeys(rows[rows != n_links].tolist())]
    assert ((local_rows == len(local_caps)) == (rows == n_links)).all()      # the pad is the new pad


def test_a_flow_with_nothing_to_limit_it_is_refused_by_both():
    rows = np.array([[1, 1]])      # only the pad link, no cap
    for solve in (fairshare.max_min_rates, fairshare.max_min_rates_numpy):
        with pytest.raises(fairshare.FairShareError, match="no finite-capacity link"):
            solve(rows, np.array([5.0]), None)


@needs_jit
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n_chains=st.integers(1, 40), incremental=st.booleans(),
       k=st.sampled_from([4, 8]))
def test_a_replay_is_the_same_with_either_solver(seed, n_chains, incremental, k):
    """Every event's re-solve (threshold, partial or full solve, link totals) agrees bit for bit.

    At k=8 (768 links) fewer than 32 flows in flight take the sparse kernels
    (links scanned only where flows cross), more take the dense ones.
    """
    fabric = Fabric.from_spec(fat_tree(k, 1000.0))
    hosts = sorted(fabric.hosts(), key=lambda h: int(h[1:]))
    rng = np.random.default_rng(seed)
    flows = []
    for c in range(n_chains):       # closed-loop chains: completions and arrivals at many instants
        for j in range(5):
            src, dst = rng.choice(len(hosts), size=2, replace=False)
            flows.append(TraceFlow("c%d_%d" % (c, j), float(rng.uniform(0, 0.5)) if j == 0 else 0.0,
                                   hosts[src], hosts[dst], float(rng.uniform(1e6, 2e7)),
                                   deps=("c%d_%d" % (c, j - 1),) if j else (),
                                   rate_bps=3e8 if j % 2 else None))
    fast = Simulator(fabric, flows, seed=0, incremental=incremental).run()
    ref = Simulator(fabric, flows, seed=0, incremental=incremental, compiled=False).run()
    assert [(r.start_s, r.finish_s, r.path) for r in fast.flows] == \
        [(r.start_s, r.finish_s, r.path) for r in ref.flows]
    assert fast.interval_bytes.tobytes() == ref.interval_bytes.tobytes()

"""Fair-share solver against hand-computed cases, and the event loop's timing rules."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from controller.ecmp import FiveTuple, ecmp_choice
from controller.fabric import Fabric
from controller.flowtrace import TraceFlow
from controller.fairshare import max_min_rates
from controller.sim import PathChange, SimError, Simulator, big_switch_fabric, ephemeral_port, five_tuple
from mininet_topos.fattree_spec import fat_tree

INF = np.inf


def rates(paths, caps, flow_cap=None):
    pad = len(caps)
    width = max(len(p) for p in paths)
    rows = np.full((len(paths), width), pad)
    for i, p in enumerate(paths):
        rows[i, :len(p)] = p
    return max_min_rates(rows, np.asarray(caps, float), None if flow_cap is None else np.asarray(flow_cap, float))


def test_one_bottleneck():
    # three flows through link 0 (cap 9): 3 each; link 1 is roomy
    assert rates([[0, 1], [0, 1], [0]], [9, 100]).tolist() == [3, 3, 3]


def test_two_bottlenecks():
    # f0: L0; f1: L0,L1; f2: L1.  L0 cap 10, L1 cap 4 -> L1 fills first at 2 each, f0 gets the rest of L0
    assert rates([[0], [0, 1], [1]], [10, 4]).tolist() == [8, 2, 2]


def test_chain_of_bottlenecks():
    # f0: L0,L1; f1: L1,L2; f2: L2. caps 1, 10, 3 -> f0=1 (L0), f1=f2=1.5 (L2), L1 carries 2.5
    assert rates([[0, 1], [1, 2], [2]], [1, 10, 3]).tolist() == [1, 1.5, 1.5]


def test_host_link_limits_one_flow():
    # f0 from a slow host link (cap 2) shares core link L1 (cap 10) with f1: f0=2, f1=8
    assert rates([[0, 1], [2, 1]], [2, 10, 100]).tolist() == [2, 8]


def test_rate_caps():
    # cap 1 on f0 frees the rest of the shared link for f1
    assert rates([[0], [0]], [10], [1, INF]).tolist() == [1, 9]
    # a cap above the fair share does nothing
    assert rates([[0], [0]], [10], [7, INF]).tolist() == [5, 5]


def _reference(paths, caps, fcap):
    """Textbook progressive filling, one level at a time (slow, obviously right)."""
    n = len(paths)
    rate = np.zeros(n)
    frozen = np.zeros(n, bool)
    rem = np.asarray(caps, float).copy()
    while not frozen.all():
        act = [i for i in range(n) if not frozen[i]]
        cnt = np.zeros(len(caps))
        for i in act:
            for l in paths[i]:
                cnt[l] += 1
        share = min([rem[l] / cnt[l] for l in range(len(caps)) if cnt[l]] + [fcap[i] - rate[i] for i in act])
        for i in act:
            rate[i] += share
        rem -= share * cnt
        for i in act:
            if rate[i] >= fcap[i] - 1e-9 or any(rem[l] <= 1e-9 * caps[l] for l in paths[i]):
                frozen[i] = True
    return rate


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_matches_reference(data):
    n_links = data.draw(st.integers(1, 6))
    caps = data.draw(st.lists(st.integers(1, 20), min_size=n_links, max_size=n_links))
    paths = data.draw(st.lists(st.lists(st.integers(0, n_links - 1), min_size=1, max_size=3, unique=True),
                               min_size=1, max_size=8))
    fcap = data.draw(st.lists(st.one_of(st.just(INF), st.integers(1, 10).map(float)),
                              min_size=len(paths), max_size=len(paths)))
    got = rates(paths, caps, fcap)
    assert np.allclose(got, _reference(paths, caps, fcap), rtol=1e-7)
    load = np.zeros(n_links)
    for p, r in zip(paths, got):
        load[p] += r
    assert (load <= np.asarray(caps) * (1 + 1e-9)).all()


# ---------------------------------------------------------------- event loop
MBPS = 8.0  # 1e6 bytes/s per link: sizes in MB are seconds at full rate


@pytest.fixture(scope="module")
def fabric():
    return Fabric.from_spec(fat_tree(4, MBPS))


def run(fabric, flows, **kw):
    res = Simulator(fabric, flows, **kw).run()
    return res, {r.flow_id: r for r in res.flows}


def test_sharing_a_host_link(fabric):
    flows = [TraceFlow("a", 0.0, "h1", "h2", 1e6), TraceFlow("b", 0.0, "h1", "h3", 2e6)]
    _, r = run(fabric, flows)
    assert r["a"].finish_s == pytest.approx(2.0)   # both at 0.5 MB/s until a is done
    assert r["b"].finish_s == pytest.approx(3.0)   # then b alone at 1 MB/s for its last 1 MB


def test_a_quantum_finishes_nearby_completions_together_at_the_old_rates(fabric):
    """Three flows share h1's 1 MB/s link.  Exact: a at 2.25 s (1/3 MB/s each), b's last 0.01 MB at
    0.5 MB/s by 2.27 s, c's last 0.74 MB alone by 3.01 s.  With a 0.05 s quantum, b (due at 2.28 s at
    the old rate) joins a's event, which ends at 2.28 s: a is recorded at 2.25 s, when its bytes were
    done, b at 2.28 s (0.01 s late: it kept 1/3 MB/s), and c's last 0.74 MB ends at 3.02 s.
    (A control tick also ends a window: none falls in this one.)"""
    flows = [TraceFlow("a", 0.0, "h1", "h2", 0.75e6), TraceFlow("b", 0.0, "h1", "h3", 0.76e6),
             TraceFlow("c", 0.0, "h1", "h4", 1.5e6)]
    exact, r = run(fabric, flows)
    assert [r[f].finish_s for f in "abc"] == pytest.approx([2.25, 2.27, 3.01])
    batched, q = run(fabric, flows, quantum_s=0.05)
    assert [q[f].finish_s for f in "abc"] == pytest.approx([2.25, 2.28, 3.02])
    uplink = batched.links.index(("h1", fabric.host_edge("h1")[0]))
    for res in (exact, batched):     # what a finished early is not counted as sent: 3.01 MB either way
        assert res.interval_bytes[:, uplink].sum() == pytest.approx(3.01e6)
    narrow, n = run(fabric, flows, quantum_s=0.02)   # b is due 0.03 s after a: outside, so exact
    assert [n[f].finish_s for f in "abc"] == [r[f].finish_s for f in "abc"]
    assert narrow.interval_bytes.tobytes() == exact.interval_bytes.tobytes()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), quantum=st.sampled_from([0.001, 0.01, 0.05, 0.3]))
def test_a_quantum_keeps_every_byte_and_is_late_by_little(seed, quantum):
    """Random chains at k=4: the same bytes on every link; the mean completion time moves by less
    than the quantum (a flow's own completion waits at most that long; knock-on effects are small)."""
    fab = Fabric.from_spec(fat_tree(4, 1000.0))
    rng = np.random.default_rng(seed)
    hosts = ["h%d" % i for i in range(1, 17)]
    flows = []
    for c in range(20):
        prev = None
        for j in range(4):
            a, b = rng.choice(16, size=2, replace=False)
            fid = "c%d.%d" % (c, j)
            flows.append(TraceFlow(fid, float(rng.uniform(0, 0.5)) if prev is None else 0.0, hosts[a], hosts[b],
                                   float(rng.uniform(1e6, 5e7)), deps=(prev,) if prev else ()))
            prev = fid
    exact = Simulator(fab, flows, seed=1).run()
    sim = Simulator(fab, flows, seed=1, quantum_s=quantum)
    approx = sim.run()
    assert np.allclose(approx.interval_bytes.sum(axis=0), exact.interval_bytes.sum(axis=0), rtol=1e-9, atol=1e-3)
    fct = lambda res: np.mean([r.finish_s - r.start_s for r in res.flows])
    assert abs(fct(approx) - fct(exact)) < quantum
    assert all(np.isfinite(r.finish_s) for r in approx.flows)


def test_a_bad_quantum_is_refused(fabric):
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="quantum"):
            Simulator(fabric, [], quantum_s=bad)


def test_rate_cap_and_start_time(fabric):
    _, r = run(fabric, [TraceFlow("a", 1.5, "h1", "h16", 1e6, rate_bps=4e6)])
    assert r["a"].start_s == 1.5 and r["a"].finish_s == pytest.approx(3.5)


def test_dependencies_and_gap(fabric):
    flows = [TraceFlow("a", 0.0, "h1", "h2", 1e6),
             TraceFlow("b", 0.0, "h3", "h4", 2e6),
             TraceFlow("c", 0.5, "h5", "h6", 1e6, deps=("a", "b"), gap_s=0.25),   # last dep at 2 -> 2.25
             TraceFlow("d", 5.0, "h5", "h6", 1e6, deps=("a",), gap_s=0.25)]      # start_s dominates
    _, r = run(fabric, flows)
    assert r["c"].start_s == pytest.approx(2.25) and r["c"].finish_s == pytest.approx(3.25)
    assert r["d"].start_s == pytest.approx(5.0)


def test_ecmp_path_and_counters(fabric):
    f = TraceFlow("a", 0.0, "h1", "h16", 3e6, src_port=1234, dst_port=80)
    res, r = run(fabric, [f])
    assert r["a"].path == ecmp_choice(FiveTuple("h1", "h16", 6, 1234, 80), fabric.paths("h1", "h16"))
    i = res.links.index(("h1", "e0_0"))
    assert res.interval_bytes[:, i].sum() == pytest.approx(3e6)
    assert res.utilization()[:, i].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_reroute_pins_connection(fabric):
    five = FiveTuple("h1", "h16", 6, 4000, 4001)
    flows = [TraceFlow("i0", 0.0, "h1", "h16", 3e6, src_port=4000, dst_port=4001, job="j", iter=0, cls="training"),
             TraceFlow("i1", 0.0, "h1", "h16", 1e6, src_port=4000, dst_port=4001, job="j", iter=1,
                       cls="training", deps=("i0",), gap_s=1.0)]
    first = ecmp_choice(five, fabric.paths("h1", "h16"))
    other = next(p for p in fabric.paths("h1", "h16") if p != first)
    seen = []

    def hook(view):
        seen.append([(c.flow_id, c.in_flight, c.demand_bps) for c in view.connections])
        return [PathChange(five, other)] if view.now_s == 1.0 else []
    res, r = run(fabric, flows, hook=hook)
    assert r["i0"].path == other and r["i1"].path == other and res.reroutes == 1
    # between bursts (t=4: i0 done at 3, i1 starts at 4) the idle connection is shown with its last burst's rate
    assert seen[0] == [("i0", True, 8e6)]
    assert ("i0", False, pytest.approx(8e6)) in [tuple(x) for x in seen[2]]


def test_a_connection_gets_ecmp_path_of_the_fabric_at_its_first_start():
    """Paths are picked before the run; a link change in a tick re-picks those of connections not started."""
    from controller.sim import SimError
    fab = Fabric.from_spec(fat_tree(4, MBPS))
    five = FiveTuple("h1", "h16", 6, 7000, 80)
    before = ecmp_choice(five, fab.paths("h1", "h16"))
    fab.set_link_up("h5", "e1_0", False)           # h5 unreachable when the run starts
    flows = [TraceFlow("late", 2.5, "h1", "h16", 1e6, src_port=7000, dst_port=80),
             TraceFlow("back", 2.5, "h5", "h1", 1e6, src_port=7001, dst_port=80)]

    def hook(view):
        if view.now_s == 1.0:
            fab.set_link_up(before[2], before[3], False)   # the agg -> core hop of late's first choice
            fab.set_link_up("h5", "e1_0", True)
        return []
    _, r = run(fab, flows, hook=hook)
    after = ecmp_choice(five, fab.paths("h1", "h16"))
    assert after != before and r["late"].path == after
    assert r["back"].path == ecmp_choice(FiveTuple("h5", "h1", 6, 7001, 80), fab.paths("h5", "h1"))
    fab.set_link_up("h5", "e1_0", False)            # never back: its first start reports it, as before
    with pytest.raises(SimError, match="flow back: no path from h5 to h1"):
        run(fab, flows[1:])


def test_connections_are_routed_a_few_dependency_depths_ahead(fabric):
    """A replay stopped early has routed only the connections near what it reached; a full one, every
    flow on its ECMP path."""
    flows = [TraceFlow("c%d_%d" % (c, j), 0.0, "h%d" % (1 + c), "h%d" % (16 - c), 1e6, src_port=9000 + c,
                       dst_port=100 + j, deps=("c%d_%d" % (c, j - 1),) if j else ())
             for c in range(4) for j in range(20)]             # 4 chains of 1 s flows, a connection each
    asked = []

    def count(sim):
        bulk = sim._paths.ecmp_paths
        sim._paths.ecmp_paths = lambda fives: asked.extend(fives) or bulk(fives)
        return sim

    class Stop(Exception):
        pass

    def stop(t, done, total):
        if t >= 3.0:
            raise Stop
    sim = count(Simulator(fabric, flows, progress=stop))
    with pytest.raises(Stop):
        sim.run()
    started = int((sim.start_s == sim.start_s).sum())
    assert 4 <= started < len(flows) // 4
    assert len(asked) == len(set(asked)) and started <= len(asked) <= 2 * started
    asked.clear()
    res, r = run(fabric, flows)
    for f in flows:
        five = FiveTuple(f.src, f.dst, 6, f.src_port, f.dst_port)
        assert r[f.flow_id].path == ecmp_choice(five, fabric.paths(f.src, f.dst))


def test_bad_path_from_controller_is_an_error(fabric):
    from controller.sim import SimError
    flows = [TraceFlow("a", 0.0, "h1", "h16", 3e6, src_port=1, dst_port=2)]
    with pytest.raises(SimError, match="bad path"):
        Simulator(fabric, flows, hook=lambda v: [PathChange(FiveTuple("h1", "h16", 6, 1, 2), ("h1", "h16"))]).run()


def test_ideal_is_limited_by_host_links_only(fabric):
    big = big_switch_fabric(fabric)
    flows = [TraceFlow("f%d" % i, 0.0, "h%d" % i, "h%d" % (i % 16 + 1), 1e6) for i in range(1, 17)]
    _, r = run(big, flows)
    assert all(x.finish_s == pytest.approx(1.0) for x in r.values())


def test_deterministic_and_seeded_ports(fabric):
    flows = [TraceFlow("f%d" % i, 0.1 * i, "h%d" % (i % 16 + 1), "h%d" % ((i + 5) % 16 + 1), 1e6 + i * 1e5)
             for i in range(40)]
    a = [(r.flow_id, r.start_s, r.finish_s, r.path) for r in Simulator(fabric, flows, seed=3).run().flows]
    b = [(r.flow_id, r.start_s, r.finish_s, r.path) for r in Simulator(fabric, flows, seed=3).run().flows]
    assert a == b
    assert five_tuple(flows[0], 3).src_port == ephemeral_port(3, "f0") != ephemeral_port(4, "f0")


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_incremental_resolve_matches_full_resolve(fabric, data):
    """Re-solving only the flows at or above refill_threshold gives the rates of a full re-solve."""
    n = data.draw(st.integers(2, 40))
    hosts = ["h%d" % i for i in range(1, 17)]
    flows = []
    for i in range(n):
        src, dst = data.draw(st.lists(st.sampled_from(hosts), min_size=2, max_size=2, unique=True))
        dep = data.draw(st.sampled_from([None] + [f.flow_id for f in flows[-3:]]))
        flows.append(TraceFlow("f%d" % i, data.draw(st.sampled_from([0.0, 0.5, 1.25, 3.0])), src, dst,
                               data.draw(st.floats(1e5, 5e6)),
                               rate_bps=data.draw(st.sampled_from([None, None, 2e6, 5e6])),
                               deps=(dep,) if dep else (), gap_s=0.1 if dep else 0.0))
    fast = Simulator(fabric, flows, seed=1).run()
    full = Simulator(fabric, flows, seed=1, incremental=False).run()
    for a, b in zip(fast.flows, full.flows):
        assert a.start_s == pytest.approx(b.start_s, rel=1e-9, abs=1e-9)
        assert a.finish_s == pytest.approx(b.finish_s, rel=1e-9, abs=1e-9)
    assert np.allclose(fast.interval_bytes, full.interval_bytes, rtol=1e-9, atol=1e-3)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_batched_slot_updates_match_one_by_one(data):
    """add_many/remove_many leave the in-flight arrays exactly as add/remove one at a time do
    (slot order feeds the solver, so it must not change)."""
    from controller.sim import _Slots
    n = 30
    a, b = _Slots(n, 6, 99), _Slots(n, 6, 99)
    free = list(range(n))
    for _ in range(data.draw(st.integers(1, 6))):
        ids = data.draw(st.lists(st.sampled_from(free), unique=True, max_size=12)) if free else []
        rows = np.arange(len(ids) * 6).reshape(len(ids), 6) % 99
        rem = np.arange(len(ids), dtype=float) + 1.0
        cap = np.where(np.arange(len(ids)) % 2 == 0, np.inf, 3.0)
        for i, row, r, c in zip(ids, rows, rem, cap):
            a.add(i, row, r, c)
        if ids:
            b.add_many(ids, rows, rem, cap)
        free = [i for i in free if i not in ids]
        gone = sorted(data.draw(st.lists(st.integers(0, max(a.m - 1, 0)), unique=True, max_size=a.m)))
        gone = [s for s in gone if s < a.m]
        a.rate[:a.m] = b.rate[:b.m] = np.arange(a.m, dtype=float)
        for s in reversed(gone):
            a.remove(s)
        if gone:
            b.remove_many(gone)
        assert a.m == b.m
        for name in ("flow", "links", "rem", "rate", "fcap", "new"):
            assert np.array_equal(getattr(a, name)[:a.m], getattr(b, name)[:b.m]), name
        assert np.array_equal(a.slot_of, b.slot_of)


def test_dependency_groups_start_flows_at_their_rule(fabric):
    """Flows that share a deps tuple share one countdown: each still starts at
    max(start_s, last dependency's finish + gap_s), with repeated and shared dependencies."""
    rng = np.random.default_rng(7)
    flows = []
    for i in range(60):
        ids = [f.flow_id for f in flows[-6:]]
        k = int(rng.integers(0, min(len(ids), 3) + 1))
        deps = tuple(rng.choice(ids, size=k, replace=True)) if k else ()
        if i % 4 == 3:                      # same deps tuple as the previous flow
            deps = flows[-1].deps
        flows.append(TraceFlow("f%d" % i, float(rng.choice([0.0, 0.5, 2.0])), "h%d" % (i % 16 + 1),
                               "h%d" % ((i + 3) % 16 + 1), float(rng.uniform(1e5, 2e6)),
                               deps=deps, gap_s=float(rng.choice([0.0, 0.3]))))
    _, r = run(fabric, flows)
    for f in flows:
        ready = max([r[d].finish_s for d in f.deps], default=-np.inf)
        assert r[f.flow_id].start_s == pytest.approx(max(f.start_s, ready + f.gap_s), abs=1e-9)


def test_run_sets_the_heap_aside_from_the_gc_and_restores_it(fabric):
    import gc

    seen = []

    def progress(t, done, total):
        seen.append(gc.get_freeze_count())

    flows = [TraceFlow("a", 0.0, "h1", "h16", 3e6)]
    assert gc.get_freeze_count() == 0
    Simulator(fabric, flows, progress=progress).run()
    assert seen and min(seen) > 0            # frozen during the replay
    assert gc.get_freeze_count() == 0        # and given back
    gc.freeze()                              # someone else's freeze is left alone
    try:
        frozen = gc.get_freeze_count()
        Simulator(fabric, flows).run()
        assert 0 < gc.get_freeze_count() <= frozen   # not unfrozen (freed objects leave it)
    finally:
        gc.unfreeze()
    with pytest.raises(Exception):           # also given back when the replay fails
        Simulator(fabric, [TraceFlow("a", 0.0, "h1", "h16", 3e6)], hook=lambda view: 1 / 0).run()
    assert gc.get_freeze_count() == 0


def test_run_collects_during_the_events_not_the_setup_and_restores_the_collector(fabric):
    """The collector is off while the trace is indexed, on for the events, and as it was after."""
    import gc

    seen = []
    flows = [TraceFlow("a", 0.0, "h1", "h16", 3e6), TraceFlow("b", 0.5, "h2", "h15", 3e6)]

    def hook(view):
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        return []

    assert gc.isenabled()
    Simulator(fabric, flows, hook=hook, poll_interval_s=0.01).run()
    assert seen and all(on for on, _ in seen) and gc.isenabled()
    gc.disable()                             # a caller's choice to run without it is kept
    try:
        seen.clear()
        Simulator(fabric, flows, hook=hook, poll_interval_s=0.01).run()
        assert seen and not any(on for on, _ in seen) and not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(SimError, match="flow 'a' \\(number 1 of the trace\\) depends on flow_id 'nope'"):   # a failing setup
        Simulator(fabric, [TraceFlow("b", 0.0, "h2", "h15", 3e6),
                           TraceFlow("a", 0.0, "h1", "h16", 3e6, deps=("b", "nope"))]).run()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_connections_are_numbered_in_five_tuple_order():
    """``_key_order`` is the sort of the key tuples, plain integers or not."""
    import random

    from controller.sim import _key_order

    rnd = random.Random(7)
    for trial in range(200):
        hosts = ["h%d" % rnd.randint(1, 30) for _ in range(5)] + ["a", "b10", "b9"]
        odd = [6, 17, True, 6.5, 2 ** 70] if trial % 5 == 0 else [6, 17]
        keys = list({(rnd.choice(hosts), rnd.choice(hosts), rnd.choice(odd), rnd.randint(0, 70000),
                      rnd.randint(0, 5)) for _ in range(rnd.randint(0, 60))})
        assert _key_order(keys).tolist() == sorted(range(len(keys)), key=keys.__getitem__)

"""The simulator's per-event steps and trace indexing give their references' results, bit for bit.

Each compiled step (``sim_kernels.advance``, ``retire``, ``admit``) is checked as plain
Python (its source) and, with Numba, compiled, against the numpy code it
replaces; the indexing helpers against the flow-by-flow loop they replaced.
"""
from typing import Dict, List, Tuple

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from controller import sim_kernels
from controller.ecmp import FiveTuple
from controller.fabric import Fabric
from controller.flowtrace import TraceFlow
from controller.sim import (PathChange, SimError, Simulator, _Slots, _conn_keys, _connections,
                            _dependency_depth, _dependency_groups, ephemeral_port)
from mininet_topos.fattree_spec import fat_tree

ADVANCE = [sim_kernels.advance] + ([sim_kernels.advance_jit] if sim_kernels.advance_jit is not None else [])
RETIRE = [sim_kernels.retire] + ([sim_kernels.retire_jit] if sim_kernels.retire_jit is not None else [])
ADMIT = [sim_kernels.admit] + ([sim_kernels.admit_jit] if sim_kernels.admit_jit is not None else [])

_SPECIAL = [0.0, -0.0, 1e-7, 5e-7, 1e-6, 2e-6, -1e-9, 1.0, 1e9, np.inf]


def _values(rng: np.random.Generator, m: int, nan: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Bytes to go and rates with the edge cases: zero rates, ties, barely finished, huge, NaN."""
    rem = rng.uniform(0.0, 1e6, m)
    rate = rng.uniform(0.0, 1e9, m)
    pick = rng.random(m)
    rem[pick < 0.2] = rng.choice(_SPECIAL[:-1], size=int((pick < 0.2).sum()))
    rate[pick > 0.8] = rng.choice([0.0, 1.0, 1e-3, 8e6, 1e13], size=int((pick > 0.8).sum()))
    if m > 3:                                   # ties for the next completion
        rem[1], rate[1] = rem[3], rate[3]
    if nan and m:
        (rem if rng.random() < 0.5 else rate)[int(rng.integers(m))] = np.nan
    return rem, rate


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), m=st.integers(0, 40), nan=st.booleans(),
       t_arr=st.sampled_from([None, "now", "inf"]), t=st.sampled_from([0.0, 0.25, 3.0]),
       quantum=st.sampled_from([0.0, 1e-3, 0.05, 2.0]))
def test_advance_equals_the_numpy_step(seed, m, nan, t_arr, t, quantum):
    rng = np.random.default_rng(seed)
    rem, rate = _values(rng, m, nan)
    size = m + int(rng.integers(0, 5))          # arrays longer than the flows in flight, as in _Slots
    rem = np.concatenate([rem, rng.uniform(0, 1e6, size - m)])
    rate = np.concatenate([rate, rng.uniform(0, 1e9, size - m)])
    link_rate = rng.uniform(0, 1e10, 7)
    link_bytes = rng.uniform(0, 1e12, 7)
    arr = {None: t + float(rng.uniform(0, 0.01)), "now": t, "inf": np.inf}[t_arr]
    next_tick = float(np.floor(t) + 1.0)
    with np.errstate(all="ignore"):
        out = [np.full(size + 1, -7, dtype=np.int64) for _ in range(1 + len(ADVANCE))]
        state = [(rem.copy(), link_bytes.copy()) for _ in out]
        got = [sim_kernels.advance_numpy(t, arr, next_tick, m, state[0][0], rate, state[0][1], link_rate, out[0], quantum)]
        for k, step in enumerate(ADVANCE, start=1):
            got.append(step(t, arr, next_tick, m, state[k][0], rate, state[k][1], link_rate, out[k], quantum))
    t_ref, n_ref = got[0]
    for (t_next, n_fin), fin, (r, lb) in zip(got[1:], out[1:], state[1:]):
        assert n_fin == n_ref
        if n_ref < 0:       # a stall: nothing advanced
            assert not np.isfinite(t_next)
        else:
            assert np.float64(t_next).tobytes() == np.float64(t_ref).tobytes()
            assert fin[:n_fin].tolist() == out[0][:n_ref].tolist()
        assert r.tobytes() == state[0][0].tobytes()
        assert lb.tobytes() == state[0][1].tobytes()


@pytest.mark.parametrize("step", ADVANCE)
def test_advance_takes_the_first_of_tied_flows(step):
    """Late in a long replay ``t + eta`` can round to ``t``: then only the flow that set the
    time finishes, the first of equals (np.argmin's choice), though its bytes to go are above
    the finish threshold."""
    rem = np.array([9.0, 5e-3, 5e-3, 5e-3, 7.0])
    rate = np.array([1e9, 1e9, 1e9, 1e9, 1e9])
    for fn in (sim_kernels.advance_numpy, step):
        fin = np.zeros(5, dtype=np.int64)
        t_next, n_fin = fn(1e6, np.inf, 1e6 + 1.0, 5, rem.copy(), rate, np.zeros(1), np.zeros(1), fin, 0.0)
        assert t_next == 1e6 and fin[:n_fin].tolist() == [1]


def _filled(rng: np.random.Generator, n: int, m: int, width: int, pad: int) -> _Slots:
    slots = _Slots(n, width, pad)
    ids = rng.permutation(n)[:m].tolist()
    rows = rng.integers(0, pad + 1, size=(m, width))
    slots.add_many(ids, rows, rng.uniform(1, 1e6, m), np.where(rng.random(m) < 0.5, np.inf, 3e6))
    slots.rate[:m] = rng.uniform(0, 1e9, m)
    slots.new[:m] = rng.random(m) < 0.3
    return slots


def _same_slots(a: _Slots, b: _Slots) -> None:
    assert a.m == b.m
    for name in ("flow", "links", "rem", "rate", "fcap", "new"):
        assert getattr(a, name)[:a.m].tobytes() == getattr(b, name)[:b.m].tobytes(), name
    assert a.slot_of.tobytes() == b.slot_of.tobytes()


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), m=st.integers(1, 90), k=st.integers(1, 12))
def test_retire_equals_remove_many(seed, m, k):
    """Same removed flows (sorted), rows and rates, same slot layout and link counts."""
    rng = np.random.default_rng(seed)
    n, width, pad = 120, 6, 20
    fin_slots = np.sort(rng.choice(m, size=min(k, m), replace=False)).astype(np.int64)
    ref = _filled(np.random.default_rng(seed), n, m, width, pad)
    count_ref = np.full(pad + 1, 50, dtype=np.int64)
    want = ref.retire(fin_slots, count_ref, None)
    for kernel in RETIRE:
        got_slots = _filled(np.random.default_rng(seed), n, m, width, pad)
        count = np.full(pad + 1, 50, dtype=np.int64)
        got = got_slots.retire(fin_slots, count, kernel)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        _same_slots(got_slots, ref)
        assert count.tobytes() == count_ref.tobytes()


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), m=st.integers(0, 70), k=st.integers(1, 70))
def test_admit_equals_add_many(seed, m, k):
    """The arrivals' slots (growing the arrays), link counts, per-connection counts and starts."""
    rng = np.random.default_rng(seed)
    n, width, pad, n_conns = 200, 6, 20, 15
    cid_of_flow = rng.integers(0, n_conns, n)
    conn_rows = rng.integers(0, pad + 1, size=(n_conns, width))
    size_of = rng.uniform(1, 1e9, n)
    fcap_of = np.where(rng.random(n) < 0.5, np.inf, 2e6)
    ref = _filled(np.random.default_rng(seed), n, m, width, pad)
    free = np.flatnonzero(ref.slot_of < 0)
    arrived = rng.permutation(free)[:k].tolist()
    t = 1.25

    def state():
        return np.zeros(pad + 1, dtype=np.int64), np.zeros(n_conns, dtype=np.int64), np.full(n, np.nan)
    count_ref, inflight_ref, start_ref = state()
    cids = cid_of_flow[arrived]        # the numpy arrival code of Simulator._run
    rows = conn_rows[cids]
    ref.add_many(arrived, rows, size_of[arrived], fcap_of[arrived])
    np.add.at(count_ref, rows.ravel(), 1)
    start_ref[arrived] = t
    np.add.at(inflight_ref, cids, 1)
    for kernel in ADMIT:
        got = _filled(np.random.default_rng(seed), n, m, width, pad)
        count, inflight, start = state()
        got.reserve(len(arrived))
        kernel(np.array(arrived, dtype=np.int64), t, got.m, got.flow, got.links, got.rem, got.rate, got.fcap,
               got.new, got.slot_of, cid_of_flow, conn_rows, size_of, fcap_of, count, inflight, start)
        got.m += len(arrived)
        _same_slots(got, ref)
        assert count.tobytes() == count_ref.tobytes()
        assert inflight.tobytes() == inflight_ref.tobytes()
        assert start.tobytes() == start_ref.tobytes()


def test_the_slot_marks_of_new_flows_move_with_their_slots():
    """``new`` (the solver's is_new) follows a flow whose slot is refilled by the last one."""
    slots = _Slots(10, 2, 9)
    slots.add_many([4, 5, 6], np.zeros((3, 2), dtype=np.int64), np.ones(3), np.full(3, np.inf))
    slots.new[:3] = [False, False, True]
    slots.remove(0)                      # flow 6 (new) moves into slot 0
    assert slots.flow[:2].tolist() == [6, 5] and slots.new[:2].tolist() == [True, False]


# ---------------------------------------------------------------------------
# trace indexing: the flow-by-flow loop it replaced is the reference
# ---------------------------------------------------------------------------
def _groups_one_by_one(flows: List[TraceFlow]):
    index_of = {f.flow_id: i for i, f in enumerate(flows)}
    group_of: Dict[Tuple[str, ...], int] = {}
    members: List[List[int]] = []
    left: List[int] = []
    waiting: Dict[int, List[int]] = {}
    for i, f in enumerate(flows):
        deps = f.deps
        if deps:
            if type(deps) is not tuple:
                deps = tuple(deps)
            g = group_of.get(deps)
            if g is None:
                g = group_of[deps] = len(members)
                members.append([i])
                left.append(len(deps))
                for d in deps:
                    waiting.setdefault(index_of[d], []).append(g)
            else:
                members[g].append(i)
    ptr = [0]
    groups: List[int] = []
    for i in range(len(flows)):
        groups += waiting.get(i, [])
        ptr.append(len(groups))
    roots = [i for i, f in enumerate(flows) if not f.deps]
    return members, left, ptr, groups, roots


def _conns_one_by_one(flows: List[TraceFlow], seed: int):
    by_key: Dict[tuple, list] = {}
    first_of: List[tuple] = []
    for f in flows:
        sp = f.src_port if f.src_port is not None else ephemeral_port(seed, f.flow_id)
        key = (f.src, f.dst, f.proto, sp, f.dst_port or 0)
        if key not in by_key:
            by_key[key] = [f.cls, 0]
        by_key[key][1] += 1
        first_of.append(key)
    order = sorted(by_key)
    cid = {key: c for c, key in enumerate(order)}
    return order, [by_key[k] for k in order], [cid[k] for k in first_of]


def _random_trace(rng: np.random.Generator, n: int) -> List[TraceFlow]:
    flows: List[TraceFlow] = []
    shared: Tuple[str, ...] = ()
    for j in range(n):
        earlier = [f.flow_id for f in flows]
        roll = rng.random()
        if not earlier or roll < 0.25:
            deps: object = ()
        elif roll < 0.45 and shared:
            deps = shared                                       # a group of several flows
        elif roll < 0.55:
            deps = [str(d) for d in rng.choice(earlier, size=int(rng.integers(1, 3)))]   # as a list
        else:
            deps = tuple(str(d) for d in rng.choice(earlier, size=int(rng.integers(1, 4))))  # repeats possible
            shared = deps
        src, dst = rng.choice(["h1", "h2", "h3", "h9"], size=2, replace=False)
        flows.append(TraceFlow("f%d" % j, float(rng.uniform(0, 2)), str(src), str(dst), 1e6,
                               cls="training" if rng.random() < 0.5 else "background",
                               src_port=None if rng.random() < 0.3 else int(rng.integers(1000, 1003)),
                               dst_port=[None, 0, 5000, 5001][int(rng.integers(4))],
                               deps=deps))
    return flows


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(0, 60))
def test_dependency_groups_equal_the_loop_they_replaced(seed, n):
    flows = _random_trace(np.random.default_rng(seed), n)
    members, left, ptr, groups, roots = _groups_one_by_one(flows)
    index_of = dict(zip([f.flow_id for f in flows], range(n)))
    got = _dependency_groups([f.deps for f in flows], index_of)
    assert got[0] == members
    assert got[1].tolist() == left and got[1].dtype == np.int64
    assert got[2].tolist() == ptr and got[2].dtype == np.int64
    assert got[3].tolist() == groups and got[3].dtype == np.int64
    assert got[4].tolist() == roots


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(0, 60))
def test_connections_equal_the_loop_they_replaced(seed, n):
    flows = _random_trace(np.random.default_rng(seed), n)
    keys, cls_pending, cid_of_flow = _conns_one_by_one(flows, seed=3)
    order, cids, cid_of_key = _connections(flows, _conn_keys(flows, [f.flow_id for f in flows], 3))
    assert [c.five for c in order] == [FiveTuple(*k) for k in keys]
    assert [[c.cls, c.pending] for c in order] == cls_pending
    assert [c.cid for c in order] == list(range(len(keys)))
    assert cids.tolist() == cid_of_flow and cids.dtype == np.int64
    assert cid_of_key == {k: c for c, k in enumerate(keys)}


def _depths(flows):
    index_of = {f.flow_id: i for i, f in enumerate(flows)}
    members, left, ptr, groups, roots = _dependency_groups([f.deps for f in flows], index_of)
    member_ptr = np.concatenate([[0], np.cumsum([len(m) for m in members])]).astype(np.int64)
    flat = np.array([i for m in members for i in m], dtype=np.int64)
    return _dependency_depth(roots, ptr, groups, left, member_ptr, flat).tolist()


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(0, 60))
def test_dependency_depth_is_one_more_than_the_deepest_dep(seed, n):
    flows = _random_trace(np.random.default_rng(seed), n)
    want: Dict[str, int] = {}
    for f in flows:                      # deps are earlier flows in these traces
        want[f.flow_id] = 1 + max((want[d] for d in f.deps), default=-1)
    assert _depths(flows) == [want[f.flow_id] for f in flows]


def test_dependency_depth_of_a_cycle_is_minus_one():
    flows = [TraceFlow("a", 0.0, "h1", "h2", 1e6, deps=("b",)), TraceFlow("b", 0.0, "h1", "h2", 1e6, deps=("a",)),
             TraceFlow("c", 0.0, "h1", "h2", 1e6, deps=("a", "d")), TraceFlow("d", 0.0, "h1", "h2", 1e6),
             TraceFlow("e", 0.0, "h1", "h2", 1e6, deps=("d", "d"))]
    assert _depths(flows) == [-1, -1, -1, 0, 1]


def test_a_flow_with_unknown_dependency_is_refused():
    flows = [TraceFlow("a", 0.0, "h1", "h2", 1e6, deps=("nope",))]
    with pytest.raises(SimError, match="flow 'a' \\(number 0 of the trace\\) depends on flow_id 'nope'"):
        _dependency_groups([f.deps for f in flows], {"a": 0})


class _OtherFive(FiveTuple):
    pass


@pytest.mark.parametrize("five", [FiveTuple("h1", "h2", 6, 1000, 5000), _OtherFive("h1", "h2", 6, 1001, 5000)])
def test_a_controller_moving_an_unknown_connection_is_refused(five):
    """Also another type with an open connection's fields: it is not equal to its FiveTuple."""
    fabric = Fabric.from_spec(fat_tree(4, 10.0))
    flows = [TraceFlow("a", 0.0, "h1", "h2", 5e6, src_port=1001, dst_port=5000)]
    path = fabric.paths("h1", "h2")[0]

    def hook(view):
        return [PathChange(five, path)]
    with pytest.raises(SimError, match="unknown connection"):
        Simulator(fabric, flows, hook=hook).run()


@pytest.mark.skipif(sim_kernels.run_events_jit is None, reason="Numba not installed or SIDESTEP_NO_JIT set")
@pytest.mark.parametrize("scenario, policy, quantum", [("bursts", "reactive", 0.0), ("multijob", "predictive", 0.0),
                                                       ("collide", "ecmp", 0.0), ("bursts", "reactive", 0.05),
                                                       ("multijob", "ecmp", 0.02)])
def test_runs_of_events_in_one_call_equal_the_event_loop(scenario, policy, quantum, monkeypatch):
    """Ring steps whose channels finish one by one (released only by the last), moved connections,
    background arrivals: the compiled run of the events between ticks (``_run_events``: completions,
    releases and the flows they start) gives the numpy event loop's replay, every start, finish,
    path, interval byte and count; with a quantum too (flows that finish early within a batch)."""
    from controller import scenarios
    from controller.replay import make_hook

    flows = scenarios.generate(scenario, k=4, link_mbps=1000.0, seed=3, load=0.1)
    events_per_call: List[int] = []
    starts_per_call: List[int] = []
    kernel = sim_kernels.run_events_jit

    def counted(*args):
        got = kernel(*args)
        starts_per_call.append(got[4])
        events_per_call.append(got[6])
        return got
    monkeypatch.setattr(sim_kernels, "run_events_jit", counted)
    results = []
    for compiled in (True, False):
        fabric = Fabric.from_spec(fat_tree(4, 1000.0))
        hook = None if policy == "ecmp" else make_hook(policy, fabric, poll_interval_s=1.0)
        simulator = Simulator(fabric, flows, seed=3, hook=hook, compiled=compiled, quantum_s=quantum)
        results.append((simulator.run(), simulator.solves, simulator.resolved_flows))
    (fast, fast_solves, fast_resolved), (ref, ref_solves, ref_resolved) = results
    assert [(r.start_s, r.finish_s, r.path) for r in fast.flows] == [(r.start_s, r.finish_s, r.path) for r in ref.flows]
    assert fast.interval_bytes.tobytes() == ref.interval_bytes.tobytes()
    assert (fast.reroutes, fast.events, fast_solves, fast_resolved) == (ref.reroutes, ref.events, ref_solves,
                                                                        ref_resolved)
    assert max(events_per_call) >= 3         # runs of several events did happen in one call
    assert max(starts_per_call) >= 1         # and flows released in them started there
    if policy != "ecmp":
        assert fast.reroutes > 0
    if quantum:      # fewer events than exact: batches that ended after some of their flows finished
        fabric = Fabric.from_spec(fat_tree(4, 1000.0))
        hook = None if policy == "ecmp" else make_hook(policy, fabric, poll_interval_s=1.0)
        assert fast.events < Simulator(fabric, flows, seed=3, hook=hook).run().events


@pytest.mark.skipif(sim_kernels.run_events_jit is None, reason="Numba not installed or SIDESTEP_NO_JIT set")
def test_a_completion_at_an_arrival_or_a_tick_ends_the_compiled_run():
    """Flows alone on their host links run at exactly 1 Gbit/s: f1 ends at 0.5 s when f2 arrives, f3
    at the 1 s tick.  The event loop handles each instant as one event with one re-solve, so the
    compiled run must stop there too (the counts would differ otherwise)."""
    flows = [TraceFlow("f1", 0.0, "h1", "h2", 62.5e6), TraceFlow("f2", 0.5, "h3", "h4", 1e6),
             TraceFlow("f3", 0.0, "h5", "h6", 125e6), TraceFlow("f4", 0.0, "h7", "h8", 250e6)]
    runs = []
    for compiled in (True, False):
        simulator = Simulator(Fabric.from_spec(fat_tree(4, 1000.0)), flows, seed=0, compiled=compiled)
        result = simulator.run()
        runs.append(([(r.start_s, r.finish_s) for r in result.flows], result.events, simulator.solves))
    assert runs[0][0][:3] == [(0.0, 0.5), (0.5, 0.5 + 8e6 / 1e9), (0.0, 1.0)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("compiled", [
    False, pytest.param(True, marks=pytest.mark.skipif(sim_kernels.heap_push_jit is sim_kernels.heap_push,
                                                       reason="Numba not installed or SIDESTEP_NO_JIT set"))])
@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0])), max_size=80))
def test_the_array_heap_pops_in_heapqs_order(compiled, ops):
    """Pushes (with tied times) and pops interleaved: the same (time, flow) sequence as heapq."""
    import heapq
    push, pop = (sim_kernels.heap_push_jit, sim_kernels.heap_pop_jit) if compiled else (sim_kernels.heap_push, sim_kernels.heap_pop)
    heap_t, heap_i = np.empty(len(ops)), np.empty(len(ops), dtype=np.int64)
    n = 0
    ref: List = []
    got, want = [], []
    for flow, (is_push, t) in enumerate(ops):
        if is_push or not ref:
            n = push(heap_t, heap_i, n, t, flow)
            heapq.heappush(ref, (t, flow))
        else:
            t_top, i_top, n = pop(heap_t, heap_i, n)
            got.append((float(t_top), int(i_top)))
            want.append(heapq.heappop(ref))
    while ref:
        t_top, i_top, n = pop(heap_t, heap_i, n)
        got.append((float(t_top), int(i_top)))
        want.append(heapq.heappop(ref))
    assert got == want and n == 0

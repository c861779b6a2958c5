"""ArrayPlanner gives plan_reroutes' answer (same moves, order and reasons) or declines with None."""
from __future__ import annotations

import math
import random
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.ecmp import FiveTuple
from controller.fabric import path_links
from controller.plan_arrays import ArrayPlanner, _round9, _round9_jit
from controller.paths import EqualCostPaths
from controller.planner import ActiveFlow, PlannerConfig, plan_reroutes

from test_planner import CAP, KINDS, fat, make_fabric, noisy_loads, random_flows

from controller.plan_arrays import _greedy_jit

COMPILED = [False] + ([True] if _greedy_jit is not None else [])   # plain kernels are checked too


def _next_up(x: float) -> float:
    return struct.unpack("<d", struct.pack("<q", struct.unpack("<q", struct.pack("<d", x))[0] + 1))[0]


def _next_down(x: float) -> float:
    return struct.unpack("<d", struct.pack("<q", struct.unpack("<q", struct.pack("<d", x))[0] - 1))[0]


def _arrays(fab, flows):
    links = fab.directed_links()
    lid = {link: i for i, link in enumerate(links)}
    width = max(len(f.path) - 1 for f in flows)
    rows = np.full((len(flows), width), len(links), dtype=np.int64)
    for k, f in enumerate(flows):
        ids = [lid[link] for link in path_links(f.path)]
        rows[k, :len(ids)] = ids
    rates = np.array([f.rate_bps for f in flows], dtype=float)
    training = np.array([f.cls == "training" for f in flows])
    order = np.array(sorted(range(len(flows)), key=lambda k: flows[k].flow_id), dtype=np.int64)
    return links, rows, rates, training, order


def _plan(fab, flows, measured, predicted, config, planner=None, compiled=None):
    links, rows, rates, training, order = _arrays(fab, flows)
    planner = planner or ArrayPlanner(fab, EqualCostPaths(fab), config, links, compiled=compiled)
    meas = np.array([measured.get(l, math.nan) for l in links], dtype=float)
    forecast = None if predicted is None else np.array([predicted.get(l, math.nan) for l in links])
    util = planner.planning_util(meas, forecast, rows, rates, order)
    return planner.plan(rows, rates, training, order, util, lambda k: flows[k], forecast=predicted is not None)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.floats(0.0, 4194303.0), st.integers(0, 4_000_000_000).map(lambda n: (n + 0.5) / 1e9),
                 st.integers(0, 4_000_000).map(lambda n: n / 1e6)))
def test_round9_is_pythons_round(x):
    """Ties and near-ties of the 9th decimal included (N + 1/2) / 1e9 and its neighbours."""
    for v in (x, _next_up(x), _next_down(x) if x > 0 else x):
        assert _round9(v) == round(v, 9)
        assert _round9_jit(v) == round(v, 9)


def test_round9_declines_outside_its_range():
    for v in (-1e-3, 4194304.0, math.inf, math.nan):
        assert math.isnan(_round9(v)) and math.isnan(_round9_jit(v))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=KINDS, seed=st.integers(0, 10 ** 6), n=st.integers(1, 40),
       policy=st.sampled_from(["reactive", "predictive"]), budget=st.integers(0, 6),
       move_bg=st.booleans(), hysteresis=st.sampled_from([0.0, 0.1, 0.3]),
       joint=st.sampled_from([0, 2000]), elephant=st.sampled_from([None, 0.2 * CAP]),
       dirty=st.booleans(), compiled=st.sampled_from(COMPILED))
def test_same_answer_as_plan_reroutes(kind, seed, n, policy, budget, move_bg, hysteresis, joint, elephant,
                                      dirty, compiled):
    fab = make_fabric(kind, seed)
    rnd = random.Random(seed)
    flows = random_flows(fab, rnd, n, ecmp=rnd.random() < 0.5)
    measured = noisy_loads(fab, flows, rnd)
    predicted = {l: rnd.random() * 1.5 for l in rnd.sample(fab.directed_links(), 4)}
    if dirty:           # what the planner drops or clips: NaN, negative, missing
        links = fab.directed_links()
        measured[links[0]] = math.nan
        measured[links[-1]] = -0.5
        measured.pop(links[len(links) // 2], None)
        predicted[links[1]] = math.nan
    config = PlannerConfig(policy=policy, max_reroutes_per_tick=budget, move_background=move_bg,
                           hysteresis=hysteresis, joint_search_nodes=joint, elephant_bps=elephant)
    got = _plan(fab, flows, measured, predicted if policy == "predictive" else None, config,
                compiled=compiled)
    ref = plan_reroutes(fab, flows, measured, predicted if policy == "predictive" else None, config)
    assert got is not None        # every flow is on one of its pair's paths, every link up
    assert got == ref


@pytest.mark.parametrize("compiled", COMPILED)
@pytest.mark.parametrize("policy", ["reactive", "predictive"])
@pytest.mark.parametrize("k", [4, 8])
def test_same_moves_on_busy_fat_trees(policy, k, compiled):
    """Many elephants on ECMP paths of a fat-tree: rounds that move flows and that run the joint search."""
    fab = fat(k)
    rnd = random.Random(k)
    moved = 0
    planner = None
    for tick in range(12):
        flows = random_flows(fab, rnd, 12 * k, ecmp=True)
        flows = [ActiveFlow(f.flow_id, f.five, f.path, rnd.choice([0.2, 0.4, 0.6]) * CAP, "training")
                 for f in flows]
        measured = noisy_loads(fab, flows, rnd)
        predicted = {l: rnd.random() for l in fab.directed_links()} if policy == "predictive" else None
        config = PlannerConfig(policy=policy)
        links = fab.directed_links()
        planner = planner or ArrayPlanner(fab, EqualCostPaths(fab), config, links, compiled=compiled)
        got = _plan(fab, flows, measured, predicted, config, planner)
        ref = plan_reroutes(fab, flows, measured, predicted, config)
        assert got == ref
        moved += len(ref)
    assert moved > 0


@pytest.mark.parametrize("compiled", COMPILED)
def test_a_flow_off_its_pairs_equal_cost_paths_is_left_to_plan_reroutes(compiled):
    fab = fat(4)
    src, dst = "h1", "h2"                       # same edge switch: one equal-cost path
    edge = fab.paths(src, dst)[0][1]
    agg = next(n for n in fab.graph.neighbors(edge) if fab.is_switch(n))
    detour = (src, edge, agg, edge, dst)          # a valid walk, but not a shortest path
    flows = [ActiveFlow("f0", FiveTuple(src, dst, 6, 1, 2), detour, 0.9 * CAP)]
    measured = {link: 0.95 for link in path_links(detour)}
    assert _plan(fab, flows, measured, None, PlannerConfig(policy="reactive"), compiled=compiled) is None


@pytest.mark.parametrize("policy,scenario,seed", [("reactive", "bursts", 0), ("predictive", "bursts", 1),
                                                  ("reactive", "collide", 0), ("predictive", "collide", 3)])
@pytest.mark.skipif(_greedy_jit is None, reason="replay uses ArrayPlanner only compiled (Numba not in use)")
def test_replay_rounds_go_through_the_array_planner_with_the_same_answer(policy, scenario, seed):
    """In a replay every planning round is answered by ArrayPlanner, and plan_reroutes agrees each time."""
    from controller.fabric import Fabric
    from controller.replay import ControlLoop, PersistencePredictor
    from controller.scenarios import generate
    from controller.sim import Simulator
    from mininet_topos.fattree_spec import fat_tree

    fabric = Fabric.from_spec(fat_tree(4, 1000.0))
    loop = ControlLoop(fabric, policy, poll_interval_s=1.0,
                       predictor=PersistencePredictor(1.0) if policy == "predictive" else None)
    moves = []
    fast_calls = [0]

    def hook(view):
        measured, forecast = loop.observe(view)
        before = loop.planner_calls
        fast = loop.decide(view, measured, forecast)
        fast_calls[0] += loop.planner_calls - before
        loop.use_arrays = False
        try:
            slow = loop.decide(view, measured, forecast)
        finally:
            loop.use_arrays = True
        assert fast == slow
        moves.extend(fast)
        return fast
    Simulator(fabric, generate(scenario, 4, 1000.0, seed), seed=seed, hook=hook).run()
    assert moves
    assert fast_calls[0] > 0 and loop.array_rounds == fast_calls[0]


def test_tick_planner_arrays_equal_the_views():
    """planner_arrays' demand is each view's demand_bps (several flows in flight: summed in arrival
    order, as the view does) and its rank orders connections as their flow_ids sort."""
    from controller.fabric import Fabric
    from controller.flowtrace import TraceFlow
    from controller.sim import Simulator
    from mininet_topos.fattree_spec import fat_tree

    fabric = Fabric.from_spec(fat_tree(4, 10.0))
    rnd = random.Random(5)
    hosts = ["h%d" % i for i in range(1, 17)]
    flows = []
    for i in range(60):                     # few 5-tuples, overlapping flows: several in flight per connection
        src, dst = rnd.sample(hosts[:6], 2)
        flows.append(TraceFlow("f%02d" % rnd.randrange(100) + "_%d" % i, rnd.choice([0.0, 0.3, 0.6, 1.2]),
                               src, dst, rnd.choice([2e5, 1e6, 3e6]), src_port=7000 + rnd.randrange(2),
                               dst_port=5001, cls="training", rate_bps=rnd.choice([None, 3e6, 4e6])))
    for j, cap in enumerate([3e6, None, 1.7e6]):   # one connection with three flows in flight from t=0
        flows.append(TraceFlow("m%d" % j, 0.0, "h9", "h14", 5e6, src_port=7100, dst_port=5001, cls="training",
                               rate_bps=cap))
    seen = {"ticks": 0}

    def hook(view):
        rows, demand, training, rank = view.planner_arrays()
        conns = view.connections
        assert demand.tolist() == [c.demand_bps for c in conns]
        assert [conns[p].flow_id for p in np.argsort(rank, kind="stable")] == sorted(c.flow_id for c in conns)
        assert training.tolist() == [c.cls == "training" for c in conns]
        seen["ticks"] += 1
        return []
    Simulator(fabric, flows, seed=0, poll_interval_s=0.1, hook=hook).run()
    assert seen["ticks"] > 5


@pytest.mark.parametrize("compiled", COMPILED)
def test_the_joint_search_answer_is_the_same(compiled):
    """test_planner's local optimum: greedy stalls, the joint search moves two flows together."""
    from controller.planner import flow_demand_utilization

    fab = fat(4)
    spec = [("f0", "h2", "h8", 0.7, "c0"), ("f1", "h4", "h5", 0.7, "c2"),
            ("f2", "h3", "h7", 0.5, "c2"), ("f3", "h1", "h6", 0.5, "c0")]
    flows = [ActiveFlow(fid, FiveTuple(s, d, 6, i, 80), next(p for p in fab.paths(s, d) if p[3] == core), r * CAP)
             for i, (fid, s, d, r, core) in enumerate(spec)]
    measured = flow_demand_utilization(fab, flows)
    config = PlannerConfig(policy="reactive")
    ref = plan_reroutes(fab, flows, measured, None, config)
    assert ref and "joint" in ref[0].reason
    assert _plan(fab, flows, measured, None, config, compiled=compiled) == ref


class _ShuffledPaths:
    """A path index whose pair lists come in a given order (the compiled walk's is tuple order)."""

    def __init__(self, fab, seed):
        self.fab, self.rng = fab, random.Random(seed)

    def pair_paths(self, src, dst):
        paths = list(self.fab.paths(src, dst))
        self.rng.shuffle(paths)
        return paths


@pytest.mark.parametrize("k, shuffle", [(4, False), (4, True), (8, False), (8, True)])
def test_pair_tables_hold_each_pairs_links_positions_picks_and_ranks(k, shuffle):
    """A pair's row, against the definition: its paths' links in first-seen order, each path as
    positions into them, which positions a placement can change, and each path's rank in tuple order."""
    from controller.plan_arrays import _PairTables

    fab = fat(k)
    links = fab.directed_links()
    link_id = {link: i for i, link in enumerate(links)}
    capx = np.append(np.arange(1.0, len(links) + 1.0), np.inf)
    hosts = sorted(fab.hosts())
    index = _ShuffledPaths(fab, seed=k) if shuffle else type("Sorted", (), {
        "pair_paths": staticmethod(lambda s, d: sorted(fab.paths(s, d)))})()
    tables = _PairTables(index, link_id, len(hosts))
    pairs = [(hosts[0], hosts[1]), (hosts[0], hosts[-1]), (hosts[-1], hosts[2]), (hosts[3], hosts[len(hosts) // 2])]
    for a, b in pairs:
        tables.add(a, b, hosts.index(a), hosts.index(b), capx)
    for g, (a, b) in enumerate(pairs):
        alts = tables.paths[g]
        union = []
        for path in alts:
            for link in path_links(path):
                if link_id[link] not in union:
                    union.append(link_id[link])
        n, u = len(alts), len(union)
        assert tables.n_paths[g] == n and tables.n_union[g] == u
        assert tables.links[g, :u].tolist() == union and tables.caps[g, :u].tolist() == capx[union].tolist()
        shared = set.intersection(*(set(path_links(p)) for p in alts))
        for j, path in enumerate(alts):
            pos = [union.index(link_id[link]) for link in path_links(path)]
            assert tables.rows[g, j, :len(pos)].tolist() == pos
            assert tables.pick[g, j, :len(pos)].tolist() == [link not in shared for link in path_links(path)]
            assert tables.rank[g, j] == sorted(alts).index(path)
    assert tables.lookup(np.array([hosts.index(a) for a, _ in pairs]),
                         np.array([hosts.index(b) for _, b in pairs])).tolist() == list(range(len(pairs)))


@pytest.mark.skipif(_greedy_jit is None, reason="the compiled ECMP walk needs Numba")
@pytest.mark.parametrize("k", [4, 8])
def test_pair_tables_from_the_compiled_walk_equal_those_from_the_paths(k):
    """A pair's table built from the walk's switch numbers (no path tuples) is the one built from
    ``pair_paths``, entry for entry, and its paths, asked for later, are ``pair_paths``' list."""
    from controller.plan_arrays import _PairTables
    from controller.planner import _index_for

    fab = fat(k)
    links = fab.directed_links()
    link_id = {link: i for i, link in enumerate(links)}
    capx = np.append(np.arange(1.0, len(links) + 1.0), np.inf)
    hosts = sorted(fab.hosts())
    walked = _PairTables(_index_for(fab, EqualCostPaths(fab, compiled=True)), link_id, len(hosts))
    listed = _PairTables(type("Listed", (), {"pair_paths": staticmethod(lambda s, d: sorted(fab.paths(s, d)))})(),
                         link_id, len(hosts))
    rng = random.Random(k)
    pairs = [(a, b) for a in hosts for b in hosts if a != b]
    pairs = rng.sample(pairs, min(len(pairs), 300))
    for a, b in pairs:
        for tables in (walked, listed):
            tables.add(a, b, hosts.index(a), hosts.index(b), capx)
    assert walked.paths == [None] * len(pairs)           # no path tuples were built for the tables
    for name in ("links", "caps", "rows", "pick", "rank", "n_paths", "n_union"):
        assert np.array_equal(getattr(walked, name), getattr(listed, name)), name
    for g, (a, b) in enumerate(pairs):
        want = sorted(fab.paths(a, b))
        assert [walked.path(g, j) for j in range(len(want))] == want


@pytest.mark.parametrize("compiled", COMPILED)
@pytest.mark.parametrize("policy", ["reactive", "predictive"])
@pytest.mark.parametrize("k", [4, 8])
def test_same_moves_with_cables_down_and_no_flow_on_them(policy, k, compiled):
    """A cable down that carries no flow changes only the equal-cost paths, which both planners take
    from the fabric as it is: the same answer, and the array planner does not decline."""
    rnd = random.Random(100 + k)
    moved = 0
    for tick in range(8):
        fab = fat(k)
        switch_links = [(a, b) for a, b in fab.graph.edges if fab.is_switch(a) and fab.is_switch(b)]
        for a, b in rnd.sample(sorted(switch_links), 2):
            fab.set_link_up(a, b, False)
        flows = random_flows(fab, rnd, 12 * k, ecmp=True)        # ECMP over the surviving paths
        flows = [ActiveFlow(f.flow_id, f.five, f.path, rnd.choice([0.2, 0.4, 0.6]) * CAP, "training")
                 for f in flows]
        measured = noisy_loads(fab, flows, rnd)
        predicted = {l: rnd.random() for l in fab.directed_links()} if policy == "predictive" else None
        config = PlannerConfig(policy=policy)
        got = _plan(fab, flows, measured, predicted, config, compiled=compiled)
        ref = plan_reroutes(fab, flows, measured, predicted, config)
        assert got is not None and got == ref
        moved += len(ref)
    assert moved > 0


@pytest.mark.parametrize("policy", ["reactive", "predictive"])
@pytest.mark.skipif(_greedy_jit is None, reason="replay uses ArrayPlanner only compiled (Numba not in use)")
def test_replay_rounds_with_a_cable_down_keep_the_fast_planner_and_its_answer(policy):
    """After a failure the failed cable's connections have moved (ControlLoop.failover), none is stranded:
    every round still goes through the shortcuts and ArrayPlanner, and equals plan_reroutes with every
    connection (``decide(full=True)``)."""
    from controller.fabric import Fabric
    from controller.replay import ControlLoop, PersistencePredictor
    from controller.scenarios import generate
    from controller.sim import LinkEvent, Simulator
    from mininet_topos.fattree_spec import fat_tree

    fabric = Fabric.from_spec(fat_tree(4, 1000.0))
    loop = ControlLoop(fabric, policy, poll_interval_s=1.0,
                       predictor=PersistencePredictor(1.0) if policy == "predictive" else None)
    seen = {"down_ticks": 0, "moves": 0}

    class Hook:
        failover = staticmethod(loop.failover)

        def __call__(self, view):
            measured, forecast = loop.observe(view)
            before = loop.array_rounds
            fast = loop.decide(view, measured, forecast)
            full = loop.decide(view, measured, forecast, full=True)
            assert fast == full
            assert not loop.stranded(view)
            if not fabric.is_up("a0_0", "c0"):
                seen["down_ticks"] += 1
                seen["array_down"] = seen.get("array_down", 0) + (loop.array_rounds > before)
            seen["moves"] += len(fast)
            return fast
    events = [LinkEvent(2.5, "a0_0", "c0", False), LinkEvent(4.5, "a1_1", "c2", False)]
    result = Simulator(fabric, generate("bursts", 4, 1000.0, 0), hook=Hook(), link_events=events).run()
    assert result.failover_moves > 0 and seen["down_ticks"] > 3 and seen["moves"] > 0
    assert seen["array_down"] > 0           # rounds with the cable down answered by ArrayPlanner

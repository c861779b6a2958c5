"""Planner invariants over generated fabrics and flow sets (no exact expected paths)."""
from __future__ import annotations

import dataclasses
import random
from typing import Dict, List, Optional, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.ecmp import FiveTuple, ecmp_choice
from controller.fabric import Fabric, FabricError, path_links
from controller.paths import EqualCostPaths
from controller.planner import (ActiveFlow, PlannerConfig, PlannerError, Reroute,
                                apply_reroutes, flow_demand_utilization, plan_reroutes,
                                planning_utilization, reroute_failed_link, with_demand_floor)
from mininet_topos.fattree_spec import fat_tree

CAP = 10e6
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- fabrics ---------------------------------------------------------------------

def fat(k: int) -> Fabric:
    return Fabric.from_spec(fat_tree(k, CAP / 1e6))


def leaf_spine(rnd: random.Random) -> Fabric:
    """Leaves wired to a random, unequal subset of spines; capacities differ."""
    fab = Fabric()
    n_spine, n_leaf = rnd.randint(2, 4), rnd.randint(2, 4)
    spines = ["s%d" % i for i in range(n_spine)]
    for s in spines:
        fab.add_switch(s)
    host = 0
    for i in range(n_leaf):
        leaf = "l%d" % i
        fab.add_switch(leaf)
        ups = {spines[0]} | set(rnd.sample(spines, rnd.randint(0, n_spine)))  # s0 keeps it connected
        for port, s in enumerate(sorted(ups), start=10):
            fab.add_link(leaf, port, s, i + 1, rnd.choice([CAP, 2 * CAP, 4 * CAP]))
        for j in range(rnd.randint(1, 3)):
            host += 1
            name = "h%d" % host
            fab.add_host(name, ip="10.0.0.%d" % host)
            fab.add_link(name, 0, leaf, j + 1, CAP)
    return fab


def random_mesh(rnd: random.Random) -> Fabric:
    """A connected random switch graph (a random tree plus extra cables) with hosts."""
    fab = Fabric()
    n = rnd.randint(3, 8)
    sws = ["x%d" % i for i in range(n)]
    for s in sws:
        fab.add_switch(s)
    next_port = {s: 1 for s in sws}

    def cable(a: str, b: str) -> None:
        if fab.graph.has_edge(a, b):
            return
        fab.add_link(a, next_port[a], b, next_port[b], rnd.choice([CAP, 2 * CAP]))
        next_port[a] += 1
        next_port[b] += 1

    for i in range(1, n):
        cable(sws[i], sws[rnd.randrange(i)])
    for _ in range(rnd.randint(0, 2 * n)):
        a, b = rnd.sample(sws, 2)
        cable(a, b)
    for h in range(1, rnd.randint(3, 8) + 1):
        name = "h%d" % h
        fab.add_host(name, ip="10.0.1.%d" % h)
        sw = rnd.choice(sws)
        fab.add_link(name, 0, sw, next_port[sw], CAP)
        next_port[sw] += 1
    return fab


def make_fabric(kind: str, seed: int) -> Fabric:
    rnd = random.Random(seed)
    if kind.startswith("fat"):
        return fat(int(kind[3:]))
    if kind == "leafspine":
        return leaf_spine(rnd)
    return random_mesh(rnd)


KINDS = st.sampled_from(["fat2", "fat4", "fat6", "leafspine", "mesh"])


def random_flows(fab: Fabric, rnd: random.Random, n: int, *, ecmp: bool = False) -> List[ActiveFlow]:
    hosts = fab.hosts()
    flows = []
    for i in range(n):
        src, dst = rnd.sample(hosts, 2)
        five = FiveTuple(src, dst, 6, 10000 + i, 5001)
        alts = fab.paths(src, dst)
        path = ecmp_choice(five, alts) if ecmp else rnd.choice(alts)
        rate = rnd.choice([0.0, 0.05, 0.3, 0.5, 0.7, 0.9]) * CAP
        cls = "training" if rnd.random() < 0.7 else "background"
        flows.append(ActiveFlow("f%03d" % i, five, path, rate, cls))
    return flows


def noisy_loads(fab: Fabric, flows: Sequence[ActiveFlow], rnd: random.Random) -> Dict:
    util = flow_demand_utilization(fab, flows)
    for link in rnd.sample(fab.directed_links(), min(5, len(fab.directed_links()))):
        util[link] = util.get(link, 0.0) + rnd.random()
    return util


def apply(flows: Sequence[ActiveFlow], reroutes: Sequence[Reroute]) -> List[ActiveFlow]:
    new = {r.flow_id: r.new_path for r in reroutes}
    return [ActiveFlow(f.flow_id, f.five, new.get(f.flow_id, f.path), f.rate_bps, f.cls) for f in flows]


def check_reroutes(fab: Fabric, flows: Sequence[ActiveFlow], reroutes: Sequence[Reroute]) -> None:
    by_id = {f.flow_id: f for f in flows}
    assert len({r.flow_id for r in reroutes}) == len(reroutes), "a flow moved twice in one round"
    for r in reroutes:
        flow = by_id[r.flow_id]
        assert r.old_path == flow.path
        assert r.new_path != r.old_path
        fab.validate_path(r.new_path, flow.five.src, flow.five.dst)
        assert r.new_path in fab.paths(flow.five.src, flow.five.dst)
        assert r.reason


def reference_greedy_move(fab: Fabric, flows: Sequence[ActiveFlow], util: Dict, hot: float) -> List[Reroute]:
    """The first move of Hedera's first fit, scored link by link with no shortcuts.

    For ``reactive`` with a budget of one move, no hysteresis and no joint
    search (training flows only, utilization all plain floats): the first
    elephant in priority order whose path meets a link above ``hot`` (its share
    counted), whose bottleneck over the links a placement can change is above
    ``hot``, and whose best path -- lowest (bottleneck, sum of loads) rounded to
    9 places, then lowest path -- is another one no higher than that bottleneck.
    """
    def score(flow: ActiveFlow, path: Sequence[str], shared: set) -> tuple:
        on_old = set(path_links(flow.path))
        worst, total, where = 0.0, 0.0, None
        for link in path_links(path):
            share = flow.rate_bps / fab.capacity_bps(*link)
            u = util.get(link, 0.0)
            load = max(u, share) if link in on_old else u + share
            total += load
            if link not in shared and (where is None or load > worst):
                worst, where = load, link
        return worst, total, where

    elephants = [f for f in flows if f.rate_bps >= 0.1 * fab.capacity_bps(f.path[0], f.path[1])]
    for flow in sorted(elephants, key=lambda f: (-f.rate_bps, f.flow_id)):
        if not any(max(util.get(l, 0.0), flow.rate_bps / fab.capacity_bps(*l)) > hot
                   for l in path_links(flow.path)):
            continue
        alts = fab.paths(flow.five.src, flow.five.dst)
        if len(alts) < 2:
            continue
        shared = set.intersection(*(set(path_links(p)) for p in alts))
        cur, _, where = score(flow, flow.path, shared)
        if cur <= hot:
            continue
        keys = {p: score(flow, p, shared) for p in alts}
        best = min(alts, key=lambda p: (round(keys[p][0], 9), round(keys[p][1], 9), p))
        if best == flow.path or keys[best][0] > cur + 1e-9:
            continue
        reason = "reactive: %s->%s at %.2f (measured); new path peaks at %.2f" % (*where, cur, keys[best][0])
        return [Reroute(flow.flow_id, flow.path, best, reason)]
    return []


# -- properties ------------------------------------------------------------------

@FAST
@given(kind=KINDS, seed=st.integers(0, 10 ** 6), n=st.integers(1, 25),
       policy=st.sampled_from(["reactive", "predictive"]), cap=st.integers(0, 6),
       move_bg=st.booleans())
def test_every_new_path_is_a_valid_equal_cost_path(kind, seed, n, policy, cap, move_bg):
    fab = make_fabric(kind, seed)
    rnd = random.Random(seed)
    flows = random_flows(fab, rnd, n)
    measured = noisy_loads(fab, flows, rnd)
    predicted = {l: rnd.random() * 1.5 for l in rnd.sample(fab.directed_links(), 4)}
    config = PlannerConfig(policy=policy, max_reroutes_per_tick=cap, move_background=move_bg)
    reroutes = plan_reroutes(fab, flows, measured, predicted, config)
    check_reroutes(fab, flows, reroutes)
    assert len(reroutes) <= cap
    by_id = {f.flow_id: f for f in flows}
    for r in reroutes:
        assert move_bg or by_id[r.flow_id].cls == "training"
        assert by_id[r.flow_id].rate_bps >= 0.1 * CAP
    # Same inputs in another order: same answer.
    shuffled = list(flows)
    rnd.shuffle(shuffled)
    assert plan_reroutes(fab, shuffled, measured, predicted, config) == reroutes
    # A fast path index gives the same answer as Fabric.paths.
    assert plan_reroutes(fab, flows, measured, predicted, config, paths=EqualCostPaths(fab)) == reroutes


@FAST
@given(kind=KINDS, seed=st.integers(0, 10 ** 6), n=st.integers(1, 25))
def test_ecmp_never_reroutes(kind, seed, n):
    fab = make_fabric(kind, seed)
    rnd = random.Random(seed)
    flows = random_flows(fab, rnd, n)
    measured = {l: 5.0 for l in fab.directed_links()}
    assert plan_reroutes(fab, flows, measured, measured, PlannerConfig(policy="ecmp")) == []


def fabric_with_links_down(kind: str, seed: int, downs: int):
    """A generated fabric with ``downs`` random links down, its rng, a fresh EqualCostPaths and its hosts."""
    fab = make_fabric(kind, seed)
    rnd = random.Random(seed)
    index = EqualCostPaths(fab)
    for _ in range(downs):
        a, b = rnd.choice(sorted(fab.graph.edges()))
        fab.set_link_up(a, b, False)
    return fab, rnd, index, fab.hosts()


@FAST
@given(kind=KINDS, seed=st.integers(0, 10 ** 6), downs=st.integers(0, 3))
def test_equal_cost_paths_match_fabric_paths(kind, seed, downs):
    fab, rnd, index, hosts = fabric_with_links_down(kind, seed, downs)
    for _ in range(10):
        src, dst = rnd.sample(hosts, 2)
        try:
            want = fab.paths(src, dst)
        except FabricError:
            with pytest.raises(FabricError):
                index(src, dst)
            continue
        assert index(src, dst) == want


@FAST
@given(kind=KINDS, seed=st.integers(0, 10 ** 6), downs=st.integers(0, 3), warm=st.booleans())
def test_ecmp_path_is_the_hash_choice_over_fabric_paths(kind, seed, downs, warm):
    """ecmp_path picks by path counts without building the pair's paths (or from them once built)."""
    fab, rnd, index, hosts = fabric_with_links_down(kind, seed, downs)
    fives, wants = [], []
    for i in range(30):
        src, dst = rnd.sample(hosts, 2)
        five = FiveTuple(src, dst, 6, rnd.randrange(1024, 65535), rnd.choice([80, 5001]))
        fives.append(five)
        try:
            want = ecmp_choice(five, fab.paths(src, dst))
        except FabricError:
            wants.append(None)
            with pytest.raises(FabricError):
                index.ecmp_path(five)
            continue
        wants.append(want)
        if warm and i % 2:
            index(src, dst)              # the pair's segments built: the other route
        assert index.ecmp_path(five) == want
    # in bulk (None: no path), on this index's caches and on a new one's
    assert index.ecmp_paths(fives) == wants
    assert EqualCostPaths(fab).ecmp_paths(fives) == wants


@pytest.mark.parametrize("down", [None, ("a1_0", "c0")])
def test_ecmp_paths_builds_the_segments_of_busy_edge_pairs_only_and_picks_the_same(down):
    """Bulk picks index the segments of pairs with many connections and walk the others; same paths."""
    fab = Fabric.from_spec(fat_tree(8, 1000.0))
    if down:
        fab.set_link_up(*down, False)
    # h1 sits on e0_0 and h17 on e1_0: 16 equal-cost segments between them (fewer with the link down)
    busy = [FiveTuple("h1", "h17", 6, 20000 + i, 5001) for i in range(4)]     # 8 * 4 >= 16: built
    lone = [FiveTuple("h5", "h33", 6, 20000, 5001)]                           # 8 * 1 < 16: walked
    index = EqualCostPaths(fab, compiled=False)      # the dict-based walk (see test_ecmp_arrays.py)
    got = index.ecmp_paths(busy + lone)
    assert got == [ecmp_choice(f, fab.paths(f.src, f.dst)) for f in busy + lone]
    assert ("e0_0", "e1_0") in index._segs and ("e0_1", "e2_0") not in index._segs


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10 ** 6), n=st.integers(2, 4),
       rates=st.lists(st.floats(0.45, 0.8), min_size=4, max_size=4),
       policy=st.sampled_from(["reactive", "predictive"]))
def test_finds_a_placement_under_threshold_when_one_exists(seed, n, rates, policy):
    """k=4, <= 4 flows pod 0 -> pod 1 with distinct sources and destinations.

    Any two such flows on one link exceed 0.8, one alone does not; a placement
    with one flow per core path always exists (flows sharing an edge switch
    form even cycles, so the aggregation choice is 2-colourable), so the
    planner must reach max utilization <= 0.8 within its cap of 4 moves.
    """
    fab = fat(4)
    rnd = random.Random(seed)
    srcs = rnd.sample(["h1", "h2", "h3", "h4"], n)
    dsts = rnd.sample(["h5", "h6", "h7", "h8"], n)
    flows = []
    for i, (s, d) in enumerate(zip(srcs, dsts)):
        path = rnd.choice(fab.paths(s, d))
        flows.append(ActiveFlow("f%d" % i, FiveTuple(s, d, 6, 1000 + i, 80), path, rates[i] * CAP))
    # Start from the worst case half the time: everything on one core.
    if rnd.random() < 0.5:
        flows = [ActiveFlow(f.flow_id, f.five, next(p for p in fab.paths(f.five.src, f.five.dst)
                                                    if p[3] == "c0"), f.rate_bps) for f in flows]
    config = PlannerConfig(policy=policy, max_reroutes_per_tick=4)
    measured = flow_demand_utilization(fab, flows)
    reroutes = plan_reroutes(fab, flows, measured, None, config)
    check_reroutes(fab, flows, reroutes)
    assert len(reroutes) <= 4
    after = flow_demand_utilization(fab, apply(flows, reroutes))
    assert max(after.values()) <= 0.8 + 1e-9
    predicted_after = apply_reroutes(fab, flows, measured, reroutes)
    assert {l: v for l, v in predicted_after.items() if v > 1e-12} == pytest.approx(after)


@settings(max_examples=20, deadline=None)
@given(kind=KINDS, seed=st.integers(0, 10 ** 6), n=st.integers(2, 30),
       policy=st.sampled_from(["reactive", "predictive"]), stale_forecast=st.booleans())
def test_hysteresis_stops_moves_when_inputs_do_not_change(kind, seed, n, policy, stale_forecast):
    """50 ticks, feeding back the planner's own moves; measured load recomputed from the flows."""
    fab = make_fabric(kind, seed)
    rnd = random.Random(seed)
    flows = random_flows(fab, rnd, n, ecmp=True)
    background = {l: rnd.random() * 0.5 for l in rnd.sample(fab.directed_links(), 3)}
    forecast = ({l: rnd.random() * 1.2 for l in rnd.sample(fab.directed_links(), 4)}
                if stale_forecast else None)
    config = PlannerConfig(policy=policy)
    moves = []
    for _ in range(50):
        measured = flow_demand_utilization(fab, flows)
        for l, v in background.items():
            measured[l] = measured.get(l, 0.0) + v
        reroutes = plan_reroutes(fab, flows, measured, forecast, config)
        check_reroutes(fab, flows, reroutes)
        moves.append(len(reroutes))
        flows = apply(flows, reroutes)
    assert sum(moves[10:]) == 0, moves
    assert all(m <= config.max_reroutes_per_tick for m in moves)


@FAST
@given(k=st.sampled_from([4, 6]), seed=st.integers(0, 10 ** 6), n=st.integers(1, 30),
       with_measured=st.booleans())
def test_reroute_failed_link_moves_every_flow_off_it(k, seed, n, with_measured):
    fab = fat(k)
    rnd = random.Random(seed)
    flows = random_flows(fab, rnd, n)
    used = sorted({l for f in flows for l in path_links(f.path)})
    a, b = rnd.choice(used)
    fab.set_link_up(a, b, False)
    measured = flow_demand_utilization(fab, flows) if with_measured else None
    reroutes = reroute_failed_link(fab, flows, (a, b), measured=measured)
    check_reroutes(fab, flows, reroutes)
    moved = {r.flow_id for r in reroutes}
    host_link = fab.is_host(a) or fab.is_host(b)
    for f in flows:
        on_it = bool({(a, b), (b, a)} & set(path_links(f.path)))
        if on_it and not host_link:
            assert f.flow_id in moved
        if not on_it or host_link:
            assert f.flow_id not in moved  # nothing else moves; a dead host link strands its flows
    for r in reroutes:
        assert not {(a, b), (b, a)} & set(path_links(r.new_path))


# -- examples ---------------------------------------------------------------------

def two_colliding(fab: Fabric, rate: float = 0.6 * CAP, cls: str = "training") -> List[ActiveFlow]:
    p1 = ("h1", "e0_0", "a0_0", "c0", "a1_0", "e1_0", "h5")
    p2 = ("h3", "e0_1", "a0_0", "c0", "a1_0", "e1_1", "h7")
    return [ActiveFlow("f1", FiveTuple("h1", "h5", 6, 1, 2), p1, rate, cls),
            ActiveFlow("f2", FiveTuple("h3", "h7", 6, 3, 4), p2, rate, cls)]


def test_reactive_separates_two_colliding_flows():
    fab = fat(4)
    flows = two_colliding(fab)
    measured = flow_demand_utilization(fab, flows)
    reroutes = plan_reroutes(fab, flows, measured, None, PlannerConfig(policy="reactive"))
    assert len(reroutes) == 1
    after = flow_demand_utilization(fab, apply(flows, reroutes))
    assert max(after.values()) == pytest.approx(0.6)
    assert "a0_0->c0" in reroutes[0].reason or "c0->a1_0" in reroutes[0].reason


def test_background_elephants_stay_unless_allowed():
    fab = fat(4)
    flows = two_colliding(fab, cls="background")
    measured = flow_demand_utilization(fab, flows)
    assert plan_reroutes(fab, flows, measured, None, PlannerConfig(policy="reactive")) == []
    assert len(plan_reroutes(fab, flows, measured, None,
                             PlannerConfig(policy="reactive", move_background=True))) == 1


def test_mice_are_not_moved():
    fab = fat(4)
    flows = two_colliding(fab, rate=0.05 * CAP)
    measured = {l: 2.0 for l in fab.directed_links()}
    assert plan_reroutes(fab, flows, measured, None, PlannerConfig(policy="reactive")) == []
    cfg = PlannerConfig(policy="reactive", elephant_bps=0.01 * CAP)
    measured = flow_demand_utilization(fab, flows)
    measured[("a0_0", "c0")] = 1.5
    assert len(plan_reroutes(fab, flows, measured, None, cfg)) == 2  # 1.5 stays: both leave


def test_idle_training_flows_count_by_demand_in_predictive():
    """Compute gap: measured 0 everywhere, but the next bursts collide on c0."""
    fab = fat(4)
    flows = two_colliding(fab)
    idle = {l: 0.0 for l in fab.directed_links()}
    assert plan_reroutes(fab, flows, idle, None, PlannerConfig(policy="reactive")) == []
    assert len(plan_reroutes(fab, flows, idle, None, PlannerConfig(policy="predictive"))) == 1


def test_predictive_moves_before_the_link_is_hot():
    fab = fat(4)
    flows = two_colliding(fab, rate=0.3 * CAP)
    measured = flow_demand_utilization(fab, flows)  # c0 at 0.6: not hot
    forecast = {("a0_0", "c0"): 1.1}
    assert plan_reroutes(fab, flows, measured, forecast, PlannerConfig(policy="reactive")) == []
    moves = plan_reroutes(fab, flows, measured, forecast, PlannerConfig(policy="predictive"))
    assert len(moves) == 1 and "forecast" in moves[0].reason
    util = planning_utilization(fab, flows, measured, forecast, PlannerConfig(policy="predictive"))
    assert util[("a0_0", "c0")] == pytest.approx(1.1)


def test_hysteresis_blocks_small_gains():
    fab = fat(4)
    flows = two_colliding(fab)
    measured = {l: 0.75 for l in fab.directed_links()}
    measured[("a0_0", "c0")] = 0.85  # best alternative: 0.75 + 0.6, worse
    assert plan_reroutes(fab, flows, measured, None, PlannerConfig(policy="reactive")) == []


def test_training_flows_go_first_and_the_cap_holds():
    fab = fat(4)
    p = ("h1", "e0_0", "a0_0", "c0", "a1_0", "e1_0", "h5")
    flows = [ActiveFlow("bg", FiveTuple("h1", "h5", 6, 9, 9), p, 0.9 * CAP, "background"),
             ActiveFlow("tr", FiveTuple("h1", "h5", 6, 1, 1), p, 0.5 * CAP, "training")]
    measured = flow_demand_utilization(fab, flows)
    cfg = PlannerConfig(policy="reactive", move_background=True, max_reroutes_per_tick=1)
    reroutes = plan_reroutes(fab, flows, measured, None, cfg)
    assert [r.flow_id for r in reroutes] == ["tr"]


def test_plan_reroutes_moves_flows_off_a_down_path():
    fab = fat(4)
    flows = two_colliding(fab, rate=0.1 * CAP)
    fab.set_link_up("a0_0", "c0", False)
    reroutes = plan_reroutes(fab, flows, {}, None, PlannerConfig(policy="reactive", max_reroutes_per_tick=0))
    assert sorted(r.flow_id for r in reroutes) == ["f1", "f2"]
    check_reroutes(fab, flows, reroutes)


def test_failed_link_spreads_flows_over_survivors():
    fab = fat(4)
    flows = two_colliding(fab)
    fab.set_link_up("a0_0", "c0", False)
    reroutes = reroute_failed_link(fab, flows, ("c0", "a0_0"))
    assert sorted(r.flow_id for r in reroutes) == ["f1", "f2"]
    after = flow_demand_utilization(fab, apply(flows, reroutes))
    assert max(after.values()) == pytest.approx(0.6)  # not stacked on one survivor


def test_duplicate_flow_ids_are_refused():
    fab = fat(4)
    f = two_colliding(fab)[0]
    with pytest.raises(PlannerError, match="twice"):
        plan_reroutes(fab, [f, f], {}, None, PlannerConfig(policy="reactive"))


@pytest.mark.parametrize("kwargs, field", [
    ({"policy": "hedera"}, "policy"),
    ({"hot_threshold": 0}, "hot_threshold"),
    ({"hot_threshold": float("nan")}, "hot_threshold"),
    ({"hysteresis": -0.1}, "hysteresis"),
    ({"max_reroutes_per_tick": -1}, "max_reroutes_per_tick"),
    ({"max_reroutes_per_tick": 2.5}, "max_reroutes_per_tick"),
    ({"max_reroutes_per_tick": True}, "max_reroutes_per_tick"),
    ({"elephant_bps": -1.0}, "elephant_bps"),
    ({"elephant_fraction": 1.5}, "elephant_fraction"),
    ({"move_background": "yes"}, "move_background"),
])
def test_config_refuses_nonsense(kwargs, field):
    with pytest.raises(PlannerError, match=field):
        PlannerConfig(**kwargs)


def test_config_defaults_and_mapping():
    cfg = PlannerConfig()
    assert (cfg.policy, cfg.hot_threshold, cfg.hysteresis, cfg.max_reroutes_per_tick) == ("ecmp", 0.8, 0.1, 4)
    assert cfg.elephant_threshold_bps(CAP) == pytest.approx(0.1 * CAP)
    assert PlannerConfig.from_mapping({"policy": "reactive"}).policy == "reactive"
    with pytest.raises(PlannerError, match="hot_treshold"):
        PlannerConfig.from_mapping({"hot_treshold": 0.5})


@pytest.mark.parametrize("kwargs, text", [
    ({"rate_bps": -1.0}, "rate_bps"),
    ({"rate_bps": float("inf")}, "rate_bps"),
    ({"cls": "bulk"}, "cls"),
    ({"path": ("h2", "e0_0", "h5")}, "path"),
    ({"flow_id": ""}, "flow_id"),
])
def test_active_flow_refuses_nonsense(kwargs, text):
    base = dict(flow_id="f", five=FiveTuple("h1", "h5"), path=("h1", "e0_0", "h5"), rate_bps=1.0,
                cls="training")
    base.update(kwargs)
    with pytest.raises(PlannerError, match=text):
        ActiveFlow(**base)


def test_joint_search_gets_greedy_out_of_a_local_optimum():
    """Found by the placement property: one-at-a-time moves stall above 0.8 here."""
    fab = fat(4)
    spec = [("f0", "h2", "h8", 0.7, "c0"), ("f1", "h4", "h5", 0.7, "c2"),
            ("f2", "h3", "h7", 0.5, "c2"), ("f3", "h1", "h6", 0.5, "c0")]
    flows = [ActiveFlow(fid, FiveTuple(s, d, 6, i, 80),
                        next(p for p in fab.paths(s, d) if p[3] == core), r * CAP)
             for i, (fid, s, d, r, core) in enumerate(spec)]
    measured = flow_demand_utilization(fab, flows)
    greedy_only = PlannerConfig(policy="reactive", joint_search_nodes=0)
    stuck = flow_demand_utilization(fab, apply(flows, plan_reroutes(fab, flows, measured, None, greedy_only)))
    assert max(stuck.values()) > 0.8
    reroutes = plan_reroutes(fab, flows, measured, None, PlannerConfig(policy="reactive"))
    check_reroutes(fab, flows, reroutes)
    assert len(reroutes) <= 4 and "joint" in reroutes[0].reason
    assert max(flow_demand_utilization(fab, apply(flows, reroutes)).values()) <= 0.8


# -- the fast scorer against a plain one ------------------------------------------

LEVELS = [0.0, 0.1, 0.25, 0.5, 0.5, 0.7, 0.75, 0.85, 0.9, 1.0, 0.1 + 0.2, 0.3]  # few values: paths tie


@pytest.mark.parametrize("kind", ["fat4", "leafspine", "mesh"])
@pytest.mark.parametrize("seed", range(12))
def test_one_greedy_move_matches_a_plain_reference_scorer(kind, seed):
    """plan_reroutes' per-link scoring and pruning give the plain scorer's move, ties included.

    Rounds share one EqualCostPaths, in which the planner keeps its per-path
    index, so stale state from an earlier round would show as a wrong move.
    """
    fab = make_fabric(kind, seed)
    rnd = random.Random(seed)
    hosts = fab.hosts()
    kept = EqualCostPaths(fab)
    config = PlannerConfig(policy="reactive", hysteresis=0.0, max_reroutes_per_tick=1, joint_search_nodes=0)
    moves = 0
    for _ in range(8):
        flows = []
        for i in range(rnd.randint(1, 12)):
            src, dst = rnd.sample(hosts, 2)
            five = FiveTuple(src, dst, 6, 1000 + i, 80)
            rate = rnd.choice([0.1, 0.2, 0.25, 0.3, 0.5]) * CAP
            flows.append(ActiveFlow("f%02d" % i, five, rnd.choice(fab.paths(src, dst)), rate))
        measured = {l: rnd.choice(LEVELS) for l in fab.directed_links() if rnd.random() < 0.9}
        want = reference_greedy_move(fab, flows, measured, config.hot_threshold)
        assert plan_reroutes(fab, flows, measured, None, config, paths=kept) == want
        assert plan_reroutes(fab, flows, measured, None, config) == want
        moves += len(want)
    assert kind != "fat4" or moves > 0  # the comparison covers moves, not only "no move"


@pytest.mark.parametrize("seed", range(6))
def test_a_kept_index_follows_links_going_down_and_up(seed):
    """Rounds with one EqualCostPaths (or the default paths, whose index is kept per fabric)
    across topology changes answer as a fresh EqualCostPaths does."""
    fab = fat(4)
    rnd = random.Random(seed)
    kept = EqualCostPaths(fab)
    flows = random_flows(fab, rnd, 12)
    # Cables between switches that the flows use: taking one down strands a flow that can move.
    cables = sorted({tuple(sorted(l)) for f in flows for l in path_links(f.path[1:-1])})
    stranded = 0
    for _ in range(8):
        a, b = rnd.choice(cables)
        fab.set_link_up(a, b, not fab.is_up(a, b))
        measured = noisy_loads(fab, flows, rnd)
        for policy in ("reactive", "predictive"):
            config = PlannerConfig(policy=policy)
            got = plan_reroutes(fab, flows, measured, measured, config, paths=kept)
            assert got == plan_reroutes(fab, flows, measured, measured, config, paths=EqualCostPaths(fab))
            assert got == plan_reroutes(fab, flows, measured, measured, config)
            stranded += sum("down" in r.reason for r in got)
    assert stranded > 0


def test_with_demand_floor_raises_measured_loads_to_the_flows_demands():
    fab = fat(4)
    path = fab.paths("h1", "h16")[0]
    first, second = path_links(path)[1], path_links(path)[2]
    flows = [ActiveFlow("a", FiveTuple("h1", "h16", 6, 1, 2), path, 0.5 * CAP)]
    measured = {first: 0.2, second: 0.9, ("c0", "a1_0"): 0.4}
    basis = with_demand_floor(fab, flows, measured)
    assert basis[first] == 0.5 and basis[second] == 0.9 and basis[("c0", "a1_0")] == 0.4
    assert basis[path_links(path)[0]] == 0.5          # a link measured nothing gets the demand
    assert measured[first] == 0.2                     # the caller's dict is left as it was


def test_reroute_failed_link_counts_a_flows_own_share_once_on_measured_loads():
    """The measured load of the flow's host links already holds its own traffic; the new path keeps
    those links, so the flow's share must not be added on top (it was: every path then peaked at 1.2)."""
    fab = fat(4)
    path = next(p for p in fab.paths("h1", "h5") if ("a0_0", "c0") in path_links(p))
    flow = ActiveFlow("a", FiveTuple("h1", "h5", 6, 1, 2), path, 0.6 * CAP)
    measured = flow_demand_utilization(fab, [flow])      # 0.6 on every link of its path
    fab.set_link_up("a0_0", "c0", False)
    (rr,) = reroute_failed_link(fab, [flow], ("a0_0", "c0"), measured=measured)
    assert rr.reason.endswith("new path peaks at 0.60"), rr.reason
    assert ("a0_0", "c0") not in path_links(rr.new_path)


def test_a_flow_that_is_not_movable_stays_whatever_its_class():
    """The live app's cooldown after a move: relabelling the flow background did nothing with
    move_background on, and the flow flapped between paths every poll."""
    fab = fat(4)
    config = PlannerConfig(policy="reactive", move_background=True)
    for cls in ("training", "background"):
        flows = two_colliding(fab, cls=cls)
        measured = flow_demand_utilization(fab, flows)
        frozen = [dataclasses.replace(f, movable=False) for f in flows]
        assert len(plan_reroutes(fab, flows, measured, None, config)) == 1
        assert plan_reroutes(fab, frozen, measured, None, config) == []
        one = [frozen[0], flows[1]]
        (rr,) = plan_reroutes(fab, one, measured, None, config)
        assert rr.flow_id == flows[1].flow_id

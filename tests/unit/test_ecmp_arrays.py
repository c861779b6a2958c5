"""The compiled ECMP picks (``controller.ecmp_arrays``) are the dict-based walk's and ``Fabric.paths``' hash choice.

These need Numba; without it ``EqualCostPaths`` never takes the compiled walk,
and the tests that need it are skipped by name (``NEEDS_NUMBA``).
"""
import random

import pytest
from hypothesis import given, strategies as st

from controller import ecmp_arrays
from controller.ecmp import FiveTuple, ecmp_choice
from controller.fabric import Fabric, FabricError
from controller.paths import EqualCostPaths
from mininet_topos.fattree_spec import fat_tree
from tests.unit.test_planner import FAST, KINDS, fabric_with_links_down

NEEDS_NUMBA = pytest.mark.skipif(not ecmp_arrays.available(),
                                 reason="Numba not installed (or SIDESTEP_NO_JIT set): no compiled walk to check")


def _fives(rnd: random.Random, fab: Fabric, n: int):
    """Random connections, with the unusual ones: a host to itself, two hosts on one switch, a switch endpoint."""
    hosts = fab.hosts()
    fives = []
    for i in range(n):
        src, dst = rnd.sample(hosts, 2)
        pick = rnd.random()
        if pick < 0.05:
            dst = src
        elif pick < 0.1:
            dst = rnd.choice(fab.switches())
        fives.append(FiveTuple(src, dst, rnd.choice([6, 17]), rnd.randrange(1024, 65535), rnd.choice([80, 5001])))
    return fives


def _want(fab: Fabric, five: FiveTuple):
    try:
        return ecmp_choice(five, fab.paths(five.src, five.dst))
    except (FabricError, ValueError):
        return None


@NEEDS_NUMBA
@FAST
@given(kind=KINDS, seed=st.integers(0, 10 ** 6), downs=st.integers(0, 4), batches=st.integers(1, 3))
def test_compiled_picks_are_the_hash_choice_over_fabric_paths(kind, seed, downs, batches):
    """Per batch (rows kept between batches), the picks equal the dict-based walk's and ``Fabric.paths``' choice."""
    fab, rnd, _, _ = fabric_with_links_down(kind, seed, downs)
    compiled = EqualCostPaths(fab, compiled=True)
    for _ in range(batches):
        fives = _fives(rnd, fab, 40)
        got = compiled.ecmp_paths(fives)
        assert got == EqualCostPaths(fab, compiled=False).ecmp_paths(fives)
        assert got == [_want(fab, f) for f in fives]


@NEEDS_NUMBA
@FAST
@given(kind=KINDS, seed=st.integers(0, 10 ** 6), downs=st.integers(0, 4))
def test_every_path_of_a_pair_by_the_compiled_walk_is_fabric_paths(kind, seed, downs):
    """``EqualCostPaths(src, dst)`` with the compiled walk: ``Fabric.paths``, same order; no path is an error."""
    fab, rnd, _, hosts = fabric_with_links_down(kind, seed, downs)
    compiled = EqualCostPaths(fab, compiled=True)
    plain = EqualCostPaths(fab, compiled=False)
    for _ in range(15):
        src, dst = rnd.sample(hosts, 2)
        try:
            want = fab.paths(src, dst)
        except FabricError:
            for index in (compiled, plain):
                with pytest.raises(FabricError):
                    index(src, dst)
            continue
        assert compiled(src, dst) == plain(src, dst) == want


@NEEDS_NUMBA
def test_compiled_picks_follow_a_link_going_down_and_up():
    """The arrays are rebuilt when the fabric changes: picks after a change are the new fabric's."""
    fab = Fabric.from_spec(fat_tree(8, 1000.0))
    rnd = random.Random(3)
    fives = _fives(rnd, fab, 300)
    index = EqualCostPaths(fab, compiled=True)
    before = index.ecmp_paths(fives)
    assert before == [_want(fab, f) for f in fives]
    fab.set_link_up("a1_0", "c0", False)
    after = index.ecmp_paths(fives)
    assert after == [_want(fab, f) for f in fives]
    assert after != before                       # some connections crossed a1_0-c0
    fab.set_link_up("a1_0", "c0", True)
    assert index.ecmp_paths(fives) == before


def _diamonds(stages: int) -> Fabric:
    """A chain of ``stages`` diamonds (two parallel switches each): 2**stages shortest paths end to end."""
    fab = Fabric()
    fab.add_switch("s000")
    port = iter(range(1, 10 ** 6))
    for i in range(1, stages + 1):
        fab.add_switch("s%03d" % i)
        for side in "ab":
            mid = "m%03d%s" % (i, side)
            fab.add_switch(mid)
            fab.add_link("s%03d" % (i - 1), next(port), mid, next(port), 1e9)
            fab.add_link(mid, next(port), "s%03d" % i, next(port), 1e9)
    fab.add_host("h1")
    fab.add_host("h2")
    fab.add_link("h1", 1, "s000", next(port), 1e9)
    fab.add_link("h2", 1, "s%03d" % stages, next(port), 1e9)
    return fab


@NEEDS_NUMBA
@pytest.mark.parametrize("stages", [20, 62, 63])
def test_path_counts_beyond_int64_take_the_dict_walk(stages):
    """2**63 paths do not fit the kernel's counts: it says so and the dict-based walk picks; 2**62 still fit."""
    fab = _diamonds(stages)
    fives = [FiveTuple("h1", "h2", 6, 1000 + i, 5001) for i in range(20)]
    index = EqualCostPaths(fab, compiled=True)
    got = index.ecmp_paths(fives)
    assert index._arrays.exact == (stages < 63)
    assert got == EqualCostPaths(fab, compiled=False).ecmp_paths(fives)
    assert all(len(p) == 2 * stages + 3 for p in got)


@NEEDS_NUMBA
def test_every_path_of_a_pair_with_many_paths_by_the_compiled_walk():
    """2**10 paths through ten diamonds: the compiled walk lists them all, sorted, as the dict-based build does."""
    paths = EqualCostPaths(_diamonds(10), compiled=True)("h1", "h2")
    assert len(paths) == 2 ** 10 and paths == sorted(paths)
    assert paths == EqualCostPaths(_diamonds(10), compiled=False)("h1", "h2")


def test_compiled_walk_asked_for_without_numba_is_an_error(monkeypatch):
    monkeypatch.setattr(ecmp_arrays, "available", lambda: False)
    with pytest.raises(ValueError, match="Numba"):
        EqualCostPaths(Fabric.from_spec(fat_tree(4, 1000.0)), compiled=True)
    assert EqualCostPaths(Fabric.from_spec(fat_tree(4, 1000.0)), compiled=None).compiled is False


def test_the_compiled_walk_is_off_by_default_and_replay_asks_for_it_when_installed():
    """The live app keeps the dict-based walk; the simulator and replay's control loop take the compiled one."""
    from controller.replay import ControlLoop
    from controller.sim import Simulator
    fab = Fabric.from_spec(fat_tree(4, 1000.0))
    assert EqualCostPaths(fab).compiled is False
    assert Simulator(fab, [])._paths.compiled is ecmp_arrays.available()
    assert Simulator(fab, [], compiled=False)._paths.compiled is False
    assert ControlLoop(fab, "reactive", poll_interval_s=1.0).paths.compiled is ecmp_arrays.available()

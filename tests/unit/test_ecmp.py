"""ECMP path choice: every path shortest, loop-free and correct; the hash is stable."""
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from controller.ecmp import FiveTuple, ecmp_choice, ecmp_hash
from controller.fabric import Fabric, FabricError
from mininet_topos.fattree_spec import fat_tree

FABRICS = {k: Fabric.from_spec(fat_tree(k)) for k in (2, 4, 6)}


@settings(max_examples=60, deadline=None)
@given(k=st.sampled_from([2, 4, 6]), data=st.data())
def test_paths_shortest_loop_free_and_ending_at_hosts(k, data):
    fabric = FABRICS[k]
    hosts = fabric.hosts()
    src = data.draw(st.sampled_from(hosts))
    dst = data.draw(st.sampled_from([h for h in hosts if h != src] or hosts))
    if src == dst:
        return
    paths = fabric.paths(src, dst)
    lengths = {len(p) for p in paths}
    assert len(lengths) == 1
    spec = fat_tree(k)
    same_edge = spec.host(src).edge == spec.host(dst).edge
    same_pod = spec.pod_of_host(src) == spec.pod_of_host(dst)
    expected_hops = 2 if same_edge else 4 if same_pod else 6
    assert lengths == {expected_hops + 1}
    half = k // 2
    expected_count = 1 if same_edge else half if same_pod else half * half
    assert len(paths) == expected_count
    five = FiveTuple(src, dst, 6, data.draw(st.integers(1, 65535)), data.draw(st.integers(1, 65535)))
    chosen = ecmp_choice(five, paths)
    fabric.validate_path(chosen, src, dst)


def test_hash_stable_across_processes():
    five = FiveTuple("h1", "h16", 6, 40000, 5201)
    code = ("from controller.ecmp import FiveTuple, ecmp_hash;"
            "print(ecmp_hash(FiveTuple('h1','h16',6,40000,5201)))")
    outs = {subprocess.check_output([sys.executable, "-c", code], env={"PYTHONHASHSEED": str(seed), "PATH": ""},
                                    cwd=__file__.rsplit("/tests/", 1)[0]).strip()
            for seed in (1, 2, 3)}
    assert outs == {str(ecmp_hash(five)).encode()}


def test_ecmp_spreads_over_all_cores():
    fabric = FABRICS[4]
    paths = fabric.paths("h1", "h16")
    cores = {ecmp_choice(FiveTuple("h1", "h16", 6, 40000 + i, 5201), paths)[3] for i in range(64)}
    assert cores == {"c0", "c1", "c2", "c3"}


def test_no_path_over_down_links():
    fabric = Fabric.from_spec(fat_tree(4))
    for core in ("c0", "c1", "c2", "c3"):
        for pod_agg in ("a3_0", "a3_1"):
            if fabric.graph.has_edge(core, pod_agg):
                fabric.set_link_up(core, pod_agg, False)
    with pytest.raises(FabricError, match="no path"):
        fabric.paths("h1", "h16")
    assert len(fabric.paths("h1", "h5")) == 4

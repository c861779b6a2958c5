"""The fat-tree description: counts, DPIDs, ports and names for several k."""
import pytest

from controller.fabric import Fabric
from mininet_topos.fattree_spec import (ROLE_AGG, ROLE_CORE, ROLE_EDGE, TopologyError, dpid_to_name,
                                        fat_tree, host_ip, ip_to_host_name)


@pytest.mark.parametrize("k", [2, 4, 6, 8, 16])
def test_counts(k):
    spec = fat_tree(k, 10)
    half = k // 2
    assert len([s for s in spec.switches if s.role == ROLE_CORE]) == half * half
    assert len([s for s in spec.switches if s.role == ROLE_AGG]) == k * half
    assert len([s for s in spec.switches if s.role == ROLE_EDGE]) == k * half
    assert len(spec.hosts) == k ** 3 // 4
    # host links + edge-agg + agg-core, k^3/4 each
    assert len(spec.links) == 3 * k ** 3 // 4


@pytest.mark.parametrize("k", [2, 4, 6, 8])
def test_dpids_unique_and_readable(k):
    spec = fat_tree(k)
    dpids = [s.dpid for s in spec.switches]
    assert len(set(dpids)) == len(dpids)
    for sw in spec.switches:
        assert dpid_to_name(sw.dpid) == sw.name
        assert (sw.dpid >> 24) & 0xFF == sw.role
        assert len(sw.dpid_str) == 16


@pytest.mark.parametrize("k", [2, 4, 6])
def test_ports_are_1_to_k_and_unique(k):
    spec = fat_tree(k)
    used = {}
    for link in spec.links:
        for node, port in ((link.a, link.a_port), (link.b, link.b_port)):
            assert (node, port) not in used, "port used twice"
            used[(node, port)] = True
    for sw in spec.switches:
        ports = sorted(p for (n, p) in used if n == sw.name)
        expected = list(range(1, k + 1)) if sw.role != ROLE_CORE else list(range(1, k + 1))
        assert ports == expected
    for host in spec.hosts:
        assert [p for (n, p) in used if n == host.name] == [0]


def test_host_numbering_pod_by_pod():
    spec = fat_tree(4)
    assert [h.name for h in spec.hosts[:4]] == ["h1", "h2", "h3", "h4"]
    assert spec.host("h1").edge == "e0_0" and spec.host("h1").edge_port == 1
    assert spec.host("h2").edge == "e0_0" and spec.host("h2").edge_port == 2
    assert spec.host("h3").edge == "e0_1"
    assert spec.host("h5").edge == "e1_0"
    assert spec.host("h16").edge == "e3_1"
    assert spec.host("h16").ip == "10.0.0.16"
    assert spec.host("h16").mac == "00:00:00:00:00:10"
    assert spec.pod_of_host("h16") == 3
    assert ip_to_host_name(host_ip(300)) == "h300"


@pytest.mark.parametrize("bad", [0, 3, -2, 1, "x", 2.5])
def test_bad_k_names_the_constraint(bad):
    with pytest.raises(TopologyError, match="even integer >= 2"):
        fat_tree(bad)


def test_bad_bandwidth():
    with pytest.raises(TopologyError, match="bw"):
        fat_tree(4, 0)


def test_fabric_matches_spec():
    spec = fat_tree(4, 10)
    fabric = Fabric.from_spec(spec)
    assert len(fabric.switches()) == 20 and len(fabric.hosts()) == 16
    assert len(fabric.directed_links()) == 96
    assert fabric.capacity_bps("c0", "a0_0") == 10e6
    for link in spec.links:
        assert fabric.port(link.a, link.b) == link.a_port
        assert fabric.neighbor(link.b, link.b_port) == link.a

"""The lab's scenarios as plain data: collisions by construction, and the same traffic clear of the ring."""
import pytest

from controller.fabric import Fabric
from mininet_topos.fattree_spec import fat_tree
from mininet_topos.scenario import ScenarioError, build_scenario, ecmp_links, without_collisions


@pytest.fixture(scope="module")
def fabric():
    return Fabric.from_spec(fat_tree(4, 10.0))


def _core_links(links):
    """Aggregation-core links (both ends a switch, neither an edge switch)."""
    return {l for l in links if l[0][0] in "ac" and l[1][0] in "ac"}


@pytest.mark.parametrize("name, kinds", [("hotspot", ["long", "long", "burst"]),
                                         ("bursts", ["burst"] * 4)])
def test_background_collides_with_its_target_under_ecmp(fabric, name, kinds):
    scenario = build_scenario(name)
    assert [bg.kind for bg in scenario.background] == kinds
    ring = scenario.job.connections()
    for bg in scenario.background:
        assert bg.target in ring
        shared = _core_links(ecmp_links(fabric, bg.five)) & ecmp_links(fabric, bg.target)
        assert len(shared) >= 2
        assert set(bg.shared_links) == shared


def test_the_reference_scenario_has_no_background():
    scenario = build_scenario("none")
    assert scenario.background == ()
    assert len(scenario.job.connections()) == 4


@pytest.mark.parametrize("kwargs, words", [({"name": "storm"}, "unknown scenario 'storm'"),
                                           ({"name": "hotspot", "k": 8}, "laid out for k=4")])
def test_bad_scenarios_are_refused_by_name(kwargs, words):
    with pytest.raises(ScenarioError, match=words):
        build_scenario(**kwargs)


@pytest.mark.parametrize("name", ["hotspot", "bursts"])
def test_without_collisions_keeps_the_traffic_and_clears_the_ring(fabric, name):
    scenario = build_scenario(name)
    clear = without_collisions(scenario)
    ring = set()
    for conn in scenario.job.connections():
        ring |= ecmp_links(fabric, conn) | ecmp_links(fabric, conn.reverse())
    seen = set()
    assert clear.job == scenario.job
    assert len(clear.background) == len(scenario.background)
    for old, new in zip(scenario.background, clear.background):
        # the same flow (hosts, destination port, kind, timing); only the source port differs
        assert (new.five.src, new.five.dst, new.five.proto, new.five.dst_port) == \
            (old.five.src, old.five.dst, old.five.proto, old.five.dst_port)
        assert (new.kind, new.target, new.on_s, new.off_s, new.rate_mbps) == \
            (old.kind, old.target, old.on_s, old.off_s, old.rate_mbps)
        assert new.five.src_port != old.five.src_port
        links = ecmp_links(fabric, new.five)
        assert not links & ring
        assert not links & seen
        seen |= links
        assert new.shared_links == ()
    assert clear.name == name + "-clear"
    assert without_collisions(scenario) == clear  # the same ports every time


def test_without_collisions_needs_background():
    with pytest.raises(ScenarioError, match="no background traffic"):
        without_collisions(build_scenario("none"))


def test_without_collisions_says_when_no_port_clears_the_ring():
    with pytest.raises(ScenarioError, match=r"no source port in 40000\.\.40001 puts h3->h8 clear"):
        without_collisions(build_scenario("hotspot"), tries=1)

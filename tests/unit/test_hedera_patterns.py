"""The Hedera protocol's pure parts: patterns, ports, timing, iperf3 parsing, the table.

The lab run itself needs root and is run by the lead (``sidestep lab --hedera``).
"""
import json
import random
from collections import Counter

import pytest

from mininet_topos.bigswitch import BIG_SWITCH_NAME, big_switch_dpid, big_switch_layout
from mininet_topos.fattree_spec import dpid_to_name, fat_tree
from mininet_topos.hedera import (NONBLOCKING, QUICK_PATTERNS, IperfError, controller_overrides,
                                  estimate_s, format_footer, format_table, fractions, hedera_patterns,
                                  parse_iperf3, plan_flows, random_pattern, select_patterns,
                                  staggered_pattern, stride_pattern, timing)

SPEC = fat_tree(4, 10)
HOSTS = SPEC.host_names()


def edge_of(name):
    return SPEC.host(name).edge


def test_pattern_names_and_one_flow_per_host():
    pats = hedera_patterns(4, 1)
    assert list(pats) == ["stride1", "stride2", "stride4", "stride8", "stag_0.2_0.3", "stag_0.5_0.3", "random"]
    for name, pairs in pats.items():
        assert [s for s, _ in pairs] == HOSTS, name
        assert all(s != d for s, d in pairs), name
        assert all(d in HOSTS for _, d in pairs), name


def test_stride_math():
    pats = hedera_patterns(4, 0)
    assert pats["stride1"][0] == ("h1", "h2") and pats["stride1"][-1] == ("h16", "h1")
    for i in (1, 2, 4, 8):
        for x, (s, d) in enumerate(pats["stride%d" % i]):
            assert (s, d) == ("h%d" % (x + 1), "h%d" % ((x + i) % 16 + 1))
        # a stride is a permutation: every host receives exactly once
        assert sorted(d for _, d in pats["stride%d" % i]) == sorted(HOSTS)
    # k=4: stride-2 is half intra-pod (another edge switch) and half inter-pod; stride-4 and -8 cross pods
    for s, d in pats["stride4"] + pats["stride8"]:
        assert SPEC.pod_of_host(s) != SPEC.pod_of_host(d)
    assert sum(SPEC.pod_of_host(s) != SPEC.pod_of_host(d) for s, d in pats["stride2"]) == 8
    assert all(SPEC.host(s).edge != SPEC.host(d).edge for s, d in pats["stride2"])
    with pytest.raises(ValueError):
        stride_pattern(HOSTS, 16)


def test_deterministic_for_a_seed_and_seed_matters():
    assert hedera_patterns(4, 7) == hedera_patterns(4, 7)
    assert hedera_patterns(4, 7)["random"] != hedera_patterns(4, 8)["random"] or \
        hedera_patterns(4, 7)["stag_0.2_0.3"] != hedera_patterns(4, 8)["stag_0.2_0.3"]
    # strides do not depend on the seed
    assert hedera_patterns(4, 7)["stride4"] == hedera_patterns(4, 8)["stride4"]


@pytest.mark.parametrize("edge_p,pod_p", [(0.2, 0.3), (0.5, 0.3)])
def test_staggered_proportions(edge_p, pod_p):
    counts = Counter()
    seeds = 300
    for seed in range(seeds):
        for s, d in staggered_pattern(SPEC, random.Random(seed), edge_p, pod_p):
            assert s != d
            if edge_of(s) == edge_of(d):
                counts["edge"] += 1
            elif SPEC.pod_of_host(s) == SPEC.pod_of_host(d):
                counts["pod"] += 1
            else:
                counts["other"] += 1
    n = seeds * len(HOSTS)
    assert counts["edge"] / n == pytest.approx(edge_p, abs=0.03)
    assert counts["pod"] / n == pytest.approx(pod_p, abs=0.03)
    assert counts["other"] / n == pytest.approx(1 - edge_p - pod_p, abs=0.03)


def test_staggered_rejects_bad_probabilities():
    with pytest.raises(ValueError):
        staggered_pattern(SPEC, random.Random(0), 0.7, 0.5)


def test_random_is_uniform_over_other_hosts_and_may_share_receivers():
    counts = Counter()
    shared = 0
    for seed in range(200):
        pairs = random_pattern(HOSTS, random.Random(seed))
        assert all(s != d for s, d in pairs)
        counts.update(d for s, d in pairs if s == "h1")
        shared += len(set(d for _, d in pairs)) < len(HOSTS)
    assert "h1" not in counts and len(counts) == 15
    assert shared > 150  # Hedera's random is not a permutation: receivers repeat


def test_quick_selection():
    pats = hedera_patterns(4, 0)
    assert list(select_patterns(pats, True)) == list(QUICK_PATTERNS)
    assert select_patterns(pats, False) == pats


def test_ports_distinct_across_patterns_and_fixed():
    pats = hedera_patterns(4, 0)
    seen_server, seen_client = set(), set()
    for i, pairs in enumerate(pats.values()):
        flows = plan_flows(i, pairs)
        assert [(f.src, f.dst) for f in flows] == pairs
        for f in flows:
            assert f.server_port not in seen_server and f.client_port not in seen_client
            seen_server.add(f.server_port)
            seen_client.add(f.client_port)
            # fixed ports stay below Linux's ephemeral range, so no kernel-chosen port takes them
            assert 1024 < f.server_port < 32768 and 1024 < f.client_port < 32768
    assert plan_flows(3, pats["stride8"]) == plan_flows(3, pats["stride8"])


def test_timing_and_estimate_fit_the_budget():
    full, quick = timing(False), timing(True)
    assert full.omit_s >= 3 and quick.omit_s >= 3  # the planner needs a few polls before measuring
    assert full.measured_s > 0 and quick.measured_s > 0
    assert estimate_s(4, len(hedera_patterns(4, 0)), full) <= 12.5 * 60
    assert estimate_s(4, len(QUICK_PATTERNS), quick) <= 5.5 * 60


def iperf_json(bps_received=9.4e6, error=None):
    data = {"start": {}, "intervals": [], "end": {"sum_sent": {"bits_per_second": 9.6e6},
                                                  "sum_received": {"bits_per_second": bps_received}}}
    if error:
        data = {"start": {}, "intervals": [], "end": {}, "error": error}
    return json.dumps(data)


def test_parse_iperf3():
    assert parse_iperf3(iperf_json(9.4e6)) == 9.4e6
    with pytest.raises(IperfError, match="unable to connect"):
        parse_iperf3(iperf_json(error="unable to connect to server: Connection refused"))
    with pytest.raises(IperfError):
        parse_iperf3("")
    with pytest.raises(IperfError):
        parse_iperf3(json.dumps({"end": {}}))


def test_fractions_table_and_footer():
    results = {NONBLOCKING: {"random": 120e6, "stride8": 150e6},
               "ecmp": {"random": 80e6, "stride8": 90e6},
               "predictive": {"random": 117e6}}
    fr = fractions(results)
    assert fr[NONBLOCKING]["random"] == 1.0
    assert fr["ecmp"]["random"] == pytest.approx(80 / 120)
    table = format_table(results, [NONBLOCKING, "ecmp", "predictive"], ["stride8", "random"])
    lines = table.splitlines()
    assert lines[0].split() == ["pattern", NONBLOCKING, "ecmp", "predictive"]
    assert lines[2].startswith("stride8") and "90.0 (0.60)" in lines[2] and lines[2].rstrip().endswith("-")
    assert "117.0 (0.97)" in lines[3]
    assert lines[-1].startswith("mean fraction")
    footer = format_footer(results, [NONBLOCKING, "ecmp", "predictive"])
    assert "ecmp 67%" in footer and "predictive 98%" in footer and "68%" in footer and "95%" in footer


def test_fraction_without_reference_is_none():
    assert fractions({"ecmp": {"random": 1e6}})["ecmp"]["random"] is None


def test_controller_overrides_make_every_flow_training():
    over = controller_overrides("reactive", HOSTS, None)
    assert over["policy"] == "reactive" and over["training"] == {"host_groups": [HOSTS]}
    from controller.classify import TrafficClassifier
    from controller.ecmp import FiveTuple
    clf = TrafficClassifier.from_config({"host_groups": over["training"]["host_groups"]})
    assert clf.classify(FiveTuple("h1", "h16", 6, 21000, 5201)) == "training"


def test_big_switch_layout_matches_fat_tree_hosts():
    layout = big_switch_layout(4, 10)
    assert [h for h, *_ in layout] == HOSTS
    for name, ip, mac, port, bw in layout:
        h = SPEC.host(name)
        assert ip == h.ip + "/8" and mac == h.mac and port == h.number and bw == 10.0
    assert dpid_to_name(int(big_switch_dpid(), 16)) == BIG_SWITCH_NAME == "e0_0"

"""Traffic classification from plain config data."""
from __future__ import annotations

import pytest

from controller.classify import ClassifierError, PortRange, TrafficClassifier
from controller.ecmp import FiveTuple


def test_empty_classifier_calls_everything_background():
    assert TrafficClassifier().classify(FiveTuple("h1", "h2", 17, 4791, 4791)) == "background"
    assert TrafficClassifier.from_config(None) == TrafficClassifier()


def test_host_groups_ports_and_dscp():
    clf = TrafficClassifier.from_config({
        "host_groups": {"job-a": ["h1", "h2", "h3"], "job-b": ["h9", "h10"]},
        "ports": ["udp:4791", "tcp:5000-5100", 29500],
        "dscp": [26]})
    assert clf.classify(FiveTuple("h1", "h3", 6, 40000, 40001)) == "training"
    assert clf.classify(FiveTuple("h1", "h9", 6, 40000, 40001)) == "background"  # across jobs
    assert clf.classify(FiveTuple("h4", "h5", 17, 50000, 4791)) == "training"   # RoCEv2
    assert clf.classify(FiveTuple("h4", "h5", 6, 50000, 4791)) == "background"  # TCP 4791 is not RoCE
    assert clf.classify(FiveTuple("h4", "h5", 6, 5050, 80)) == "training"       # either end's port
    assert clf.classify(FiveTuple("h4", "h5", 17, 1, 29500)) == "training"      # bare port: TCP and UDP
    assert clf.classify(FiveTuple("h4", "h5", 1, 0, 29500)) == "background"     # ICMP has no ports
    assert clf.classify(FiveTuple("h4", "h5", 6, 1, 2), dscp=26) == "training"
    assert clf.classify(FiveTuple("h4", "h5", 6, 1, 2), dscp=0) == "background"


def test_single_host_list_is_one_group():
    clf = TrafficClassifier.from_config({"host_groups": ["h1", "h2"]}, known_hosts=["h1", "h2", "h3"])
    assert clf.host_groups == (frozenset({"h1", "h2"}),)
    clf2 = TrafficClassifier.from_config({"host_groups": [["h1", "h2"], ["h3", "h4"]]})
    assert clf2.classify(FiveTuple("h4", "h3")) == "training"


@pytest.mark.parametrize("data, where", [
    ({"ports": ["udp:70000"]}, r"ports\[0\]"),
    ({"ports": ["udp:4791", "sctp:9"]}, r"ports\[1\]"),
    ({"ports": ["tcp:5100-5000"]}, r"ports\[0\].*above"),
    ({"ports": ["tcp:a-b"]}, r"ports\[0\]"),
    ({"ports": ["1-2-3"]}, r"ports\[0\]"),
    ({"ports": [True]}, r"ports\[0\]"),
    ({"ports": {"a": 1}}, "ports"),
    ({"dscp": [64]}, r"dscp\[0\]"),
    ({"dscp": [1, "x"]}, r"dscp\[1\]"),
    ({"dscp": [1.5]}, r"dscp\[0\]"),
    ({"host_groups": "h1"}, "host_groups"),
    ({"host_groups": [["h1", "h2"], ["h3"]]}, r"host_groups\[1\]"),
    ({"host_groups": [["h1", 7]]}, r"host_groups\[0\]\[1\]"),
    ({"host_groups": {"job": ["h1", "h99"]}}, r"host_groups\['job'\]\[1\].*unknown host"),
    ({"hosts": ["h1"]}, "unknown classifier key"),
])
def test_bad_entries_are_named(data, where):
    with pytest.raises(ClassifierError, match=where):
        TrafficClassifier.from_config(data, known_hosts=["h1", "h2", "h3"])


def test_port_range_parse_forms():
    assert PortRange.parse("udp:4791", "x") == PortRange(17, 4791, 4791)
    assert PortRange.parse(" TCP:5000-5100 ", "x") == PortRange(6, 5000, 5100)
    assert PortRange.parse("any:1-2", "x") == PortRange(None, 1, 2)
    assert PortRange.parse(80, "x") == PortRange(None, 80, 80)

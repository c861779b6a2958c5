"""One big non-blocking switch with the fat-tree's hosts: the reference network.

Why: the Hedera protocol (and the replay's ``ideal`` policy) measure every
routing policy against the physical limit, a fabric where each flow is limited
only by its hosts' access links.  Measuring that limit in the *same* lab
(same userspace datapath, same link shaping, same hosts, same controller)
rather than assuming the line rate keeps the ratio honest: whatever the lab
itself costs (headers, shaping, datapath CPU) is in both numerator and
denominator.

Hosts ``h1``..``h(k^3/4)`` keep the fat-tree's names, IPs and MACs
(``fattree_spec``); host ``hN`` is on switch port ``N``.  The switch's DPID is
that of edge switch ``e0_0`` so the controller, which names switches from
their DPIDs (``fattree_spec.dpid_to_name``), calls it ``e0_0`` and treats its
ports as host-facing edge ports.

``mn --custom mininet_topos/bigswitch.py --topo bigswitch,k=4,bw=10`` works too.
"""
import os
import sys

try:
    _HERE = os.path.dirname(os.path.abspath(__file__))
except NameError:  # `mn --custom` execs this file without __file__
    _HERE = os.path.dirname(os.path.abspath(sys._getframe().f_code.co_filename))
if os.path.dirname(_HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(_HERE))

from typing import Any, List, Tuple  # noqa: E402

from mininet_topos.fattree_spec import ROLE_EDGE, fat_tree, make_dpid  # noqa: E402

BIG_SWITCH_NAME = "e0_0"


def big_switch_dpid() -> str:
    """16 hex digits, as Mininet wants; the controller names it ``e0_0``."""
    return "%016x" % make_dpid(ROLE_EDGE, 0, 0)


def big_switch_layout(k: int = 4, bw: float = 10.0) -> List[Tuple[str, str, str, int, float]]:
    """(host, ip/prefix, mac, switch port, bw_mbps) per host; pure, so it is unit-tested."""
    spec = fat_tree(k, bw)
    return [(h.name, h.ip + "/8", h.mac, h.number, spec.bw_mbps) for h in spec.hosts]


try:
    from mininet.topo import Topo

    from mininet_topos.shaping import BoundedTCLink
except ImportError:  # pragma: no cover - the pure helpers above work without Mininet
    BoundedTCLink = None
    Topo = object


class BigSwitchTopo(Topo):  # type: ignore[misc,valid-type]
    """k^3/4 hosts on one switch, each host link shaped to ``bw`` Mbit/s with a bounded queue (shaping.py)."""

    def build(self, k: int = 4, bw: float = 10, **_opts: Any) -> None:  # pylint: disable=arguments-differ
        self.addSwitch(BIG_SWITCH_NAME, dpid=big_switch_dpid(), protocols="OpenFlow13")
        for name, ip, mac, port, mbps in big_switch_layout(k, bw):
            self.addHost(name, ip=ip, mac=mac)
            self.addLink(name, BIG_SWITCH_NAME, port1=0, port2=port, cls=BoundedTCLink, bw=mbps)


topos = {"bigswitch": BigSwitchTopo}

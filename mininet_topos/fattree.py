"""Mininet topology for ``mn --custom mininet_topos/fattree.py --topo fattree,k=4,bw=10``.

The structure itself lives in the pure ``fattree_spec`` module so that the
controller and the simulator build the identical graph without Mininet.
"""
import os
import sys

try:
    _HERE = os.path.dirname(os.path.abspath(__file__))
except NameError:  # `mn --custom` execs this file without __file__
    _HERE = os.path.dirname(os.path.abspath(sys._getframe().f_code.co_filename))
if os.path.dirname(_HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(_HERE))

from typing import Any  # noqa: E402

from mininet.topo import Topo  # noqa: E402

from mininet_topos.fattree_spec import fat_tree  # noqa: E402
from mininet_topos.shaping import BoundedTCLink  # noqa: E402


class FatTreeTopo(Topo):
    """k-ary fat-tree with explicit DPIDs, port numbers and TCLink shaping with bounded queues (shaping.py)."""

    def build(self, k: int = 4, bw: float = 10, **_opts: Any) -> None:  # pylint: disable=arguments-differ
        spec = fat_tree(k, bw)
        self.spec = spec
        for sw in spec.switches:
            self.addSwitch(sw.name, dpid=sw.dpid_str, protocols="OpenFlow13")
        for host in spec.hosts:
            self.addHost(host.name, ip=host.ip + "/8", mac=host.mac)
        for link in spec.links:
            self.addLink(link.a, link.b, port1=link.a_port, port2=link.b_port,
                         cls=BoundedTCLink, bw=link.bw_mbps)


topos = {"fattree": FatTreeTopo}

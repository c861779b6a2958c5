"""The fabric model: switches, hosts, ports, capacities and equal-cost paths.

The live app fills it from discovery; replay and tests fill it from the pure
fat-tree description.  Both produce the same node names, so a decision made
offline is the decision made live.  Nodes are names (``c0``, ``a1_0``,
``e3_1``, ``h5``); a directed link is the tuple ``(a, b)`` and means traffic
leaving ``a`` toward ``b``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import networkx as nx

from mininet_topos.fattree_spec import FatTreeSpec

Link = Tuple[str, str]
Path = Tuple[str, ...]

SWITCH = "switch"
HOST = "host"


class FabricError(ValueError):
    """A node, link or path that the fabric does not have."""


def path_links(path: Sequence[str]) -> List[Link]:
    """Directed links traversed by ``path`` in order."""
    return [(path[i], path[i + 1]) for i in range(len(path) - 1)]


class Fabric:
    """Graph of the fabric with per-link capacity, ports and up/down state."""

    def __init__(self) -> None:
        self.graph = nx.Graph()
        self._ports: Dict[Link, int] = {}
        self._by_port: Dict[Tuple[str, int], str] = {}
        self._path_cache: Dict[Tuple[str, str], List[Path]] = {}
        self.version = 0

    # -- construction -------------------------------------------------
    @classmethod
    def from_spec(cls, spec: FatTreeSpec) -> "Fabric":
        fabric = cls()
        for sw in spec.switches:
            fabric.add_switch(sw.name, dpid=sw.dpid)
        for host in spec.hosts:
            fabric.add_host(host.name, ip=host.ip, mac=host.mac)
        for link in spec.links:
            fabric.add_link(link.a, link.a_port, link.b, link.b_port, link.bw_mbps * 1e6)
        return fabric

    def _changed(self) -> None:
        self.version += 1
        self._path_cache.clear()

    def add_switch(self, name: str, dpid: Optional[int] = None) -> None:
        self.graph.add_node(name, kind=SWITCH, dpid=dpid)
        self._changed()

    def add_host(self, name: str, ip: Optional[str] = None, mac: Optional[str] = None) -> None:
        self.graph.add_node(name, kind=HOST, ip=ip, mac=mac)
        self._changed()

    def add_link(self, a: str, a_port: int, b: str, b_port: int, capacity_bps: float) -> None:
        """Add (or replace) the cable a:a_port <-> b:b_port."""
        for node in (a, b):
            if node not in self.graph:
                raise FabricError("unknown node %r: add the switch or host first" % node)
        if not capacity_bps > 0:
            raise FabricError("link %s-%s: capacity must be > 0 bit/s, got %r" % (a, b, capacity_bps))
        for node, port in ((a, a_port), (b, b_port)):
            old = self._by_port.get((node, port))
            if old is not None and old != (b if node == a else a):
                self.remove_link(node, old)
        self.graph.add_edge(a, b, capacity_bps=float(capacity_bps), up=True)
        self._ports[(a, b)] = a_port
        self._ports[(b, a)] = b_port
        self._by_port[(a, a_port)] = b
        self._by_port[(b, b_port)] = a
        self._changed()

    def remove_link(self, a: str, b: str) -> None:
        if not self.graph.has_edge(a, b):
            return
        self.graph.remove_edge(a, b)
        for x, y in ((a, b), (b, a)):
            port = self._ports.pop((x, y), None)
            if port is not None:
                self._by_port.pop((x, port), None)
        self._changed()

    def remove_node(self, name: str) -> None:
        if name not in self.graph:
            return
        for nbr in list(self.graph.neighbors(name)):
            self.remove_link(name, nbr)
        self.graph.remove_node(name)
        self._changed()

    def set_link_up(self, a: str, b: str, up: bool) -> bool:
        """Mark a cable up or down; returns True if its state changed."""
        if not self.graph.has_edge(a, b):
            raise FabricError("no link %s-%s in the fabric" % (a, b))
        data = self.graph.edges[a, b]
        if data["up"] == up:
            return False
        data["up"] = up
        self._changed()
        return True

    # -- queries ------------------------------------------------------
    def is_switch(self, node: str) -> bool:
        return self.graph.nodes.get(node, {}).get("kind") == SWITCH

    def is_host(self, node: str) -> bool:
        return self.graph.nodes.get(node, {}).get("kind") == HOST

    def switches(self) -> List[str]:
        return sorted(n for n, d in self.graph.nodes(data=True) if d["kind"] == SWITCH)

    def hosts(self) -> List[str]:
        return sorted(n for n, d in self.graph.nodes(data=True) if d["kind"] == HOST)

    def dpid(self, switch: str) -> Optional[int]:
        return self.graph.nodes[switch].get("dpid")

    def node_attr(self, node: str, key: str) -> Any:
        return self.graph.nodes[node].get(key)

    def port(self, a: str, b: str) -> int:
        """OpenFlow port on ``a`` that faces ``b``."""
        try:
            return self._ports[(a, b)]
        except KeyError:
            raise FabricError("no link %s->%s in the fabric" % (a, b)) from None

    def neighbor(self, node: str, port: int) -> Optional[str]:
        return self._by_port.get((node, port))

    def capacity_bps(self, a: str, b: str) -> float:
        try:
            return self.graph.edges[a, b]["capacity_bps"]
        except KeyError:
            raise FabricError("no link %s->%s in the fabric" % (a, b)) from None

    def is_up(self, a: str, b: str) -> bool:
        return self.graph.has_edge(a, b) and self.graph.edges[a, b]["up"]

    def directed_links(self, up_only: bool = False) -> List[Link]:
        out: List[Link] = []
        for a, b, data in self.graph.edges(data=True):
            if up_only and not data["up"]:
                continue
            out.append((a, b))
            out.append((b, a))
        return sorted(out)

    def host_edge(self, host: str) -> Tuple[str, int]:
        """(switch, port) a host hangs off."""
        for nbr in self.graph.neighbors(host):
            return nbr, self._ports[(nbr, host)]
        raise FabricError("host %r is not attached to any switch" % host)

    def host_ports(self, switch: str) -> List[int]:
        return sorted(self._ports[(switch, n)] for n in self.graph.neighbors(switch) if self.is_host(n))

    def switch_ports(self, switch: str) -> List[int]:
        return sorted(self._ports[(switch, n)] for n in self.graph.neighbors(switch) if self.is_switch(n))

    def paths(self, src: str, dst: str) -> List[Path]:
        """All equal-cost shortest paths from ``src`` to ``dst`` over up links, sorted.

        Raises FabricError if either end is unknown or no path exists.
        """
        key = (src, dst)
        cached = self._path_cache.get(key)
        if cached is not None:
            return cached
        for node in (src, dst):
            if node not in self.graph:
                raise FabricError("unknown node %r" % node)
        up = nx.subgraph_view(self.graph, filter_edge=lambda a, b: self.graph.edges[a, b]["up"])
        # Hosts are leaves: never route through one.
        view = nx.subgraph_view(up, filter_node=lambda n: n in (src, dst) or self.is_switch(n))
        try:
            found = sorted(tuple(p) for p in nx.all_shortest_paths(view, src, dst))
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            raise FabricError("no path from %s to %s over links that are up" % (src, dst)) from None
        self._path_cache[key] = found
        return found

    def validate_path(self, path: Sequence[str], src: str, dst: str) -> None:
        """Raise FabricError unless ``path`` is a loop-free up path from src to dst."""
        if not path or path[0] != src or path[-1] != dst:
            raise FabricError("path %s does not run from %s to %s" % ("->".join(path), src, dst))
        if len(set(path)) != len(path):
            raise FabricError("path %s has a loop" % "->".join(path))
        for a, b in path_links(path):
            if not self.graph.has_edge(a, b):
                raise FabricError("path %s uses %s-%s, which is not a link" % ("->".join(path), a, b))
            if not self.graph.edges[a, b]["up"]:
                raise FabricError("path %s uses %s-%s, which is down" % ("->".join(path), a, b))
        for node in path[1:-1]:
            if not self.is_switch(node):
                raise FabricError("path %s transits %s, which is not a switch" % ("->".join(path), node))

"""Pure description of a k-ary fat-tree (Al-Fares et al., SIGCOMM 2008).

One description feeds both Mininet (``mininet_topos/fattree.py``) and the
offline graph used by the controller's fabric model, the planner and the
simulator, so the lab and the replay agree on names, DPIDs and port numbers.
Mininet uses the port numbers given here as OpenFlow port numbers.

Naming and numbering (all 0-based except hosts):

* core ``c{j}``, j in 0..(k/2)^2-1; core ``c{j}`` connects to aggregation
  switch ``a{p}_{j // (k/2)}`` of every pod p, on its port ``p + 1``.
* aggregation ``a{p}_{m}``: ports 1..k/2 go down to ``e{p}_{i}`` (port i+1),
  ports k/2+1..k go up to cores ``c{m*k/2 + n}`` (port k/2+1+n).
* edge ``e{p}_{i}``: ports 1..k/2 go to hosts, ports k/2+1..k go up to
  ``a{p}_{m}`` (port k/2+1+m).
* hosts ``h1``..``h(k^3/4)`` numbered pod by pod, edge by edge, port by port;
  host N has IP 10.0.0.0 + N and MAC 00:00:00:00:00:00 + N.

DPIDs are readable in hex: ``0x0RPPIIII`` with role R (1 core, 2 aggregation,
3 edge), pod PP (0 for cores) and index IIII.  ``dpid_to_name`` inverts this,
which lets a controller name a switch it was never told about.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

ROLE_CORE = 1
ROLE_AGG = 2
ROLE_EDGE = 3
ROLE_NAMES = {ROLE_CORE: "core", ROLE_AGG: "aggregation", ROLE_EDGE: "edge"}

HOST_NET = ipaddress.IPv4Address("10.0.0.0")


class TopologyError(ValueError):
    """A topology parameter that cannot describe a fat-tree."""


@dataclass(frozen=True)
class SwitchSpec:
    name: str
    dpid: int
    role: int
    pod: int
    index: int

    @property
    def dpid_str(self) -> str:
        """DPID as Mininet/OVS want it: 16 hex digits."""
        return "%016x" % self.dpid


@dataclass(frozen=True)
class HostSpec:
    name: str
    number: int
    ip: str
    mac: str
    edge: str
    edge_port: int


@dataclass(frozen=True)
class LinkSpec:
    """An undirected cable: ``a`` port ``a_port`` <-> ``b`` port ``b_port``.

    Hosts have a single interface, numbered port 0.
    """

    a: str
    a_port: int
    b: str
    b_port: int
    bw_mbps: float


def make_dpid(role: int, pod: int, index: int) -> int:
    return (role << 24) | (pod << 16) | index


def dpid_to_name(dpid: int) -> str:
    """Name a fat-tree switch from its DPID; ``s<hex>`` for foreign DPIDs."""
    role, pod, index = (dpid >> 24) & 0xFF, (dpid >> 16) & 0xFF, dpid & 0xFFFF
    if dpid >> 32 == 0:
        if role == ROLE_CORE and pod == 0:
            return "c%d" % index
        if role == ROLE_AGG:
            return "a%d_%d" % (pod, index)
        if role == ROLE_EDGE:
            return "e%d_%d" % (pod, index)
    return "s%x" % dpid


def host_ip(number: int) -> str:
    return str(HOST_NET + number)


def host_mac(number: int) -> str:
    raw = "%012x" % number
    return ":".join(raw[i:i + 2] for i in range(0, 12, 2))


def ip_to_host_name(ip: str) -> str:
    """``10.0.0.N`` -> ``hN``; other addresses keep their dotted form."""
    try:
        addr = ipaddress.IPv4Address(ip)
    except ValueError:
        return ip
    offset = int(addr) - int(HOST_NET)
    if 0 < offset < (1 << 24):
        return "h%d" % offset
    return ip


_HOST_RE = re.compile(r"^h([1-9][0-9]*)$")


def host_number(name: str) -> Optional[int]:
    m = _HOST_RE.match(name)
    return int(m.group(1)) if m else None


def check_k(k: object) -> int:
    """Validate k; the message names the constraint so ``mn`` users see it."""
    try:
        k_int = int(k)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TopologyError("fat-tree k must be an even integer >= 2, got %r" % (k,))
    if k_int != k and not isinstance(k, str):
        raise TopologyError("fat-tree k must be an even integer >= 2, got %r" % (k,))
    if k_int < 2 or k_int % 2:
        raise TopologyError(
            "fat-tree k must be an even integer >= 2 (k ports per switch, "
            "k/2 up and k/2 down), got k=%d" % k_int)
    if k_int > 254:
        raise TopologyError("fat-tree k must be <= 254 (the pod must fit one DPID byte), got k=%d" % k_int)
    return k_int


@dataclass(frozen=True)
class FatTreeSpec:
    k: int
    bw_mbps: float
    switches: Tuple[SwitchSpec, ...]
    hosts: Tuple[HostSpec, ...]
    links: Tuple[LinkSpec, ...]

    @property
    def capacity_bps(self) -> float:
        return self.bw_mbps * 1e6

    def switch(self, name: str) -> SwitchSpec:
        for s in self.switches:
            if s.name == name:
                return s
        raise KeyError(name)

    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def host_names(self) -> List[str]:
        return [h.name for h in self.hosts]

    def pod_of_host(self, name: str) -> int:
        n = host_number(name)
        if n is None or n > len(self.hosts):
            raise KeyError(name)
        half = self.k // 2
        return (n - 1) // (half * half)

    def ports(self) -> Dict[Tuple[str, str], int]:
        """(node, neighbour) -> port number on node toward neighbour."""
        out: Dict[Tuple[str, str], int] = {}
        for link in self.links:
            out[(link.a, link.b)] = link.a_port
            out[(link.b, link.a)] = link.b_port
        return out


def fat_tree(k: object = 4, bw_mbps: object = 10.0) -> FatTreeSpec:
    """Build the description of a k-ary fat-tree with every link at ``bw_mbps``."""
    k_int = check_k(k)
    try:
        bw = float(bw_mbps)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TopologyError("link bandwidth bw must be a number of Mbit/s > 0, got %r" % (bw_mbps,))
    if not 0 < bw < float("inf"):
        raise TopologyError("link bandwidth bw must be a finite number of Mbit/s > 0, got %r" % (bw_mbps,))
    half = k_int // 2
    switches: List[SwitchSpec] = []
    hosts: List[HostSpec] = []
    links: List[LinkSpec] = []
    for j in range(half * half):
        switches.append(SwitchSpec("c%d" % j, make_dpid(ROLE_CORE, 0, j), ROLE_CORE, 0, j))
    number = 0
    for p in range(k_int):
        for m in range(half):
            switches.append(SwitchSpec("a%d_%d" % (p, m), make_dpid(ROLE_AGG, p, m), ROLE_AGG, p, m))
        for i in range(half):
            switches.append(SwitchSpec("e%d_%d" % (p, i), make_dpid(ROLE_EDGE, p, i), ROLE_EDGE, p, i))
        for i in range(half):
            edge = "e%d_%d" % (p, i)
            for j in range(half):
                number += 1
                name = "h%d" % number
                hosts.append(HostSpec(name, number, host_ip(number), host_mac(number), edge, j + 1))
                links.append(LinkSpec(name, 0, edge, j + 1, bw))
            for m in range(half):
                links.append(LinkSpec(edge, half + 1 + m, "a%d_%d" % (p, m), i + 1, bw))
        for m in range(half):
            for n in range(half):
                links.append(LinkSpec("a%d_%d" % (p, m), half + 1 + n, "c%d" % (m * half + n), p + 1, bw))
    return FatTreeSpec(k_int, bw, tuple(switches), tuple(hosts), tuple(links))

"""Path -> OpenFlow rule specs, as plain data.

The app turns a ``RuleSpec`` into an ``OFPFlowMod`` in one place
(``controller/app.py``); nothing here knows OpenFlow objects.  Every rule
carries a cookie that says "Sidestep" and which flow and path version it
belongs to, so rules can be found, counted and removed again.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from controller.ecmp import PROTO_TCP, PROTO_UDP, FiveTuple
from controller.fabric import Fabric

COOKIE_TAG = 0x51DE  # "SIDE": top 16 bits of every Sidestep cookie
COOKIE_TAG_MASK = 0xFFFF << 48

PRIORITY_TABLE_MISS = 0
PRIORITY_CONTROL = 100      # ARP/LLDP to the controller
PRIORITY_FLOW = 1000        # per-connection path rules
PRIORITY_HOST_DROP = 10     # drop rules for unknown traffic (not used yet)

DEFAULT_IDLE_TIMEOUT_S = 60  # longer than a training job's compute gap: a pin outlives it


def make_cookie(flow: FiveTuple, path_version: int) -> int:
    """Tag (16 bits) | path version (16 bits) | CRC32 of the 5-tuple (32 bits)."""
    return (COOKIE_TAG << 48) | ((path_version & 0xFFFF) << 32) | zlib.crc32(flow.key().encode("ascii"))


def cookie_flow_hash(cookie: int) -> int:
    return cookie & 0xFFFFFFFF


def cookie_version(cookie: int) -> int:
    return (cookie >> 32) & 0xFFFF


def is_sidestep_cookie(cookie: int) -> bool:
    return (cookie >> 48) == COOKIE_TAG


@dataclass(frozen=True)
class RuleSpec:
    """One flow entry: match fields use OpenFlow 1.3 OXM names (``ipv4_src`` ...)."""

    switch: str
    match: Tuple[Tuple[str, object], ...]
    out_port: int
    priority: int = PRIORITY_FLOW
    cookie: int = 0
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT_S
    hard_timeout: int = 0

    def match_dict(self) -> Dict[str, object]:
        return dict(self.match)


def flow_match(fabric: Fabric, flow: FiveTuple) -> Tuple[Tuple[str, object], ...]:
    """Exact match on the connection; ICMP and other IP protocols match on addresses."""
    src_ip = fabric.node_attr(flow.src, "ip")
    dst_ip = fabric.node_attr(flow.dst, "ip")
    fields: List[Tuple[str, object]] = [
        ("eth_type", 0x0800), ("ipv4_src", src_ip), ("ipv4_dst", dst_ip), ("ip_proto", flow.proto)]
    if flow.proto == PROTO_TCP:
        fields += [("tcp_src", flow.src_port), ("tcp_dst", flow.dst_port)]
    elif flow.proto == PROTO_UDP:
        fields += [("udp_src", flow.src_port), ("udp_dst", flow.dst_port)]
    return tuple(fields)


def path_rules(fabric: Fabric, flow: FiveTuple, path: Sequence[str], path_version: int = 0,
               idle_timeout: int = DEFAULT_IDLE_TIMEOUT_S) -> List[RuleSpec]:
    """Rules for every switch on ``path`` (host, switch..., host), egress switch first.

    Egress first means that by the time the ingress switch forwards the first
    packet, every switch behind it already knows the flow.
    """
    fabric.validate_path(path, flow.src, flow.dst)
    match = flow_match(fabric, flow)
    cookie = make_cookie(flow, path_version)
    rules = []
    for i in range(len(path) - 2, 0, -1):
        sw, nxt = path[i], path[i + 1]
        rules.append(RuleSpec(sw, match, fabric.port(sw, nxt), PRIORITY_FLOW, cookie, idle_timeout))
    return rules

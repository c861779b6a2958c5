"""Path -> OpenFlow rule specs, as plain data.

The app turns a ``RuleSpec`` into an ``OFPFlowMod`` in one place
(``controller/app.py``); nothing here knows OpenFlow objects.  Every rule
carries a cookie that says "Sidestep" and which flow and path version it
belongs to, so rules can be found, counted and removed again.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from controller.ecmp import PROTO_TCP, PROTO_UDP, FiveTuple
from controller.fabric import Fabric, FabricError

COOKIE_TAG = 0x51DE  # "SIDE": top 16 bits of every Sidestep cookie
COOKIE_TAG_MASK = 0xFFFF << 48

PRIORITY_TABLE_MISS = 0
PRIORITY_CONTROL = 100      # ARP/LLDP to the controller
PRIORITY_FLOW = 1000        # per-connection path rules

DEFAULT_IDLE_TIMEOUT_S = 60  # longer than a training job's compute gap: a pin outlives it


def make_cookie(flow: FiveTuple, path_version: int) -> int:
    """Tag (16 bits) | path version (16 bits) | CRC32 of the 5-tuple (32 bits)."""
    return (COOKIE_TAG << 48) | ((path_version & 0xFFFF) << 32) | zlib.crc32(flow.key().encode("ascii"))


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


# -- consistent updates ----------------------------------------------------------

OP_ADD = "add"
OP_BARRIER = "barrier"
OP_DELETE = "delete"
OP_KINDS = (OP_ADD, OP_BARRIER, OP_DELETE)

DEFAULT_DRAIN_S = 2.0
"""Wait before deleting old-path rules.  Packets already queued on the old path
must drain first; a 10 Mbit/s TCLink with a 1000-packet queue holds about 1.2 s
of traffic, so 2 s is enough in the lab and cheap on real fabrics (a stale
rule costs a table entry, not bandwidth)."""


@dataclass(frozen=True)
class RuleOp:
    """One step of a path change, executed in list order by the app.

    ``add``: send ``spec`` as an OFPFC_ADD (an entry with the same match and
    priority is replaced in place, atomically).  ``barrier``: send a barrier
    request to ``switch`` and wait for its reply before the next op.
    ``delete``: remove ``spec`` from ``switch`` with OFPFC_DELETE_STRICT on its
    match and priority *and its cookie* (full cookie mask), so a newer rule of
    the same flow is never hit; run it no earlier than ``delay_s`` seconds
    after the preceding barrier completed.
    """

    kind: str
    spec: Optional[RuleSpec]
    switch: str
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in OP_KINDS:
            raise ValueError("RuleOp kind must be one of %s, got %r" % ("|".join(OP_KINDS), self.kind))
        if self.kind == OP_BARRIER:
            if self.spec is not None:
                raise ValueError("a barrier carries no rule spec")
        elif self.spec is None or self.spec.switch != self.switch:
            raise ValueError("a %s op needs a rule spec for switch %s" % (self.kind, self.switch))
        if not self.delay_s >= 0:
            raise ValueError("delay_s must be >= 0, got %r" % (self.delay_s,))


def _stale_rules(fabric: Fabric, flow: FiveTuple, path: Sequence[str], version: int,
                 idle_timeout: int) -> List[RuleSpec]:
    """Specs of the rules an old path installed, without requiring that path to be up.

    The old path may cross the link that just failed, or a link since removed;
    a delete needs the match, priority and cookie, not a live out-port (0 if
    the port is no longer known).
    """
    match = flow_match(fabric, flow)
    cookie = make_cookie(flow, version)
    out = []
    for i in range(len(path) - 2, 0, -1):
        sw, nxt = path[i], path[i + 1]
        try:
            port = fabric.port(sw, nxt)
        except FabricError:
            port = 0
        out.append(RuleSpec(sw, match, port, PRIORITY_FLOW, cookie, idle_timeout))
    return out


def consistent_update(fabric: Fabric, flow: FiveTuple, old_path: Sequence[str],
                      new_path: Sequence[str], version: int, drain_s: float = DEFAULT_DRAIN_S, *,
                      old_version: Optional[int] = None, rewrite_unchanged: bool = True,
                      idle_timeout: int = DEFAULT_IDLE_TIMEOUT_S) -> List[RuleOp]:
    """Ordered rule operations that move ``flow`` from ``old_path`` to ``new_path`` without loss.

    Order: the new path's rules from the egress switch back toward the
    ingress, a barrier after each switch, the ingress switch last; then, after
    ``drain_s``, delete the rules that only the old path used.  Why this is
    safe: a switch is rewritten only after every switch downstream of it on the
    new path has its rule (barriers make that true on the switch, not just on
    the wire), so a packet follows the old path until it meets the first
    rewritten switch and the new path from there on: never a hole, never a loop.

    ``version`` is the new path version (cookie bits); ``old_version`` that of
    the rules being replaced (default ``version - 1``).  A switch on both paths
    whose out-port does not change is rewritten anyway when
    ``rewrite_unchanged`` (the default): the in-place replace is harmless and
    leaves every rule of the flow carrying the current version cookie and a
    fresh idle timer, so the next update and any audit find them; set it False
    to save those flow-mods.  Same path -> ``[]``.
    """
    fabric.validate_path(new_path, flow.src, flow.dst)
    if len(old_path) < 2 or old_path[0] != flow.src or old_path[-1] != flow.dst:
        raise FabricError("old path %s does not run from %s to %s"
                          % ("->".join(old_path), flow.src, flow.dst))
    if not drain_s >= 0:
        raise ValueError("drain_s must be >= 0, got %r" % (drain_s,))
    if tuple(old_path) == tuple(new_path):
        return []
    if old_version is None:
        old_version = version - 1
    if (old_version & 0xFFFF) == (version & 0xFFFF):
        raise ValueError("old and new path versions %d and %d give the same cookie; "
                         "bump the version" % (old_version, version))
    new_rules = path_rules(fabric, flow, new_path, version, idle_timeout)  # egress first
    old_rules = _stale_rules(fabric, flow, old_path, old_version, idle_timeout)
    old_port = {r.switch: r.out_port for r in old_rules}
    ops: List[RuleOp] = []
    last = len(new_rules) - 1
    for i, rule in enumerate(new_rules):
        unchanged = old_port.get(rule.switch) == rule.out_port
        if unchanged and not rewrite_unchanged and i != last:
            continue
        ops.append(RuleOp(OP_ADD, rule, rule.switch))
        ops.append(RuleOp(OP_BARRIER, None, rule.switch))
    on_new = {r.switch for r in new_rules}
    for rule in old_rules:
        if rule.switch not in on_new:
            ops.append(RuleOp(OP_DELETE, rule, rule.switch, float(drain_s)))
    return ops

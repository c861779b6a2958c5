"""Which connections are training traffic: a configurable match on a FiveTuple.

Why: the planner moves training flows and leaves other traffic where ECMP put
it, so something has to say which is which.  Operators know their jobs by
where they run (host groups), by the ports their collective library uses
(RoCEv2 is UDP 4791; NCCL's socket transport uses ephemeral ports unless you
pin them, so match it by host group or by a range you configure), or by the
DSCP their NICs set for the training traffic class.

A connection is ``training`` if *any* configured criterion matches, else
``background``.  Built from plain data (lists and strings, as they come from a
YAML/JSON config) and refuses a bad entry with a message naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Iterable, Mapping, Optional, Sequence, Tuple, Union

from controller.ecmp import PROTO_TCP, PROTO_UDP, FiveTuple

__all__ = ["ClassifierError", "PortRange", "TrafficClassifier", "ROCE_V2_PORT", "TRAINING", "BACKGROUND"]

TRAINING = "training"
BACKGROUND = "background"
ROCE_V2_PORT = 4791  # IANA port of RoCEv2 (UDP)

_PROTOS = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "any": None}


class ClassifierError(ValueError):
    """A classifier entry that cannot be understood; the message names it."""


@dataclass(frozen=True, order=True)
class PortRange:
    """Ports ``lo..hi`` (inclusive) of ``proto`` (6, 17 or None for TCP and UDP)."""

    proto: Optional[int]
    lo: int
    hi: int

    def matches(self, five: FiveTuple) -> bool:
        if self.proto is None:
            if five.proto not in (PROTO_TCP, PROTO_UDP):
                return False
        elif five.proto != self.proto:
            return False
        return self.lo <= five.dst_port <= self.hi or self.lo <= five.src_port <= self.hi

    @classmethod
    def parse(cls, text: object, where: str) -> "PortRange":
        """``"udp:4791"``, ``"tcp:5000-5100"``, ``"5000-5100"`` (TCP and UDP) or an int."""
        if isinstance(text, bool):
            raise ClassifierError("%s: %r is not a port or port range" % (where, text))
        if isinstance(text, int):
            text = str(text)
        if not isinstance(text, str) or not text.strip():
            raise ClassifierError("%s: %r is not a port or port range; write e.g. "
                                  "'udp:4791' or 'tcp:5000-5100'" % (where, text))
        raw = text.strip().lower()
        proto: Optional[int] = None
        if ":" in raw:
            name, raw = raw.split(":", 1)
            if name not in _PROTOS:
                raise ClassifierError("%s: %r: protocol must be tcp, udp or any" % (where, text))
            proto = _PROTOS[name]
        parts = raw.split("-")
        if len(parts) > 2:
            raise ClassifierError("%s: %r is not a port or port range" % (where, text))
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise ClassifierError("%s: %r is not a port or port range; write e.g. "
                                  "'udp:4791' or 'tcp:5000-5100'" % (where, text)) from None
        lo, hi = nums[0], nums[-1]
        for n in (lo, hi):
            if not 0 <= n <= 65535:
                raise ClassifierError("%s: %r: port %d is outside 0..65535" % (where, text, n))
        if lo > hi:
            raise ClassifierError("%s: %r: range start %d is above its end %d" % (where, text, lo, hi))
        return cls(proto, lo, hi)


PlainGroups = Union[Sequence[str], Sequence[Sequence[str]], Mapping[str, Sequence[str]]]


@dataclass(frozen=True)
class TrafficClassifier:
    """Match rules for training traffic.

    ``host_groups``: a connection whose two ends are in the same group (one
    training job's hosts) is training.  ``ports``: either end's port in a
    range.  ``dscp``: the packet's DSCP (when the caller knows it) in the set.
    An empty classifier calls everything background.
    """

    host_groups: Tuple[FrozenSet[str], ...] = ()
    ports: Tuple[PortRange, ...] = ()
    dscp: FrozenSet[int] = frozenset()

    @classmethod
    def from_config(cls, data: Optional[Mapping[str, object]] = None, *,
                    known_hosts: Optional[Iterable[str]] = None) -> "TrafficClassifier":
        """Build from ``{"host_groups": ..., "ports": [...], "dscp": [...]}``.

        ``host_groups`` may be one list of host names (one group), a list of
        lists, or a mapping job name -> list.  With ``known_hosts`` an unknown
        host name is refused.  Unknown keys are refused.
        """
        data = dict(data or {})
        unknown = sorted(set(data) - {"host_groups", "ports", "dscp"})
        if unknown:
            raise ClassifierError("unknown classifier key(s) %s; known keys are host_groups, ports, dscp"
                                  % ", ".join(map(str, unknown)))
        known = set(known_hosts) if known_hosts is not None else None
        groups = _parse_groups(data.get("host_groups") or (), known)
        ports_raw = data.get("ports") or ()
        if isinstance(ports_raw, (str, int)):
            ports_raw = [ports_raw]
        if not isinstance(ports_raw, (list, tuple)):
            raise ClassifierError("ports: expected a list such as ['udp:4791', 'tcp:5000-5100'], got %r"
                                  % (ports_raw,))
        ports = tuple(PortRange.parse(p, "ports[%d]" % i) for i, p in enumerate(ports_raw))
        dscp_raw = data.get("dscp") or ()
        if isinstance(dscp_raw, (str, int)):
            dscp_raw = [dscp_raw]
        if not isinstance(dscp_raw, (list, tuple)):
            raise ClassifierError("dscp: expected a list of values 0..63, got %r" % (dscp_raw,))
        dscp = frozenset(_parse_dscp(v, "dscp[%d]" % i) for i, v in enumerate(dscp_raw))
        return cls(groups, ports, dscp)

    def classify(self, five: FiveTuple, dscp: Optional[int] = None) -> str:
        """``training`` if any rule matches, else ``background``."""
        for group in self.host_groups:
            if five.src in group and five.dst in group:
                return TRAINING
        for rng in self.ports:
            if rng.matches(five):
                return TRAINING
        if dscp is not None and dscp in self.dscp:
            return TRAINING
        return BACKGROUND


def _parse_dscp(value: object, where: str) -> int:
    if isinstance(value, bool):
        raise ClassifierError("%s: %r is not a DSCP value 0..63" % (where, value))
    try:
        n = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ClassifierError("%s: %r is not a DSCP value 0..63" % (where, value)) from None
    if isinstance(value, float) and value != n:
        raise ClassifierError("%s: %r is not a DSCP value 0..63" % (where, value))
    if not 0 <= n <= 63:
        raise ClassifierError("%s: %r is outside the DSCP range 0..63" % (where, value))
    return n


def _parse_group(members: object, where: str, known: Optional[set]) -> FrozenSet[str]:
    if isinstance(members, str) or not isinstance(members, (list, tuple, set, frozenset)):
        raise ClassifierError("%s: expected a list of host names, got %r" % (where, members))
    out = set()
    for i, host in enumerate(members):
        if not isinstance(host, str) or not host.strip():
            raise ClassifierError("%s[%d]: %r is not a host name" % (where, i, host))
        if known is not None and host.strip() not in known:
            raise ClassifierError("%s[%d]: unknown host %r" % (where, i, host))
        out.add(host.strip())
    if len(out) < 2:
        raise ClassifierError("%s: a host group needs at least two hosts, got %r" % (where, members))
    return frozenset(out)


def _parse_groups(raw: object, known: Optional[set]) -> Tuple[FrozenSet[str], ...]:
    if isinstance(raw, Mapping):
        return tuple(_parse_group(raw[name], "host_groups[%r]" % name, known) for name in sorted(raw))
    if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
        raise ClassifierError("host_groups: expected a list of host names, a list of lists "
                              "or a mapping of job -> hosts, got %r" % (raw,))
    if not raw:
        return ()
    if all(isinstance(x, str) for x in raw):
        return (_parse_group(raw, "host_groups", known),)
    return tuple(_parse_group(g, "host_groups[%d]" % i, known) for i, g in enumerate(raw))

"""ECMP: a stable hash of the 5-tuple over the equal-cost paths.

Python's ``hash()`` is salted per process; CRC32 is not, so a flow hashes to
the same path in the live controller, in replay and across restarts.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17


@dataclass(frozen=True, order=True)
class FiveTuple:
    """A connection: host names (not IPs) so replay and live hash alike."""

    src: str
    dst: str
    proto: int = PROTO_TCP
    src_port: int = 0
    dst_port: int = 0

    def key(self) -> str:
        return "%s|%s|%d|%d|%d" % (self.src, self.dst, self.proto, self.src_port, self.dst_port)

    def reverse(self) -> "FiveTuple":
        return FiveTuple(self.dst, self.src, self.proto, self.dst_port, self.src_port)


def ecmp_hash(flow: FiveTuple) -> int:
    return zlib.crc32(flow.key().encode("ascii"))


def ecmp_choice(flow: FiveTuple, paths: Sequence[T]) -> T:
    """Pick one of ``paths`` (in their given, sorted order) by the flow's hash."""
    if not paths:
        raise ValueError("no equal-cost path for %s" % flow.key())
    return paths[ecmp_hash(flow) % len(paths)]

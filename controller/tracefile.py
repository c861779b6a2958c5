"""Shared pieces of the CSV readers: one error type that names file, line and column, and the
checks of the fields that flow traces and ``sidestep plan``'s flow lists both have (hosts, class,
protocol, ports), so that the two formats accept the same values and say the same thing."""
from __future__ import annotations

import csv
import math
from typing import Collection, Dict, Iterator, List, Optional, Sequence, Tuple

from controller.classify import BACKGROUND, TRAINING
from controller.ecmp import PROTO_ICMP, PROTO_TCP, PROTO_UDP

FLOW_CLASSES = (TRAINING, BACKGROUND)
PROTO_NAMES = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "icmp": PROTO_ICMP}


class TraceError(ValueError):
    """A trace file that cannot be read; the message says where and how to fix it."""

    def __init__(self, path: str, message: str, line: Optional[int] = None,
                 column: Optional[str] = None) -> None:
        where = str(path)
        if line is not None:
            where += ":%d" % line
        if column is not None:
            where += ": column %r" % column
        super().__init__("%s: %s" % (where, message))
        self.path = path
        self.line = line
        self.column = column


def open_csv(path: str, required: Sequence[str], optional: Sequence[str] = (), *, cells: bool = False
             ) -> Tuple[List[str], Iterator[Tuple[int, Dict[str, str]]]]:
    """Open a headed CSV, check its header, and yield (line_number, row).

    Unknown columns are refused so that a typo never silently drops data.
    ``cells``: each row as its list of stripped cells, in header order, instead of a dict.
    """
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise TraceError(path, "cannot open: %s" % exc.strerror) from None
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise TraceError(path, "file is empty; expected a header line with columns %s"
                         % ",".join(required), line=1) from None
    except (csv.Error, UnicodeDecodeError) as exc:
        handle.close()
        raise TraceError(path, "not a readable CSV file (%s)" % exc, line=1) from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        handle.close()
        raise TraceError(path, "header lacks required column(s) %s; the header must "
                         "contain %s" % (",".join(missing), ",".join(required)), line=1)
    unknown = [c for c in header if c not in required and c not in optional]
    if unknown:
        handle.close()
        raise TraceError(path, "unknown column(s) %s; allowed columns are %s"
                         % (",".join(unknown), ",".join(list(required) + list(optional))), line=1,
                         column=unknown[0])
    if len(set(header)) != len(header):
        handle.close()
        twice = next(c for i, c in enumerate(header) if c in header[:i])
        raise TraceError(path, "a column name appears twice in the header", line=1, column=twice)

    def rows() -> Iterator[Tuple[int, Dict[str, str]]]:
        with handle:
            try:
                for row in reader:
                    line = reader.line_num
                    if not row or not "".join(row).strip():     # blank: every cell is whitespace
                        continue
                    if len(row) != len(header):
                        # the column where the row and the header part: the first missing or extra one
                        first = header[len(row)] if len(row) < len(header) else "(extra field %d)" % (len(header) + 1)
                        raise TraceError(path, "has %d fields, the header has %d"
                                         % (len(row), len(header)), line=line, column=first)
                    if cells:
                        yield line, list(map(str.strip, row))
                    else:
                        yield line, {h: cell.strip() for h, cell in zip(header, row)}
            except (csv.Error, UnicodeDecodeError) as exc:
                raise TraceError(path, "not a readable CSV row (%s)" % exc,
                                 line=reader.line_num) from None

    return header, rows()


def parse_float(path: str, line: int, column: str, text: str, *,
                minimum: Optional[float] = None, allow_empty: bool = False) -> Optional[float]:
    if text == "":
        if allow_empty:
            return None
        raise TraceError(path, "is empty; a number is required", line, column)
    try:
        value = float(text)
    except ValueError:
        raise TraceError(path, "%r is not a number" % text, line, column) from None
    if not math.isfinite(value):
        raise TraceError(path, "%r is not a finite number" % text, line, column)
    if minimum is not None and value < minimum:
        raise TraceError(path, "%r is below the minimum %g" % (text, minimum), line, column)
    return value


def parse_int(path: str, line: int, column: str, text: str, *,
              minimum: Optional[int] = None, allow_empty: bool = False) -> Optional[int]:
    if text == "":
        if allow_empty:
            return None
        raise TraceError(path, "is empty; an integer is required", line, column)
    try:
        value = int(text)
    except ValueError:
        raise TraceError(path, "%r is not an integer" % text, line, column) from None
    if minimum is not None and value < minimum:
        raise TraceError(path, "%r is below the minimum %d" % (text, minimum), line, column)
    return value


def host_hint(hosts: Collection[str]) -> str:
    """The hosts' names in short (``h1..h16``), for an unknown-host error."""
    names = sorted(hosts, key=lambda h: (len(h), h))
    if not names:
        return "(none: the topology has no hosts)"
    if len(names) <= 4:
        return ", ".join(names)
    return "%s..%s" % (names[0], names[-1])


def check_hosts(path: str, line: int, src: str, dst: str, hosts: Collection[str]) -> None:
    """Both ends are hosts of the topology, and not the same one."""
    for column, name in (("src", src), ("dst", dst)):
        if name not in hosts:
            raise TraceError(path, "unknown host %r; hosts of this topology are named %s"
                             % (name, host_hint(hosts)), line, column)
    if src == dst:
        raise TraceError(path, "src and dst are both %r; a flow needs two hosts" % src, line, "dst")


def parse_class(path: str, line: int, text: str) -> str:
    """A flow class (``training`` or ``background``)."""
    if text not in FLOW_CLASSES:
        raise TraceError(path, "%r is not a flow class; use %s" % (text, " or ".join(FLOW_CLASSES)),
                         line, "cls")
    return text


def parse_proto(path: str, line: int, text: str) -> Optional[int]:
    """An IP protocol: a number 0..255 or tcp, udp, icmp (any case); None when empty."""
    if text.lower() in PROTO_NAMES:
        return PROTO_NAMES[text.lower()]
    try:
        value = int(text) if text else None
    except ValueError:
        value = -1
    if value is not None and not 0 <= value <= 255:
        raise TraceError(path, "%r is not an IP protocol (a number 0..255, or tcp, udp or icmp)" % text,
                         line, "proto")
    return value


def parse_port(path: str, line: int, column: str, text: str) -> Optional[int]:
    """A TCP/UDP port 0..65535; None when empty."""
    try:
        value = int(text) if text else None
    except ValueError:
        value = -1
    if value is not None and not 0 <= value <= 65535:
        raise TraceError(path, "%r is not a port number (0..65535)" % text, line, column)
    return value

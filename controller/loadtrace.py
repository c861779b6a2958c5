"""Link-load traces: ``t_s,link,util`` (+ ``bytes``, ``capacity_bps``, ``pred``).

What the controller records, what replay writes and what the forecaster
learns from.  One row per directed link per sample; ``link`` is ``A->B``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, IO, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from controller.tracefile import TraceError, open_csv, parse_float

REQUIRED = ("t_s", "link", "util")
OPTIONAL = ("bytes", "capacity_bps", "pred")
HEADER = ("t_s", "link", "util", "bytes", "capacity_bps")

Link = Tuple[str, str]


def format_link(link: Link) -> str:
    return "%s->%s" % link


def parse_link(text: str) -> Optional[Link]:
    parts = text.split("->")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0].strip(), parts[1].strip()


@dataclass
class LinkSeries:
    t: np.ndarray
    util: np.ndarray
    pred: Optional[np.ndarray] = None
    capacity_bps: Optional[float] = None


@dataclass
class LinkLoadTrace:
    """Per-link time series, each sorted by time, plus the file they came from."""

    path: str
    series: Dict[Link, LinkSeries] = field(default_factory=dict)

    def links(self) -> List[Link]:
        return sorted(self.series)

    def sampling_period_s(self) -> float:
        """The polling period: the median spacing of consecutive samples, missed polls left out.

        Why not the plain median: in a recording that missed many polls, gaps
        of two or three periods can be the majority, and a 1 s recording read
        as 2 s (its samples then collided on the grid, and a 1 s model refused
        it).  Spacings above 1.5x the shortest common one (its 10th percentile)
        are missed polls; on a regular or jittered recording nothing is left out.
        """
        gaps = [np.diff(s.t) for s in self.series.values() if len(s.t) > 1]
        if not gaps:
            raise TraceError(self.path, "needs at least two samples of one link to tell the sampling period")
        every = np.concatenate(gaps)
        base = float(np.percentile(every, 10))
        kept = every[every <= 1.5 * base] if base > 0 else every
        return float(np.median(kept))

    def latest(self) -> Dict[Link, float]:
        return {link: float(s.util[-1]) for link, s in self.series.items()}

    def latest_pred(self) -> Dict[Link, float]:
        return {link: float(s.pred[-1]) for link, s in self.series.items()
                if s.pred is not None and not np.isnan(s.pred[-1])}


def read_link_loads(path: str) -> LinkLoadTrace:
    """Read and validate a link-load CSV.

    Time must not go backwards within a link and each (link, t_s) appears once;
    utilization must be >= 0.  Errors name file, line and column.
    """
    header, rows = open_csv(path, REQUIRED, OPTIONAL)
    data: Dict[Link, List[Tuple[float, float, float]]] = {}
    caps: Dict[Link, float] = {}
    last_t: Dict[Link, float] = {}
    has_pred = "pred" in header
    count = 0
    for line, row in rows:
        t = parse_float(path, line, "t_s", row["t_s"])
        link = parse_link(row["link"])
        if link is None:
            raise TraceError(path, "%r is not a link; write it as A->B with node names"
                             % row["link"], line, "link")
        util = parse_float(path, line, "util", row["util"], minimum=0.0)
        pred = float("nan")
        if has_pred:
            p = parse_float(path, line, "pred", row["pred"], minimum=0.0, allow_empty=True)
            pred = float("nan") if p is None else p
        if "bytes" in header:
            parse_float(path, line, "bytes", row["bytes"], minimum=0.0, allow_empty=True)
        if "capacity_bps" in header:
            cap = parse_float(path, line, "capacity_bps", row["capacity_bps"], allow_empty=True)
            if cap is not None:
                if cap <= 0:
                    raise TraceError(path, "%r must be > 0" % row["capacity_bps"], line, "capacity_bps")
                caps[link] = cap
        prev = last_t.get(link)
        if prev is not None and t <= prev:
            raise TraceError(path, "time %s is not after the previous sample %g of link %s; "
                             "rows of one link must have increasing t_s"
                             % (row["t_s"], prev, format_link(link)), line, "t_s")
        last_t[link] = t
        data.setdefault(link, []).append((t, util, pred))
        count += 1
    if count == 0:
        raise TraceError(path, "has a header but no samples; record some traffic first", line=2)
    trace = LinkLoadTrace(path)
    for link, rows_ in data.items():
        arr = np.asarray(rows_, dtype=float)
        trace.series[link] = LinkSeries(arr[:, 0], arr[:, 1], arr[:, 2] if has_pred else None,
                                        caps.get(link))
    return trace


def write_rows(handle: IO[str], rows: Iterable[Tuple[float, Link, float, float, float]]) -> int:
    """Write (t_s, link, util, bytes, capacity_bps) rows; returns how many."""
    n = 0
    for t, link, util, nbytes, cap in rows:
        handle.write("%.6f,%s,%.6f,%d,%d\n" % (t, format_link(link), util, int(nbytes), int(cap)))
        n += 1
    return n


def write_tick(handle: IO[str], t: float, names: Sequence[str], caps: Sequence[float],
               utils: Sequence[float], nbytes: Sequence[float]) -> int:
    """``write_rows`` for one time and many links, in one write; ``names``: ``format_link`` of each link.

    Why: replay writes every link at every tick (49,152 links at k=32), and
    formatting each row's time, link and capacity anew was most of that.
    Returns the rows written.
    """
    stamp = "%.6f" % t
    handle.write("".join(["%s,%s,%.6f,%d,%d\n" % (stamp, name, u, int(b), int(c))
                          for name, c, u, b in zip(names, caps, utils, nbytes)]))
    return len(names)


def recording_problem(path: str) -> Optional[str]:
    """Why appending link-load rows to the existing file ``path`` would damage it, or None.

    Why: the recorder appends, so a config that points ``record`` at a flow
    trace or any other file used to add link-load rows to it, and that file no
    longer read as what it was.  Only an empty file or an earlier recording
    (same header) is appended to.
    """
    try:
        with open(path, "rb") as handle:
            first = handle.readline(4096)
    except OSError:
        return None         # missing or unreadable: the open for appending says what is wrong
    if not first:
        return None
    if first.rstrip(b"\r\n") == ",".join(HEADER).encode("ascii"):
        return None
    return ("%s exists and is not a link-load recording (its first line is %r, not %r); choose another path, "
            "or move that file away" % (path, first[:60].decode("utf-8", "replace").rstrip("\r\n"),
                                        ",".join(HEADER)))


class LoadRecorder:
    """Appends link-load rows to a CSV, flushing at least every ``flush_every_s``.

    Rows are buffered in memory and written whole with one ``os.write`` at
    each flush, so a crash loses at most the last few seconds and never
    leaves half a line: the file stays parseable.  Opening checks that the
    path is writable, so a bad ``--record`` fails at start.  An earlier
    recording is appended to (the header is written once); any other file
    that is not empty is refused (``recording_problem``).
    """

    def __init__(self, path: str, flush_every_s: float = 2.0) -> None:
        path = os.path.expanduser(path)
        self.path = path
        self.flush_every_s = flush_every_s
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise OSError("record path %s: folder %s does not exist" % (path, directory))
        problem = recording_problem(path)
        if problem:
            raise OSError("record path %s" % problem)
        try:
            fresh = not os.path.exists(path) or os.path.getsize(path) == 0
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError("record path %s is not writable: %s" % (path, exc.strerror)) from None
        if fresh:
            os.write(self._fd, (",".join(HEADER) + "\n").encode("ascii"))
        self._pending: List[str] = []
        self._last_flush: Optional[float] = None
        self.rows_written = 0

    def write(self, now_s: float, rows: Sequence[Tuple[float, Link, float, float, float]]) -> None:
        for t, link, util, nbytes, cap in rows:
            self._pending.append("%.6f,%s,%.6f,%d,%d\n" % (t, format_link(link), util, int(nbytes), int(cap)))
            self.rows_written += 1
        if self._last_flush is None:
            self._last_flush = now_s
        if now_s - self._last_flush >= self.flush_every_s:
            self.flush()
            self._last_flush = now_s

    def flush(self) -> None:
        if self._fd is None:
            return
        if self._pending:
            os.write(self._fd, "".join(self._pending).encode("utf-8"))
            self._pending = []
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None

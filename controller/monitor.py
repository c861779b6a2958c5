"""Port counters -> per-directed-link utilization, plus a bounded history per link.

Why this module exists: the popular Ryu monitors add tx and rx together, divide
by the OVS port speed (10 Gbit/s on every veth) and use the controller clock,
so their numbers are wrong in three ways.  Here:

* the directed link ``A->B`` is the *transmit* side of A's port toward B
  (each switch-to-switch link is measured by the switch that sends on it);
  host links are measured at the edge switch only, because hosts report
  nothing: ``edge->host`` from that port's ``tx_bytes``, ``host->edge`` from its
  ``rx_bytes``;
* the rate is a counter delta over the delta of the *port's own*
  ``duration_sec + duration_nsec/1e9``, so reply latency and a late or missed
  poll do not distort it (a gap simply gives the mean over the longer interval);
* utilization divides by the capacity in the fabric description (what the lab
  shaped the link to), never by the port speed the switch reports.

Counter resets (duration or a counter going backwards: a reconnect or a
recreated port), the OVS "unavailable" value 2**64-1 (seen while ports are torn
down), duplicate replies (zero duration delta) and links that are down never
produce a sample: the baseline restarts or is kept, and the next good pair of
readings gives the next sample.

The controller's own timestamp ``now_s`` only labels samples (``LinkSample.t_s``).

A source that has every switch's counters at once (replay) feeds them as
arrays through ``ingest_ports`` with a ``PortLayout``: the same state as
``ingest`` switch by switch, bit for bit, without a Python loop per port.
Nothing here imports OS-Ken: ``counters_from_stats`` reads OFPPortStats-like
objects by attribute, so replay and tests can feed plain objects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from controller.fabric import Fabric, Link

UINT64_MAX = (1 << 64) - 1   # OVS: counter unavailable (e.g. port being torn down)
UINT32_MAX = (1 << 32) - 1   # duration_sec unavailable
OFPP_MAX = 0xFFFFFF00        # port numbers above are reserved (LOCAL, CONTROLLER, ...)

_NO_LINK = -1
_ROWS_CACHED = 4   # link lists whose rows LinkMonitor keeps (see _history_rows)
# Baselines at or above this many bytes take the exact per-reading path in
# ``ingest_ports``: below it a float64 holds every integer exactly, so the
# baselines can be read as one float array (None -> NaN).  2**53 bytes is
# about 2 years of a saturated 1 Gbit/s link.
_EXACT_FLOAT_INT = float(1 << 53)


class PortCounters(NamedTuple):
    """One port's cumulative byte counters and its age as the switch reports it.

    ``duration_s`` is NaN when the switch does not report a duration; the
    monitor then falls back to the controller's timestamps for that port.
    """

    port_no: int
    tx_bytes: int
    rx_bytes: int
    duration_s: float


class LinkSample(NamedTuple):
    """One utilization sample of a directed link.

    ``t_s`` is the controller's timestamp of the reply; ``bytes`` the bytes
    sent on the link over the interval the sample covers; ``util`` the mean
    rate over that interval as a fraction of ``capacity_bps``.  The field order
    is the link-load trace row (``LoadRecorder.write`` takes these directly).
    """

    t_s: float
    link: Link
    util: float
    bytes: int
    capacity_bps: float

    @property
    def rate_bps(self) -> float:
        return self.util * self.capacity_bps


def counters_from_stats(body: Iterable[object]) -> List[PortCounters]:
    """Convert an ``OFPPortStatsReply.body`` (or any objects with the same
    attributes) into ``PortCounters``, dropping reserved ports such as LOCAL.

    Raw values are passed through unchanged (including 2**64-1): deciding what
    is unusable is the monitor's job, so every source is treated alike.
    """
    out: List[PortCounters] = []
    for stat in body:
        port_no = int(getattr(stat, "port_no"))
        if port_no > OFPP_MAX:
            continue
        sec = int(getattr(stat, "duration_sec"))
        nsec = int(getattr(stat, "duration_nsec"))
        duration = math.nan if sec == UINT32_MAX else sec + nsec / 1e9
        out.append(PortCounters(port_no, int(getattr(stat, "tx_bytes")),
                                int(getattr(stat, "rx_bytes")), duration))
    return out


class PortLayout:
    """The row order of array-form port counters: which switch and port each row is.

    Why a class: a batch source (replay, a poller that gathers every reply of
    a round) reports the same switches and ports in the same order every poll.
    ``LinkMonitor.ingest_ports`` resolves a layout to link indices once per
    fabric version and then takes plain arrays per poll, one entry per row.
    Rows are the switches' ports in the order given, switch after switch
    (``offsets[s]:offsets[s + 1]`` are switch ``s``'s rows); feeding arrays in
    this layout gives the same monitor state as calling ``ingest`` switch by
    switch in this order.  Immutable, so the monitor may cache it by identity.
    """

    def __init__(self, switches: Iterable[Tuple[str, Sequence[int]]]) -> None:
        names: List[str] = []
        ports: List[int] = []
        offsets = [0]
        for switch, port_nos in switches:
            names.append(switch)
            ports.extend(int(p) for p in port_nos)
            offsets.append(len(ports))
        self.switches: Tuple[str, ...] = tuple(names)
        self.port_no = np.array(ports, dtype=np.int64)
        self.offsets = np.array(offsets, dtype=np.intp)
        self.port_no.setflags(write=False)
        self.offsets.setflags(write=False)

    def __len__(self) -> int:
        """Number of rows (ports over all switches)."""
        return int(self.port_no.shape[0])


class _LayoutPlan(NamedTuple):
    """A ``PortLayout`` resolved against one fabric version (see ``LinkMonitor._plan``).

    Channels are the counters that measure a link: first every row's tx
    counter (in row order), then the rx counter of rows on host ports.
    """

    layout: PortLayout
    version: Optional[int]
    links: np.ndarray          # link index per channel
    rows: np.ndarray           # layout row per channel
    n_tx: int                  # channels [0, n_tx) are tx counters, the rest rx
    unknown_switches: int      # layout switches the fabric does not have
    duplicate: bool            # some link is measured by two channels
    up: np.ndarray             # per channel: its link is up
    cap: np.ndarray            # per channel: its link's capacity


CounterValues = Union[np.ndarray, Sequence[int]]   # byte counters, one per layout row


class _Counters(NamedTuple):
    """One array of counter values as ``ingest_ports`` reads it.

    ``values`` is int64.  A value outside int64 is -1 there, which the fast
    path never takes (it needs a counter >= 0), and is read exactly from
    ``objects`` on the per-reading path.
    """

    values: np.ndarray
    objects: Optional[List[int]]    # the Python ints, when some do not fit int64

    def item(self, row: int) -> int:
        if self.objects is not None:
            return self.objects[row]
        return int(self.values[row])


def _counter_array(values: CounterValues, n: int, name: str) -> _Counters:
    """Read byte counters (int array or sequence of ints) without ever losing a value.

    Why the care: counters go up to 2**64-1 (OVS "unavailable"), beyond int64,
    and ``np.asarray`` turns such a list into float64, which would round
    them silently.  Values outside int64 are kept as Python ints instead.
    """
    if isinstance(values, np.ndarray):
        arr = values
        if arr.dtype.kind == "O":
            return _counter_objects(arr.tolist(), n, name)
    else:
        return _counter_objects(list(values), n, name)   # type: ignore[call-overload]
    if arr.shape != (n,):
        raise ValueError("%s has shape %s, the layout has %d rows" % (name, arr.shape, n))
    kind = arr.dtype.kind
    if kind == "i":
        return _Counters(arr.astype(np.int64, copy=False), None)
    if kind == "u":
        exact = arr <= np.iinfo(np.int64).max
        if exact.all():
            return _Counters(arr.astype(np.int64), None)
        values = np.where(exact, arr, 0).astype(np.int64)
        values[~exact] = -1
        return _Counters(values, [int(v) for v in arr.tolist()])
    raise TypeError("%s must hold integer byte counters, got dtype %s" % (name, arr.dtype))


def _counter_objects(items: List[object], n: int, name: str) -> _Counters:
    if len(items) != n:
        raise ValueError("%s has %d values, the layout has %d rows" % (name, len(items), n))
    ints: List[int] = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError("%s must hold integer byte counters, got %r" % (name, v))
        ints.append(int(v))
    try:
        return _Counters(np.array(ints, dtype=np.int64), None)
    except OverflowError:
        lo, hi = -(1 << 63), (1 << 63) - 1
        return _Counters(np.array([v if lo <= v <= hi else -1 for v in ints], dtype=np.int64), ints)


@dataclass
class MonitorStats:
    """Why readings did not become samples; for health output and logs."""

    resets: int = 0          # duration or counter went backwards: baseline restarted
    unavailable: int = 0     # counter was 2**64-1 (or negative): reading skipped
    stale: int = 0           # duration did not advance (duplicate or reordered reply)
    implausible: int = 0     # rate above max_util x capacity: dropped, baseline restarted
    unknown_switch: int = 0  # observe() for a switch the fabric does not have
    gaps_marked: int = 0     # polls with no sample of a link, kept in its history as NaN


class LinkMonitor:
    """Per-directed-link utilization from per-switch port counters.

    Call ``observe`` with each port-stats reply.  The monitor follows the
    fabric: when ``fabric.version`` changes (links discovered, removed, moved,
    brought up or down, capacities changed) it re-indexes before the next
    reading, keeping the history of links that still exist.

    ``period_s`` (optional, normally the poll interval): when a sample covers
    ``m >= 2`` periods (missed polls), its mean rate is written ``m`` times into
    the history so that the forecaster's window stays on a uniform time grid.
    ``max_util``: a rate above this multiple of capacity cannot be real on a
    shaped link (a counter glitch, or a capacity that is configured wrong); such
    readings are dropped and counted in ``stats.implausible``.
    """

    def __init__(self, fabric: Fabric, history: int = 128, *, period_s: Optional[float] = None,
                 max_util: Optional[float] = 1.5) -> None:
        if history < 1:
            raise ValueError("history must be >= 1 sample, got %r" % (history,))
        if period_s is not None and not period_s > 0:
            raise ValueError("period_s must be > 0 seconds, got %r" % (period_s,))
        self.fabric = fabric
        self.history_len = int(history)
        self.period_s = period_s
        self.max_util = max_util
        self.stats = MonitorStats()
        self._version: Optional[int] = None
        self._links: List[Link] = []
        self._index: Dict[Link, int] = {}
        # switch -> {port_no: (tx link index, rx link index)}
        self._chans: Dict[str, Dict[int, Tuple[int, int]]] = {}
        # per link index, scalars in Python lists (fast scalar access, exact ints)
        self._cap: List[float] = []
        self._up: List[bool] = []
        self._where: List[Optional[Tuple[str, int]]] = []   # (switch, port) measuring it
        # per link index, numpy: the baseline reading (counter, port duration, poll time), kept as
        # arrays so that a poll of every port (replay) reads and writes them whole; a counter is
        # below 2**64 - 1, so uint64 holds it exactly, and _base_set False means no baseline
        self._base_bytes = np.zeros(0, dtype=np.uint64)
        self._base_set = np.zeros(0, dtype=bool)
        self._base_dur = np.full(0, np.nan)
        self._base_now = np.full(0, np.nan)
        # per link index, numpy: ring buffer and latest values
        self._ring = np.full((0, self.history_len), np.nan)
        self._count = np.zeros(0, dtype=np.int64)           # samples ever written
        self._latest = np.full(0, np.nan)
        self._latest_t = np.full(0, np.nan)
        self._latest_bytes = np.zeros(0, dtype=np.int64)
        self._layout_plan: Optional[_LayoutPlan] = None   # ingest_ports: last layout resolved
        # (links indexed then, the links asked for, their rows), newest first; see _history_rows
        self._rows_cache: List[Tuple[int, List[Link], np.ndarray]] = []
        self._sync()

    # -- indexing ------------------------------------------------------
    def _grow(self, n: int) -> None:
        have = self._ring.shape[0]
        if n <= have:
            return
        new = max(n, 2 * have, 16)
        extra = new - have
        self._ring = np.vstack([self._ring, np.full((extra, self.history_len), np.nan)])
        self._count = np.concatenate([self._count, np.zeros(extra, dtype=np.int64)])
        self._latest = np.concatenate([self._latest, np.full(extra, np.nan)])
        self._latest_t = np.concatenate([self._latest_t, np.full(extra, np.nan)])
        self._latest_bytes = np.concatenate([self._latest_bytes, np.zeros(extra, dtype=np.int64)])
        self._base_bytes = np.concatenate([self._base_bytes, np.zeros(extra, dtype=np.uint64)])
        self._base_set = np.concatenate([self._base_set, np.zeros(extra, dtype=bool)])
        self._base_dur = np.concatenate([self._base_dur, np.full(extra, np.nan)])
        self._base_now = np.concatenate([self._base_now, np.full(extra, np.nan)])

    def _link_index(self, link: Link) -> int:
        i = self._index.get(link)
        if i is None:
            i = len(self._links)
            self._index[link] = i
            self._links.append(link)
            self._cap.append(math.nan)
            self._up.append(False)
            self._where.append(None)
            self._grow(i + 1)
        return i

    def _sync(self) -> None:
        """Re-index after a fabric change; cheap no-op otherwise."""
        fabric = self.fabric
        if fabric.version == self._version:
            return
        seen = set()
        chans: Dict[str, Dict[int, Tuple[int, int]]] = {}
        for switch in fabric.switches():
            ports: Dict[int, Tuple[int, int]] = {}
            for nbr in fabric.graph.neighbors(switch):
                port = fabric.port(switch, nbr)
                up = fabric.is_up(switch, nbr)
                cap = fabric.capacity_bps(switch, nbr)
                tx = self._claim((switch, nbr), (switch, port), cap, up, seen)
                rx = _NO_LINK
                if fabric.is_host(nbr):
                    rx = self._claim((nbr, switch), (switch, port), cap, up, seen)
                ports[port] = (tx, rx)
            chans[switch] = ports
        for i in range(len(self._links)):
            if i not in seen:        # link gone from the fabric
                self._up[i] = False
                self._where[i] = None
                self._base_set[i] = False
                self._latest[i] = np.nan
        self._chans = chans
        self._up_array = np.array(self._up, dtype=bool)   # _up changes only here: utilization_of reads it
        self._version = fabric.version

    def _claim(self, link: Link, where: Tuple[str, int], cap: float, up: bool, seen: set) -> int:
        i = self._link_index(link)
        seen.add(i)
        if self._where[i] != where or not up:
            # Measured on another port now (cable moved), or down: the old
            # baseline says nothing about the new counters.
            self._base_set[i] = False
        if not up:
            self._latest[i] = np.nan
        self._where[i] = where
        self._cap[i] = float(cap)
        self._up[i] = up
        return i

    # -- readings ------------------------------------------------------
    def observe(self, switch: str, counters: Sequence[PortCounters], now_s: float) -> List[LinkSample]:
        """Feed one switch's port counters; return the samples they complete.

        Ports the fabric does not know (unconnected, not yet discovered) are
        ignored, as is a switch the fabric does not have.
        """
        got = self._ingest(switch, counters, now_s)
        if not got:
            return []
        links, caps = self._links, self._cap
        idx, utils, nbytes = got
        return [LinkSample(now_s, links[i], u, b, caps[i]) for i, u, b in zip(idx, utils, nbytes)]

    def ingest(self, switch: str, counters: Sequence[PortCounters], now_s: float) -> int:
        """``observe`` without building the samples (replay reads ``utilization()`` instead);
        returns how many samples the counters completed."""
        got = self._ingest(switch, counters, now_s)
        return len(got[0]) if got else 0

    def _ingest(self, switch: str, counters: Sequence[PortCounters], now_s: float
                ) -> Optional[Tuple[List[int], List[float], List[int]]]:
        self._sync()
        chans = self._chans.get(switch)
        if chans is None:
            self.stats.unknown_switch += 1
            return None
        idx: List[int] = []
        utils: List[float] = []
        nbytes: List[int] = []
        fills: List[Tuple[int, int]] = []
        step = self._step
        for c in counters:
            pair = chans.get(c.port_no)
            if pair is None:
                continue
            tx, rx = pair
            got = step(tx, c.tx_bytes, c.duration_s, now_s)
            if got is not None:
                idx.append(tx)
                utils.append(got[0])
                nbytes.append(got[1])
                if got[2] > 1:
                    fills.append((len(idx) - 1, got[2]))
            if rx >= 0:
                got = step(rx, c.rx_bytes, c.duration_s, now_s)
                if got is not None:
                    idx.append(rx)
                    utils.append(got[0])
                    nbytes.append(got[1])
                    if got[2] > 1:
                        fills.append((len(idx) - 1, got[2]))
        if not idx:
            return None
        self._record(idx, utils, nbytes, fills, now_s)
        return idx, utils, nbytes

    def ingest_ports(self, layout: PortLayout, tx_bytes: CounterValues, rx_bytes: CounterValues,
                     durations: Union[float, Sequence[float], np.ndarray], now_s: float) -> int:
        """``ingest`` for every switch of ``layout`` at once, from arrays; returns the samples completed.

        ``tx_bytes``/``rx_bytes`` hold one integer counter per layout row (an
        integer numpy array, or a sequence of ints: values beyond int64 such as
        2**64-1 are read exactly); ``durations`` one port duration per row, or
        one value for all (NaN: the switch reports none).  The resulting state
        (baselines, history, latest values, stats) is exactly that of
        ``ingest(switch, rows of switch, now_s)`` for each switch in layout
        order, bit for bit.

        Why: replay feeds every switch every simulated poll, and the per-port
        Python loop of ``ingest`` was most of the monitor's cost.  Here the
        common reading (valid counter, link up, baseline present, no reset,
        duration advanced, plausible, one period) is worked out on whole
        arrays with the same float operations in the same order as ``_step``;
        every other reading goes through ``_step`` itself.  Each link has at
        most one counter per call (else the call goes switch by switch), so
        the readings are independent and their order does not matter.
        """
        self._sync()
        plan = self._plan(layout)
        n = len(layout)
        tx = _counter_array(tx_bytes, n, "tx_bytes")
        rx = _counter_array(rx_bytes, n, "rx_bytes")
        dur = np.asarray(durations, dtype=float)
        if dur.ndim:
            dur = np.broadcast_to(dur, (n,))   # (checks the length)
        if plan.duplicate:
            return self._ingest_by_switch(layout, tx, rx, dur, now_s)
        self.stats.unknown_switch += plan.unknown_switches
        links = plan.links
        if links.size == 0:
            return 0
        k = plan.n_tx
        rows = plan.rows
        value = np.concatenate((tx.values[rows[:k]], rx.values[rows[k:]]))
        d = dur[rows] if dur.ndim else np.full(links.size, float(dur))
        has_base = self._base_set[links]
        # a valid reading of an up link with no baseline (the first poll) becomes its baseline, no
        # sample: _step's outcome for it, without a Python call per link
        first = plan.up & (value >= 0) & ~has_base
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # no baseline -> NaN; from 2**53 on a float is not exact (and not below the bound)
            base_f = np.where(has_base, self._base_bytes[links].astype(float), np.nan)
            # candidates: valid counter in int64, link up, a baseline exact as a float
            fast = plan.up & (value >= 0) & (base_f < _EXACT_FLOAT_INT)
            base = np.where(fast, base_f, 0.0).astype(np.int64)
            base_dur = self._base_dur[links]
            fast &= (value >= base) & ~(d < base_dur)               # else a reset
            dt = np.where(np.isnan(d) | np.isnan(base_dur), now_s - self._base_now[links], d - base_dur)
            fast &= dt > 0                                           # else stale
            delta = value - base
            util = delta.astype(float) * 8.0 / dt / plan.cap         # _step's operations, in its order
            if self.max_util is not None:
                fast &= util < float(self.max_util)                  # ties go the exact way
            if self.period_s is not None:
                fast &= dt / self.period_s < 1.5                     # round() gives 1 period
        pick = np.flatnonzero(fast)
        slow = np.flatnonzero(~(fast | first)) if pick.size < links.size else pick[:0]
        idx = links[pick]
        for rebase in (pick, np.flatnonzero(first)):
            if rebase.size:
                at = links[rebase]
                self._base_bytes[at] = value[rebase].astype(np.uint64)    # >= 0 here: exact
                self._base_set[at] = True
                self._base_dur[at] = d[rebase]
                self._base_now[at] = now_s
        if not slow.size:
            if pick.size:
                self._record(idx, util[pick], delta[pick], [], now_s)
            return int(pick.size)
        # The rest reading by reading, through _step on the baselines just written
        # (each touches only its own link, so running them after is equivalent).
        s_idx: List[int] = []
        s_util: List[float] = []
        s_bytes: List[int] = []
        fills: List[Tuple[int, int]] = []
        step = self._step
        link_of = links.tolist()
        row_of = rows.tolist()
        dur_of = d.tolist()
        for c in slow.tolist():
            counters = tx if c < k else rx
            got = step(link_of[c], counters.item(row_of[c]), dur_of[c], now_s)
            if got is not None:
                s_idx.append(link_of[c])
                s_util.append(got[0])
                s_bytes.append(got[1])
                if got[2] > 1:
                    fills.append((pick.size + len(s_idx) - 1, got[2]))
        if not pick.size and not s_idx:
            return 0
        all_idx = idx.tolist() + s_idx
        all_util = util[pick].tolist() + s_util
        all_bytes = delta[pick].tolist() + s_bytes
        self._record(all_idx, all_util, all_bytes, fills, now_s)
        return len(all_idx)

    def _ingest_by_switch(self, layout: PortLayout, tx: _Counters, rx: _Counters, dur: np.ndarray,
                          now_s: float) -> int:
        """``ingest_ports`` when a link is measured twice (a switch or port repeated
        in the layout): then order matters, so do exactly what ``ingest`` does."""
        ports = layout.port_no.tolist()
        offsets = layout.offsets.tolist()
        durs = np.broadcast_to(dur, (len(layout),)).tolist()
        total = 0
        for s, switch in enumerate(layout.switches):
            counters = [PortCounters(ports[r], tx.item(r), rx.item(r), durs[r])
                        for r in range(offsets[s], offsets[s + 1])]
            total += self.ingest(switch, counters, now_s)
        return total

    def _plan(self, layout: PortLayout) -> _LayoutPlan:
        """``layout`` resolved to link indices for the current fabric version (cached)."""
        plan = self._layout_plan
        if plan is not None and plan.layout is layout and plan.version == self._version:
            return plan
        tx_rows: List[int] = []
        tx_links: List[int] = []
        rx_rows: List[int] = []
        rx_links: List[int] = []
        unknown = 0
        ports = layout.port_no.tolist()
        offsets = layout.offsets.tolist()
        for s, switch in enumerate(layout.switches):
            chans = self._chans.get(switch)
            if chans is None:
                unknown += 1
                continue
            for r in range(offsets[s], offsets[s + 1]):
                pair = chans.get(ports[r])
                if pair is None:
                    continue
                tx_rows.append(r)
                tx_links.append(pair[0])
                if pair[1] >= 0:
                    rx_rows.append(r)
                    rx_links.append(pair[1])
        links = np.array(tx_links + rx_links, dtype=np.intp)
        up = np.array([self._up[i] for i in links.tolist()], dtype=bool)
        cap = np.array([self._cap[i] for i in links.tolist()], dtype=float)
        plan = _LayoutPlan(layout, self._version, links, np.array(tx_rows + rx_rows, dtype=np.intp),
                           len(tx_links), unknown, bool(np.unique(links).size < links.size), up, cap)
        self._layout_plan = plan
        return plan

    def _step(self, i: int, value: int, dur: float, now_s: float) -> Optional[Tuple[float, int, int]]:
        """Advance one counter; (util, bytes, periods covered) or None for no sample."""
        if value >= UINT64_MAX or value < 0:
            self.stats.unavailable += 1          # keep the old baseline: next good reading spans the gap
            return None
        if not self._up[i]:
            self._base_set[i] = False
            return None
        base = int(self._base_bytes[i]) if self._base_set[i] else None
        base_dur = float(self._base_dur[i])
        if base is None:
            self._set_base(i, value, dur, now_s)
            return None
        if value < base or dur < base_dur:       # NaN compares False: no duration, counters decide
            self.stats.resets += 1
            self._set_base(i, value, dur, now_s)
            return None
        if math.isnan(dur) or math.isnan(base_dur):
            dt = now_s - float(self._base_now[i])
        else:
            dt = dur - base_dur
        if not dt > 0:
            self.stats.stale += 1                # duplicate reply: keep the older baseline
            return None
        delta = value - base
        util = delta * 8.0 / dt / self._cap[i]
        self._set_base(i, value, dur, now_s)
        if self.max_util is not None and util > self.max_util:
            self.stats.implausible += 1
            return None
        periods = 1
        if self.period_s is not None:
            periods = max(1, int(round(dt / self.period_s)))
        return util, delta, periods

    def _set_base(self, i: int, value: int, dur: float, now_s: float) -> None:
        self._base_bytes[i] = value          # 0 <= value < UINT64_MAX (checked by _step)
        self._base_set[i] = True
        self._base_dur[i] = dur
        self._base_now[i] = now_s

    def baselines(self) -> List[Optional[Tuple[int, float, float]]]:
        """Per indexed link (``links()`` order): its baseline (counter, port duration, poll time), or None."""
        n = len(self._links)
        return [(b, dur, now) if has else None for b, has, dur, now in
                zip(self._base_bytes[:n].tolist(), self._base_set[:n].tolist(),
                    self._base_dur[:n].tolist(), self._base_now[:n].tolist())]

    def _record(self, idx: List[int], utils: List[float], nbytes: List[int],
                fills: List[Tuple[int, int]], now_s: float) -> None:
        h = self.history_len
        ix = np.asarray(idx, dtype=np.intp)
        if self.period_s is not None and ix.size:
            self._mark_gaps(ix, fills, now_s)
        for k, periods in fills:                 # rare: missed polls, pad with the mean rate
            i = idx[k]
            for _ in range(min(periods, h) - 1):
                self._ring[i, self._count[i] % h] = utils[k]
                self._count[i] += 1
        val = np.asarray(utils, dtype=float)
        self._ring[ix, self._count[ix] % h] = val
        self._count[ix] += 1                     # indices are unique within one reply
        self._latest[ix] = val
        self._latest_t[ix] = now_s
        self._latest_bytes[ix] = nbytes

    def _mark_gaps(self, ix: np.ndarray, fills: List[Tuple[int, int]], now_s: float) -> None:
        """NaN for the polls since a link's last sample that this sample does not cover.

        Why: the ring holds one slot per sample, and a link that went down,
        had its counter reset, read implausibly or lost its switch produced
        no sample for those polls.  Its samples before and after were glued
        together, where the forecaster was trained on time-true histories (a
        gap is NaN there): its periodic features then read the wrong phase.
        A sample that spans several polls still fills them (``fills``).
        """
        with np.errstate(invalid="ignore"):
            polls = (now_s - self._latest_t[ix]) / self.period_s     # NaN: no sample yet
        late = np.flatnonzero(polls > 1.5)
        if not late.size:
            return
        h = self.history_len
        covered = dict(fills)
        for k in late.tolist():
            i = int(ix[k])
            missing = int(round(float(polls[k]))) - covered.get(k, 1)
            for _ in range(min(max(missing, 0), h)):
                self._ring[i, self._count[i] % h] = np.nan
                self._count[i] += 1
            self.stats.gaps_marked += max(missing, 0)

    def forget(self, switch: str) -> None:
        """Drop a switch's baselines and latest values (it disconnected).

        Its links keep their history; after it reconnects the first reply sets
        a new baseline, so a counter reset on reconnect never shows as a rate.
        """
        for tx, rx in self._chans.get(switch, {}).values():
            for i in (tx, rx):
                if i >= 0:
                    self._base_set[i] = False
                    self._latest[i] = np.nan

    # -- queries -------------------------------------------------------
    def links(self) -> List[Link]:
        """Every directed link the monitor has indexed (current fabric or past)."""
        return list(self._links)

    def utilization(self) -> Dict[Link, float]:
        """Latest utilization of every up link that has one."""
        self._sync()
        n = len(self._links)
        latest = self._latest[:n]
        valid = np.flatnonzero(~np.isnan(latest))
        links, up = self._links, self._up
        # values via tolist(): the same Python floats as float(latest[i]), without a
        # numpy scalar per link (this dict is read every replay tick)
        return {links[i]: v for i, v in zip(valid.tolist(), latest[valid].tolist()) if up[i]}

    def link_rows(self, links: Sequence[Link]) -> np.ndarray:
        """Each link's row in the monitor (-1: unknown); ``utilization()`` lists links by row."""
        self._sync()
        return self._history_rows(links)

    def utilization_of(self, links: Sequence[Link]) -> np.ndarray:
        """``utilization()`` as an array over ``links``: NaN for a link it leaves out (down, no
        sample yet, or unknown).  A new array, so it keeps this call's values.

        Why: replay's planner works on arrays in one link order every tick, and
        building the dict of 768 links to read it back link by link cost more
        than the planner's checks on it.
        """
        self._sync()
        rows = self._history_rows(links)
        out = np.full(len(rows), np.nan)
        known = np.flatnonzero(rows >= 0)
        if known.size:
            ix = rows[known]
            up = self._up_array[ix]
            out[known[up]] = self._latest[ix[up]]
        return out

    def latest(self) -> Dict[Link, LinkSample]:
        """Latest sample of every up link that has one (for the API and logs)."""
        self._sync()
        n = len(self._links)
        out: Dict[Link, LinkSample] = {}
        for i in np.flatnonzero(~np.isnan(self._latest[:n])).tolist():
            if self._up[i]:
                out[self._links[i]] = LinkSample(float(self._latest_t[i]), self._links[i],
                                                 float(self._latest[i]), int(self._latest_bytes[i]),
                                                 self._cap[i])
        return out

    def history(self, links: Sequence[Link], n: int) -> np.ndarray:
        """The last ``n`` samples of each link, shape (len(links), n), oldest first.

        NaN where a link has fewer samples (or is unknown); at most
        ``history`` samples are kept, older columns are NaN.

        The replay asks for every link's window once per tick, and every link then
        has the same number of samples: their windows are then the same columns of
        the ring buffer, copied as one or two blocks of columns instead of gathered
        sample by sample (same values; other cases take the general gather).
        """
        if n <= 0 or not links:
            return np.full((len(links), n), np.nan)
        rows = self._history_rows(links)
        known = np.flatnonzero(rows >= 0)
        if known.size == 0:
            return np.full((len(links), n), np.nan)
        ix = rows[known]
        h = self.history_len
        count = self._count[ix]
        newest = int(count[0])
        if n <= h and bool((count == newest).all()):
            # Sample numbers newest-n .. newest-1; those >= 0 exist and are all still in
            # the ring (n <= h), in ring columns (newest-m .. newest-1) mod h.
            m = min(n, newest)
            if known.size == len(links) and m == n:
                out = np.empty((len(links), n))
            else:
                out = np.full((len(links), n), np.nan)
            if m == 0:
                return out
            start = (newest - m) % h
            split = min(m, h - start)                     # columns before the ring wraps
            first = self._ring[ix, start:start + split]
            rest = self._ring[ix, :m - split] if split < m else None
            if known.size == len(links):
                out[:, n - m:n - m + split] = first
                if rest is not None:
                    out[:, n - m + split:] = rest
            else:
                out[known, n - m:] = first if rest is None else np.concatenate([first, rest], axis=1)
            return out
        out = np.full((len(links), n), np.nan)
        count = count[:, None]
        seq = count - n + np.arange(n)[None, :]          # sample numbers, oldest..newest
        ok = (seq >= 0) & (seq >= count - h)
        vals = self._ring[ix[:, None], seq % h]
        out[known] = np.where(ok, vals, np.nan)
        return out

    def _history_rows(self, links: Sequence[Link]) -> np.ndarray:
        """Ring rows of ``links`` (-1 = unknown), kept for the next calls with the same links.

        A link's row never changes once indexed, so the rows stay valid while no link
        was added (an unknown link may have been indexed since) and the caller passes
        equal links.  Replay asks every tick with two lists (every link for the
        planner, the links it forecasts for the forecaster), so the last few lists
        are kept: with one, the two evicted each other and every tick looked up
        ~1,300 links by name again (0.11 ms of a k=8 tick's ~10 ms, 2026-11-30).
        """
        key = links if isinstance(links, list) else list(links)
        n_indexed = len(self._links)
        for n_then, cached_key, cached_rows in self._rows_cache:
            if n_then == n_indexed and cached_key == key:
                return cached_rows
        rows = np.fromiter((self._index.get(link, _NO_LINK) for link in key), dtype=np.intp,
                           count=len(key))
        rows.setflags(write=False)
        self._rows_cache = [(n_indexed, list(key), rows)] + self._rows_cache[:_ROWS_CACHED - 1]
        return rows

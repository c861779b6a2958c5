"""When to ask each switch for port statistics: pure bookkeeping, time is a parameter.

Why not a ``hub.sleep(interval)`` loop that fires a request at every switch:
requests pile up behind a slow switch, every switch is asked at the same
instant (a burst of replies every interval), and a reply that never comes goes
unnoticed.  Following Faucet's gauge pollers, this scheduler keeps

* a start offset per switch spread over one interval (derived from the switch
  name by CRC32, so it is deterministic across restarts and in replay);
* at most one outstanding request per switch: when the next poll is due and
  the previous request is still unanswered, that counts as one *missed poll*
  (the caller logs it) and the new request replaces the old one - nothing is
  queued, and a switch that lost a reply is polled again rather than forgotten;
* a fixed grid of due times (no drift from processing delays); if the caller
  falls far behind, missed grid slots are skipped, not replayed in a burst.

The caller (the app shell) sends an ``OFPPortStatsRequest`` for each switch
``due()`` returns and calls ``replied()`` when the reply arrives.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Dict, Iterable, List, NamedTuple, Optional


class Due(NamedTuple):
    """A switch to poll now; ``missed`` is True if its previous request went unanswered."""

    switch: str
    missed: bool


@dataclass
class _State:
    next_due_s: float
    sent_s: Optional[float] = None    # outstanding request, if any


def start_offset(switch: str, interval_s: float) -> float:
    """Deterministic offset in [0, interval_s) that spreads switches over an interval."""
    return (zlib.crc32(switch.encode("utf-8")) / 2.0 ** 32) * interval_s


class PollScheduler:
    """Due times, outstanding requests and missed-poll counts per switch."""

    def __init__(self, switches: Iterable[str] = (), interval_s: float = 1.0, *,
                 now_s: float = 0.0, spread: bool = True) -> None:
        if not (isinstance(interval_s, (int, float)) and math.isfinite(interval_s) and interval_s > 0):
            raise ValueError("poll interval must be a number of seconds > 0, got %r" % (interval_s,))
        self.interval_s = float(interval_s)
        self.spread = spread
        self._state: Dict[str, _State] = {}
        # Totals survive remove()/add(): they feed a Prometheus counter, which must not go down.
        self.missed: Dict[str, int] = {}
        self.unexpected: Dict[str, int] = {}
        for switch in switches:
            self.add(switch, now_s)

    def add(self, switch: str, now_s: float) -> None:
        """Start polling ``switch`` (connect or reconnect); first poll within one interval."""
        offset = start_offset(switch, self.interval_s) if self.spread else 0.0
        self._state[switch] = _State(next_due_s=now_s + offset)
        self.missed.setdefault(switch, 0)

    def remove(self, switch: str) -> None:
        """Stop polling ``switch`` (disconnected); its missed-poll total is kept."""
        self._state.pop(switch, None)

    def switches(self) -> List[str]:
        return sorted(self._state)

    def due(self, now_s: float) -> List[Due]:
        """Switches to poll at ``now_s``; each is marked as having a request outstanding.

        The caller must send one request per returned switch.
        """
        out: List[Due] = []
        for switch in sorted(self._state):
            st = self._state[switch]
            if now_s < st.next_due_s:
                continue
            missed = st.sent_s is not None
            if missed:
                self.missed[switch] = self.missed.get(switch, 0) + 1
            st.sent_s = now_s
            # Next slot on the grid strictly after now.
            slots = math.floor((now_s - st.next_due_s) / self.interval_s) + 1
            st.next_due_s += slots * self.interval_s
            out.append(Due(switch, missed))
        return out

    def replied(self, switch: str, now_s: float) -> Optional[float]:
        """A reply arrived: clear the outstanding request; returns its round trip in
        seconds, or None if nothing was outstanding (a late reply to a request
        already counted as missed, or an unknown switch).  The reply's counters are
        still good either way: rates use the switch's own durations."""
        st = self._state.get(switch)
        if st is None or st.sent_s is None:
            self.unexpected[switch] = self.unexpected.get(switch, 0) + 1
            return None
        rtt = now_s - st.sent_s
        st.sent_s = None
        return rtt

    def outstanding(self, switch: str) -> bool:
        st = self._state.get(switch)
        return st is not None and st.sent_s is not None

    def next_due_s(self) -> Optional[float]:
        """Earliest due time over all switches (how long the caller may sleep), or None."""
        if not self._state:
            return None
        return min(st.next_due_s for st in self._state.values())

    def missed_total(self) -> int:
        return sum(self.missed.values())

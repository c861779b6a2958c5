"""The simulator's event steps as loops that Numba compiles, with their plain references.

Why its own module: these are the hot loops of a replay (advance every flow to
the next event, retire finished flows, admit arrivals, release dependants, and
whole runs of events between two control ticks in one compiled call).  They
work on plain arrays only, so they can be compiled, checked against their
references (``tests/unit/test_sim_kernels.py``) and timed on their own, while
``controller.sim.Simulator`` keeps the trace, the connections and the hooks.
Each compiled twin (``*_jit``) is None where Numba is absent or
``SIDESTEP_NO_JIT`` is set, and the simulator then runs the references
(the heap's twins are the plain functions then, which the references call).
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from controller import fairshare
from controller.jit import jit


def complete(fin: np.ndarray, t: float, finish: np.ndarray, cid_of_flow: np.ndarray, conn_pending: np.ndarray,
             conn_inflight: np.ndarray, conn_last: np.ndarray, conn_burst: np.ndarray, start: np.ndarray,
             size_of: np.ndarray, wait_ptr: np.ndarray, wait_groups: np.ndarray, group_left: np.ndarray,
             released: np.ndarray) -> int:
    """The bookkeeping of flows ``fin`` (ascending) finishing at ``t``, flow by flow.

    Updates each flow's finish time and its connection's counts, last flow and
    last burst rate (size / duration), and counts down the dependency groups
    waiting on it; the groups that reach zero are written to ``released``, and
    their number is returned.  Plain loops over arrays, so that the same source
    runs compiled by Numba (one call per event instead of a dozen small array
    operations or a Python loop per flow) and, without Numba, as Python.
    """
    n_rel = 0
    for j in range(fin.shape[0]):
        i = fin[j]
        finish[i] = t
        c = cid_of_flow[i]
        conn_pending[c] -= 1
        conn_inflight[c] -= 1
        conn_last[c] = i
        dur = t - start[i]
        if dur > 0:
            conn_burst[c] = size_of[i] * 8.0 / dur
        for w in range(wait_ptr[i], wait_ptr[i + 1]):
            g = wait_groups[w]
            group_left[g] -= 1
            if group_left[g] == 0:
                released[n_rel] = g
                n_rel += 1
    return n_rel


complete_jit = jit(complete)


def heap_push(heap_t: np.ndarray, heap_i: np.ndarray, n: int, t: float, i: int) -> int:
    """``heapq.heappush(heap, (t, i))`` on a heap kept as two arrays of ``n`` entries; returns ``n + 1``.

    Why arrays: the compiled event run (``run_events``) starts the flows it
    releases itself, so the start times live where compiled code can reach them.
    Entries are ordered as tuples (time, then flow index).  Every flow enters
    the heap at most once, so no two entries are equal and any heap pops them in
    the same order as ``heapq``.
    """
    j = n
    while j > 0:
        parent = (j - 1) >> 1
        pt = heap_t[parent]
        pi = heap_i[parent]
        if t < pt or (t == pt and i < pi):
            heap_t[j] = pt
            heap_i[j] = pi
            j = parent
        else:
            break
    heap_t[j] = t
    heap_i[j] = i
    return n + 1


def heap_pop(heap_t: np.ndarray, heap_i: np.ndarray, n: int) -> Tuple[float, int, int]:
    """``heapq.heappop`` on the array heap of ``n`` entries: (time, flow, ``n - 1``)."""
    top_t = heap_t[0]
    top_i = heap_i[0]
    n -= 1
    if n > 0:
        last_t = heap_t[n]
        last_i = heap_i[n]
        j = 0
        while True:
            c = 2 * j + 1
            if c >= n:
                break
            d = c + 1
            if d < n and (heap_t[d] < heap_t[c] or (heap_t[d] == heap_t[c] and heap_i[d] < heap_i[c])):
                c = d
            if heap_t[c] < last_t or (heap_t[c] == last_t and heap_i[c] < last_i):
                heap_t[j] = heap_t[c]
                heap_i[j] = heap_i[c]
                j = c
            else:
                break
        heap_t[j] = last_t
        heap_i[j] = last_i
    return top_t, top_i, n


def release(released: np.ndarray, n_rel: int, member_ptr: np.ndarray, members: np.ndarray, start_of: np.ndarray,
            gap_of: np.ndarray, t: float, heap_t: np.ndarray, heap_i: np.ndarray, n: int) -> int:
    """Queue the members of the groups ``released[:n_rel]`` (in order) to start at
    ``max(start_of[k], t + gap_of[k])`` (Python's ``max``: the first of equals); returns the heap size."""
    for r in range(n_rel):
        g = released[r]
        for x in range(member_ptr[g], member_ptr[g + 1]):
            k = members[x]
            a = start_of[k]
            b = t + gap_of[k]
            n = heap_push_jit(heap_t, heap_i, n, b if b > a else a, k)
    return n


heap_push_jit = jit(heap_push)
heap_pop_jit = jit(heap_pop)
if heap_push_jit is None:      # without Numba the plain functions call each other
    heap_push_jit, heap_pop_jit = heap_push, heap_pop
release_jit = jit(release)


def stacked(parts: List[np.ndarray]) -> np.ndarray:
    """``np.concatenate(parts)``, without the copy for one part (the usual event)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def advance_numpy(t: float, t_arr: float, next_tick: float, m: int, rem: np.ndarray, rate: np.ndarray,
                  link_bytes: np.ndarray, link_rate: np.ndarray, fin_out: np.ndarray,
                  quantum: float = 0.0) -> Tuple[float, int]:
    """One event's step on whole arrays: when the next event is, the advance to it, who finishes then.

    ``t_next`` is the first of the next completion (flows in flight ``rem[:m]``
    bytes to go at ``rate[:m]`` bit/s), ``t_arr`` (next arrival) and ``next_tick``;
    the flows' bytes to go and the links' cumulative bytes advance to it.  A flow
    finishes with less than 1e-6 bytes (or a 1e-12 share of its rate) to go, and
    the flow that set ``t_next`` does in any case.  Returns ``(t_next, n_fin)``
    with the finished slots, ascending, in ``fin_out[:n_fin]``; ``n_fin`` is -1,
    and nothing advanced, if ``t_next`` is not finite (a stall).
    ``quantum`` > 0 (``Simulator(quantum_s=)``): the next completion is the last one
    within ``quantum`` of the first, at the rates as they are, so the flows
    finishing in that window finish together (one re-solve instead of several).
    The reference of ``advance``.
    """
    t_done = np.inf
    first_done = -1
    if m:
        with np.errstate(divide="ignore"):
            eta = rem[:m] / rate[:m] * 8.0   # inf where a rate is 0
        first_done = int(np.argmin(eta))
        t_done = t + eta[first_done]
        if quantum > 0 and np.isfinite(eta[first_done]):
            t_done = t + float(np.max(eta[eta <= eta[first_done] + quantum]))
    t_next = min(t_done, t_arr, next_tick)
    if not np.isfinite(t_next):
        return t_next, -1
    dt = max(t_next - t, 0.0)
    if m and dt > 0:
        rem[:m] -= rate[:m] * (dt / 8.0)
        link_bytes += link_rate * (dt / 8.0)
    if not m:
        return t_next, 0
    finished = rem[:m] <= np.maximum(1e-6, rate[:m] * 1e-12)
    if t_next == t_done:
        finished[first_done] = True
    fin = np.flatnonzero(finished)
    fin_out[:len(fin)] = fin
    return t_next, len(fin)


def advance(t: float, t_arr: float, next_tick: float, m: int, rem: np.ndarray, rate: np.ndarray,
            link_bytes: np.ndarray, link_rate: np.ndarray, fin_out: np.ndarray, quantum: float) -> Tuple[float, int]:
    """``advance_numpy`` as plain loops, for Numba: one call per event instead of a dozen numpy calls.

    The same operations in the same order, so the same bits: ``eta = rem / rate
    * 8.0``, ``np.argmin``'s choice (the first minimum, or the first NaN),
    Python's ``min``/``max`` on the times, ``rem -= rate * (dt / 8.0)`` and
    ``np.maximum``'s NaN in the finish test.
    """
    t_done = np.inf
    first = -1
    if m > 0:
        first = 0
        best = rem[0] / rate[0] * 8.0
        if best == best:
            for s in range(1, m):
                eta = rem[s] / rate[s] * 8.0
                if eta != eta:
                    first = s
                    best = eta
                    break
                if eta < best:
                    first = s
                    best = eta
        t_done = t + best
        if quantum > 0.0 and best < np.inf and best == best:
            cut = best + quantum
            last = best
            for s in range(m):
                eta = rem[s] / rate[s] * 8.0
                if eta <= cut and eta > last:
                    last = eta
            t_done = t + last
    t_next = t_done
    if t_arr < t_next:
        t_next = t_arr
    if next_tick < t_next:
        t_next = next_tick
    if not np.isfinite(t_next):
        return t_next, -1
    dt = t_next - t
    if 0.0 > dt:
        dt = 0.0
    if m > 0 and dt > 0:
        step = dt / 8.0
        for s in range(m):
            rem[s] -= rate[s] * step
        for k in range(link_bytes.shape[0]):
            link_bytes[k] += link_rate[k] * step
    hit = t_next == t_done
    n_fin = 0
    for s in range(m):
        floor = rate[s] * 1e-12
        if floor < 1e-6:            # np.maximum(1e-6, floor): a NaN floor stays NaN
            floor = 1e-6
        if rem[s] <= floor or (hit and s == first):
            fin_out[n_fin] = s
            n_fin += 1
    return t_next, n_fin


advance_jit = jit(advance)


def retire(fin_slots: np.ndarray, m: int, flow: np.ndarray, links: np.ndarray, rem: np.ndarray, rate: np.ndarray,
           fcap: np.ndarray, new: np.ndarray, slot_of: np.ndarray, link_count: np.ndarray, fin: np.ndarray,
           gone_rows: np.ndarray, gone_rates: np.ndarray) -> None:
    """``_Slots.retire`` without numpy calls, for Numba (one call per event).

    Writes the finished slots' flows (sorted), link rows and rates to ``fin``,
    ``gone_rows`` and ``gone_rates``, counts their links out of ``link_count``,
    and frees the slots as ``_Slots.remove`` one by one in descending order
    (each takes the flow then last), which is ``remove_many``'s layout.
    """
    width = links.shape[1]
    k = fin_slots.shape[0]
    for j in range(k):
        s = fin_slots[j]
        fin[j] = flow[s]
        gone_rates[j] = rate[s]
        for w in range(width):
            x = links[s, w]
            gone_rows[j, w] = x
            link_count[x] -= 1
    fin.sort()
    for j in range(k - 1, -1, -1):
        s = fin_slots[j]
        last = m - 1
        slot_of[flow[s]] = -1
        if s != last:
            i = flow[last]
            flow[s] = i
            for w in range(width):
                links[s, w] = links[last, w]
            rem[s] = rem[last]
            rate[s] = rate[last]
            fcap[s] = fcap[last]
            new[s] = new[last]
            slot_of[i] = s
        m = last


retire_jit = jit(retire)


def admit(ids: np.ndarray, t: float, m: int, flow: np.ndarray, links: np.ndarray, rem: np.ndarray, rate: np.ndarray,
          fcap: np.ndarray, new: np.ndarray, slot_of: np.ndarray, cid_of_flow: np.ndarray, conn_rows: np.ndarray,
          size_of: np.ndarray, fcap_of: np.ndarray, link_count: np.ndarray, conn_inflight: np.ndarray,
          start: np.ndarray) -> None:
    """The arrival of flows ``ids`` at ``t`` without numpy calls, for Numba (one call per event).

    Fills slots ``m, m + 1, ...`` in the given order as ``_Slots.add_many`` does
    (their connections' rows, full size to go, rate 0, their caps), counts
    their links into ``link_count`` and their connections' flows in flight,
    and sets their start; the caller has made room (``_Slots.reserve``).
    """
    width = links.shape[1]
    for j in range(ids.shape[0]):
        i = ids[j]
        s = m + j
        c = cid_of_flow[i]
        flow[s] = i
        for w in range(width):
            x = conn_rows[c, w]
            links[s, w] = x
            link_count[x] += 1
        rem[s] = size_of[i]
        rate[s] = 0.0
        fcap[s] = fcap_of[i]
        new[s] = True
        slot_of[i] = s
        start[i] = t
        conn_inflight[c] += 1


admit_jit = jit(admit)


def run_events(t: float, next_tick: float, n_total: int, done: int, m: int, flow: np.ndarray, links: np.ndarray,
               rem: np.ndarray, rate: np.ndarray, fcap: np.ndarray, new: np.ndarray, slot_of: np.ndarray,
               link_rate: np.ndarray, link_count: np.ndarray, link_bytes: np.ndarray, capacity: np.ndarray,
               incremental: bool, finish: np.ndarray, cid_of_flow: np.ndarray, conn_pending: np.ndarray,
               conn_inflight: np.ndarray, conn_last: np.ndarray, conn_burst: np.ndarray, start: np.ndarray,
               size_of: np.ndarray, wait_ptr: np.ndarray, wait_groups: np.ndarray, group_left: np.ndarray,
               released: np.ndarray, fin_buf: np.ndarray, fin_log: np.ndarray, heap_t: np.ndarray,
               heap_i: np.ndarray, heap_n: int, member_ptr: np.ndarray, members: np.ndarray, start_of: np.ndarray,
               gap_of: np.ndarray, conn_rows: np.ndarray, conn_routed: np.ndarray, fcap_of: np.ndarray,
               arr_log: np.ndarray, quantum: float
               ) -> Tuple[float, int, int, int, int, int, int, int, int, int, np.ndarray, np.ndarray, np.ndarray,
                          bool]:  # pragma: no cover - compiled by Numba; checked against the loop
    """The event loop's steps for a run of events between control ticks, in one compiled call.

    Why: a replayed training job is mostly ring steps whose flows finish, release
    the next step's flows and start them, and each such event cost ~40 µs of
    Python around ~40-60 µs of kernels.  Per event this does what
    ``Simulator._run`` does, with the same kernels in the same order: the
    re-solve of the last event's changes (departures, and the arrivals marked in
    ``new``), ``advance``, ``retire``, ``complete``, the queueing of released
    flows (``release``) and the start of every queued flow due by then, in heap
    order, as ``admit`` places them.  The caller has already re-solved what
    was pending.  It stops at a tick, when every flow is done, after an event
    that changed nothing, and before starting a flow that needs Python: one
    whose connection has no path yet (ECMP picks it) or that finds no free slot.
    The caller goes on from there as after any event, starting the flows still
    due.  With a ``quantum``, a flow that finished before its batch's end gets
    the bytes it did not send taken off its links and its own finish time, as
    the loop does (summed like its ``np.bincount``, maximum like ``np.maximum``).

    Returns ``(t, m, done, n_log, n_arr, heap_n, events, solves, resolved,
    status, link_rate, gone_rows, gone_rates, unsolved)``: the finished flows in
    event order in ``fin_log[:n_log]``, the started ones in ``arr_log[:n_arr]``,
    the last event's departures and whether it left a re-solve due
    (``unsolved``), and status 0, -1 (stalled: nothing advanced) or -2 (a flow
    with nothing to limit it).
    """
    width = links.shape[1]
    n_links = capacity.shape[0]
    room = flow.shape[0]
    gone_rows = np.zeros((0, width), dtype=np.int64)
    gone_rates = np.zeros(0)
    events = 0
    solves = 0
    resolved = 0
    n_log = 0
    n_arr = 0
    pending = False
    while True:
        if pending:
            if m == 0:
                link_rate = np.zeros(n_links)
            else:
                is_new = new[:m].copy()
                new[:m] = False
                link_rate, n_up, ok = _resolve_jit(links[:m], rate[:m], fcap[:m], is_new, gone_rows, gone_rates,
                                                   link_rate, link_count, capacity, incremental)
                if not ok:
                    return (t, m, done, n_log, n_arr, heap_n, events, solves, resolved, -2, link_rate, gone_rows,
                            gone_rates, True)
                resolved += n_up
            solves += 1
            pending = False
            gone_rows = gone_rows[:0]
            gone_rates = gone_rates[:0]
        t_arr = heap_t[0] if heap_n > 0 else np.inf
        t_next, n_fin = advance_jit(t, t_arr, next_tick, m, rem, rate, link_bytes, link_rate, fin_buf, quantum)
        if n_fin < 0:
            return (t, m, done, n_log, n_arr, heap_n, events, solves, resolved, -1, link_rate, gone_rows,
                    gone_rates, pending)
        t = t_next
        events += 1
        n_early = 0
        if n_fin > 0 and quantum > 0.0:
            # finished before the batch's end: the bytes not sent come off its links, and it ends early
            early_flow = np.empty(n_fin, dtype=np.int64)
            early_s = np.empty(n_fin)
            unsent = np.zeros(n_links + 1)
            for j in range(n_fin):
                s = fin_buf[j]
                over = rem[s]
                if over < 0:
                    for w in range(width):
                        unsent[links[s, w]] += over
                    early_flow[n_early] = flow[s]
                    early_s[n_early] = over * 8.0 / rate[s]
                    n_early += 1
            if n_early > 0:
                for l in range(n_links):
                    link_bytes[l] += unsent[l]
        if n_fin > 0:
            fin = np.empty(n_fin, dtype=np.int64)
            gone_rows = np.empty((n_fin, width), dtype=np.int64)
            gone_rates = np.empty(n_fin)
            retire_jit(fin_buf[:n_fin], m, flow, links, rem, rate, fcap, new, slot_of, link_count, fin,
                       gone_rows, gone_rates)
            m -= n_fin
            for j in range(n_fin):
                fin_log[n_log + j] = fin[j]
            n_log += n_fin
            done += n_fin
            n_rel = complete_jit(fin, t, finish, cid_of_flow, conn_pending, conn_inflight, conn_last, conn_burst,
                                 start, size_of, wait_ptr, wait_groups, group_left, released)
            for j in range(n_early):
                i = early_flow[j]
                a = t + early_s[j]
                b = start[i]
                finish[i] = a if a >= b or a != a else b
            heap_n = release_jit(released, n_rel, member_ptr, members, start_of, gap_of, t, heap_t, heap_i,
                                 heap_n)
            pending = True
        blocked = False
        k = 0
        while heap_n > 0 and heap_t[0] <= t:
            i = heap_i[0]
            if not conn_routed[cid_of_flow[i]] or m + k == room:
                blocked = True
                break
            _, _, heap_n = heap_pop_jit(heap_t, heap_i, heap_n)
            arr_log[n_arr + k] = i
            k += 1
        if k > 0:
            admit_jit(arr_log[n_arr:n_arr + k], t, m, flow, links, rem, rate, fcap, new, slot_of, cid_of_flow,
                      conn_rows, size_of, fcap_of, link_count, conn_inflight, start)
            m += k
            n_arr += k
            pending = True
        scale = t if t > 1.0 else 1.0
        if blocked or not pending or t >= next_tick - 1e-12 * scale or done >= n_total:
            return (t, m, done, n_log, n_arr, heap_n, events, solves, resolved, 0, link_rate, gone_rows,
                    gone_rates, pending)


_resolve_jit = fairshare._resolve_jit
run_events_jit = jit(run_events, calls_into=(fairshare._resolve_kernel,)) \
    if None not in (_resolve_jit, advance_jit, retire_jit, complete_jit, release_jit, admit_jit) else None

"""Max-min fair rates by progressive filling, compiled when Numba is installed.

Why two implementations: replay re-solves the fair share at every event
(a completion every ~10 ms of simulated time with 1,000 random flows at
k=8), and each numpy round costs ~15 array calls whatever the size, so the
numpy solver spends most of its time in call overhead.  The compiled kernel
runs the *same* algorithm with the *same* floating-point operations in the
same order (sums accumulated like ``np.bincount``, then subtracted), so both
give bit-identical rates; ``tests/unit/test_fairshare.py`` checks that on
random inputs.  The numpy version stays as the reference and as the fallback
where Numba is not installed (``pip install -e '.[fast]'`` adds it;
``scripts/setup.sh`` does).

The algorithm: progressive filling grows every flow together and freezes the
flows of a link when it fills.  Doing that one fill level at a time costs one
round per distinct level (about 200 for 1,000 random flows at k=8), so each
round here freezes *every* link that is a bottleneck already: a link whose
fill level ``(capacity - frozen traffic) / unfrozen flows`` is the tightest
constraint of every unfrozen flow crossing it.  Fill levels only rise as other
flows freeze below them, so such a link fills at exactly that level, whatever
happens elsewhere: freezing them all at once gives the same allocation in a
handful of rounds (about 17 there).  A flow whose cap is below all its links'
levels freezes at its cap for the same reason.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from controller.jit import jit as _jit

__all__ = ["FairShareError", "NO_LIMIT", "max_min_rates", "max_min_rates_numpy", "resolve_event",
           "resolve_event_numpy", "refill_threshold", "COMPILED"]

_REL_TOL = 1e-9
_KEEP_TOL = 1.0 - _REL_TOL
NO_LIMIT = "a flow crosses no finite-capacity link and has no rate cap"


class FairShareError(RuntimeError):
    """The problem has no finite max-min answer (a flow with no finite link and no cap)."""


def _check(flow_links: np.ndarray, n_links: int, fc: np.ndarray) -> None:
    if (flow_links.min(axis=1)[~np.isfinite(fc)] == n_links).any():
        raise FairShareError(NO_LIMIT)


def max_min_rates_numpy(flow_links: np.ndarray, link_capacity: np.ndarray,
                        flow_cap: Optional[np.ndarray] = None) -> np.ndarray:
    """The reference solver in numpy (see ``max_min_rates`` for the arguments)."""
    n_flows, width = flow_links.shape
    rate = np.zeros(n_flows)
    if n_flows == 0:
        return rate
    n_links = len(link_capacity)
    avail = np.append(np.asarray(link_capacity, dtype=float), np.inf)
    fc = np.full(n_flows, np.inf) if flow_cap is None else np.asarray(flow_cap, dtype=float)
    _check(flow_links, n_links, fc)
    idx = np.arange(n_flows)
    cols = np.ascontiguousarray(flow_links.T)  # (width, flows): column ops are contiguous
    count = np.bincount(cols.ravel(), minlength=n_links + 1).astype(float)
    count[n_links] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        while idx.size:
            level = avail / count                     # inf where unused (x/0)
            level[n_links] = np.inf
            col_level = level[cols]
            link_min = col_level.min(axis=0)
            fmin = np.minimum(link_min, fc)
            # entries whose flow is held lower elsewhere: their link is not (yet) a bottleneck
            loose = fmin < col_level * _KEEP_TOL
            blocked = np.bincount(cols.ravel(), weights=loose.ravel(), minlength=n_links + 1)
            bottleneck = blocked == 0
            bottleneck[n_links] = False
            freeze = bottleneck[cols].any(axis=0)
            freeze |= fc <= link_min
            if freeze.all():        # the last round: what is left to freeze needs no bookkeeping
                rate[idx] = fmin
                break
            value = fmin[freeze]
            rate[idx[freeze]] = value
            fcols = cols[:, freeze].ravel()
            weights = np.empty((width, value.size))
            weights[:] = value
            avail -= np.bincount(fcols, weights=weights.ravel(), minlength=n_links + 1)
            count -= np.bincount(fcols, minlength=n_links + 1)
            count[n_links] = 0.0
            keep = ~freeze
            idx = idx[keep]
            cols = cols[:, keep]
            fc = fc[keep]
    return np.maximum(rate, 0.0)


def _water_fill(fixed_width):
    """``max_min_rates_numpy`` as loops, for link rows of ``fixed_width`` entries (0: any width).

    Why a factory: Numba compiles a closure's free variables as constants, so
    with the width fixed the loops over a flow's links have a known trip count
    and compile without their loop overhead; on recorded k=8 events the solve
    took 1.5-1.8x less time than with the width read from the array.  Replay's
    rows are 6 wide (the longest fat-tree path), so that width gets its own
    kernel (``_FAST_WIDTH``: ``_packed6``, this one's loops written out for
    6 links, its rows packed) and every other width the general one.
    """
    def kernel(rows, capacity, fc):  # pragma: no cover - compiled by Numba; the numpy twin is tested
        """The reference's rates, bit for bit.

        Every value the reference computes is computed here with the same
        operations: levels as ``avail / count``, a flow's minimum over its links
        with NaN winning, and the frozen flows' rates summed per link
        position-major, in flow order (``np.bincount`` over the transposed array),
        before being subtracted.  What the loops skip is work whose result is
        known: a link's level is recomputed only when flows froze on it, the
        subtraction touches only those links, and the unfrozen flows' rows are
        packed together after every round (in flow order) instead of being
        looked up through an index.  A link is a bottleneck when no unfrozen
        flow crossing it is held lower elsewhere; the loops keep, per link, the
        lowest rate any crossing flow is held to (NaN ignored, as ``<`` ignores
        it) and compare that one value with the link's level, which decides what
        counting the flows held lower decides.  The minimum over a flow's links
        and the freeze test are written without branches (NaN tracked on the
        side), so that their outcome, which varies flow to flow, costs no
        mispredicted jumps.  Returns (rates, ok); ok is False when a flow has no
        finite link and no cap.
        """
        n, width = rows.shape
        w = fixed_width if fixed_width else width
        n_links = capacity.shape[0]
        pad = n_links
        rate = np.zeros(n)
        for f in range(n):
            if not fc[f] < np.inf:
                finite = False
                for p in range(w):
                    if rows[f, p] != n_links:
                        finite = True
                        break
                if not finite:
                    return rate, False
        avail = np.empty(n_links + 1)
        avail[:n_links] = capacity
        avail[n_links] = np.inf
        count = np.zeros(n_links + 1)
        # the unfrozen flows, packed: their rows, caps, ids.  The rows as uint32: unsigned indices
        # need no wraparound check, and half the bytes of int64 keep 1,000 flows' rows in L1 (a fabric
        # has far fewer than 2**32 links)
        act_rows = np.empty(n * w, dtype=np.uint32)
        act_cap = np.empty(n)
        act_id = np.empty(n, dtype=np.int64)
        for f in range(n):
            act_id[f] = f
            act_cap[f] = fc[f]
            for p in range(w):
                link = rows[f, p]
                act_rows[f * w + p] = link
                count[link] += 1.0
        count[n_links] = 0.0
        level = np.empty(n_links + 1)
        for l in range(n_links + 1):
            level[l] = avail[l] / count[l]
        level[n_links] = np.inf
        loose = np.zeros(n_links + 1, dtype=np.bool_)
        minfm = np.full(n_links + 1, np.inf)
        sub = np.zeros(n_links + 1)
        sub_n = np.zeros(n_links + 1)
        m = n
        fmin = np.empty(n)
        lmin = np.empty(n)
        frozen_rows = np.empty(n * w, dtype=np.uint32)
        frozen_val = np.empty(n)
        upad = np.uint32(pad)
        keep_tol = 1.0 - 1e-9
        while m > 0:
            for j in range(m):
                b = j * w
                low = level[act_rows[b]]
                nan = low != low
                for p in range(1, w):
                    v = level[act_rows[b + p]]
                    low = v if v < low else low
                    nan |= v != v
                cap = act_cap[j]
                fm = cap if cap < low else low
                if nan | (cap != cap):
                    fm = np.nan
                if nan:
                    low = np.nan
                lmin[j] = low
                fmin[j] = fm
                for p in range(w):
                    link = act_rows[b + p]
                    x = minfm[link]
                    minfm[link] = fm if fm < x else x
            for l in range(n_links + 1):
                loose[l] = minfm[l] < level[l] * keep_tol
                minfm[l] = np.inf
            loose[pad] = True
            nf = 0
            k = 0
            for j in range(m):
                b = j * w
                fz = act_cap[j] <= lmin[j]
                for p in range(w):
                    fz |= not loose[act_rows[b + p]]
                if fz:
                    rate[act_id[j]] = fmin[j]
                    for p in range(w):
                        frozen_rows[nf * w + p] = act_rows[b + p]
                    frozen_val[nf] = fmin[j]
                    nf += 1
                else:
                    for p in range(w):
                        act_rows[k * w + p] = act_rows[b + p]
                    act_cap[k] = act_cap[j]
                    act_id[k] = act_id[j]
                    k += 1
            if k == 0:
                break
            m = k
            for p in range(w):
                for i in range(nf):
                    link = frozen_rows[i * w + p]
                    sub[link] += frozen_val[i]
                    sub_n[link] += 1.0
            for p in range(w):
                for i in range(nf):
                    link = frozen_rows[i * w + p]
                    if sub_n[link] != 0.0 and link != upad:
                        avail[link] -= sub[link]
                        count[link] -= sub_n[link]
                        level[link] = avail[link] / count[link]
                        sub[link] = 0.0
                        sub_n[link] = 0.0
            sub[pad] = 0.0
            sub_n[pad] = 0.0
        for f in range(n):
            if rate[f] < 0.0:
                rate[f] = 0.0
        return rate, True

    kernel.__qualname__ = "_kernel_w%d" % fixed_width if fixed_width else "_kernel"
    return kernel


def _packed6(capped):
    """``_water_fill(6)``'s kernel with each unfrozen row packed two links to a 64-bit word.

    Why: a round over the unfrozen flows is bound by its loads and stores, not
    its arithmetic (~50 per flow at 6 links).  Packed, a row is three words:
    one load each where the link ids are read (pass 1 and the freeze pass), and
    three stores instead of six when a row is moved down or set aside.  On the
    1,771 max-min problems of a 20 s churny k=8 replay it took ~0.88x the time
    of the unpacked copy, with the same bits (the same operations on the same
    values in the same order; only where the ids are kept changed).

    ``capped`` False: the copy for problems whose flows have no rate cap (every
    generated trace; a cap is a trace's optional rate column).  With every cap
    infinite a flow's rate bound is its lowest level and it freezes on its cap
    only when that level is infinite, so the caps need not be carried, copied or
    compared; ``_max_min_kernel`` picks the copy.
    """
    def kernel(rows, capacity, fc):  # pragma: no cover - compiled by Numba; the numpy twin is tested
        n = rows.shape[0]           # rows are 6 wide (``_max_min_kernel`` sends no other width)
        n_links = capacity.shape[0]
        pad = n_links
        m32 = np.uint64(0xFFFFFFFF)
        s32 = np.uint64(32)
        rate = np.zeros(n)
        for f in range(n):
            if not fc[f] < np.inf:
                finite = False
                for p in range(6):
                    if rows[f, p] != n_links:
                        finite = True
                        break
                if not finite:
                    return rate, False
        avail = np.empty(n_links + 1)
        avail[:n_links] = capacity
        avail[n_links] = np.inf
        count = np.zeros(n_links + 1)
        act = np.empty(n * 3, dtype=np.uint64)     # row j: words 3j..3j+2, link 2q low half, 2q+1 high
        act_cap = np.empty(n if capped else 0)
        act_id = np.empty(n, dtype=np.int64)
        for f in range(n):
            act_id[f] = f
            if capped:
                act_cap[f] = fc[f]
            for q in range(3):
                a = rows[f, 2 * q]
                c = rows[f, 2 * q + 1]
                act[f * 3 + q] = np.uint64(a) | (np.uint64(c) << s32)
            for p in range(6):
                count[rows[f, p]] += 1.0
        count[n_links] = 0.0
        level = np.empty(n_links + 1)
        for l in range(n_links + 1):
            level[l] = avail[l] / count[l]
        level[n_links] = np.inf
        loose = np.zeros(n_links + 1, dtype=np.bool_)
        minfm = np.full(n_links + 1, np.inf)
        sub = np.zeros(n_links + 1)
        sub_n = np.zeros(n_links + 1)
        m = n
        fmin = np.empty(n)
        lmin = np.empty(n if capped else 0)
        frozen = np.empty(n * 3, dtype=np.uint64)
        frozen_val = np.empty(n)
        upad = np.uint64(pad)
        keep_tol = 1.0 - 1e-9
        while m > 0:
            for j in range(m):
                w0 = act[3 * j]
                w1 = act[3 * j + 1]
                w2 = act[3 * j + 2]
                l0 = w0 & m32
                l1 = w0 >> s32
                l2 = w1 & m32
                l3 = w1 >> s32
                l4 = w2 & m32
                l5 = w2 >> s32
                low = level[l0]
                nan = low != low
                v = level[l1]
                low = v if v < low else low
                nan |= v != v
                v = level[l2]
                low = v if v < low else low
                nan |= v != v
                v = level[l3]
                low = v if v < low else low
                nan |= v != v
                v = level[l4]
                low = v if v < low else low
                nan |= v != v
                v = level[l5]
                low = v if v < low else low
                nan |= v != v
                if capped:
                    cap = act_cap[j]
                    fm = cap if cap < low else low
                    if nan | (cap != cap):
                        fm = np.nan
                    if nan:
                        low = np.nan
                    lmin[j] = low
                else:                   # an infinite cap is never below low: fm is low
                    if nan:
                        low = np.nan
                    fm = low
                fmin[j] = fm
                x = minfm[l0]
                minfm[l0] = fm if fm < x else x
                x = minfm[l1]
                minfm[l1] = fm if fm < x else x
                x = minfm[l2]
                minfm[l2] = fm if fm < x else x
                x = minfm[l3]
                minfm[l3] = fm if fm < x else x
                x = minfm[l4]
                minfm[l4] = fm if fm < x else x
                x = minfm[l5]
                minfm[l5] = fm if fm < x else x
            for l in range(n_links + 1):
                loose[l] = minfm[l] < level[l] * keep_tol
                minfm[l] = np.inf
            loose[pad] = True
            nf = 0
            k = 0
            for j in range(m):
                w0 = act[3 * j]
                w1 = act[3 * j + 1]
                w2 = act[3 * j + 2]
                fm = fmin[j]
                if capped:
                    fz = act_cap[j] <= lmin[j]
                else:                   # inf <= low: low (= fm here) is inf
                    fz = fm == np.inf
                fz |= not loose[w0 & m32]
                fz |= not loose[w0 >> s32]
                fz |= not loose[w1 & m32]
                fz |= not loose[w1 >> s32]
                fz |= not loose[w2 & m32]
                fz |= not loose[w2 >> s32]
                if fz:
                    rate[act_id[j]] = fm
                    frozen[3 * nf] = w0
                    frozen[3 * nf + 1] = w1
                    frozen[3 * nf + 2] = w2
                    frozen_val[nf] = fm
                    nf += 1
                else:
                    act[3 * k] = w0
                    act[3 * k + 1] = w1
                    act[3 * k + 2] = w2
                    if capped:
                        act_cap[k] = act_cap[j]
                    act_id[k] = act_id[j]
                    k += 1
            if k == 0:
                break
            m = k
            # position-major, as the reference's bincount over the transposed rows
            for p in range(6):
                q = p >> 1
                s = s32 * np.uint64(p & 1)
                for i in range(nf):
                    link = (frozen[3 * i + q] >> s) & m32
                    sub[link] += frozen_val[i]
                    sub_n[link] += 1.0
            for p in range(6):
                q = p >> 1
                s = s32 * np.uint64(p & 1)
                for i in range(nf):
                    link = (frozen[3 * i + q] >> s) & m32
                    if sub_n[link] != 0.0 and link != upad:
                        avail[link] -= sub[link]
                        count[link] -= sub_n[link]
                        level[link] = avail[link] / count[link]
                        sub[link] = 0.0
                        sub_n[link] = 0.0
            sub[pad] = 0.0
            sub_n[pad] = 0.0
        for f in range(n):
            if rate[f] < 0.0:
                rate[f] = 0.0
        return rate, True

    kernel.__qualname__ = "_kernel_packed6_capped" if capped else "_kernel_packed6_uncapped"
    return kernel

_kernel = _water_fill(0)
_FAST_WIDTH = 6   # sim.py's row width: the longest fat-tree path, host-edge-agg-core-agg-edge-host
_SPARSE_RATIO = 4  # links per link entry of the flows above which the solver renumbers the links crossed
_fill_any = _jit(_kernel)
_fill_fast = _jit(_packed6(True)) if _fill_any is not None else None
_fill_fast_uncapped = _jit(_packed6(False)) if _fill_any is not None else None


def _compact(rows, capacity):  # pragma: no cover - compiled by Numba; checked through _max_min_kernel
    """The same problem on the links ``rows`` cross only, renumbered 0.. in order of first use (pad last).

    Why: at k=32 a fabric has ~49,000 directed links and 1,000 flows cross a few
    thousand.  The solver's per-link arrays then span megabytes, and every
    round's scans over them, and its scattered reads, missed the caches: an
    event took ~800 µs.  The solver's arithmetic is per link and per flow, in
    flow order, so renumbering the links changes none of its results.
    """
    n, width = rows.shape
    n_links = capacity.shape[0]
    local = np.empty(n_links + 1, dtype=np.int64)
    for f in range(n):
        for p in range(width):
            local[rows[f, p]] = -1
    n_used = 0
    cap = np.empty(n * width)
    for f in range(n):
        for p in range(width):
            link = rows[f, p]
            if link != n_links and local[link] < 0:
                local[link] = n_used
                cap[n_used] = capacity[link]
                n_used += 1
    local[n_links] = n_used
    out = np.empty((n, width), dtype=np.int64)
    for f in range(n):
        for p in range(width):
            out[f, p] = local[rows[f, p]]
    return out, cap[:n_used].copy()


_compact_jit = _jit(_compact) if _fill_any is not None else None


def _max_min_kernel(rows, capacity, fc):  # pragma: no cover - compiled by Numba
    """The solver for these rows' width (its own packed kernel for replay's usual width).

    Flows that cross few of many links are solved on those links only
    (``_compact``); at replay's width, flows with no rate cap take the packed
    kernel's uncapped copy.
    """
    if rows.shape[0] * rows.shape[1] * _SPARSE_RATIO < capacity.shape[0]:
        rows, capacity = _compact_jit(rows, capacity)
    if rows.shape[1] != _FAST_WIDTH:
        return _fill_any(rows, capacity, fc)
    for f in range(fc.shape[0]):
        if fc[f] < np.inf or fc[f] != fc[f]:
            return _fill_fast(rows, capacity, fc)
    return _fill_fast_uncapped(rows, capacity, fc)


def refill_threshold(removed_rates: Sequence[float], new_rows: np.ndarray, new_caps: np.ndarray,
                     link_capacity: np.ndarray, count_after: np.ndarray,
                     old_load: np.ndarray) -> float:
    """A level below which an event leaves every max-min rate unchanged.

    Why: progressive filling decides the flows frozen below level ``y`` only
    from what happens below ``y``.  A removed flow of rate ``x`` fills its
    links only above ``x`` (each of its links saturates at ``x`` or later),
    so removing it changes nothing below ``x``.  Adding flows to link ``L``
    (``a`` new flows, ``n`` flows in all after the event, ``S`` the old
    flows' total rate there) cannot make ``L`` fill below
    ``max(C / n, (C - S) / a)``: at fill level ``y`` the link carries at most
    ``min(n * y, S + a * y)``.  A new flow's cap bounds its own level.  The
    minimum over all changes is a level under which the old solution still
    holds, so only flows at or above it need re-solving (``resolve_event``
    does that with the capacity the others leave).

    ``new_rows``: link rows of the added flows (pad = ``len(link_capacity)``);
    ``count_after``: flows per link after the event (pad entry included);
    ``old_load``: per link, the total old rate of the flows that stay.
    """
    theta = min(removed_rates) if len(removed_rates) else np.inf
    if new_rows.size:
        pad = len(link_capacity)
        theta = min(theta, float(np.min(new_caps)))
        entries = new_rows[new_rows != pad]
        links, added = np.unique(entries, return_counts=True)
        cap = link_capacity[links]
        fair = cap / count_after[links]
        # slack may carry float noise: 1e-6 of capacity less keeps the bound conservative
        slack = (cap - old_load[links] - 1e-6 * cap) / added
        theta = min(theta, float(np.min(np.maximum(fair, slack))))
    return theta


def _link_sums(rows: np.ndarray, values: np.ndarray, n_links: int) -> np.ndarray:
    """Per link, the sum of ``values`` over the flows crossing it (``np.bincount`` order)."""
    return np.bincount(rows.ravel(), weights=np.repeat(values, rows.shape[1]), minlength=n_links + 1)[:n_links]


def resolve_event_numpy(rows: np.ndarray, rate: np.ndarray, fcap: np.ndarray, is_new: np.ndarray,
                        gone_rows: np.ndarray, gone_rates: np.ndarray, link_rate: np.ndarray,
                        link_count: np.ndarray, capacity: np.ndarray, incremental: bool = True
                        ) -> Tuple[np.ndarray, int]:
    """The reference ``resolve_event`` in numpy (see there)."""
    m = len(rows)
    n_links = len(capacity)
    old_load = link_rate - _link_sums(gone_rows, gone_rates, n_links) if len(gone_rows) else link_rate
    theta = refill_threshold(gone_rates.tolist(), rows[is_new], fcap[is_new], capacity, link_count, old_load)
    upper = is_new | (rate >= theta * (1.0 - 1e-9))
    n_up = int(np.count_nonzero(upper))
    if n_up > 0.75 * m or not incremental:
        rate[:] = max_min_rates_numpy(rows, capacity, fcap)
        return _link_sums(rows, rate, n_links), n_up
    if n_up == 0:
        return old_load, 0
    fixed = ~upper
    fixed_load = _link_sums(rows[fixed], rate[fixed], n_links)
    urows = rows[upper]
    sub = max_min_rates_numpy(urows, np.maximum(capacity - fixed_load, 0.0), fcap[upper])
    rate[upper] = sub
    return fixed_load + _link_sums(urows, sub, n_links), n_up


def _resolve_kernel(rows, rate, fcap, is_new, gone_rows, gone_rates, link_rate, link_count, capacity,
                    incremental):  # pragma: no cover - compiled by Numba; the numpy twin is tested
    """``resolve_event_numpy`` as loops, with its arithmetic in its order.  Returns (link_rate, n_up, ok)."""
    m, width = rows.shape
    n_links = capacity.shape[0]
    pad = n_links
    # few flows on many links (k=32): per-link work only on the links that change (see _compact)
    sparse = m * width * _SPARSE_RATIO < n_links
    # old_load: the removed flows' rates summed per link (bincount order), then subtracted
    old_load = link_rate.copy()
    if gone_rows.shape[0]:
        if sparse:          # elsewhere x - 0.0 is x
            acc = np.empty(n_links + 1)
            for r in range(gone_rows.shape[0]):
                for p in range(gone_rows.shape[1]):
                    acc[gone_rows[r, p]] = 0.0
        else:
            acc = np.zeros(n_links + 1)
        for r in range(gone_rows.shape[0]):
            for p in range(gone_rows.shape[1]):
                acc[gone_rows[r, p]] += gone_rates[r]
        if sparse:
            for r in range(gone_rows.shape[0]):
                for p in range(gone_rows.shape[1]):
                    l = gone_rows[r, p]
                    if l != pad:
                        old_load[l] = link_rate[l] - acc[l]
        else:
            for l in range(n_links):
                old_load[l] = link_rate[l] - acc[l]
    theta = np.inf
    for r in range(gone_rates.shape[0]):
        if gone_rates[r] < theta:
            theta = gone_rates[r]
    n_new = 0
    if sparse:
        added = np.empty(n_links + 1)
        for f in range(m):
            if is_new[f]:
                for p in range(width):
                    added[rows[f, p]] = 0.0
    else:
        added = np.zeros(n_links + 1)
    touched = np.empty(m * width if sparse else 0, dtype=np.int64)   # sparse: the links with new flows
    n_touched = 0
    cap_min = np.inf
    for f in range(m):
        if is_new[f]:
            n_new += 1
            c = fcap[f]
            if c < cap_min or c != c:
                cap_min = c
            for p in range(width):
                link = rows[f, p]
                if link != pad:
                    if sparse and added[link] == 0.0:
                        touched[n_touched] = link
                        n_touched += 1
                    added[link] += 1.0
    if n_new:
        if cap_min < theta:
            theta = cap_min
        low = np.inf
        # the minimum does not depend on the order (NaN, once met, stays)
        for u in range(n_touched if sparse else n_links):
            l = touched[u] if sparse else u
            if added[l] > 0.0:
                cap = capacity[l]
                fair = cap / link_count[l]
                slack = (cap - old_load[l] - 1e-6 * cap) / added[l]
                v = fair if fair >= slack or fair != fair else slack
                if v < low or v != v:
                    low = v
        if low < theta:
            theta = low
    level = theta * (1.0 - 1e-9)
    upper = np.empty(m, dtype=np.bool_)
    n_up = 0
    for f in range(m):
        u = is_new[f] | (rate[f] >= level)
        upper[f] = u
        n_up += u
    out = np.zeros(n_links + 1)
    if n_up > 0.75 * m or not incremental:
        got, ok = _max_min_jit(rows, capacity, fcap)
        if not ok:
            return old_load, n_up, False
        for f in range(m):
            rate[f] = got[f]
            for p in range(width):
                out[rows[f, p]] += got[f]
        return out[:n_links].copy(), n_up, True
    if n_up == 0:
        return old_load, 0, True
    # the flows to re-solve and the others, each in flow order, listed without a branch: which flows
    # are re-solved varies flow to flow (~60 % of them on churny traffic), so a branch would mispredict
    up_idx = np.empty(m, dtype=np.int64)
    fix_idx = np.empty(m, dtype=np.int64)
    k = 0
    n_fix = 0
    for f in range(m):
        up_idx[k] = f
        fix_idx[n_fix] = f
        u = upper[f]
        k += u
        n_fix += not u
    fixed_load = np.zeros(n_links + 1)
    for j in range(n_fix):
        f = fix_idx[j]
        for p in range(width):
            fixed_load[rows[f, p]] += rate[f]
    urows = np.empty((n_up, width), dtype=rows.dtype)
    ucap = np.empty(n_up)
    for k in range(n_up):
        f = up_idx[k]
        urows[k] = rows[f]
        ucap[k] = fcap[f]
    residual = np.empty(n_links)
    if sparse:          # the solver reads only the links its flows cross
        for k in range(n_up):
            for p in range(width):
                l = urows[k, p]
                if l != pad:
                    v = capacity[l] - fixed_load[l]
                    residual[l] = v if v >= 0.0 or v != v else 0.0
    else:
        for l in range(n_links):
            v = capacity[l] - fixed_load[l]
            residual[l] = v if v >= 0.0 or v != v else 0.0
    sub, ok = _max_min_jit(urows, residual, ucap)
    if not ok:
        return old_load, n_up, False
    for k in range(n_up):
        f = up_idx[k]
        rate[f] = sub[k]
        for p in range(width):
            out[rows[f, p]] += sub[k]
    for l in range(n_links):
        out[l] = fixed_load[l] + out[l]
    return out[:n_links].copy(), n_up, True


_max_min_jit = _jit(_max_min_kernel) if _fill_fast is not None else None
_resolve_jit = _jit(_resolve_kernel) if _max_min_jit is not None else None
COMPILED = _max_min_jit is not None


def _use_compiled(compiled: Optional[bool]) -> bool:
    if compiled and not COMPILED:
        raise FairShareError("the compiled solver was asked for but Numba is not installed "
                             "(pip install -e '.[fast]')")
    return COMPILED if compiled is None else compiled


def max_min_rates(flow_links: np.ndarray, link_capacity: np.ndarray,
                  flow_cap: Optional[np.ndarray] = None, *, compiled: Optional[bool] = None) -> np.ndarray:
    """Max-min fair rates by progressive filling (water-filling).

    ``flow_links`` is an int array (n_flows, P): the link indices of each
    flow's path, padded with ``len(link_capacity)`` (a pad link of infinite
    capacity).  ``flow_cap`` gives optional per-flow rate caps (``inf`` for
    none).  Raises ``FairShareError`` if a flow has neither a finite link nor
    a cap.  ``compiled``: None = the Numba kernel when installed, else the
    numpy reference; both return the same bits.
    """
    if not _use_compiled(compiled) or len(flow_links) == 0:
        return max_min_rates_numpy(flow_links, link_capacity, flow_cap)
    fc = np.full(len(flow_links), np.inf) if flow_cap is None else flow_cap
    rate, ok = _max_min_jit(np.ascontiguousarray(flow_links, dtype=np.int64),
                            np.ascontiguousarray(link_capacity, dtype=float),
                            np.ascontiguousarray(fc, dtype=float))
    if not ok:
        raise FairShareError(NO_LIMIT)
    return rate


def resolve_event(rows: np.ndarray, rate: np.ndarray, fcap: np.ndarray, is_new: np.ndarray,
                  gone_rows: np.ndarray, gone_rates: np.ndarray, link_rate: np.ndarray,
                  link_count: np.ndarray, capacity: np.ndarray, *, incremental: bool = True,
                  compiled: Optional[bool] = None) -> Tuple[np.ndarray, int]:
    """Re-solve the rates after one event; returns (per-link total rate, flows re-solved).

    ``rows``/``rate``/``fcap``: the flows in flight after the event (link
    rows padded with ``len(capacity)``, current rates -- updated in place --,
    caps); ``is_new``: flows added or moved by the event; ``gone_rows`` /
    ``gone_rates``: the rows and old rates of flows that left (or left their
    old path); ``link_rate``: per-link total rate before the event;
    ``link_count``: flows per link after it (pad entry included).  Only the
    new flows and those at or above ``refill_threshold`` are re-solved, on the
    capacity the others leave, unless ``incremental`` is False or they are
    most of the flows.  ``compiled`` as in ``max_min_rates``: same bits either way.
    """
    if len(rows) == 0:
        return np.zeros(len(capacity)), 0
    if not _use_compiled(compiled):
        return resolve_event_numpy(rows, rate, fcap, is_new, gone_rows, gone_rates, link_rate, link_count,
                                   capacity, incremental)
    width = rows.shape[1]
    gone = gone_rows if len(gone_rows) else np.zeros((0, width), dtype=np.int64)
    out, n_up, ok = _resolve_jit(rows, rate, fcap, is_new, np.ascontiguousarray(gone, dtype=np.int64),
                                 np.ascontiguousarray(gone_rates, dtype=float), link_rate,
                                 link_count, capacity, incremental)
    if not ok:
        raise FairShareError(NO_LIMIT)
    return out, int(n_up)


def warm_up() -> None:
    """Load (or compile, the first time) the Numba kernels now, not inside the first replay event."""
    if COMPILED:
        rows = np.zeros((1, 1), dtype=np.int64)
        resolve_event(rows, np.zeros(1), np.full(1, np.inf), np.ones(1, dtype=bool), np.zeros((0, 1), dtype=np.int64),
                      np.zeros(0), np.zeros(1), np.array([1, 0]), np.ones(1))

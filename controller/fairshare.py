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

import os
from typing import Optional

import numpy as np

__all__ = ["FairShareError", "max_min_rates", "max_min_rates_numpy", "COMPILED"]

_REL_TOL = 1e-9
_KEEP_TOL = 1.0 - _REL_TOL
_NO_LIMIT = "a flow crosses no finite-capacity link and has no rate cap"


class FairShareError(RuntimeError):
    """The problem has no finite max-min answer (a flow with no finite link and no cap)."""


def _check(flow_links: np.ndarray, n_links: int, fc: np.ndarray) -> None:
    if (flow_links.min(axis=1)[~np.isfinite(fc)] == n_links).any():
        raise FairShareError(_NO_LIMIT)


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


def _kernel(rows, capacity, fc):  # pragma: no cover - compiled by Numba; the numpy twin is tested
    """``max_min_rates_numpy`` as loops: same operations, same order.

    ``rows`` is (flows, width), read row by row (cache-friendly); the per-link
    sums of frozen rates are still accumulated position-major, in flow order,
    as ``np.bincount`` over the transposed array does, then subtracted.
    Returns (rates, ok); ok is False when a flow has no finite link and no cap.
    """
    n, width = rows.shape
    n_links = capacity.shape[0]
    rate = np.zeros(n)
    for f in range(n):
        if not fc[f] < np.inf:
            finite = False
            for p in range(width):
                if rows[f, p] != n_links:
                    finite = True
                    break
            if not finite:
                return rate, False
    avail = np.empty(n_links + 1)
    avail[:n_links] = capacity
    avail[n_links] = np.inf
    count = np.zeros(n_links + 1)
    for f in range(n):
        for p in range(width):
            count[rows[f, p]] += 1.0
    count[n_links] = 0.0
    active = np.arange(n)
    m = n
    level = np.empty(n_links + 1)
    blocked = np.empty(n_links + 1)
    sub = np.empty(n_links + 1)
    sub_n = np.empty(n_links + 1)
    fmin = np.empty(n)
    lmin = np.empty(n)
    freeze = np.empty(n, dtype=np.bool_)
    keep_tol = 1.0 - 1e-9
    while m > 0:
        for l in range(n_links + 1):
            level[l] = avail[l] / count[l]
            blocked[l] = 0.0
        level[n_links] = np.inf
        for j in range(m):
            f = active[j]
            low = level[rows[f, 0]]
            for p in range(1, width):
                v = level[rows[f, p]]
                if v < low or v != v:      # np.min propagates NaN
                    low = v
            lmin[j] = low
            cap = fc[f]
            fm = cap if cap < low or cap != cap else low
            fmin[j] = fm
            for p in range(width):
                link = rows[f, p]
                if fm < level[link] * keep_tol:
                    blocked[link] += 1.0
        blocked[n_links] = 1.0             # the pad link is never a bottleneck
        all_frozen = True
        n_frozen = 0
        for j in range(m):
            f = active[j]
            fz = fc[f] <= lmin[j]
            if not fz:
                for p in range(width):
                    if blocked[rows[f, p]] == 0.0:
                        fz = True
                        break
            freeze[j] = fz
            if fz:
                rate[f] = fmin[j]
                n_frozen += 1
            else:
                all_frozen = False
        if all_frozen:
            break
        if n_frozen:
            for l in range(n_links + 1):
                sub[l] = 0.0
                sub_n[l] = 0.0
            for p in range(width):         # np.bincount's order: position-major, flows in order
                for j in range(m):
                    if freeze[j]:
                        link = rows[active[j], p]
                        sub[link] += fmin[j]
                        sub_n[link] += 1.0
            for l in range(n_links + 1):
                avail[l] -= sub[l]
                count[l] -= sub_n[l]
            count[n_links] = 0.0
        k = 0
        for j in range(m):
            if not freeze[j]:
                active[k] = active[j]
                k += 1
        m = k
    for f in range(n):
        if rate[f] < 0.0:
            rate[f] = 0.0
    return rate, True


def _compile():
    """The Numba-compiled kernel, or None (not installed, or SIDESTEP_NO_JIT=1 for checks)."""
    if os.environ.get("SIDESTEP_NO_JIT"):
        return None
    try:
        import numba
    except ImportError:
        return None
    # error_model="numpy": x/0 gives inf/nan as in numpy instead of raising
    return numba.njit(cache=True, nogil=True, error_model="numpy")(_kernel)


_COMPILED_KERNEL = _compile()
COMPILED = _COMPILED_KERNEL is not None


def max_min_rates(flow_links: np.ndarray, link_capacity: np.ndarray,
                  flow_cap: Optional[np.ndarray] = None) -> np.ndarray:
    """Max-min fair rates by progressive filling (water-filling).

    ``flow_links`` is an int array (n_flows, P): the link indices of each
    flow's path, padded with ``len(link_capacity)`` (a pad link of infinite
    capacity).  ``flow_cap`` gives optional per-flow rate caps (``inf`` for
    none).  Raises ``FairShareError`` if a flow has neither a finite link nor
    a cap.  Compiled when Numba is installed, else the numpy reference; both
    return the same bits.
    """
    if _COMPILED_KERNEL is None or len(flow_links) == 0:
        return max_min_rates_numpy(flow_links, link_capacity, flow_cap)
    fc = np.full(len(flow_links), np.inf) if flow_cap is None else flow_cap
    rate, ok = _COMPILED_KERNEL(np.ascontiguousarray(flow_links, dtype=np.int64),
                                np.ascontiguousarray(link_capacity, dtype=float),
                                np.ascontiguousarray(fc, dtype=float))
    if not ok:
        raise FairShareError(_NO_LIMIT)
    return rate

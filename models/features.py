"""Features of a link's recent utilization window, computed for many links at once.

Input is a history matrix ``(n_links, window)`` (oldest..newest, NaN where a poll
was missed); output is ``(n_links, n_features)``.  Everything is vectorised over
links because the controller predicts every directed link of the fabric (6,144 on
a k=16 fat-tree) in each poll.

Most features are expressed *relative to the latest value* so that the regressor
learns changes, not levels: a model trained on one load level then generalises to
links (and real series) at another level.  The periodic features exist because
distributed training traffic is an on/off pattern with a stable iteration time:
the best guess for "two polls from now" is what happened two polls after the same
phase one iteration ago.

``FEATURE_VERSION`` names this exact feature set; model files record it and a model
built on another version is refused (see ``models/model_file.py``).  Bump it whenever
a feature's definition, order or count changes.
"""
from __future__ import annotations

import functools
import inspect
import math
import threading
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from controller.jit import jit as _jit
from models.distinct_rows import distinct_rows

FEATURE_VERSION = 1

LAGS = 8                       # latest value and 7 earlier ones
DIFFS = (1, 2, 4)              # x[t] - x[t-d]
EWMA_ALPHAS = (0.5, 0.2, 0.05)  # smoothing weights of the exponentially weighted means
ROLL = (4, 16)                 # short rolling windows (plus the whole window)
MIN_PERIOD = 2                 # shortest period (samples) the detector reports
MIN_ACF = 0.3                  # autocorrelation a period needs to count as detected

# One line per feature: name -> what it is.  Order is the column order.
def _describe() -> Dict[str, str]:
    d: Dict[str, str] = {"last": "latest utilization (gaps forward-filled)"}
    for k in range(1, LAGS):
        d["lag%d" % k] = "utilization %d sample(s) before the latest, minus the latest" % k
    for k in DIFFS:
        d["diff%d" % k] = "latest minus the value %d sample(s) earlier (momentum)" % k
    for a in EWMA_ALPHAS:
        d["ewma%g" % a] = "exponentially weighted mean (alpha=%g) minus the latest" % a
    for r in ROLL:
        d["max%d" % r] = "max of the last %d samples minus the latest" % r
        d["min%d" % r] = "min of the last %d samples minus the latest" % r
    d.update({
        "mean_w": "mean of the whole window minus the latest",
        "max_w": "max of the whole window minus the latest",
        "min_w": "min of the whole window minus the latest",
        "std_w": "standard deviation over the whole window",
        "nan_frac": "fraction of the window that was missing (NaN)",
        "period": "main detected period in samples, sub-sample precision (autocorrelation peak; 0 = none)",
        "acf_peak": "autocorrelation at the main period (0 = none)",
        "period2": "second period, not a multiple of the main one (a link shared by two jobs; 0 = none)",
        "acf_peak2": "autocorrelation at the second period (0 = none)",
        "phase_sin": "sin(2*pi*phase), phase = (samples since the last rise above the window mean) mod period / period",
        "phase_cos": "cos(2*pi*phase), same phase",
        "season1": "value one period before the target time, minus the latest (latest if no period)",
        "season2": "value two periods before the target time, minus the latest",
        "season_delta1": "change over the horizon one period ago: x[t+h-P] - x[t-P]",
        "season_delta2": "change over the horizon two periods ago: x[t+h-2P] - x[t-2P]",
        "season_max": "max over the horizon one period ago, minus the latest",
        "season_p2": "value one second-period before the target time, minus the latest",
        "season_combo": "two-job estimate x[t+h-P1] + x[t+h-P2] - x[t+h-P1-P2], minus the latest",
    })
    return d


FEATURES: Dict[str, str] = _describe()
FEATURE_NAMES: List[str] = list(FEATURES)


def feature_spec(window: int, horizon: int) -> Dict[str, object]:
    """The record a model file keeps so that a loader can tell whether it still matches."""
    return {
        "feature_version": FEATURE_VERSION,
        "window": int(window),
        "horizon": int(horizon),
        "names": list(FEATURE_NAMES),
        "lags": LAGS, "diffs": list(DIFFS), "ewma_alphas": list(EWMA_ALPHAS),
        "rolling": list(ROLL), "min_period": MIN_PERIOD, "min_acf": MIN_ACF,
    }


def fill_gaps(history: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along time; leading NaNs take the first valid value; all-NaN rows become 0.

    Forward-filling is what persistence does with a missed poll, so features
    never invent a level that was not measured.
    """
    x = np.asarray(history, dtype=float)
    if x.ndim != 2:
        raise ValueError("history must be 2-D (n_links, window), got shape %r" % (x.shape,))
    n, w = x.shape
    if w == 0:
        return np.zeros((n, 0))
    valid = ~np.isnan(x)
    if valid.all():
        return x.copy()
    idx = np.where(valid, np.arange(w)[None, :], -1)
    np.maximum.accumulate(idx, axis=1, out=idx)
    first = np.argmax(valid, axis=1)            # first valid index (0 if none)
    idx = np.where(idx < 0, first[:, None], idx)
    out = x[np.arange(n)[:, None], idx]
    out[~valid.any(axis=1)] = 0.0
    return out


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Unbiased autocorrelation of each row for lags 0..max_lag (FFT; rows with no variance give 0)."""
    n, w = x.shape
    z = x - x.mean(axis=1, keepdims=True)
    f = np.fft.rfft(z, n=2 * w, axis=1)
    r = np.fft.irfft(f * np.conj(f), n=2 * w, axis=1)[:, :max_lag + 1]
    r = r / (w - np.arange(max_lag + 1))[None, :]
    var = r[:, 0]
    ok = var > 1e-12
    return np.where(ok[:, None], r / np.where(ok, var, 1.0)[:, None], 0.0)


def _peaks(acf: np.ndarray, max_period: int) -> np.ndarray:
    """Candidate period lags: local maxima after the autocorrelation first turns negative."""
    lags = np.arange(acf.shape[1])
    neg = acf < 0
    neg[:, 0] = False
    first_neg = np.where(neg.any(axis=1), np.argmax(neg, axis=1), acf.shape[1])
    inner = acf[:, 1:-1]
    cand = (inner >= acf[:, :-2]) & (inner > acf[:, 2:])
    cl = lags[1:-1][None, :]
    cand &= (cl > first_neg[:, None]) & (cl >= MIN_PERIOD) & (cl <= max_period)
    out = np.full(acf.shape, -np.inf)
    out[:, 1:-1] = np.where(cand, inner, -np.inf)
    return out


def _refine(acf: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """Sub-sample period: parabola through the autocorrelation around the peak lag."""
    rows = np.arange(acf.shape[0])
    lo = np.clip(lag - 1, 0, acf.shape[1] - 1)
    hi = np.clip(lag + 1, 0, acf.shape[1] - 1)
    a, b, c = acf[rows, lo], acf[rows, lag], acf[rows, hi]
    denom = a - 2 * b + c
    safe = np.where(denom < -1e-12, denom, -1.0)
    off = np.where(denom < -1e-12, np.clip(0.5 * (a - c) / safe, -0.5, 0.5), 0.0)
    return np.where(lag > 0, lag + off, 0.0)


def detect_periods(x: np.ndarray, max_period: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Main and second period per row of a gap-free matrix: (p1, strength1, p2, strength2).

    Periods are sub-sample (a 7.4 s training iteration polled every second is not
    7 samples).  The main period is the first autocorrelation peak (after the first
    negative value, so the trivial peak at small lags is skipped) that reaches 80%
    of the highest peak: this avoids reporting a multiple of the true period.  The
    second is the highest remaining peak that is not near a multiple of the first:
    a link shared by two jobs with different iteration times has two.  0 = none
    (peak below ``MIN_ACF``).
    """
    n, w = x.shape
    zeros = np.zeros(n)
    if max_period < MIN_PERIOD + 1 or w < 2 * (MIN_PERIOD + 1):
        return zeros, zeros, zeros, zeros
    acf = autocorrelation(x, max_period + 1)
    peaks = _peaks(acf, max_period)
    top = peaks.max(axis=1)
    good = np.isfinite(peaks) & (peaks >= 0.8 * top[:, None])
    has = np.isfinite(top) & (top >= MIN_ACF)
    lag1 = np.where(has, np.argmax(good, axis=1), 0)
    rows = np.arange(n)
    p1 = np.where(has, _refine(acf, lag1), 0.0)
    s1 = np.where(has, acf[rows, lag1], 0.0)
    lags = np.arange(acf.shape[1])[None, :]
    ratio = lags / np.maximum(p1, 1.0)[:, None]
    near_multiple = np.abs(ratio - np.rint(ratio)) * np.maximum(p1, 1.0)[:, None] <= 1.0
    rest = np.where(near_multiple, -np.inf, peaks)
    top2 = rest.max(axis=1)
    has2 = has & np.isfinite(top2) & (top2 >= MIN_ACF)
    lag2 = np.where(has2, np.argmax(rest, axis=1), 0)
    p2 = np.where(has2, _refine(acf, lag2), 0.0)
    s2 = np.where(has2, acf[rows, lag2], 0.0)
    return p1, s1, p2, s2


def detect_period(x: np.ndarray, max_period: int) -> Tuple[np.ndarray, np.ndarray]:
    """Main period (sub-sample, 0 = none) and its autocorrelation, per row."""
    p1, s1, _, _ = detect_periods(x, max_period)
    return p1, s1


def value_at(x: np.ndarray, pos: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Linearly interpolated x[row, pos[row]] for a fractional position inside the window, else fallback."""
    n, w = x.shape
    i0 = np.floor(pos).astype(int)
    frac = pos - i0
    ok = (i0 >= 0) & (i0 <= w - 1) & ((i0 < w - 1) | (frac < 1e-9))
    a = x[np.arange(n), np.clip(i0, 0, w - 1)]
    b = x[np.arange(n), np.clip(i0 + 1, 0, w - 1)]
    return np.where(ok, a * (1 - frac) + b * frac, fallback)


def ewma_mean(x: np.ndarray, alpha: float) -> np.ndarray:
    w = x.shape[1]
    weights = (1.0 - alpha) ** np.arange(w - 1, -1, -1)
    return x @ weights / weights.sum()


def seasonal_position(width: int, period: np.ndarray, horizon: int, periods_back: int = 1) -> np.ndarray:
    """Position (fractional column) of "the target time, ``periods_back`` periods ago", or -1.

    Target time is ``t + horizon`` (t = last column).  With a period shorter than the
    horizon, go back enough whole periods to land in the past.
    """
    p = np.maximum(period, 1e-9)
    k = np.ceil(horizon / p - 1e-9) + (periods_back - 1)
    pos = (width - 1) + horizon - k * p
    return np.where(period > 0, pos, -1.0)


def make_features_numpy(history: np.ndarray, horizon: int) -> np.ndarray:
    """``make_features`` in plain numpy: the definition of every feature, bit for bit.

    The compiled path (``make_features`` with Numba) must give exactly these bits;
    this one is used without Numba, with SIDESTEP_NO_JIT set, and for the inputs the
    compiled path leaves alone (see ``make_features``).
    """
    raw = np.asarray(history, dtype=float)
    if raw.ndim != 2 or raw.shape[1] < 1:
        raise ValueError("history must be 2-D (n_links, window >= 1), got shape %r" % (raw.shape,))
    n, w = raw.shape
    x = fill_gaps(raw)
    last = x[:, -1]
    cols: List[np.ndarray] = [last]
    for k in range(1, LAGS):
        cols.append((x[:, -1 - k] if k < w else x[:, 0]) - last)
    for k in DIFFS:
        cols.append(last - (x[:, -1 - k] if k < w else x[:, 0]))
    for a in EWMA_ALPHAS:
        cols.append(ewma_mean(x, a) - last)
    for r in ROLL:
        tail = x[:, -min(r, w):]
        cols.append(tail.max(axis=1) - last)
        cols.append(tail.min(axis=1) - last)
    cols.append(x.mean(axis=1) - last)
    cols.append(x.max(axis=1) - last)
    cols.append(x.min(axis=1) - last)
    cols.append(x.std(axis=1))
    cols.append(np.isnan(raw).mean(axis=1))

    p1, a1, p2, a2 = detect_periods(x, max_period=(w - horizon) // 2)
    cols += [p1, a1, p2, a2]
    # phase: samples since the last rise through the window mean, as a fraction of the period
    above = x >= x.mean(axis=1, keepdims=True)
    rise = above[:, 1:] & ~above[:, :-1]
    has_rise = rise.any(axis=1)
    last_rise = (w - 2) - np.argmax(rise[:, ::-1], axis=1) if w > 1 else np.zeros(n, dtype=int)
    since = (w - 1) - last_rise
    on = (p1 > 0) & has_rise
    phase = np.where(on, np.mod(since, np.maximum(p1, 1e-9)) / np.maximum(p1, 1e-9), 0.0)
    cols.append(np.where(on, np.sin(2 * np.pi * phase), 0.0))
    cols.append(np.where(on, np.cos(2 * np.pi * phase), 0.0))

    pos1 = seasonal_position(w, p1, horizon, 1)
    pos2 = seasonal_position(w, p1, horizon, 2)
    s1 = value_at(x, pos1, last)
    s2 = value_at(x, pos2, s1)
    cols.append(s1 - last)
    cols.append(s2 - last)
    # the same horizon-long step one / two periods ago: where was it "now" back then?
    cols.append(s1 - value_at(x, pos1 - horizon, s1))
    cols.append(s2 - value_at(x, pos2 - horizon, s2))
    # peak over (t-P, t+h-P]: catches a burst that starts inside the horizon
    smax = s1.copy()
    for j in range(1, horizon):
        smax = np.maximum(smax, value_at(x, pos1 - j, s1))
    cols.append(smax - last)
    # second period, and the two-job estimate y(t+h-P1) + y(t+h-P2) - y(t+h-P1-P2)
    # (exact for the sum of two periodic loads, before saturation)
    pos_b = seasonal_position(w, p2, horizon, 1)
    sb = value_at(x, pos_b, s1)
    cols.append(sb - last)
    both = (p1 > 0) & (p2 > 0)
    pos_ab = np.where(both, pos_b - p1, -1.0)
    sab = value_at(x, pos_ab, np.nan)
    combo = np.where(both & np.isfinite(sab), s1 + sb - np.nan_to_num(sab), s1)
    cols.append(combo - last)
    out = np.column_stack(cols)
    return out


# --- the compiled path ------------------------------------------------------------------------
#
# Why: the replay computes these features for every link once per simulated second, and the
# numpy version above is dozens of small passes over the (n_links, window) matrix (more time
# than the model's trees).  Here Numba kernels do the rest in one pass over each row before
# the FFT and one after it, and numpy keeps exactly the operations whose bits a compiled
# loop could not promise to reproduce:
#
# * the FFTs and ``f * conj(f)`` of ``autocorrelation``, called exactly as it calls them, on
#   the whole batch: numpy's SIMD complex multiply uses FMA, so ``a * b`` and ``b * a`` differ
#   in the last bit of the imaginary part, and for a temporary of 256 KiB or more numpy
#   elides ``np.conj(f)`` and computes ``conj(f) * f`` in place.  The same expression on the
#   same batch makes the same choice (``_power_order`` finds, per batch shape, the explicit
#   call into a reused buffer that gives the expression's bits);
# * ``x @ weights`` of ``ewma_mean`` (the BLAS summation order is its own);
# * ``np.sin`` / ``np.cos`` of the phase (numpy's own SIMD implementations).
#
# Everything else is copied operation by operation, in numpy's evaluation order, without
# fast-math (so no reassociation and no FMA contraction):
#
# * ``sum(axis=1)`` of a C-contiguous float64 matrix is ``0.0 + pairwise_sum(row)`` with
#   numpy's pairwise summation (``_pairwise_sum``); ``mean`` divides it by the window;
#   ``std`` is ``_var``: ``x - mean``, squared, summed the same way, divided, ``sqrt``;
# * comparisons, ``where``, ``floor``/``ceil``/``rint``, ``fmod`` (``np.mod`` of positive
#   operands), ``+ - * /`` and ``sqrt`` are exactly rounded, so any correct implementation
#   gives the same bits;
# * max/min reductions and ``np.maximum`` return the right value, but which zero they
#   return when +0.0 and -0.0 tie is up to numpy's SIMD lane order.  The kernels flag every
#   such tie, and ``make_features`` recomputes only the flagged columns with numpy.
#
# All this holds for the C-ordered gap-filled matrix the numpy path works on; the one input
# for which that matrix is column-major (see ``make_features``) goes to the numpy path.
# ``tests/unit/test_features_compiled.py`` checks every column bit for bit, and checks the
# claims about numpy above against numpy itself.

_COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
_C_LAG = _COL["lag1"]
_C_DIFF = _COL["diff%d" % DIFFS[0]]
_C_EWMA = _COL["ewma%g" % EWMA_ALPHAS[0]]
_C_MAX_R0, _C_MIN_R0 = _COL["max%d" % ROLL[0]], _COL["min%d" % ROLL[0]]
_C_MAX_R1, _C_MIN_R1 = _COL["max%d" % ROLL[1]], _COL["min%d" % ROLL[1]]
_C_MEAN, _C_MAX, _C_MIN, _C_STD, _C_NAN = (_COL[k] for k in ("mean_w", "max_w", "min_w", "std_w", "nan_frac"))
_C_P1, _C_A1, _C_P2, _C_A2 = (_COL[k] for k in ("period", "acf_peak", "period2", "acf_peak2"))
_C_SIN, _C_COS = _COL["phase_sin"], _COL["phase_cos"]
_C_S1, _C_S2, _C_D1, _C_D2, _C_SMAX, _C_SP2, _C_COMBO = (
    _COL[k] for k in ("season1", "season2", "season_delta1", "season_delta2", "season_max", "season_p2",
                      "season_combo"))
_ROLL0, _ROLL1 = ROLL
_DIFF0, _DIFF1, _DIFF2 = DIFFS
# the reductions of the first kernel whose zero sign may need numpy: (bit, column, tail length or 0 = all)
_REDUCTIONS = ((1, _C_MAX_R0, _ROLL0, "max"), (2, _C_MIN_R0, _ROLL0, "min"),
               (4, _C_MAX_R1, _ROLL1, "max"), (8, _C_MIN_R1, _ROLL1, "min"),
               (16, _C_MAX, 0, "max"), (32, _C_MIN, 0, "min"))
_TWO_PI = 2 * np.pi


def _jit_or_plain(fn):
    """Helpers called by the kernels must be compiled too; without Numba they stay plain (and unused)."""
    compiled = _jit(fn)
    return fn if compiled is None else compiled


def _pairwise_block(a, start, n):
    """numpy's ``pairwise_sum`` (``loops_utils.h.src``) of ``a[start:start + n]`` for n <= 128: one
    accumulator below 8 values, else eight (over i, i+8, ...) summed as a tree, then the rest one by one."""
    if n < 8:
        res = -0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


_pairwise_block = _jit_or_plain(_pairwise_block)


def _pairwise_sum(a, start, n):
    """numpy's ``pairwise_sum`` of ``a[start:start + n]``: above 128 values it splits at half the
    count rounded down to a multiple of 8 and adds the two halves' sums.  The recursion is
    unrolled onto an explicit stack (Numba's cache cannot reload a self-recursive function)."""
    if n <= 128:
        return _pairwise_block(a, start, n)
    starts = np.empty(64, dtype=np.int64)
    sizes = np.empty(64, dtype=np.int64)
    stage = np.zeros(64, dtype=np.int64)          # 0: nothing summed, 1: left half summed, 2: both
    left = np.empty(64)
    right = np.empty(64)
    d = 0
    starts[0] = start
    sizes[0] = n
    while True:
        m = sizes[d]
        half = m // 2
        half -= half % 8
        if m <= 128:
            value = _pairwise_block(a, starts[d], m)
        elif stage[d] == 0:
            stage[d] = 1
            starts[d + 1], sizes[d + 1], stage[d + 1] = starts[d], half, 0
            d += 1
            continue
        elif stage[d] == 1:
            stage[d] = 2
            starts[d + 1], sizes[d + 1], stage[d + 1] = starts[d] + half, m - half, 0
            d += 1
            continue
        else:
            value = left[d] + right[d]
        if d == 0:
            return value
        d -= 1
        if stage[d] == 1:
            left[d] = value
        else:
            right[d] = value


_pairwise_sum = _jit_or_plain(_pairwise_sum)


def _zero_tie(a, b):
    """True when a and b are zeros of opposite sign: numpy's max/min may return either."""
    return a == 0.0 and b == 0.0 and (math.copysign(1.0, a) != math.copysign(1.0, b))


_zero_tie = _jit_or_plain(_zero_tie)


def _nan_maximum(a, b):
    """``np.maximum`` of two floats that are not zeros of opposite sign (NaN wins, as in numpy)."""
    if a != a:
        return a
    if b != b:
        return b
    return a if a >= b else b


_nan_maximum = _jit_or_plain(_nan_maximum)


def _filled_at(raw, i, j):
    """``fill_gaps(raw)[i, j]`` without the filled matrix: the newest valid sample at or before j,
    else the oldest valid one, else 0."""
    for k in range(j, -1, -1):
        if not np.isnan(raw[i, k]):
            return raw[i, k]
    for k in range(j + 1, raw.shape[1]):
        if not np.isnan(raw[i, k]):
            return raw[i, k]
    return 0.0


_filled_at = _jit_or_plain(_filled_at)


def _value_at_one(raw, i, pos, fallback):
    """``value_at(fill_gaps(raw), pos, fallback)`` for row ``i`` and one position."""
    w = raw.shape[1]
    i0 = int(np.floor(pos))
    frac = pos - float(i0)
    if i0 >= 0 and i0 <= w - 1 and (i0 < w - 1 or frac < 1e-9):
        i1 = min(i0 + 1, w - 1)
        return _filled_at(raw, i, i0) * (1.0 - frac) + _filled_at(raw, i, i1) * frac
    return fallback


_value_at_one = _jit_or_plain(_value_at_one)


def _seasonal_position_one(width, period, horizon, periods_back):
    """``seasonal_position`` for one period."""
    if not period > 0:
        return -1.0
    p = _nan_maximum(period, 1e-9)
    k = np.ceil(float(horizon) / p - 1e-9) + float(periods_back - 1)
    return float(width - 1 + horizon) - k * p


_seasonal_position_one = _jit_or_plain(_seasonal_position_one)


def _refine_one(acf, lag):
    """``_refine`` for one autocorrelation row and one lag."""
    last = acf.shape[0] - 1
    a = acf[min(max(lag - 1, 0), last)]
    b = acf[lag]
    c = acf[min(max(lag + 1, 0), last)]
    denom = a - 2.0 * b + c
    off = 0.0
    if denom < -1e-12:
        off = 0.5 * (a - c) / denom
        if off != off:
            pass                                   # np.clip keeps NaN
        elif off < -0.5:
            off = -0.5
        elif off > 0.5:
            off = 0.5
    if lag > 0:
        return float(lag) + off
    return 0.0


_refine_one = _jit_or_plain(_refine_one)


def _range_max_min(row, start, stop, hi, lo):
    """``hi``/``lo`` extended over ``row[start:stop]`` (gap-free, so no NaN)."""
    for j in range(start, stop):
        v = row[j]
        if v > hi:
            hi = v
        if v < lo:
            lo = v
    return hi, lo


_range_max_min = _jit_or_plain(_range_max_min)


def _mixed_zeros(row, start):
    """True if ``row[start:]`` holds both +0.0 and -0.0 (then numpy decides a zero max/min's sign)."""
    pos = False
    neg = False
    for j in range(start, row.shape[0]):
        v = row[j]
        if v == 0.0:
            if math.copysign(1.0, v) < 0:
                neg = True
            else:
                pos = True
    return pos and neg


_mixed_zeros = _jit_or_plain(_mixed_zeros)


def _zero_tie_bits(row, start, hi, lo, bit_max, bit_min):
    """The ``_REDUCTIONS`` bits of a tail max/min that is zero while the tail holds both zeros."""
    if (hi == 0.0 or lo == 0.0) and _mixed_zeros(row, start):
        return (bit_max if hi == 0.0 else 0) | (bit_min if lo == 0.0 else 0)
    return 0


_zero_tie_bits = _jit_or_plain(_zero_tie_bits)


def _window_kernel(raw, x, out, means, zero_ties, since, has_rise):
    """Pass 1, per row: fill the gaps into ``x``, the window statistics into ``out``, the row means
    (for ``_center_kernel``) and the last rise through the mean for the phase.  ``zero_ties`` gets
    a bit per max/min column (see ``_REDUCTIONS``) whose zero sign numpy must decide."""
    n, w = raw.shape
    fw = float(w)
    sq = np.empty(w)
    start0 = w - min(_ROLL0, w)
    start1 = w - min(_ROLL1, w)
    for i in range(n):
        row = x[i]
        missing = 0
        for j in range(w):
            v = raw[i, j]
            row[j] = v
            if np.isnan(v):
                missing += 1
        if missing:                                # fill_gaps: forward, leading gaps backward, else 0
            first = -1
            for j in range(w):
                if not np.isnan(raw[i, j]):
                    first = j
                    break
            fill = raw[i, first] if first >= 0 else 0.0
            for j in range(w):
                v = raw[i, j]
                if not np.isnan(v):
                    fill = v
                row[j] = fill
        last = row[w - 1]
        out[i, 0] = last
        for k in range(1, LAGS):
            out[i, _C_LAG + k - 1] = (row[w - 1 - k] if k < w else row[0]) - last
        out[i, _C_DIFF] = last - (row[w - 1 - _DIFF0] if _DIFF0 < w else row[0])
        out[i, _C_DIFF + 1] = last - (row[w - 1 - _DIFF1] if _DIFF1 < w else row[0])
        out[i, _C_DIFF + 2] = last - (row[w - 1 - _DIFF2] if _DIFF2 < w else row[0])

        # rolling and whole-window max/min, the ranges growing towards the oldest sample
        hi, lo = _range_max_min(row, start0, w, last, last)
        out[i, _C_MAX_R0] = hi - last
        out[i, _C_MIN_R0] = lo - last
        ties = _zero_tie_bits(row, start0, hi, lo, 1, 2)
        hi, lo = _range_max_min(row, start1, start0, hi, lo)
        out[i, _C_MAX_R1] = hi - last
        out[i, _C_MIN_R1] = lo - last
        ties |= _zero_tie_bits(row, start1, hi, lo, 4, 8)
        hi, lo = _range_max_min(row, 0, start1, hi, lo)
        out[i, _C_MAX] = hi - last
        out[i, _C_MIN] = lo - last
        zero_ties[i] = ties | _zero_tie_bits(row, 0, hi, lo, 16, 32)

        mean = (0.0 + _pairwise_sum(row, 0, w)) / fw
        means[i] = mean
        for j in range(w):                         # _var: x - mean, squared
            d = row[j] - mean
            sq[j] = d * d
        out[i, _C_MEAN] = mean - last
        out[i, _C_STD] = math.sqrt((0.0 + _pairwise_sum(sq, 0, w)) / fw)
        out[i, _C_NAN] = float(missing) / fw
        # the last rise through the mean: the newest j with x[j] >= mean > x[j - 1]
        rise = 0
        for j in range(w - 1, 0, -1):
            if row[j] >= mean and not row[j - 1] >= mean:
                rise = j
                break
        has_rise[i] = rise > 0
        since[i] = w - rise if rise > 0 else 1


def _center_kernel(x, means):
    """``x - mean`` in place: autocorrelation's ``z``, once the filled ``x`` has served the EWMAs."""
    n, w = x.shape
    for i in range(n):
        mean = means[i]
        for j in range(w):
            x[i, j] = x[i, j] - mean


def _period_kernel(raw, r, max_period, horizon, since, has_rise, out, angle, on, pos1_out, s1_out, smax_ties):
    """Pass 2, per row: autocorrelation from the FFT result ``r`` (unused when ``max_period`` is
    too short to detect), periods, the phase angle (sin/cos are numpy's) and the seasonal
    lookups in the gap-filled ``raw``.  ``smax_ties[i]`` is set when ``season_max`` met a
    +0.0/-0.0 tie."""
    n, w = raw.shape
    detect = max_period >= MIN_PERIOD + 1 and w >= 2 * (MIN_PERIOD + 1)
    n_lags = max_period + 2 if detect else 1
    acf = np.zeros(n_lags)
    peaks = np.empty(n_lags)
    fh = float(horizon)
    for i in range(n):
        p1 = 0.0
        a1 = 0.0
        p2 = 0.0
        a2 = 0.0
        var = r[i, 0] / float(w) if detect else 0.0
        if detect and var > 1e-12:
            for j in range(n_lags):
                acf[j] = (r[i, j] / float(w - j)) / var
            first_neg = n_lags
            for j in range(1, n_lags):
                if acf[j] < 0:
                    first_neg = j
                    break
            top = -np.inf
            for j in range(n_lags):
                peaks[j] = -np.inf
            for j in range(1, n_lags - 1):
                v = acf[j]
                if v >= acf[j - 1] and v > acf[j + 1] and j > first_neg and j >= MIN_PERIOD and j <= max_period:
                    peaks[j] = v
                    if v > top:
                        top = v
            if np.isfinite(top) and top >= MIN_ACF:
                threshold = 0.8 * top
                lag1 = 0
                for j in range(n_lags):
                    if np.isfinite(peaks[j]) and peaks[j] >= threshold:
                        lag1 = j
                        break
                p1 = _refine_one(acf, lag1)
                a1 = acf[lag1]
                # argmax over the peaks not near a multiple of p1 (the others are -inf either way)
                scale = _nan_maximum(p1, 1.0)
                top2 = -np.inf
                lag2 = 0
                for j in range(n_lags):
                    if peaks[j] > top2:
                        ratio = float(j) / scale
                        if not abs(ratio - np.rint(ratio)) * scale <= 1.0:
                            top2 = peaks[j]
                            lag2 = j
                if np.isfinite(top2) and top2 >= MIN_ACF:
                    p2 = _refine_one(acf, lag2)
                    a2 = acf[lag2]
        out[i, _C_P1] = p1
        out[i, _C_A1] = a1
        out[i, _C_P2] = p2
        out[i, _C_A2] = a2

        phase = 0.0
        on[i] = p1 > 0 and has_rise[i]
        if on[i]:
            scale = _nan_maximum(p1, 1e-9)
            rest = np.fmod(float(since[i]), scale)   # np.mod of positive operands (exact)
            if rest == 0.0:
                rest = 0.0
            phase = rest / scale
        angle[i] = _TWO_PI * phase

        last = out[i, 0]
        pos1 = _seasonal_position_one(w, p1, horizon, 1)
        pos2 = _seasonal_position_one(w, p1, horizon, 2)
        s1 = _value_at_one(raw, i, pos1, last)
        s2 = _value_at_one(raw, i, pos2, s1)
        pos1_out[i] = pos1
        s1_out[i] = s1
        out[i, _C_S1] = s1 - last
        out[i, _C_S2] = s2 - last
        out[i, _C_D1] = s1 - _value_at_one(raw, i, pos1 - fh, s1)
        out[i, _C_D2] = s2 - _value_at_one(raw, i, pos2 - fh, s2)
        smax = s1
        tie = False
        for j in range(1, horizon):
            v = _value_at_one(raw, i, pos1 - float(j), s1)
            if _zero_tie(smax, v):
                tie = True
            smax = _nan_maximum(smax, v)
        smax_ties[i] = tie
        out[i, _C_SMAX] = smax - last
        pos_b = _seasonal_position_one(w, p2, horizon, 1)
        sb = _value_at_one(raw, i, pos_b, s1)
        out[i, _C_SP2] = sb - last
        both = p1 > 0 and p2 > 0
        sab = _value_at_one(raw, i, pos_b - p1 if both else -1.0, np.nan)
        combo = s1 + sb - sab if both and np.isfinite(sab) else s1
        out[i, _C_COMBO] = combo - last


_window_kernel_jit = _jit(_window_kernel)
_center_kernel_jit = _jit(_center_kernel)
_period_kernel_jit = _jit(_period_kernel)
COMPILED = None not in (_window_kernel_jit, _center_kernel_jit, _period_kernel_jit)

_MAX_COMPILED_HORIZON = 1 << 20   # beyond: the numpy path (and its own errors or slowness)
_IRFFT_HAS_OUT = "out" in inspect.signature(np.fft.irfft).parameters   # numpy >= 2.0
_FFT_HAS_OUT = _IRFFT_HAS_OUT and "out" in inspect.signature(np.fft.rfft).parameters
_WORKSPACE_MAX_BYTES = 64 << 20   # larger batches (training) allocate afresh and keep nothing
_POWER_TEST_MAX_BYTES = 96 << 20  # a complex (n, w + 1) batch above this merges no repeated rows
_workspace = threading.local()


class _Scratch(NamedTuple):
    x: np.ndarray              # (n, w): the gap-filled windows, then autocorrelation's z
    filled: np.ndarray         # (n, w): every row's gap-filled window when ``x`` holds distinct rows only
    f: np.ndarray              # (n, w + 1) complex: the rfft, then (as floats) the irfft
    product: np.ndarray        # (n, w + 1) complex: f * conj(f)
    conj_first: Optional[bool]  # how f * conj(f) rounds at this shape (see _power), None = unknown


def _power(f: np.ndarray, out: np.ndarray, conj_first: bool) -> np.ndarray:
    """``f * np.conj(f)`` into ``out``, as ``conj(f) * f`` (numpy's elided temporary) or ``f * conj(f)``."""
    np.conjugate(f, out=out)
    return np.multiply(out, f, out=out) if conj_first else np.multiply(f, out, out=out)


@functools.lru_cache(maxsize=64)
def _power_order(n: int, w: int) -> Optional[bool]:
    """Which ``_power`` gives the bits of the expression ``f * np.conj(f)`` for an ``(n, w + 1)`` batch.

    numpy elides the temporary ``np.conj(f)`` from 256 KiB on and then multiplies in the
    other operand order, which FMA rounds differently (see above).  Rather than restate
    numpy's rule, the expression is run once per shape on random values and compared
    with both calls; if neither matches, ``make_features`` keeps the expression.  Cached:
    a pure function of the shape, asked again whenever a thread's batch shape changes.
    """
    rng = np.random.default_rng(0)
    f = np.empty((n, w + 1), dtype=np.complex128)      # filled in place: one batch-sized array, not three
    f.real = rng.standard_normal((n, w + 1))
    f.imag = rng.standard_normal((n, w + 1))
    expected = (f * np.conj(f)).view(np.int64)
    for conj_first in (True, False):
        if np.array_equal(_power(f, np.empty_like(f), conj_first).view(np.int64), expected):
            return conj_first
    return None


def _large_batch_power_order(n: int, w: int) -> Optional[bool]:
    """``_power_order`` for a batch too large for the workspace, or None (then no row is merged).

    Why: a k=32 fabric forecasts 49,152 links every tick, most of them idle (the
    same all-zero window), and without the product's order at this shape every
    row went through the transforms: ~0.35 s a tick, nine tenths of it on
    repeats.  The order is found once per shape (a few hundred MB of scratch,
    briefly, at k=32); above ``_POWER_TEST_MAX_BYTES`` (large training batches,
    where rows seldom repeat) it is not worth that.
    """
    if n * (w + 1) * 16 > _POWER_TEST_MAX_BYTES:
        return None
    return _power_order(n, w)


def _scratch(n: int, w: int) -> Optional[_Scratch]:
    """This thread's buffers for an ``(n, w)`` batch, reused from call to call (None: too big).

    Why: a replay computes the features of the same batch shape every tick, and its three
    largest temporaries (3 MB at 768 x 96) came back from the allocator as fresh pages each
    time; faulting them in cost as much as a third of the FFTs.  Every buffer is written in
    full before it is read, so reuse changes no value.  One shape per thread is kept
    (threads never share buffers); batches above ``_WORKSPACE_MAX_BYTES`` (training) and
    numpy without ``rfft(out=)`` get fresh arrays and keep nothing.
    """
    if not _FFT_HAS_OUT or n * (w + 1) * 48 > _WORKSPACE_MAX_BYTES:
        return None
    held = getattr(_workspace, "scratch", None)
    if held is None or held.x.shape != (n, w):
        held = _workspace.scratch = _Scratch(np.empty((n, w)), np.empty((n, w)),
                                             np.empty((n, w + 1), dtype=np.complex128),
                                             np.empty((n, w + 1), dtype=np.complex128), _power_order(n, w))
    return held


def make_features(history: np.ndarray, horizon: int) -> np.ndarray:
    """Feature matrix ``(n_links, len(FEATURE_NAMES))`` for a history ``(n_links, window)``.

    Works for any window >= 1 (features that need more history than the window
    holds fall back to the latest value); NaN gaps are forward-filled, and the
    fraction of gaps is itself a feature.

    Compiled with Numba when available, bit-identical to ``make_features_numpy``
    (which is used without Numba, with SIDESTEP_NO_JIT set, for an empty batch, for a
    horizon that is not a positive integer and for a column-major history with gaps).
    """
    raw = np.asarray(history, dtype=float)
    if raw.ndim != 2 or raw.shape[1] < 1:
        raise ValueError("history must be 2-D (n_links, window >= 1), got shape %r" % (raw.shape,))
    if not COMPILED or raw.shape[0] == 0 or isinstance(horizon, bool) \
            or not isinstance(horizon, (int, np.integer)) or not 1 <= horizon <= _MAX_COMPILED_HORIZON:
        return make_features_numpy(raw, horizon)
    if not raw.flags.c_contiguous:
        # The numpy path's sums, BLAS and FFT calls see its gap-filled matrix, which is C-ordered
        # unless there are gaps and the input is column-major (the gather keeps the input's
        # layout): then the sums run in another order, and that path alone gives those bits.
        contiguous = np.ascontiguousarray(raw)
        if np.isnan(contiguous).any() and not fill_gaps(raw).flags.c_contiguous:
            return make_features_numpy(raw, horizon)
        raw = contiguous
    horizon = int(horizon)
    n, w = raw.shape
    scratch = _scratch(n, w)
    # Every feature but the EWMAs is computed per row, from that row alone: rows repeated bit
    # for bit (idle links, the hops of one ring) are computed once (``uniq`` holds the first
    # copies).  The EWMAs are BLAS sums whose rounding depends on a row's place in the batch,
    # and the complex product's on the batch size, so those see the whole batch as before.
    conj_first = scratch.conj_first if scratch is not None else _large_batch_power_order(n, w)
    repeats = distinct_rows(raw) if conj_first is not None else None
    uniq = raw if repeats is None else raw[repeats[0]]
    u = uniq.shape[0]
    x = np.empty((u, w)) if scratch is None else scratch.x[:u]
    out = np.empty((u, len(FEATURE_NAMES)))
    means = np.empty(u)
    zero_ties = np.empty(u, dtype=np.int64)
    since = np.empty(u, dtype=np.int64)
    has_rise = np.empty(u, dtype=np.bool_)
    _window_kernel_jit(uniq, x, out, means, zero_ties, since, has_rise)
    if repeats is None:
        filled = x
    elif not out[:, _C_NAN].any():     # no gaps: the filled batch is ``raw`` itself, no copy needed
        filled = raw
    else:
        filled = np.take(x, repeats[1], axis=0, out=None if scratch is None else scratch.filled)
    if repeats is not None:
        zero_ties = zero_ties[repeats[1]]
    last = out[:, 0] if repeats is None else out[repeats[1], 0]
    whole_batch = [(_C_EWMA + c, ewma_mean(filled, a) - last) for c, a in enumerate(EWMA_ALPHAS)]
    if zero_ties.any():
        for bit, c, length, kind in _REDUCTIONS:
            if (zero_ties & bit).any():
                tail = filled[:, -min(length, w):] if length else filled
                whole_batch.append((c, (tail.max(axis=1) if kind == "max" else tail.min(axis=1)) - last))
    del filled
    max_period = (w - horizon) // 2
    if max_period >= MIN_PERIOD + 1 and w >= 2 * (MIN_PERIOD + 1):
        # autocorrelation's own calls (see above why nothing else will do), on the distinct rows:
        # numpy transforms row by row, so a row's bits do not depend on the others
        _center_kernel_jit(x, means)               # x is z from here on (one matrix less to page in)
        if scratch is None:
            f = np.fft.rfft(x, n=2 * w, axis=1)
        else:                                      # the same transform row by row, into the buffer
            f = np.fft.rfft(x, n=2 * w, axis=1, out=scratch.f[:u])
        del x
        if conj_first is None:
            product = f * np.conj(f)               # this expression, not conj(f) * f nor np.multiply
        else:                                      # its bits at the whole batch's shape (see _power_order)
            product = _power(f, np.empty_like(f) if scratch is None else scratch.product[:u], conj_first)
        if _IRFFT_HAS_OUT:
            # f is dead: its memory (paged in already) takes the result, the same bits as a new array
            r = f.view(np.float64).reshape(-1)[:u * 2 * w].reshape(u, 2 * w)
            np.fft.irfft(product, n=2 * w, axis=1, out=r)
        else:
            r = np.fft.irfft(product, n=2 * w, axis=1)
        del f, product
    else:
        del x
        r = np.zeros((u, 1))
    angle = np.empty(u)
    on = np.empty(u, dtype=np.bool_)
    pos1 = np.empty(u)
    s1 = np.empty(u)
    smax_ties = np.empty(u, dtype=np.bool_)
    _period_kernel_jit(uniq, r, max_period, horizon, since, has_rise, out, angle, on, pos1, s1, smax_ties)
    if repeats is not None:
        slot = repeats[1]
        out, angle, on, pos1, s1, smax_ties = (a[slot] for a in (out, angle, on, pos1, s1, smax_ties))
    for c, values in whole_batch:
        out[:, c] = values
    out[:, _C_SIN] = np.where(on, np.sin(angle), 0.0)
    out[:, _C_COS] = np.where(on, np.cos(angle), 0.0)
    if smax_ties.any():
        filled = fill_gaps(raw)
        smax = s1.copy()
        for j in range(1, horizon):
            smax = np.maximum(smax, value_at(filled, pos1 - j, s1))
        out[:, _C_SMAX] = smax - last
    return out


def persistence(history: np.ndarray) -> np.ndarray:
    """Latest valid value of each row (0 if the row has none).

    ``fill_gaps(history)[:, -1]``, but only the rows whose latest sample is missing are
    filled (``fill_gaps`` works row by row), so a poll costs one column, not the window.
    """
    x = np.asarray(history, dtype=float)
    if x.ndim != 2 or x.shape[1] == 0:
        return fill_gaps(history)[:, -1]         # fill_gaps' error, or the IndexError of an empty window
    out = x[:, -1].copy()
    missing = np.isnan(out)
    if missing.any():
        out[missing] = fill_gaps(x[missing])[:, -1]
    return out


def sliding_windows(series: np.ndarray, window: int, horizon: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (history window, target) pairs of one series: X ``(m, window)``, y ``(m,)``, target index ``(m,)``."""
    s = np.asarray(series, dtype=float)
    m = len(s) - window - horizon + 1
    if m <= 0:
        return np.zeros((0, window)), np.zeros(0), np.zeros(0, dtype=int)
    X = np.lib.stride_tricks.sliding_window_view(s, window)[:m]
    target = np.arange(m) + window - 1 + horizon
    return X, s[target], target


__all__: Sequence[str] = ["FEATURE_VERSION", "FEATURES", "FEATURE_NAMES", "feature_spec", "fill_gaps",
                          "detect_period", "detect_periods", "make_features", "make_features_numpy", "persistence", "sliding_windows",
                          "ewma_mean", "value_at", "seasonal_position", "autocorrelation"]

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

from typing import Dict, List, Sequence

import numpy as np

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


def detect_periods(x: np.ndarray, max_period: int):
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


def detect_period(x: np.ndarray, max_period: int):
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


def make_features(history: np.ndarray, horizon: int) -> np.ndarray:
    """Feature matrix ``(n_links, len(FEATURE_NAMES))`` for a history ``(n_links, window)``.

    Works for any window >= 1 (features that need more history than the window
    holds fall back to the latest value); NaN gaps are forward-filled, and the
    fraction of gaps is itself a feature.
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


def persistence(history: np.ndarray) -> np.ndarray:
    """Latest valid value of each row (0 if the row has none)."""
    return fill_gaps(history)[:, -1]


def sliding_windows(series: np.ndarray, window: int, horizon: int):
    """All (history window, target) pairs of one series: X ``(m, window)``, y ``(m,)``, target index ``(m,)``."""
    s = np.asarray(series, dtype=float)
    m = len(s) - window - horizon + 1
    if m <= 0:
        return np.zeros((0, window)), np.zeros(0), np.zeros(0, dtype=int)
    X = np.lib.stride_tricks.sliding_window_view(s, window)[:m]
    target = np.arange(m) + window - 1 + horizon
    return X, s[target], target


__all__: Sequence[str] = ["FEATURE_VERSION", "FEATURES", "FEATURE_NAMES", "feature_spec", "fill_gaps",
                          "detect_period", "detect_periods", "make_features", "persistence", "sliding_windows",
                          "ewma_mean", "value_at", "seasonal_position", "autocorrelation"]

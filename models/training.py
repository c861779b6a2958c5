"""From link-load traces to (window, target) rows, a fitted forecaster, and scores.

Shared by ``sidestep train``/``evaluate``, the default-model build and the
real-data study, so every number in the docs comes from the same code path.
"""
from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import joblib
import numpy as np
import sklearn

from controller.loadtrace import LinkLoadTrace
from controller.tracefile import TraceError
from models.estimators import LinkForecaster, baselines
from models.features import FEATURE_VERSION, feature_spec, sliding_windows

Progress = Optional[Callable[[str], None]]

DEFAULT_WINDOW = 96    # samples: two iterations of up to 47 s can be seen
DEFAULT_MAX_ROWS = 150_000
PERIOD_TOLERANCE = 0.02   # traces trained together must agree on the sampling period to 2%
MAX_GAP_FACTOR = 20       # a grid more than 20x longer than the samples means broken timestamps


@dataclass
class GridTrace:
    """One trace on a regular time grid: ``util (n_links, T)`` with NaN where a sample is missing."""

    path: str
    links: List[Tuple[str, str]]
    util: np.ndarray
    sampling_period_s: float
    t0_s: float


def to_grid(trace: LinkLoadTrace, period: Optional[float] = None) -> GridTrace:
    """Put every link of a trace on one time grid (index = round((t - t0) / period))."""
    period = trace.sampling_period_s() if period is None else period
    if not period > 0:
        raise TraceError(trace.path, "samples of a link share one t_s; cannot tell the sampling period")
    links = trace.links()
    t0 = min(float(trace.series[l].t[0]) for l in links)
    t1 = max(float(trace.series[l].t[-1]) for l in links)
    T = int(round((t1 - t0) / period)) + 1
    most = max(len(trace.series[l].t) for l in links)
    if T > MAX_GAP_FACTOR * most + 10:
        raise TraceError(trace.path, "samples span %d sampling periods of %g s but a link has at most %d samples; "
                         "the t_s column has large gaps or mixed units" % (T, period, most))
    util = np.full((len(links), T), np.nan)
    for i, l in enumerate(links):
        s = trace.series[l]
        idx = np.rint((s.t - t0) / period).astype(int)
        if np.unique(idx).size == idx.size:
            util[i, idx] = s.util
        else:   # jittered samples that round onto one slot: their mean (the last one used to win alone)
            total = np.bincount(idx, weights=s.util, minlength=T)
            count = np.bincount(idx, minlength=T)
            util[i, count > 0] = total[count > 0] / count[count > 0]
    return GridTrace(trace.path, links, util, float(period), t0)


def common_period(traces: Sequence[LinkLoadTrace]) -> float:
    """The sampling period all traces share (within ``PERIOD_TOLERANCE``); the first trace's value."""
    first = traces[0].sampling_period_s()
    for tr in traces[1:]:
        p = tr.sampling_period_s()
        if abs(p - first) > PERIOD_TOLERANCE * first:
            raise TraceError(tr.path, "is sampled every %g s but %s every %g s; train one model per sampling period"
                             % (p, traces[0].path, first))
    return first


def windows(grids: Sequence[GridTrace], window: int, horizon: int, *, max_rows: Optional[int] = None,
            seed: int = 0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """History windows X, targets y and link index of every usable target, in time order.

    Rows run file by file (files are taken to follow each other in time), and within
    a file by target time, so ``TimeSeriesSplit`` validates on the latest data.
    Targets that are missing (NaN) are dropped, as are windows with no sample at all.
    With ``max_rows``, a seeded, evenly spread subset is kept (in time order).
    """
    xs, ys, ts, ls = [], [], [], []
    offset = 0
    for g in grids:
        for i in range(len(g.links)):
            X, y, target = sliding_windows(g.util[i], window, horizon)
            keep = np.isfinite(y) & np.isfinite(X).any(axis=1)
            xs.append(X[keep])
            ys.append(y[keep])
            ts.append(target[keep] + offset)
            ls.append(np.full(int(keep.sum()), i))
        offset += g.util.shape[1]
    if not xs or sum(len(y) for y in ys) == 0:
        return np.zeros((0, window)), np.zeros(0), np.zeros(0, dtype=int)
    t = np.concatenate(ts)
    total = len(t)
    order = np.argsort(t, kind="stable")
    if max_rows is not None and total > max_rows:
        rng = np.random.default_rng(seed)
        order = np.sort(rng.choice(total, size=max_rows, replace=False))
        order = order[np.argsort(t[order], kind="stable")]
    # gather lazily so that the full stack of windows never exists at once
    bounds = np.cumsum([0] + [len(y) for y in ys])
    X = np.empty((len(order), window))
    part = np.searchsorted(bounds, order, side="right") - 1
    for p in np.unique(part):
        sel = part == p
        X[sel] = xs[p][order[sel] - bounds[p]]
    return X, np.concatenate(ys)[order], np.concatenate(ls)[order]


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def library_versions() -> Dict[str, str]:
    return {"python": platform.python_version(), "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "joblib": joblib.__version__}


def data_summary(grids: Sequence[GridTrace], rows: int) -> Dict[str, object]:
    files = []
    for g in grids:
        files.append({"file": g.path.rsplit("/", 1)[-1], "sha256": file_digest(g.path),
                      "links": len(g.links), "samples": int(g.util.shape[1]),
                      "missing_fraction": float(np.isnan(g.util).mean()),
                      "util_mean": float(np.nanmean(g.util)), "util_max": float(np.nanmax(g.util))})
    digest = hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()  # type: ignore[operator]
    return {"digest": digest, "files": files, "training_rows": int(rows)}


def fit_forecaster(grids: Sequence[GridTrace], *, horizon: int = 2, window: int = DEFAULT_WINDOW,
                   regressor: str = "auto", max_rows: int = DEFAULT_MAX_ROWS, max_iter: int = 200,
                   quantile: float = 0.65, seed: int = 0, progress: Progress = None) -> Tuple[LinkForecaster, Dict[str, object]]:
    """Fit a forecaster on gridded traces; returns it with the metadata its model file records."""
    if horizon < 1:
        raise ValueError("horizon must be >= 1, got %d" % horizon)
    X, y, _ = windows(grids, window, horizon, max_rows=max_rows, seed=seed)
    if len(y) < 50:
        raise TraceError(grids[0].path, "has only %d usable (window, target) rows for window %d and horizon %d; "
                         "need at least 50: record a longer trace or pass a smaller --window"
                         % (len(y), window, horizon))
    if progress:
        progress("training on %d rows (window %d samples, horizon %d)" % (len(y), window, horizon))
    est = LinkForecaster(horizon=horizon, regressor=regressor, max_iter=max_iter, quantile=quantile,
                         random_state=seed)
    est.fit(X, y, progress=progress)
    meta: Dict[str, object] = {
        "feature_version": FEATURE_VERSION,
        "feature_spec": feature_spec(window, horizon),
        "window": int(window), "horizon": int(horizon),
        "sampling_period_s": float(grids[0].sampling_period_s),
        "estimator": {"class": type(est).__name__, "params": est.get_params()},
        "libraries": library_versions(),
        "training_data": data_summary(grids, len(y)),
        "validation": est.validation_,
        "blend_weight": est.blend_weight_,
    }
    return est, meta


@dataclass
class Scores:
    mae: float
    rmse: float
    precision: Optional[float]
    recall: Optional[float]

    def as_dict(self) -> Dict[str, Optional[float]]:
        return {"mae": self.mae, "rmse": self.rmse, "precision": self.precision, "recall": self.recall}


def score(pred: np.ndarray, true: np.ndarray, hot: float) -> Scores:
    """MAE, RMSE and hotspot precision/recall (hotspot: utilization >= ``hot``); None where undefined."""
    err = pred - true
    ph, th = pred >= hot, true >= hot
    tp = int(np.sum(ph & th))
    precision = tp / int(ph.sum()) if ph.any() else None
    recall = tp / int(th.sum()) if th.any() else None
    return Scores(float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err ** 2))), precision, recall)


def evaluate(grids: Sequence[GridTrace], model_predict: Callable[[np.ndarray], np.ndarray], *, window: int,
             horizon: int, hot: float = 0.8, chunk: int = 50_000,
             progress: Progress = None) -> Dict[str, Scores]:
    """Score the model and every baseline on all (window, target) rows of the traces."""
    names = ["model"] + list(baselines(horizon))
    preds: Dict[str, List[np.ndarray]] = {n: [] for n in names}
    trues: List[np.ndarray] = []
    base = {n: b.fit(np.zeros((2, window)), np.zeros(2)) for n, b in baselines(horizon).items()}
    for gi, g in enumerate(grids):
        if progress:
            progress("evaluating %s (%d/%d): %d links" % (g.path, gi + 1, len(grids), len(g.links)))
        X, y, _ = windows([g], window, horizon)
        for s in range(0, len(y), chunk):
            xb = X[s:s + chunk]
            preds["model"].append(np.asarray(model_predict(xb), dtype=float))
            for n, b in base.items():
                preds[n].append(b.predict(xb))
        trues.append(y)
    true = np.concatenate(trues) if trues else np.zeros(0)
    if len(true) == 0:
        raise TraceError(grids[0].path, "has no (window, target) rows for window %d and horizon %d; "
                         "the trace is shorter than %d samples" % (window, horizon, window + horizon))
    return {n: score(np.concatenate(preds[n]), true, hot) for n in names}

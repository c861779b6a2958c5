"""Forecaster benchmark (a script, not a test): ``.venv/bin/python tests/bench/bench_forecaster.py``.

1. Predict all 6,144 directed links of a k=16 fat-tree in one poll (the shipped model),
   against persistence over the same history in the same run.
2. The shipped model's regressor on the features of all 768 (k=8) and 6,144 (k=16)
   links: scikit-learn's ``predict`` against the compiled evaluator (models.treeeval,
   bit-identical, checked here too), one thread as the replay runs it, medians.
3. Feature extraction for all 768 (k=8) and 6,144 (k=16) links: ``make_features_numpy`` (the
   definition) against the compiled ``make_features`` (bit-identical, checked here too), one
   thread, medians; and the whole ``predict`` of the shipped model at k=8 with either.
4. Train on one hour of k=4 data (96 directed links incl. host links, 1 s polls),
   against one pass of feature extraction over the same rows.
Prints the hardware; ratios are the portable figures, seconds depend on the machine.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from unittest import mock

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from models import estimators, features, treeeval  # noqa: E402
from models.features import fill_gaps, make_features, make_features_numpy, persistence  # noqa: E402
from models.runtime import load_predictor  # noqa: E402
from models.synth import SynthConfig, fabric_links, generate  # noqa: E402
from models.training import GridTrace, fit_forecaster, windows  # noqa: E402


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def medians_of(fns, repeat: int):
    """Median seconds of each function, the calls interleaved so that machine load hits all alike."""
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def bench_history(pred, k: int):
    """The links of a k-ary fat-tree and one window of generated history for them, with some gaps."""
    links = fabric_links(k)
    tr = generate(7, SynthConfig(k=k, duration_s=pred.window + 10), links=links)
    hist = tr.util[:, -pred.window:].copy()
    hist[::50, -3:] = np.nan
    return links, hist


def tree_eval_section(pred, repeat: int = 15) -> None:
    reg = pred.estimator.regressor_
    forest = treeeval.flatten(reg)
    if forest is None or not treeeval.COMPILED:
        print("compiled tree evaluator: not available (Numba missing, SIDESTEP_NO_JIT set or model unsupported)")
        return
    for k in (8, 16):
        links, hist = bench_history(pred, k)
        F = make_features(hist, pred.horizon)
        with threadpool_limits(limits=1):
            same = np.array_equal(reg.predict(F).view(np.int64), treeeval.predict(reg, forest, F).view(np.int64))
            t_sk, t_jit = medians_of([lambda: reg.predict(F), lambda: treeeval.predict(reg, forest, F)], repeat)
        print("regressor on %d links x %d features, 1 thread, median of %d: sklearn %.2f ms, compiled %.2f ms, "
              "ratio %.1fx (bit-identical: %s)" % (len(links), F.shape[1], repeat, t_sk * 1e3, t_jit * 1e3,
                                                   t_sk / t_jit, "yes" if same else "NO"))


def features_section(pred, repeat: int = 15) -> None:
    if not features.COMPILED:
        print("compiled features: not available (Numba missing or SIDESTEP_NO_JIT set)")
        return
    for k in (8, 16):
        links, hist = bench_history(pred, k)
        with threadpool_limits(limits=1):
            same = np.array_equal(make_features_numpy(hist, pred.horizon).view(np.int64),
                                  make_features(hist, pred.horizon).view(np.int64))
            t_np, t_jit = medians_of([lambda: make_features_numpy(hist, pred.horizon),
                                      lambda: make_features(hist, pred.horizon)], repeat)
        print("features of %d links x %d samples, 1 thread, median of %d: numpy %.2f ms, compiled %.2f ms, "
              "ratio %.1fx (bit-identical: %s)" % (len(links), hist.shape[1], repeat, t_np * 1e3, t_jit * 1e3,
                                                   t_np / t_jit, "yes" if same else "NO"))
        if k != 8:
            continue

        def predict_before():
            """The shipped model's predict with the numpy features and persistence filling the window."""
            with mock.patch.object(estimators, "make_features", make_features_numpy), \
                    mock.patch.object(estimators, "persistence", lambda h: fill_gaps(h)[:, -1]):
                return pred.predict(hist)

        with threadpool_limits(limits=1):
            same = np.array_equal(predict_before().view(np.int64), pred.predict(hist).view(np.int64))
            t_before, t_after = medians_of([predict_before, lambda: pred.predict(hist)], repeat)
        print("  predict (shipped model) at %d links, 1 thread, median of %d: as before (numpy features, "
              "persistence filling the window) %.2f ms, now %.2f ms, ratio %.1fx (bit-identical: %s)"
              % (len(links), repeat, t_before * 1e3, t_after * 1e3, t_before / t_after, "yes" if same else "NO"))


def main() -> int:
    print("hardware: %s, %d cores (os.cpu_count), Python %s" % (cpu_model(), os.cpu_count(), platform.python_version()))
    pred = load_predictor(None, sampling_period_s=1.0)
    links = fabric_links(16)
    print("k=16: %d directed links, window %d samples" % (len(links), pred.window))
    tr = generate(5, SynthConfig(k=16, duration_s=pred.window + 10), links=links)
    hist = tr.util[:, -pred.window:].copy()
    hist[::50, -3:] = np.nan     # a few missed polls
    pred.predict(hist)           # warm up
    t_pers = best_of(lambda: persistence(hist), 20)
    t_feat = best_of(lambda: make_features(hist, pred.horizon), 5)
    t_pred = best_of(lambda: pred.predict(hist), 5)
    print("predict one poll, all links: model %.1f ms (features %.1f ms), persistence %.2f ms, ratio %.0fx"
          % (t_pred * 1e3, t_feat * 1e3, t_pers * 1e3, t_pred / t_pers))
    print("  = %.1f%% of a 1 s poll interval" % (100 * t_pred / 1.0))
    tree_eval_section(pred)
    features_section(pred)

    tr4 = generate(6, SynthConfig(k=4, duration_s=3600))
    grid = GridTrace("k4-1h", tr4.links, tr4.util, 1.0, 0.0)
    print("k=4, one hour: %d directed links x %d samples" % (len(tr4.links), tr4.util.shape[1]))
    X, _, _ = windows([grid], pred.window, 2, max_rows=150_000)
    t_feat_rows = best_of(lambda: make_features(X, 2), 1)
    t0 = time.perf_counter()
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:  # data summary digests the file
        grid.path = handle.name
        est, meta = fit_forecaster([grid], horizon=2)
    t_train = time.perf_counter() - t0
    print("train (regressor auto: hgb + ridge on 3 time-ordered folds, then the final hgb fit; %d rows): %.1f s; features of those rows %.2f s; "
          "ratio %.0fx" % (meta["training_data"]["training_rows"], t_train, t_feat_rows, t_train / t_feat_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The compiled HGB evaluator (models.treeeval) gives sklearn's predictions bit for bit, or steps aside."""
import copy
import io
import os
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from models import treeeval
from models.estimators import LinkForecaster
from models.features import make_features, persistence
from models.model_file import load_model
from models.runtime import DEFAULT_MODEL, load_predictor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_jit = pytest.mark.skipif(not treeeval.COMPILED, reason="Numba not installed or SIDESTEP_NO_JIT set")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """HGB's OpenMP threads crawl when the shared 2-core machine is busy; one thread is steady."""
    with threadpool_limits(1):
        yield


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype == np.float64 and a.shape == b.shape and np.array_equal(a.view(np.int64),
                                                                                        b.view(np.int64))


def compiled(reg, X):
    forest = treeeval.flatten(reg)
    assert forest is not None
    return treeeval.predict(reg, forest, X)


def thresholds(reg):
    """Split thresholds per feature, to put rows exactly on (and one ulp beside) the splits."""
    out = [[] for _ in range(reg.n_features_in_)]
    for (tree,) in reg._predictors:
        for node in tree.nodes[tree.nodes["is_leaf"] == 0]:
            out[node["feature_idx"]].append(node["num_threshold"])
    return [np.array(t) for t in out]


def probe_rows(reg, n, rng, X=None):
    """Rows that hit the awkward cases: values equal to thresholds, one ulp off, NaN, +-inf, -0.0."""
    X = rng.normal(size=(n, reg.n_features_in_)) if X is None else np.array(X, dtype=float)
    for f, t in enumerate(thresholds(reg)):
        if len(t):
            vals = rng.choice(t, n)
            nudge = rng.random(n)
            vals = np.where(nudge < 0.15, np.nextafter(vals, -np.inf),
                            np.where(nudge < 0.3, np.nextafter(vals, np.inf), vals))
            pick = rng.random(n) < 0.5
            X[pick, f] = vals[pick]
    X[rng.random(X.shape) < 0.1] = np.nan
    special = rng.random(X.shape) < 0.02
    X[special] = rng.choice([np.inf, -np.inf, 0.0, -0.0], int(special.sum()))
    return X


@pytest.fixture(scope="module")
def shipped():
    est, _ = load_model(DEFAULT_MODEL)
    return est


def windows(est, n, rng):
    """History windows with missed polls: scattered NaNs, NaN runs, a few rows with no sample at all."""
    X = rng.random((n, est.n_features_in_)) * rng.choice([0.1, 1.0, 3.0], (n, 1))
    X[rng.random(X.shape) < 0.05] = np.nan
    for row in rng.choice(n, n // 4):
        start = rng.integers(0, X.shape[1])
        X[row, start:start + rng.integers(1, 20)] = np.nan
    X[rng.choice(n, max(1, n // 50)), :] = np.nan
    return X


# (a) the shipped model ---------------------------------------------------------------------------

@needs_jit
@pytest.mark.parametrize("n", [1, 2, 255, 256, 257, 768])
def test_shipped_forecaster_predict_with_and_without_the_compiled_path(shipped, n, monkeypatch):
    est = copy.deepcopy(shipped)
    assert est.chosen_regressor_ == "hgb" and est.blend_weight_ > 0
    X = windows(est, n, np.random.default_rng(n))
    with monkeypatch.context() as m:
        m.setattr(treeeval, "_kernel_jit", None)          # as without Numba: sklearn's predict
        reference = est.predict(X)
    assert est._forest_cache._forest is None

    def not_sklearn(F):
        raise AssertionError("the compiled path was not taken")

    with monkeypatch.context() as m:
        m.setattr(est.regressor_, "predict", not_sklearn)
        fast = est.predict(X)
    assert est._forest_cache._forest is not None
    assert same_bits(fast, reference)


@needs_jit
def test_shipped_regressor_on_features_with_gaps_and_split_values(shipped):
    reg = shipped.regressor_
    rng = np.random.default_rng(7)
    F = make_features(windows(shipped, 768, rng), shipped.horizon)
    F[rng.random(F.shape) < 0.05] = np.nan
    assert same_bits(compiled(reg, F), reg.predict(F))
    P = probe_rows(reg, 1000, rng, F[rng.integers(0, 768, 1000)])
    assert same_bits(compiled(reg, P), reg.predict(P))


@needs_jit
def test_shipped_predictor_as_the_replay_calls_it(monkeypatch):
    pred = load_predictor(None, sampling_period_s=1.0)
    hist = windows(pred.estimator, 768, np.random.default_rng(3))
    fast = pred.predict(hist)
    monkeypatch.setattr(treeeval, "_kernel_jit", None)
    assert same_bits(fast, pred.predict(hist))


@needs_jit
def test_loading_the_predictor_builds_the_trees_the_first_forecast_uses(monkeypatch):
    pred = load_predictor(None, sampling_period_s=1.0)
    flattened = []
    monkeypatch.setattr(treeeval, "flatten", lambda est: flattened.append(est) or None)
    hist = windows(pred.estimator, 8, np.random.default_rng(4))
    pred.predict(hist)
    assert flattened == []          # built at load: the first forecast reuses it
    assert pred.estimator.__dict__["_forest_cache"].forest(pred.estimator.regressor_) is not None


# (b) small models fitted here --------------------------------------------------------------------

def fitted(loss, max_leaf_nodes, max_iter, nan_frac, seed, constant=False, **kw):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 5))
    y = np.sin(X[:, 0]) + X[:, 1] * (X[:, 2] > 0) + rng.normal(0, 0.1, 600)
    if constant:
        y = np.full(600, 0.25)
    X[rng.random(X.shape) < nan_frac] = np.nan
    X[:300, 3] = np.nan                            # a feature missing in half the (early) rows
    if loss == "quantile":
        kw.setdefault("quantile", 0.3)
    reg = HistGradientBoostingRegressor(loss=loss, max_leaf_nodes=max_leaf_nodes, max_iter=max_iter,
                                        min_samples_leaf=10, early_stopping=False, random_state=seed, **kw)
    return reg.fit(X, y)


SMALL = [("squared_error", 2, 20, 0.2, 1, False), ("absolute_error", 7, 10, 0.1, 2, False),
         ("quantile", 31, 30, 0.2, 3, False), ("squared_error", 64, 5, 0.0, 4, False),
         ("quantile", None, 3, 0.3, 5, False), ("squared_error", 15, 4, 0.1, 6, True)]


@needs_jit
@pytest.mark.parametrize("loss,leaves,iters,nan_frac,seed,constant", SMALL)
def test_small_models_fitted_with_nans(loss, leaves, iters, nan_frac, seed, constant):
    reg = fitted(loss, leaves, iters, nan_frac, seed, constant)
    rng = np.random.default_rng(100 + seed)
    for n in (1, 3, 300, 700):
        X = probe_rows(reg, n, rng)
        assert same_bits(compiled(reg, X), reg.predict(X)), n


@needs_jit
def test_small_models_exercise_both_nan_directions_and_stumps():
    forests = [treeeval.flatten(fitted(*case[:5], constant=case[5])) for case in SMALL]
    missing_left = np.concatenate([f.missing_left for f in forests])
    assert missing_left.any() and not missing_left.all()
    stumps = forests[0]
    assert np.all(np.diff(stumps.node_offsets) == 1) and np.all(np.diff(stumps.leaf_offsets) == 2)
    constant = forests[-1]
    assert len(constant.feature) == 0 and len(constant.leaf_value) == 4    # root-only trees


def breadth_first(nodes):
    """The same tree numbered level by level: still parents first, but leaves no longer left to right."""
    order, queue = [], [0]
    while queue:
        i = queue.pop(0)
        order.append(i)
        if not nodes[i]["is_leaf"]:
            queue += [int(nodes[i]["left"]), int(nodes[i]["right"])]
    new = nodes[order].copy()
    where = np.argsort(order)
    split = new["is_leaf"] == 0
    new["left"][split] = where[new["left"][split]]
    new["right"][split] = where[new["right"][split]]
    return new


@needs_jit
def test_trees_numbered_another_way():
    reg = copy.deepcopy(fitted("quantile", 31, 10, 0.2, 12))
    for (tree,) in reg._predictors:
        tree.nodes = breadth_first(tree.nodes)
    X = probe_rows(reg, 400, np.random.default_rng(12))
    assert same_bits(compiled(reg, X), reg.predict(X))
    assert same_bits(reg.predict(X), fitted("quantile", 31, 10, 0.2, 12).predict(X))


@needs_jit
def test_input_conversions_match_sklearn():
    reg = fitted("squared_error", 31, 10, 0.1, 8)
    X = probe_rows(reg, 50, np.random.default_rng(8))
    for variant in (X.astype(np.float32), np.asfortranarray(X), np.vstack([X, X])[::2], X.tolist()):
        assert same_bits(compiled(reg, variant), reg.predict(variant))


@needs_jit
def test_negative_zero_baseline_becomes_positive_zero_as_in_sklearn():
    reg = copy.deepcopy(fitted("squared_error", 7, 3, 0.0, 9))
    reg._predictors = []                           # only the baseline left: 0.0 + -0.0 == +0.0
    reg._baseline_prediction = np.array([[-0.0]])
    X = np.zeros((3, 5))
    assert same_bits(compiled(reg, X), reg.predict(X)) and not np.signbit(reg.predict(X)).any()


# (c) zero rows, one row --------------------------------------------------------------------------

@needs_jit
def test_zero_and_one_row(shipped, monkeypatch):
    reg = shipped.regressor_
    X = windows(shipped, 5, np.random.default_rng(11))
    F = make_features(X, shipped.horizon)
    assert same_bits(compiled(reg, F[:1]), reg.predict(F[:1]))
    est = copy.deepcopy(shipped)
    fast = est.predict(X[:1])
    monkeypatch.setattr(treeeval, "_kernel_jit", None)
    assert same_bits(fast, est.predict(X[:1]))
    monkeypatch.undo()

    forest = treeeval.flatten(reg)
    empty = treeeval.evaluate(forest, np.zeros((0, F.shape[1])))
    assert empty.shape == (0,) and empty.dtype == np.float64
    with pytest.raises(ValueError) as theirs:      # sklearn refuses 0 samples; so does the compiled path
        reg.predict(F[:0])
    with pytest.raises(ValueError) as ours:
        treeeval.predict(reg, forest, F[:0])
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(ValueError) as wrong_width:
        treeeval.predict(reg, forest, F[:, :-1])
    assert "features" in str(wrong_width.value)
    assert load_predictor(None, sampling_period_s=1.0).predict(np.zeros((0, 96))).shape == (0,)


# repeated rows are evaluated once -----------------------------------------------------------------

@needs_jit
def test_repeated_rows_get_sklearns_bits(shipped):
    reg = shipped.regressor_
    rng = np.random.default_rng(22)
    F = make_features(windows(shipped, 200, rng), shipped.horizon)
    P = probe_rows(reg, 200, rng, F)
    for X in (P[rng.integers(0, 200, 768)], np.vstack([P[:1]] * 5), P, np.vstack([P, P[::-1]])[::3]):
        assert same_bits(compiled(reg, X), reg.predict(X))


# sklearn's validation, skipped only where it returns the array unchanged ------------------------

def test_validation_is_skipped_only_for_plain_float64_arrays_of_the_fitted_width(shipped):
    reg = shipped.regressor_
    F = make_features(windows(shipped, 20, np.random.default_rng(12)), shipped.horizon)
    assert treeeval.passes_validation(reg, F) and treeeval.passes_validation(reg, np.asfortranarray(F))

    class Sub(np.ndarray):
        pass

    for other in (F.astype(np.float32), F.tolist(), F[:, :-1], F[:0], F[None], F.view(Sub), F[:, 0]):
        assert not treeeval.passes_validation(reg, other)
    assert not treeeval.passes_validation(HistGradientBoostingRegressor(), F)    # not fitted
    named = copy.deepcopy(reg)
    named.feature_names_in_ = np.array(["f%d" % i for i in range(F.shape[1])], dtype=object)
    assert not treeeval.passes_validation(named, F)


@needs_jit
def test_feature_name_warning_and_errors_are_sklearns(shipped):
    reg = copy.deepcopy(shipped.regressor_)
    F = make_features(windows(shipped, 20, np.random.default_rng(13)), shipped.horizon)
    reg.feature_names_in_ = np.array(["f%d" % i for i in range(F.shape[1])], dtype=object)
    forest = treeeval.flatten(reg)
    with pytest.warns(UserWarning) as theirs:
        expected = reg.predict(F)
    with pytest.warns(UserWarning) as ours:
        got = treeeval.predict(reg, forest, F)
    assert same_bits(got, expected)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    with pytest.raises(Exception) as theirs_err:
        HistGradientBoostingRegressor().predict(F)
    with pytest.raises(Exception) as ours_err:
        treeeval.predict(HistGradientBoostingRegressor(), forest, F)
    assert type(ours_err.value) is type(theirs_err.value) and str(ours_err.value) == str(theirs_err.value)


# fallback: what the evaluator does not replicate goes to sklearn ----------------------------------

class SubclassedHGB(HistGradientBoostingRegressor):
    pass


def unsupported():
    rng = np.random.default_rng(20)
    X = rng.normal(size=(400, 4))
    X[:, 0] = rng.integers(0, 5, 400)
    y = X[:, 1] + (X[:, 0] == 2)
    cases = {
        "categorical": HistGradientBoostingRegressor(categorical_features=[0], max_iter=5).fit(X, y),
        "poisson": HistGradientBoostingRegressor(loss="poisson", max_iter=5).fit(X, np.abs(y) + 0.1),
        "classifier": HistGradientBoostingClassifier(max_iter=5).fit(X, y > 0.5),
        "multiclass": HistGradientBoostingClassifier(max_iter=5).fit(X, (y > 0).astype(int) + (y > 1)),
        "subclass": SubclassedHGB(max_iter=5).fit(X, y),
        "too many leaves": HistGradientBoostingRegressor(max_leaf_nodes=100, min_samples_leaf=1,
                                                         max_iter=2).fit(X, y + rng.normal(0, 1, 400)),
    }
    return cases, X


def test_unsupported_models_are_refused():
    cases, X = unsupported()
    assert max(t[0].get_n_leaf_nodes() for t in cases["too many leaves"]._predictors) > treeeval.MAX_LEAVES
    for name, est in cases.items():
        assert treeeval.flatten(est) is None, name
        assert treeeval.ForestCache().predict(est, X) is None, name
    assert treeeval.flatten(HistGradientBoostingRegressor()) is None       # not fitted


@needs_jit
def test_forecaster_falls_back_to_sklearn_for_a_categorical_regressor(shipped):
    est = copy.deepcopy(shipped)
    X = windows(est, 200, np.random.default_rng(21))
    F = make_features(X, est.horizon)
    F[:, 0] = np.round(F[:, 0] * 4)
    cat = HistGradientBoostingRegressor(categorical_features=[0], max_iter=10).fit(F, F[:, 1] - F[:, 2])
    est.regressor_ = cat
    F = make_features(X, est.horizon)
    expected = np.maximum(persistence(X) + est.blend_weight_ * cat.predict(F), 0.0)
    assert same_bits(est.predict(X), expected)
    assert est._forest_cache._forest is None                               # refused, not compiled


def test_linear_forecaster_uses_sklearn():
    rng = np.random.default_rng(22)
    X, y = rng.random((120, 16)), rng.random(120)
    est = LinkForecaster(regressor="linear", shrink=False).fit(X, y)
    assert same_bits(est.predict(X), np.maximum(persistence(X) + est.regressor_.predict(make_features(X, 2)), 0.0))
    assert est._forest_cache._forest is None


def test_sidestep_no_jit_keeps_sklearn():
    code = ("import numpy as np; from models import treeeval; assert not treeeval.COMPILED; "
            "from models.runtime import load_predictor; p = load_predictor(None, sampling_period_s=1.0); "
            "h = np.random.default_rng(0).random((4, p.window)); out = p.predict(h); "
            "assert out.shape == (4,) and p.estimator._forest_cache._forest is None")
    env = dict(os.environ, SIDESTEP_NO_JIT="1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr


# refits and pickles --------------------------------------------------------------------------------

@needs_jit
def test_refit_rebuilds_the_trees():
    rng = np.random.default_rng(30)
    walk = np.abs(np.sin(np.arange(1200) / 7.0)) + rng.normal(0, 0.05, 1200)
    X = np.vstack([walk[i:i + 24] for i in range(1100)])
    y = walk[np.arange(1100) + 25]
    est = LinkForecaster(max_iter=20, shrink=False).fit(X, y)
    first = est.predict(X)
    old = est._forest_cache._forest
    est.fit(X[::-1], y[::-1] * 2)
    again = est.predict(X)
    assert est._forest_cache._forest is not old
    assert same_bits(again, np.maximum(persistence(X) + est.regressor_.predict(make_features(X, 2)), 0.0))
    assert not same_bits(first, again)

    reg = est.regressor_                         # warm start grows the same list of trees in place
    F = make_features(X, 2)
    cache = treeeval.ForestCache()
    assert same_bits(cache.predict(reg, F), reg.predict(F))
    reg.set_params(warm_start=True, max_iter=30).fit(F, y - X[:, -1])
    assert reg.n_iter_ == 30
    assert same_bits(cache.predict(reg, F), reg.predict(F))


def joblib_bytes(est) -> bytes:
    buf = io.BytesIO()
    joblib.dump(est, buf)
    return buf.getvalue()


@needs_jit
def test_pickles_leave_the_trees_out():
    # A fresh load: pickle's memo follows string identity, which a second load in one process
    # does not reproduce, so bytes are compared on one object (models.build_default --check
    # covers the whole file).
    est, _ = load_model(DEFAULT_MODEL)
    before = joblib_bytes(est)
    X = windows(est, 50, np.random.default_rng(31))
    est.predict(X)
    assert est._forest_cache._forest is not None
    assert joblib_bytes(est) == before
    assert b"_forest_cache" not in before and b"treeeval" not in before
    assert est._forest_cache._forest is not None   # pickling did not drop the live cache
    back = pickle.loads(pickle.dumps(est))
    assert back._forest_cache is not est._forest_cache and back._forest_cache._forest is None
    assert same_bits(back.predict(X), est.predict(X))

    rng = np.random.default_rng(32)
    small = LinkForecaster(max_iter=5, shrink=False).fit(rng.random((80, 16)), rng.random(80))
    fitted_bytes = joblib_bytes(small)
    small.predict(rng.random((10, 16)))
    assert small._forest_cache._forest is not None and joblib_bytes(small) == fitted_bytes

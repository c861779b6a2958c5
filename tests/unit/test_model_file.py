"""Model files: round trip, refusal of mismatches, and the runtime predictor."""
import io
import logging

import joblib
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from models import model_file
from models.estimators import LinkForecaster
from models.model_file import ModelError, load_model, save_model
from models.runtime import DEFAULT_MODEL, fallback_predictor, load_predictor


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """HGB's OpenMP threads crawl when the shared 2-core machine is busy; one thread is steady."""
    with threadpool_limits(1):
        yield


def small_model():
    rng = np.random.default_rng(0)
    X = rng.random((80, 16))
    y = X[:, -1] + 0.01
    return LinkForecaster(max_iter=5, n_splits=2).fit(X, y), X


def meta(**extra):
    m = {"feature_version": model_file.FEATURE_VERSION, "window": 16, "horizon": 2, "sampling_period_s": 1.0,
         "libraries": {"scikit-learn": __import__("sklearn").__version__},
         "estimator": {"class": "LinkForecaster"}}
    m.update(extra)
    return m


def test_round_trip(tmp_path):
    est, X = small_model()
    path = str(tmp_path / "m.joblib")
    save_model(path, est, meta())
    loaded, m = load_model(path)
    assert np.array_equal(loaded.predict(X), est.predict(X))
    assert m["window"] == 16 and m["format"] == model_file.FORMAT
    assert (tmp_path / "m.joblib.json").exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_other_feature_version_is_refused_with_the_fix(tmp_path):
    est, _ = small_model()
    path = str(tmp_path / "old.joblib")
    save_model(path, est, meta(feature_version=model_file.FEATURE_VERSION + 1))
    with pytest.raises(ModelError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert path in msg and "feature version" in msg and "sidestep train" in msg


def test_other_sklearn_version_is_refused(tmp_path):
    est, _ = small_model()
    path = str(tmp_path / "m.joblib")
    save_model(path, est, meta(libraries={"scikit-learn": "0.1"}))
    with pytest.raises(ModelError, match="scikit-learn 0.1"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x80\x04K\x01."])
def test_unreadable_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.joblib"
    path.write_bytes(content)
    with pytest.raises(ModelError) as exc:
        load_model(str(path))
    assert str(path) in str(exc.value)


def test_a_joblib_that_is_not_a_model_is_refused(tmp_path):
    path = str(tmp_path / "dict.joblib")
    joblib.dump({"hello": 1}, path)
    with pytest.raises(ModelError, match="not a Sidestep forecaster"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        load_model(str(tmp_path / "nope.joblib"))


def test_shipped_default_loads_and_predicts_every_link():
    pred = load_predictor(None, sampling_period_s=1.0)
    assert pred.horizon == 2 and pred.sampling_period_s == 1.0 and pred.window >= 32
    hist = np.random.default_rng(0).random((10, pred.window))
    hist[3] = np.nan
    hist[4, -5:] = np.nan
    out = pred.predict(hist)
    assert out.shape == (10,) and np.isfinite(out).all() and (out >= 0).all()
    assert out[3] == 0.0
    # more history than needed is cut, less is padded with gaps
    assert np.allclose(pred.predict(np.hstack([np.zeros((10, 7)), hist])), out)
    assert pred.predict(hist[:, -10:]).shape == (10,)
    assert pred.predict(np.zeros((0, pred.window))).shape == (0,)


def test_sampling_period_mismatch_is_refused():
    with pytest.raises(ModelError, match="live sampling period is 5 s"):
        load_predictor(DEFAULT_MODEL, sampling_period_s=5.0)
    load_predictor(DEFAULT_MODEL, sampling_period_s=1.05)  # within tolerance


def test_fallback_is_persistence_and_loud(caplog):
    with caplog.at_level(logging.WARNING):
        pred = fallback_predictor("model file missing")
    assert "persistence" in caplog.text and "model file missing" in caplog.text
    hist = np.array([[0.1, 0.5, np.nan], [np.nan, np.nan, np.nan]])
    assert pred.predict(hist).tolist() == [0.5, 0.0]
    assert "persistence" in pred.name


def _with_metadata(path, metadata):
    """A file in the model format whose metadata record is ``metadata`` (the estimator is never reached)."""
    joblib.dump({"format": model_file.FORMAT, "format_version": model_file.FORMAT_VERSION,
                 "metadata": metadata, "estimator": b""}, path)
    return path


@pytest.mark.parametrize("metadata, words", [
    (["not", "a", "record"], "metadata of type list"),
    ({k: v for k, v in meta().items() if k != "horizon"}, "'horizon' must be a whole number >= 1, got None"),
    (meta(window=0), "'window' must be a whole number >= 1, got 0"),
    (meta(horizon=True), "'horizon' must be a whole number >= 1, got True"),
    (meta(sampling_period_s=float("nan")), "'sampling_period_s' must be a number of seconds > 0"),
    (meta(libraries="sklearn"), "'libraries' must be a record"),
])
def test_a_model_with_bad_metadata_is_refused_by_field(tmp_path, metadata, words):
    """Each of these used to pass the checks and fail later (KeyError, AttributeError) in whoever read it."""
    path = _with_metadata(str(tmp_path / "m.joblib"), metadata)
    with pytest.raises(ModelError) as exc:
        load_model(path)
    assert path in str(exc.value) and words in str(exc.value) and "sidestep train" in str(exc.value)


def test_the_controller_falls_back_loudly_on_a_model_with_bad_metadata(tmp_path, caplog):
    from controller.config import load_config
    from controller.runtime import load_predictor_or_fallback
    path = _with_metadata(str(tmp_path / "m.joblib"), {k: v for k, v in meta().items() if k != "horizon"})
    with caplog.at_level(logging.WARNING):
        pred = load_predictor_or_fallback(load_config(None, {"policy": "predictive", "model": path}))
    assert "persistence" in pred.name and "FORECASTER UNUSABLE" in caplog.text and "'horizon'" in caplog.text

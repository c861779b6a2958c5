"""``models.build_default --check``: what it says when a rebuild's bytes differ."""
import json

from models.build_default import explain_difference, shipped_holdout
from models.runtime import DEFAULT_MODEL

REBUILT = {"model": {"mae": 0.0723, "precision": 0.88, "recall": 0.93}, "persistence": {"mae": 0.2196}}


def test_a_difference_is_explained_with_both_scores_and_the_blas_kernel():
    recorded = {"model": {"mae": 0.0722, "precision": 0.8815, "recall": 0.9265}, "persistence": {"mae": 0.2196}}
    text = explain_difference(recorded, REBUILT, ["openblas 0.3.31 (Haswell)"])
    assert "model MAE          shipped 0.0722, rebuilt 0.0723" in text
    assert "hotspot recall     shipped 0.9265, rebuilt 0.9300" in text
    assert "openblas 0.3.31 (Haswell)" in text and "CPU" in text


def test_a_model_without_recorded_scores_shows_none():
    text = explain_difference(None, REBUILT, [])
    assert "model MAE          shipped -, rebuilt 0.0723" in text and "BLAS here: none" in text


def test_the_shipped_models_recorded_scores_are_read(tmp_path):
    holdout = shipped_holdout(DEFAULT_MODEL)
    with open(DEFAULT_MODEL + ".json") as handle:      # save_model's readable copy of the metadata
        assert holdout == json.load(handle)["holdout"]
    assert 0.0 < holdout["model"]["mae"] < holdout["persistence"]["mae"]
    other = tmp_path / "not_a_model.joblib"
    other.write_bytes(b"not a model")
    assert shipped_holdout(str(other)) is None

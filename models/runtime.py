"""What the controller and the replay call each tick: a ``Predictor`` over all links.

Agreed interface (docs/TEAM_NOTES.md):

* ``load_predictor(path, *, sampling_period_s, logger=None) -> Predictor``; ``path=None``
  loads the shipped default; an unusable file raises ``ModelError`` (clear message);
* ``fallback_predictor(reason, ...)`` is persistence and logs loudly;
* ``Predictor.window / horizon / sampling_period_s / name`` and
  ``predict(history (n_links, window)) -> (n_links,)``, NaN allowed in, output >= 0.

A model learns in *samples*: one trained on 1 s polls forecasts 2 samples = 2 s
ahead and its periodic features count iterations in samples.  Used at another
poll interval it would be silently wrong, so a sampling-period mismatch beyond
``SAMPLING_TOLERANCE`` is refused.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import numpy as np

from models.features import fill_gaps
from models.model_file import REBUILD_HINT, ModelError, load_model

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_model.joblib")
SAMPLING_TOLERANCE = 0.1   # relative difference allowed between the model's and the live sampling period
FALLBACK_WINDOW = 8


class Predictor:
    """Forecast every link's utilization ``horizon`` samples ahead from its last ``window`` samples."""

    def __init__(self, estimator: Any, *, window: int, horizon: int, sampling_period_s: float, name: str) -> None:
        self.estimator = estimator
        self.window = int(window)
        self.horizon = int(horizon)
        self.sampling_period_s = float(sampling_period_s)
        self.name = name

    def _shape(self, history: np.ndarray) -> np.ndarray:
        h = np.asarray(history, dtype=float)
        if h.ndim != 2:
            raise ValueError("history must be (n_links, window), got shape %r" % (h.shape,))
        if h.shape[1] > self.window:          # more history than needed: keep the newest
            h = h[:, -self.window:]
        elif h.shape[1] < self.window:        # too little (startup): the missing past is a gap
            h = np.hstack([np.full((h.shape[0], self.window - h.shape[1]), np.nan), h])
        return h

    def predict(self, history: np.ndarray) -> np.ndarray:
        """Predicted utilization per link (>= 0); a link with no sample at all in its window gets 0."""
        h = self._shape(history)
        if h.shape[0] == 0:
            return np.zeros(0)
        out = np.asarray(self.estimator.predict(h), dtype=float)
        out = np.where(_empty_rows(h) | ~np.isfinite(out), 0.0, out)
        return np.maximum(out, 0.0)

    def __repr__(self) -> str:
        return "Predictor(%s, window=%d, horizon=%d, sampling_period_s=%g)" % (
            self.name, self.window, self.horizon, self.sampling_period_s)


def _empty_rows(h: np.ndarray) -> np.ndarray:
    """``np.isnan(h).all(axis=1)``: only rows whose newest sample is missing can be empty, so
    only those are read whole (the forecast runs every tick; most rows have a sample)."""
    if h.shape[1] == 0:
        return np.isnan(h).all(axis=1)
    empty = np.isnan(h[:, -1])
    if empty.any():
        rows = np.flatnonzero(empty)
        empty[rows] = np.isnan(h[rows]).all(axis=1)
    return empty


class _PersistenceEstimator:
    """Latest valid value; stands in for a model when none is usable."""

    def predict(self, history: np.ndarray) -> np.ndarray:
        return fill_gaps(history)[:, -1]


def fallback_predictor(reason: str, *, horizon: int = 2, sampling_period_s: float = 1.0,
                       logger: Optional[logging.Logger] = None) -> Predictor:
    """Persistence (next = now), logged at WARNING with the reason, for when no model is usable."""
    (logger or logging.getLogger(__name__)).warning(
        "forecaster: NO MODEL, falling back to persistence (predicted = last measured): %s", reason)
    return Predictor(_PersistenceEstimator(), window=FALLBACK_WINDOW, horizon=horizon,
                     sampling_period_s=sampling_period_s, name="persistence (fallback)")


def predictor_from_model(estimator: Any, meta: dict, path: str) -> Predictor:
    return Predictor(estimator, window=int(meta["window"]), horizon=int(meta["horizon"]),
                     sampling_period_s=float(meta["sampling_period_s"]),
                     name="%s (%s)" % (os.path.basename(path), meta.get("estimator", {}).get("class", "model")))


def load_predictor(path: Optional[str], *, sampling_period_s: float,
                   logger: Optional[logging.Logger] = None) -> Predictor:
    """Load a model file (None = the shipped default) for a given live sampling period.

    Raises ``ModelError`` (naming the file and the fix) if the file is missing,
    unreadable, from another feature version, or trained at a sampling period more
    than ``SAMPLING_TOLERANCE`` away from ``sampling_period_s``.
    """
    path = DEFAULT_MODEL if path is None else path
    estimator, meta = load_model(path)
    trained = float(meta["sampling_period_s"])
    if not sampling_period_s > 0 or abs(trained - sampling_period_s) > SAMPLING_TOLERANCE * trained:
        raise ModelError(path, "was trained on samples every %g s but the live sampling period is %g s "
                         "(more than %d%% apart); train a model on traces recorded at %g s, e.g. %s"
                         % (trained, sampling_period_s, int(SAMPLING_TOLERANCE * 100), sampling_period_s,
                            REBUILD_HINT.split(", or")[0].replace("retrain it with ", "")))
    prepare = getattr(estimator, "prepare", None)
    if callable(prepare):
        prepare()
    predictor = predictor_from_model(estimator, meta, path)
    if logger is not None:
        logger.info("forecaster: loaded %r from %s", predictor, path)
    return predictor

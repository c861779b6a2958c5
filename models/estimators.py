"""The link-utilization forecaster, a scikit-learn estimator.

``X`` is a matrix of history windows ``(n_samples, window)`` (oldest..newest, NaN
allowed) and ``y`` the utilization ``horizon`` samples after each window's last
column.  Rows must be in time order (ties between links in any order): fitting
validates on ``TimeSeriesSplit`` folds, never on shuffled ones.

The regressor learns the *change* ``y - latest`` from the features of
``models.features``; the prediction is ``latest + w * change`` where the blend
weight ``w`` in [0, 1] is chosen on time-ordered validation.  ``w = 0`` is
persistence: a model that cannot beat "tomorrow = today" on held-out time shrinks
to it instead of doing harm (the ``blend_weight_`` and ``validation_`` attributes
record what happened, and the model file keeps them).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from models.features import (FEATURE_NAMES, detect_period, ewma_mean, fill_gaps, make_features,
                             persistence, seasonal_position, value_at)
from models.treeeval import ForestCache, passes_validation

REGRESSORS = ("hgb", "linear")
BLEND_GRID = np.round(np.linspace(0.0, 1.0, 21), 2)

Progress = Optional[Callable[[str], None]]


def make_regressor(kind: str, *, max_iter: int = 200, learning_rate: float = 0.1, quantile: float = 0.65,
                   random_state: int = 0) -> BaseEstimator:
    """The inner regressor for ``kind`` (``hgb`` or ``linear``).

    HGB predicts a quantile of the change (0.5 = the median, the MAE-optimal
    forecast; above it leans toward "the burst comes").  HGB runs without early
    stopping: that would hold out a *random* (shuffled) slice of a time series.
    """
    if kind == "hgb":
        return HistGradientBoostingRegressor(
            loss="quantile", quantile=quantile, max_iter=max_iter, learning_rate=learning_rate,
            max_leaf_nodes=31, min_samples_leaf=40, l2_regularization=1.0,
            early_stopping=False, random_state=random_state)
    if kind == "linear":
        return make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    raise ValueError("regressor must be one of %s, got %r" % (", ".join(REGRESSORS), kind))


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b))) if len(a) else float("nan")


class LinkForecaster(RegressorMixin, BaseEstimator):
    """Predict a link's utilization ``horizon`` samples ahead from its history window.

    Parameters
    ----------
    horizon : int, default=2
        Samples ahead the target lies (used by the periodic features).
    regressor : {"hgb", "linear", "auto"}, default="hgb"
        Gradient-boosted trees (quantile loss) or scaled ridge regression; ``auto``
        fits both on the validation folds and keeps the one with the lower blended MAE
        (ridge wins on short series where trees overfit).
    max_iter, learning_rate : HGB settings (ignored by ``linear``).
    quantile : float, default=0.65
        Quantile of the change HGB predicts.  Slightly above the median because a
        missed hotspot (a training flow left on a link that saturates) costs more
        than an unneeded reroute; on held-out generated traces this trades ~6% MAE
        for ~3.5 points of hotspot recall (docs/forecaster.md).
    n_splits : int, default=3
        ``TimeSeriesSplit`` folds used to choose the blend weight toward persistence.
    shrink : bool, default=True
        Choose the blend weight on validation; False always uses the model (w = 1).
    random_state : int, default=0

    Attributes
    ----------
    regressor_ : the fitted inner regressor (predicts ``y - latest``).
    chosen_regressor_ : str, ``hgb`` or ``linear`` (what ``auto`` picked).
    blend_weight_ : float, weight of the model's change (0 = persistence).
    validation_ : dict, time-ordered validation MAEs of model, persistence and blend.
    n_features_in_ : int, the window length.
    n_iter_ : int, boosting iterations of the final fit (1 for ``linear``).
    """

    def __init__(self, *, horizon: int = 2, regressor: str = "hgb", max_iter: int = 200,
                 learning_rate: float = 0.1, quantile: float = 0.65, n_splits: int = 3, shrink: bool = True,
                 random_state: int = 0) -> None:
        self.horizon = horizon
        self.regressor = regressor
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.quantile = quantile
        self.n_splits = n_splits
        self.shrink = shrink
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        # Features are time-series statistics of the window, not the raw columns,
        # so arbitrary tabular data (the generic score check) is out of scope.
        tags.regressor_tags.poor_score = True
        return tags

    def _check_params(self) -> None:
        if not isinstance(self.horizon, (int, np.integer)) or isinstance(self.horizon, bool) or self.horizon < 1:
            raise ValueError("horizon must be an integer >= 1, got %r" % (self.horizon,))
        if self.regressor not in REGRESSORS + ("auto",):
            raise ValueError("regressor must be one of %s or auto, got %r" % (", ".join(REGRESSORS), self.regressor))
        if not (isinstance(self.quantile, (int, float)) and 0.0 < self.quantile < 1.0):
            raise ValueError("quantile must be a number in (0, 1), got %r" % (self.quantile,))
        if not isinstance(self.n_splits, (int, np.integer)) or self.n_splits < 2:
            raise ValueError("n_splits must be an integer >= 2, got %r" % (self.n_splits,))

    def _new_regressor(self, kind: str) -> BaseEstimator:
        return make_regressor(kind, max_iter=self.max_iter,
                              learning_rate=self.learning_rate, quantile=self.quantile,
                              random_state=self.random_state)

    def fit(self, X: ArrayLike, y: ArrayLike, progress: Progress = None) -> "LinkForecaster":
        """Fit on history windows X (rows in time order) and targets y; returns self."""
        self._check_params()
        X, y = validate_data(self, X, y, y_numeric=True, ensure_all_finite="allow-nan")
        F = make_features(X, int(self.horizon))
        base = persistence(X)
        delta = y - base
        n = len(y)
        kinds = list(REGRESSORS) if self.regressor == "auto" else [self.regressor]
        weight, scores, chosen = 1.0, {"validated": False}, kinds[0]
        if (self.shrink or len(kinds) > 1) and n >= 4 * (self.n_splits + 1):
            oof: Dict[str, List[np.ndarray]] = {k: [] for k in kinds}
            oof_true: List[np.ndarray] = []
            oof_base: List[np.ndarray] = []
            folds = TimeSeriesSplit(n_splits=int(self.n_splits)).split(F)
            for i, (tr, va) in enumerate(folds):
                if progress:
                    progress("validation fold %d/%d: train %d rows, validate %d rows"
                             % (i + 1, self.n_splits, len(tr), len(va)))
                for k in kinds:
                    oof[k].append(self._new_regressor(k).fit(F[tr], delta[tr]).predict(F[va]))
                oof_true.append(y[va])
                oof_base.append(base[va])
            yt, yb = np.concatenate(oof_true), np.concatenate(oof_base)
            grid = BLEND_GRID if self.shrink else np.array([1.0])
            scores = {"validated": True, "folds": int(self.n_splits), "rows": int(len(yt)),
                      "persistence_mae": _mae(yb, yt), "candidates": {}}
            best_mae = np.inf
            for k in kinds:
                dm = np.concatenate(oof[k])
                maes = [_mae(np.maximum(yb + w * dm, 0.0), yt) for w in grid]
                b = int(np.argmin(maes))
                scores["candidates"][k] = {"model_mae": _mae(np.maximum(yb + dm, 0.0), yt),
                                           "blend_mae": float(maes[b]), "blend_weight": float(grid[b])}
                if maes[b] < best_mae:
                    best_mae, chosen, weight = maes[b], k, float(grid[b])
            scores.update({"regressor": chosen, "model_mae": scores["candidates"][chosen]["model_mae"],
                           "blend_mae": float(best_mae), "blend_weight": weight})
        elif self.shrink:
            weight = 0.0  # too little data to check the model against persistence: do no harm
            scores = {"validated": False, "reason": "fewer than %d rows" % (4 * (self.n_splits + 1))}
        if progress:
            progress("fitting on all %d rows" % n)
        self.regressor_ = self._new_regressor(chosen).fit(F, delta)
        self.chosen_regressor_ = chosen
        self.n_iter_ = int(getattr(self.regressor_, "n_iter_", 1))
        self.blend_weight_ = weight
        self.validation_ = scores
        self.feature_names_ = list(FEATURE_NAMES)
        self._forest_cache = ForestCache()  # created here so that predict never adds attributes
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted utilization ``horizon`` samples after each window (clipped >= 0).

        sklearn's validation is skipped for a float64 array of the fitted width
        without infinities, which it would return unchanged (``passes_validation``):
        the replay calls this every tick.
        """
        if not (passes_validation(self, X) and "blend_weight_" in self.__dict__ and not np.isinf(X).any()):
            check_is_fitted(self)
            X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        base = persistence(X)
        if self.blend_weight_ == 0.0:
            return np.maximum(base, 0.0)
        change = self._regressor_predict(make_features(X, int(self.horizon)))
        return np.maximum(base + self.blend_weight_ * change, 0.0)

    def prepare(self) -> None:
        """Build what the first ``predict`` would otherwise build (the flattened trees, ~35 ms at
        200 trees), so that a controller's first poll and a replay's timed run do not pay it."""
        if "regressor_" in self.__dict__:
            self._forests().forest(self.regressor_)

    def _forests(self) -> ForestCache:
        cache = self.__dict__.get("_forest_cache")
        if cache is None:  # fitted attributes set by hand, not by fit or unpickling
            cache = self._forest_cache = ForestCache()
        return cache

    def _regressor_predict(self, F: np.ndarray) -> np.ndarray:
        """``regressor_.predict(F)``, through the compiled evaluator when it supports the regressor.

        ``models.treeeval`` gives the same bits as sklearn, several times faster; it
        is skipped without Numba, with SIDESTEP_NO_JIT set, or for a regressor it
        does not replicate (ridge, categorical HGB, ...).
        """
        out = self._forests().predict(self.regressor_, F)
        return self.regressor_.predict(F) if out is None else out

    def __getstate__(self):
        # The flattened trees are derived data: model files stay exactly what sklearn pickles.
        state = dict(super().__getstate__())  # a copy: on Python 3.11 the base returns __dict__ itself
        state.pop("_forest_cache", None)
        return state

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        if "regressor_" in state:
            self._forest_cache = ForestCache()


class _Baseline(RegressorMixin, BaseEstimator):
    """Shared plumbing: baselines learn nothing, but validate and record the window like any estimator."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.regressor_tags.poor_score = True  # a naive forecast is not a tabular regressor
        return tags

    def _check(self) -> None:
        pass

    def fit(self, X: ArrayLike, y: ArrayLike) -> "_Baseline":
        self._check()
        validate_data(self, X, y, y_numeric=True, ensure_all_finite="allow-nan")
        self.fitted_ = True
        return self

    def _validated(self, X) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, reset=False, ensure_all_finite="allow-nan")


class Persistence(_Baseline):
    """Next = now: the latest valid value (forward-filled over gaps)."""

    def __init__(self) -> None:
        pass

    def predict(self, X: ArrayLike) -> np.ndarray:
        return np.maximum(persistence(self._validated(X)), 0.0)


class EWMA(_Baseline):
    """Exponentially weighted mean of the window (gaps forward-filled)."""

    def __init__(self, *, alpha: float = 0.5) -> None:
        self.alpha = alpha

    def _check(self) -> None:
        if not (isinstance(self.alpha, (int, float)) and 0.0 < self.alpha <= 1.0):
            raise ValueError("alpha must be a number in (0, 1], got %r" % (self.alpha,))

    def predict(self, X: ArrayLike) -> np.ndarray:
        return np.maximum(ewma_mean(fill_gaps(self._validated(X)), float(self.alpha)), 0.0)


class SeasonalNaive(_Baseline):
    """The value one detected period before the target time; persistence where no period is found."""

    def __init__(self, *, horizon: int = 2) -> None:
        self.horizon = horizon

    def _check(self) -> None:
        if not isinstance(self.horizon, (int, np.integer)) or isinstance(self.horizon, bool) or self.horizon < 1:
            raise ValueError("horizon must be an integer >= 1, got %r" % (self.horizon,))

    def predict(self, X: ArrayLike) -> np.ndarray:
        x = fill_gaps(self._validated(X))
        h = int(self.horizon)
        period, _ = detect_period(x, max_period=(x.shape[1] - h) // 2)
        pos = seasonal_position(x.shape[1], period, h, 1)
        return np.maximum(value_at(x, pos, x[:, -1]), 0.0)


def baselines(horizon: int) -> Dict[str, BaseEstimator]:
    """The naive forecasts every model is compared with, by their report names."""
    return {"persistence": Persistence(), "ewma": EWMA(alpha=0.5),
            "seasonal_naive": SeasonalNaive(horizon=horizon)}

"""A compiled evaluator for fitted ``HistGradientBoostingRegressor`` models, bit-identical to sklearn.

Why: a replay forecasts every link once per simulated second, and scikit-learn's
``predict`` calls its 200 trees one by one from Python, each walking the rows
with data-dependent branches.  Here the trees are flattened once into a few
arrays and one Numba kernel evaluates all trees on all rows.

The kernel uses the bit-vector form of a tree walk (QuickScorer, Lucchese et al.,
SIGIR 2015) because it vectorises over rows and has no unpredictable branches:
number a tree's leaves left to right; start a row with every leaf possible; at each
split where the row goes right, strike out the leaves of the left subtree.  The
leftmost leaf still standing is the leaf the ordinary walk ends in (at the lowest
common ancestor of any leaf left of it and the exit leaf, the row went right).
So the per-split decision is the one that matters, and it is sklearn's
(``_predictor.pyx`` ``_predict_one_from_raw_data``): NaN goes where
``missing_go_to_left`` says, otherwise ``x <= num_threshold`` goes left.

The rest copies ``gradient_boosting.py`` ``_raw_predict`` / ``_predict_iterations``:

* ``X`` is validated and converted to float64 as ``_preprocess_X`` does;
* per row, ``raw = 0.0 + baseline`` then ``raw += leaf value`` of tree 0, 1, ...
  in that order (float addition is not associative, so the order is part of the
  contract; ``0.0 +`` turns a -0.0 baseline into +0.0, as ``np.zeros`` does);
* the output is ``link.inverse(raw)`` with the identity link, shape ``(n_samples,)``.

Each row's prediction depends on that row's bits alone, so rows repeated in ``X`` (in a
replay a third of the links share their window with another link) are evaluated once.

Anything else is refused (``flatten`` returns None and the caller keeps sklearn's
``predict``): categorical splits, several trees per iteration (classifiers),
subclasses, non-identity links (poisson, gamma), binned data inside ``fit``, and
trees with more than 64 leaves (the row's leaf set is one uint64; the default
``max_leaf_nodes`` is 31).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from controller.jit import jit as _jit
from models.distinct_rows import distinct_rows

MAX_LEAVES = 64
_BLOCK = 256          # rows per block: their masks and feature columns stay in cache across a tree
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)


def _debruijn_table() -> np.ndarray:
    """``table[(2**i * _DEBRUIJN mod 2**64) >> 58] == i``: the index of a word's single set bit."""
    table = np.zeros(64, dtype=np.int64)
    for i in range(64):
        table[((1 << i) * int(_DEBRUIJN) % (1 << 64)) >> 58] = i
    table.setflags(write=False)
    return table


_BIT_INDEX = _debruijn_table()


class Forest(NamedTuple):
    """A fitted HGB regressor's trees as flat arrays, split nodes and leaves apart.

    Tree ``t`` owns split nodes ``node_offsets[t]:node_offsets[t + 1]`` and leaves
    ``leaf_offsets[t]:leaf_offsets[t + 1]`` (left to right).  ``keep_if_right`` of a
    split is all ones except the bits of the leaves under its left child.
    """

    node_offsets: np.ndarray   # int64 (n_trees + 1,)
    leaf_offsets: np.ndarray   # int64 (n_trees + 1,)
    feature: np.ndarray        # int64 (n_splits,)
    threshold: np.ndarray      # float64 (n_splits,)
    missing_left: np.ndarray   # bool (n_splits,)
    keep_if_right: np.ndarray  # uint64 (n_splits,)
    leaf_value: np.ndarray     # float64 (n_leaves,)
    baseline: float
    n_features: int


def _kernel(XT, node_offsets, leaf_offsets, feature, threshold, missing_left, keep_if_right,
            leaf_value, baseline, out):
    n = XT.shape[1]
    n_trees = node_offsets.shape[0] - 1
    leaves = np.empty(min(n, _BLOCK), dtype=np.uint64)
    for i in range(n):
        out[i] = 0.0
        out[i] += baseline                        # np.zeros(...) += _baseline_prediction
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        m = stop - start
        for t in range(n_trees):                  # raw_predictions[:, 0] += predictor.predict(X), in order
            for j in range(m):
                leaves[j] = _ALL
            for k in range(node_offsets[t], node_offsets[t + 1]):
                column = XT[feature[k], start:stop]
                thr = threshold[k]
                strike = keep_if_right[k]
                # left iff x <= thr, or x is NaN and missing values go left; the split's NaN
                # direction is tested once per split, not per row (one compare per row)
                if missing_left[k]:
                    for j in range(m):
                        leaves[j] &= strike if column[j] > thr else _ALL
                else:
                    for j in range(m):
                        leaves[j] &= _ALL if column[j] <= thr else strike
            first = leaf_offsets[t]
            for j in range(m):
                word = leaves[j]
                lowest = word & (~word + np.uint64(1))
                out[start + j] += leaf_value[first + _BIT_INDEX[(lowest * _DEBRUIJN) >> np.uint64(58)]]


_kernel_jit = _jit(_kernel)
COMPILED = _kernel_jit is not None


def _tree(nodes: np.ndarray) -> Optional[tuple]:
    """One tree's (features, thresholds, missing_left, keep_if_right) per split, its leaf values left
    to right and the splits' is_categorical flags; None if it is not a tree this module can read."""
    n = len(nodes)
    is_leaf = nodes["is_leaf"] != 0
    split = np.flatnonzero(~is_leaf)
    left = nodes["left"].astype(np.int64)
    right = nodes["right"].astype(np.int64)
    children = np.concatenate([left[split], right[split]])
    # A proper tree numbered parents first: every node but the root is the child of exactly
    # one split that comes before it (so the two passes below see children after parents).
    if len(children) != n - 1 or not np.array_equal(np.sort(children), np.arange(1, n)):
        return None
    if np.any(left[split] <= split) or np.any(right[split] <= split):
        return None
    if int(is_leaf.sum()) > MAX_LEAVES:
        return None
    lefts, rights, order = left.tolist(), right.tolist(), split.tolist()
    count = is_leaf.astype(np.int64).tolist()     # leaves under each node
    for i in reversed(order):
        count[i] = count[lefts[i]] + count[rights[i]]
    first = [0] * n                               # index of the leftmost leaf under each node
    for i in order:
        first[lefts[i]] = first[i]
        first[rights[i]] = first[i] + count[lefts[i]]
    leaf_order = np.flatnonzero(is_leaf)[np.argsort(np.asarray(first)[is_leaf], kind="stable")]
    keep = [~(((1 << count[lefts[i]]) - 1) << first[i]) & (2 ** 64 - 1) for i in order]
    return (nodes["feature_idx"][split].astype(np.int64), nodes["num_threshold"][split].astype(np.float64),
            nodes["missing_go_to_left"][split] != 0, np.array(keep, dtype=np.uint64),
            nodes["value"][leaf_order].astype(np.float64), nodes["is_categorical"][split])


def flatten(est: Any) -> Optional[Forest]:
    """The trees of a fitted ``HistGradientBoostingRegressor`` as a ``Forest``, or None if unsupported.

    Supported: exactly that class (no subclass), fitted, one tree per iteration,
    an identity link (squared error, absolute error, quantile losses), no
    categorical features, a float64 baseline, trees of at most ``MAX_LEAVES``
    leaves numbered parents first (as sklearn's grower writes them).
    """
    from sklearn._loss.link import IdentityLink
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    if type(est) is not HistGradientBoostingRegressor:
        return None
    predictors = getattr(est, "_predictors", None)
    baseline = getattr(est, "_baseline_prediction", None)
    loss = getattr(est, "_loss", None)
    n_features = getattr(est, "n_features_in_", None)
    if predictors is None or baseline is None or loss is None or n_features is None:
        return None
    if getattr(est, "n_trees_per_iteration_", None) != 1 or type(getattr(loss, "link", None)) is not IdentityLink:
        return None
    if getattr(est, "is_categorical_", None) is not None or getattr(est, "_preprocessor", None) is not None:
        return None
    baseline = np.asarray(baseline)
    if baseline.dtype != np.float64 or baseline.shape != (1, 1):
        return None
    parts = []
    for iteration in predictors:
        if len(iteration) != 1:
            return None
        nodes = iteration[0].nodes
        if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1 \
                or len(nodes) == 0:
            return None
        part = _tree(nodes)
        if part is None or np.any(part[5] != 0) or np.any((part[0] < 0) | (part[0] >= n_features)):
            return None
        parts.append(part)

    def joined(i: int, dtype: type) -> np.ndarray:
        return np.concatenate([p[i] for p in parts]).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    def offsets(i: int) -> np.ndarray:
        out = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p[i]) for p in parts], out=out[1:])
        return out

    return Forest(node_offsets=offsets(0), leaf_offsets=offsets(4), feature=joined(0, np.int64),
                  threshold=joined(1, np.float64), missing_left=joined(2, np.bool_),
                  keep_if_right=joined(3, np.uint64), leaf_value=joined(4, np.float64),
                  baseline=float(baseline[0, 0]), n_features=int(n_features))


def evaluate(forest: Forest, X: np.ndarray) -> np.ndarray:
    """Raw predictions (baseline + all trees) for an already validated float64 ``X`` of shape (n, n_features)."""
    if _kernel_jit is None:
        raise RuntimeError("the compiled tree evaluator needs Numba (and SIDESTEP_NO_JIT unset)")
    X = np.asarray(X)
    if X.dtype != np.float64 or X.ndim != 2 or X.shape[1] != forest.n_features:
        raise ValueError("X must be float64 of shape (n, %d), got %s %r" % (forest.n_features, X.dtype, X.shape))
    # Rows with the same bits get the same prediction (each row is evaluated on its own), so
    # repeated rows are evaluated once: in a replay a third of the links share their window
    # (idle links, links on the same ring hops), and so their features, with another link.
    X = np.ascontiguousarray(X)
    repeats = distinct_rows(X)
    if repeats is not None:
        X = X[repeats[0]]
    out = np.empty(X.shape[0], dtype=np.float64)
    _kernel_jit(np.ascontiguousarray(X.T), forest.node_offsets, forest.leaf_offsets, forest.feature,
                forest.threshold, forest.missing_left, forest.keep_if_right, forest.leaf_value,
                forest.baseline, out)
    return out if repeats is None else out[repeats[1]]


def passes_validation(est: Any, X: Any) -> bool:
    """True if ``X`` is what sklearn's ``check_is_fitted(est)`` + ``validate_data(est, X, reset=False)``
    would accept and hand back as the same object, silently, before any check of its values.

    Why: a replay forecasts once per tick, and that validation (tags, array namespaces,
    dataframe probes) cost more than a tenth of a k=8 forecast for arrays that are
    already float64 of the fitted width.  So: an exact ``ndarray``, float64, 2-D, at
    least one row, the fitted ``n_features_in_`` columns, an estimator fitted without
    feature names whose fittedness sklearn reads from its attributes.  Anything else
    (lists, frames, other dtypes or widths, not fitted) takes sklearn's own path with
    its errors and warnings.  Checking the values (``ensure_all_finite``) is the caller's.
    """
    return (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2 and X.shape[0] >= 1
            and X.shape[1] == getattr(est, "__dict__", {}).get("n_features_in_", -1)
            and not hasattr(est, "feature_names_in_") and not hasattr(est, "__sklearn_is_fitted__"))


def predict(est: Any, forest: Forest, X: Any) -> np.ndarray:
    """``est.predict(X)``, bit for bit, given ``forest = flatten(est)`` (not None).

    Validation is sklearn's own (``validate_data`` with the arguments of
    ``_preprocess_X``): the same errors, warnings and float64 conversion, skipped
    where it would return ``X`` unchanged (``passes_validation``; ``ensure_all_finite``
    is False here, so the values need no look).
    """
    if not passes_validation(est, X):
        from sklearn.utils.validation import check_is_fitted, validate_data

        check_is_fitted(est)
        X = validate_data(est, X, reset=False, dtype=[np.float64], ensure_all_finite=False)
    return evaluate(forest, X)


class ForestCache:
    """The flattened trees of one regressor, rebuilt when the regressor (or its trees) change.

    An estimator keeps one of these next to its regressor and never pickles it.
    What the forest was built from is compared by identity: the regressor object,
    its list of trees, that list's length (a ``warm_start`` refit appends to the
    same list) and its baseline array.
    """

    __slots__ = ("_source", "_n_trees", "_forest")

    def __init__(self) -> None:
        self._source: tuple = ()
        self._n_trees = -1
        self._forest: Optional[Forest] = None

    def forest(self, est: Any) -> Optional[Forest]:
        """``flatten(est)``, cached; None when unsupported or when the compiled kernel is unavailable."""
        if _kernel_jit is None:
            return None
        predictors = getattr(est, "_predictors", None)
        source = (est, predictors, getattr(est, "_baseline_prediction", None))
        n_trees = -1 if predictors is None else len(predictors)
        if n_trees != self._n_trees or len(source) != len(self._source) \
                or any(a is not b for a, b in zip(source, self._source)):
            self._forest = flatten(est)
            self._source, self._n_trees = source, n_trees
        return self._forest

    def predict(self, est: Any, X: Any) -> Optional[np.ndarray]:
        """``est.predict(X)`` compiled, or None if ``est`` is not supported (the caller falls back)."""
        forest = self.forest(est)
        if forest is None or getattr(est, "_in_fit", False):
            return None
        return predict(est, forest, X)

"""A compiled view of a fitted binary HistGradientBoostingClassifier, for scoring rows fast.

scikit-learn's ``predict_proba`` of a HistGradientBoosting model validates its input and
calls one OpenMP region per tree: milliseconds for one row, whatever the tree count, and
worse on a busy machine. Here one numba kernel walks all trees' nodes (flattened end to end)
row by row. The result equals ``predict_proba``:

- a split sends a row left when ``x <= num_threshold`` (both float64), a NaN the way the
  node's ``missing_go_to_left`` says, as sklearn's ``_predict_one_from_raw_data``;
- per row the raw score starts at ``baseline_prediction_`` and adds tree 1, 2, ... in order,
  as ``_raw_predict`` accumulates; the probability is ``scipy.special.expit`` of it, as the
  binomial loss's ``predict_proba``.

Models with categorical splits, or more than one tree per iteration (not binary), are not
compiled (``CompiledHistGB.compile`` returns None) and score with ``predict_proba``. Without
numba the same: the kernel is compiled on first use (cached on disk when writable).
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is locked; a stripped environment scores with sklearn
    numba = None


def _walk(x, roots, feature, threshold, missing_left, left, right, leaf, value, baseline, out):  # pragma: no cover
    for i in range(x.shape[0]):
        total = baseline
        for root in roots:
            node = root
            while not leaf[node]:
                v = x[i, feature[node]]
                if np.isnan(v):
                    node = left[node] if missing_left[node] else right[node]
                elif v <= threshold[node]:
                    node = left[node]
                else:
                    node = right[node]
            total += value[node]
        out[i] = total


def _jit(function):
    if numba is None:
        return None
    try:  # cache the machine code next to this module (or in numba's user cache dir) when writable
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # no writable cache location: compile in-process instead
        return numba.njit(nogil=True)(function)


_kernel = _jit(_walk)


class CompiledHistGB:
    """Flattened trees of a fitted binary ``HistGradientBoostingClassifier`` (numeric splits only)."""

    def __init__(self, estimator: Any):
        self._estimator = estimator
        roots, feature, threshold, missing_left, left, right, leaf, value = [], [], [], [], [], [], [], []
        base = 0
        for (predictor,) in estimator._predictors:
            nodes = predictor.nodes
            roots.append(base)
            feature.append(nodes["feature_idx"])
            threshold.append(nodes["num_threshold"])
            missing_left.append(nodes["missing_go_to_left"])
            left.append(nodes["left"].astype(np.int64) + base)
            right.append(nodes["right"].astype(np.int64) + base)
            leaf.append(nodes["is_leaf"])
            value.append(nodes["value"])
            base += len(nodes)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.feature = np.ascontiguousarray(np.concatenate(feature), dtype=np.int64)
        self.threshold = np.ascontiguousarray(np.concatenate(threshold), dtype=np.float64)
        self.missing_left = np.ascontiguousarray(np.concatenate(missing_left), dtype=np.bool_)
        self.left = np.ascontiguousarray(np.concatenate(left))
        self.right = np.ascontiguousarray(np.concatenate(right))
        self.leaf = np.ascontiguousarray(np.concatenate(leaf), dtype=np.bool_)
        self.value = np.ascontiguousarray(np.concatenate(value), dtype=np.float64)
        self.baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])
        self.n_features = int(estimator.n_features_in_)
        self.positive = list(estimator.classes_).index(1)

    @classmethod
    def compile(cls, estimator: Any) -> CompiledHistGB | None:
        """The compiled model for a binary numeric-split HistGradientBoostingClassifier; None otherwise."""
        if _kernel is None or type(estimator).__name__ != "HistGradientBoostingClassifier":
            return None
        if getattr(estimator, "n_trees_per_iteration_", 0) != 1 or list(estimator.classes_) != [0, 1]:
            return None
        predictors = getattr(estimator, "_predictors", None)
        if not predictors or any(len(p) != 1 or p[0].nodes["is_categorical"].any() for p in predictors):
            return None
        return cls(estimator)

    def predict_positive(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of class 1 per row, equal to ``estimator.predict_proba(matrix)[:, 1]``."""
        from scipy.special import expit

        x = np.ascontiguousarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} feature columns, got shape {np.shape(matrix)}")
        raw = np.empty(x.shape[0], dtype=np.float64)
        _kernel(
            x,
            self.roots,
            self.feature,
            self.threshold,
            self.missing_left,
            self.left,
            self.right,
            self.leaf,
            self.value,
            self.baseline,
            raw,
        )
        return expit(raw)

"""A compiled view of a fitted scikit-learn tree ensemble, for scoring rows fast.

scikit-learn's ``predict_proba`` costs several milliseconds per call whatever the row
count (input validation, per-tree Python dispatch), and its per-row tree walk is one
dependent load after another. Here a numba kernel walks flattened node arrays tree by
tree, 16 rows at a time in lockstep (leaves point to themselves, so every row takes the
tree's depth in steps), which keeps several independent walks in flight. The result
equals ``predict_proba`` exactly: the same float32 inputs compared with the float64
thresholds, the same per-leaf normalisation, the same summation order (0.0, then tree
1, 2, ... per row, then a division by the number of trees).

The kernel is compiled (or loaded from numba's cache) when the first forest is
compiled, i.e. at bundle load, not on the first request.
"""

from __future__ import annotations

from typing import Any, Optional

import numba
import numpy as np

LOCKSTEP_ROWS = 16


def _walk(x, roots, depth, feature, threshold, children, value, out):  # pragma: no cover - compiled
    n_trees = roots.shape[0]
    n = x.shape[0]
    out[:] = 0.0
    nodes = np.empty(LOCKSTEP_ROWS, np.int32)
    for t in range(n_trees):
        root = roots[t]
        for start in range(0, n, LOCKSTEP_ROWS):
            count = min(n, start + LOCKSTEP_ROWS) - start
            for k in range(count):
                nodes[k] = root
            for _ in range(depth[t]):
                for k in range(count):
                    node = nodes[k]
                    nodes[k] = children[node, np.int64(x[start + k, feature[node]] > threshold[node])]
            for k in range(count):
                out[start + k] += value[nodes[k]]
    for i in range(n):
        out[i] /= n_trees


try:  # cache the machine code next to this module (or numba's user cache dir) when writable
    _kernel = numba.njit(cache=True, nogil=True)(_walk)
except RuntimeError:  # no writable cache location: compile in-process at load instead
    _kernel = numba.njit(nogil=True)(_walk)


class CompiledForest:
    """Flattened trees of a fitted forest of ``DecisionTreeClassifier`` (binary)."""

    def __init__(self, estimator: Any):
        trees = [tree.tree_ for tree in estimator.estimators_]
        positive = list(estimator.classes_).index(1)
        offsets = np.cumsum([0] + [t.node_count for t in trees[:-1]])
        self.n_trees = len(trees)
        self.roots = offsets.astype(np.int32)
        self.depth = np.array([t.max_depth for t in trees], dtype=np.int32)
        self.feature = np.concatenate([t.feature for t in trees]).astype(np.int32)
        self.threshold = np.concatenate([t.threshold for t in trees]).astype(np.float64)
        children = []
        for t, offset in zip(trees, offsets):
            own = np.arange(t.node_count) + offset
            leaf = t.children_left < 0  # a leaf is its own child on both sides
            children.append(np.stack([np.where(leaf, own, t.children_left + offset),
                                      np.where(leaf, own, t.children_right + offset)], axis=1))
        self.children = np.ascontiguousarray(np.concatenate(children), dtype=np.int32)
        self.feature[self.children[:, 0] == np.arange(len(self.children))] = 0  # any valid column for a leaf
        values = []
        for t in trees:  # as DecisionTreeClassifier.predict_proba: normalise each leaf's class weights
            v = t.value[:, 0, :]
            normalizer = v.sum(axis=1, keepdims=True)
            normalizer[normalizer == 0.0] = 1.0
            values.append((v / normalizer)[:, positive])
        self.value = np.ascontiguousarray(np.concatenate(values), dtype=np.float64)
        self.n_features = int(estimator.n_features_in_)
        self.predict_positive(np.zeros((1, self.n_features)))  # compile / load the kernel now

    @classmethod
    def compile(cls, estimator: Any) -> Optional["CompiledForest"]:
        """A compiled forest for RandomForest/ExtraTrees classifiers; None for anything else."""
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        if isinstance(estimator, (RandomForestClassifier, ExtraTreesClassifier)) and getattr(estimator, "n_outputs_", 1) == 1 \
                and len(estimator.classes_) == 2:
            return cls(estimator)
        return None

    def predict_positive(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of class 1 per row, equal to ``estimator.predict_proba(matrix)[:, 1]``."""
        x = np.ascontiguousarray(matrix, dtype=np.float32)  # trees split on float32 inputs
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} feature columns, got shape {matrix.shape}")
        out = np.empty(x.shape[0], dtype=np.float64)
        _kernel(x, self.roots, self.depth, self.feature, self.threshold, self.children, self.value, out)
        return out

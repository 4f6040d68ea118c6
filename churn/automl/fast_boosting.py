"""Compiled views of fitted binary boosters (HistGradientBoosting, LightGBM, XGBoost), for scoring rows fast.

scikit-learn's HistGradientBoosting ``predict_proba`` validates its input and runs one OpenMP
region per tree (milliseconds for one row), and LightGBM's ``Booster.predict`` walks one row's
trees after another (about 30k rows/s for 400 trees here). Both compile here to the lockstep
kernel of ``churn.fast_forest`` (16 rows walk each tree at once, float64 comparisons), with an
exact row-by-row kernel for the rows that kernel has no rule for. Results equal the library's
own probabilities (to 1e-9; tests/test_fast_boosting.py):

- HistGradientBoosting: a split sends ``x <= num_threshold`` left, a NaN the way
  ``missing_go_to_left`` says (sklearn's ``_predict_one_from_raw_data``); the raw score starts at
  ``baseline_prediction_`` and adds tree 1, 2, ... in order (``_raw_predict``); the probability
  is ``scipy.special.expit`` of it (the binomial loss).
- LightGBM (from ``Booster.dump_model()``): a numerical split as ``Tree::NumericalDecision``: with
  ``missing_type`` other than NaN a NaN counts as 0.0; with ``missing_type`` Zero a value within
  1e-35 of zero, with NaN a NaN, goes the ``default_left`` side; otherwise ``x <= threshold`` goes
  left. The raw score is the sum of leaf values in tree order, the probability
  ``1 / (1 + exp(-sigmoid * raw))`` (the binary objective).

- XGBoost (from the JSON model): a split sends the float32 input ``x < split_condition`` left
  (so ``x > the float32 just below it`` goes right), a NaN the ``default_left`` side; the margin
  starts at ``-logf(1 / base_score - 1)`` and adds the trees' leaf values in order, all in float32
  as XGBoost's CPU predictor adds them; the probability is XGBoost's float32
  ``Sigmoid``: ``1 / (expf(min(-x, 88.7)) + 1 + 1e-16)`` (libm's ``expf``/``logf``, as XGBoost calls them).
  So the result is XGBoost's float32 bit for bit. A batch holding a NaN is scored by XGBoost.

The lockstep kernel compares only ``x > threshold``. A batch holding a NaN, or (LightGBM) a
near-zero value in a column some Zero-missing split would send the other way, is scored by
the row kernel, which has every rule above. Our preprocessing imputes every missing value, so
served batches take the lockstep path.

Not compiled (``compile`` returns None, the model scores with its library): categorical
splits, linear trees, more than one tree per iteration, objectives other than binary (or
``binary:logistic``), boosters other than gbtree, models that stop early at predict, and any
model when numba is missing.

Over 300 lines on purpose: the three compilers share one exactness contract, one row kernel and
one test file (tests/test_fast_boosting.py); split, each would repeat the missing-value rules.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from churn.fast_forest import LockstepTrees, Tree, as_rows

try:
    import numba
except ImportError:  # pragma: no cover - numba is locked; a stripped environment scores with the libraries
    numba = None

ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold
MISSING_NONE, MISSING_ZERO, MISSING_NAN = 0, 1, 2  # LightGBM's missing types, as our codes
_MISSING = {"None": MISSING_NONE, "Zero": MISSING_ZERO, "NaN": MISSING_NAN}


def _walk_rows(x, roots, feature, threshold, missing, default_left, left, right, leaf, value, out):  # pragma: no cover
    # out[i] += the leaf values of row i in tree order, with the missing-value rules of both libraries:
    # missing 0 (None): NaN counts as 0.0; 1 (Zero): |v| <= 1e-35 (NaN too) goes default_left;
    # 2 (NaN): NaN goes default_left. HistGB nodes are missing type 2 with default_left = missing_go_to_left.
    for i in range(x.shape[0]):
        total = out[i]
        for root in roots:
            node = root
            while not leaf[node]:
                v = x[i, feature[node]]
                kind = missing[node]
                if np.isnan(v) and kind != 2:
                    v = 0.0
                if (kind == 1 and abs(v) <= 1e-35) or (kind == 2 and np.isnan(v)):
                    node = left[node] if default_left[node] else right[node]
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


def _xgboost_margin(base_score):  # pragma: no cover - compiled
    one = np.float32(1.0)  # float32 throughout: LogisticRegression::ProbToMargin
    return -math.log(one / base_score - one)


def _xgboost_sigmoid(margin, out):  # pragma: no cover - compiled
    one = np.float32(1.0)  # float32 throughout: xgboost's common::Sigmoid
    for i in range(margin.shape[0]):
        out[i] = one / (math.exp(min(-margin[i], np.float32(88.7))) + one + np.float32(1e-16))


_row_kernel = _jit(_walk_rows)
_margin_kernel = _jit(_xgboost_margin)
_sigmoid_kernel = _jit(_xgboost_sigmoid)


def compile_kernels() -> bool:
    """Compile (or load from numba's cache) every kernel a bundle may use: the image build calls it.

    Returns:
        False without numba, else True.
    """
    from churn.fast_forest import compile_kernel

    if _row_kernel is None or not compile_kernel():
        return False
    one, ints = np.zeros(1, dtype=np.bool_), np.zeros(1, dtype=np.int64)
    _row_kernel(
        np.zeros((1, 1)), ints, ints, np.zeros(1), np.zeros(1, np.int8), one, ints, ints, ~one, np.zeros(1), np.zeros(1)
    )
    _sigmoid_kernel(np.zeros(1, np.float32), np.zeros(1, np.float32))
    _margin_kernel(np.float32(0.5))
    return True


class Unsupported(ValueError):
    """A model this compiler does not handle (it scores with its library's predict)."""


class _CompiledBooster:
    """Trees of one binary booster: lockstep for finite batches, row by row with missing-value rules otherwise."""

    def __init__(self, trees: list[Tree], missing: list[np.ndarray], default_left: list[np.ndarray], n_features: int):
        self.n_features = n_features
        self.lockstep = LockstepTrees(trees, np.float64)
        base, roots = 0, []
        for tree in trees:
            roots.append(base)
            base += len(tree.left)
        offsets = np.repeat(roots, [len(t.left) for t in trees])
        self.roots = np.asarray(roots, dtype=np.int64)
        self.feature = np.concatenate([t.feature for t in trees]).astype(np.int64)
        self.threshold = np.concatenate([t.threshold for t in trees]).astype(np.float64)
        self.missing = np.concatenate(missing).astype(np.int8)
        self.default_left = np.concatenate(default_left).astype(np.bool_)
        self.left = np.concatenate([t.left for t in trees]).astype(np.int64) + offsets
        self.right = np.concatenate([t.right for t in trees]).astype(np.int64) + offsets
        self.leaf = np.concatenate([t.is_leaf for t in trees]).astype(np.bool_)
        self.value = np.concatenate([t.value for t in trees]).astype(np.float64)
        # Zero-missing splits whose default side differs from what "x <= threshold" does near zero
        near_zero = np.abs(self.threshold) <= ZERO_THRESHOLD
        differs = (
            (self.missing == MISSING_ZERO) & ~self.leaf & (near_zero | (self.default_left != (self.threshold >= 0)))
        )
        self.zero_columns = np.unique(self.feature[differs])

    def raw(self, matrix: np.ndarray, start: float = 0.0) -> np.ndarray:
        """``start`` plus the sum of each row's leaf values in tree order."""
        x = as_rows(matrix, self.n_features, np.float64)
        out = np.full(x.shape[0], start, dtype=np.float64)
        if np.isnan(x).any() or (len(self.zero_columns) and (np.abs(x[:, self.zero_columns]) <= ZERO_THRESHOLD).any()):
            args = (self.feature, self.threshold, self.missing, self.default_left, self.left, self.right, self.leaf)
            _row_kernel(x, self.roots, *args, self.value, out)
            return out
        return self.lockstep.add_to(x, out)


class CompiledHistGB:
    """A fitted binary ``HistGradientBoostingClassifier`` with numeric splits, compiled."""

    def __init__(self, estimator: Any):
        trees, missing, default_left = [], [], []
        for (predictor,) in estimator._predictors:
            nodes = predictor.nodes
            trees.append(
                Tree(
                    left=nodes["left"].astype(np.int64),
                    right=nodes["right"].astype(np.int64),
                    is_leaf=nodes["is_leaf"].astype(bool),
                    feature=nodes["feature_idx"].astype(np.int64),
                    threshold=nodes["num_threshold"].astype(np.float64),
                    value=nodes["value"].astype(np.float64),
                )
            )
            missing.append(np.full(len(nodes), MISSING_NAN))
            default_left.append(nodes["missing_go_to_left"].astype(bool))
        self.booster = _CompiledBooster(trees, missing, default_left, int(estimator.n_features_in_))
        self.baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])

    @classmethod
    def compile(cls, estimator: Any) -> CompiledHistGB | None:
        """The compiled model for a binary numeric-split HistGradientBoostingClassifier; None otherwise."""
        if _row_kernel is None or type(estimator).__name__ != "HistGradientBoostingClassifier":
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

        return expit(self.booster.raw(matrix, self.baseline))


def _lightgbm_tree(structure: dict) -> tuple[Tree, np.ndarray, np.ndarray]:
    """One tree of ``dump_model()`` as local node arrays (depth first), with its missing types and defaults."""
    columns: dict[str, list] = {k: [] for k in ("left", "right", "leaf", "feature", "threshold", "value", "m", "d")}
    stack = [(structure, None, None)]  # (node, parent id, is left child)
    while stack:
        node, parent, is_left = stack.pop()
        me = len(columns["left"])
        if parent is not None:
            columns["left" if is_left else "right"][parent] = me
        split = "split_index" in node
        if not split and "leaf_coeff" in node:
            raise Unsupported("linear tree")
        if split and node.get("decision_type") != "<=":
            raise Unsupported(f"decision type {node.get('decision_type')!r}")
        columns["left"].append(0)
        columns["right"].append(0)
        columns["leaf"].append(not split)
        columns["feature"].append(int(node["split_feature"]) if split else 0)
        columns["threshold"].append(float(node["threshold"]) if split else np.inf)
        columns["value"].append(0.0 if split else float(node["leaf_value"]))
        columns["m"].append(_MISSING[node.get("missing_type", "None")] if split else MISSING_NONE)
        columns["d"].append(bool(node.get("default_left", False)))
        if split:
            stack.append((node["right_child"], me, False))
            stack.append((node["left_child"], me, True))
    tree = Tree(
        left=np.asarray(columns["left"], dtype=np.int64),
        right=np.asarray(columns["right"], dtype=np.int64),
        is_leaf=np.asarray(columns["leaf"], dtype=bool),
        feature=np.asarray(columns["feature"], dtype=np.int64),
        threshold=np.asarray(columns["threshold"], dtype=np.float64),
        value=np.asarray(columns["value"], dtype=np.float64),
    )
    return tree, np.asarray(columns["m"]), np.asarray(columns["d"], dtype=bool)


class CompiledLGBM:
    """A fitted binary LightGBM booster with numerical splits, compiled."""

    def __init__(self, booster: Any):
        dump = booster.dump_model()
        if dump.get("num_tree_per_iteration", 1) != 1 or dump.get("num_class", 1) != 1:
            raise Unsupported("more than one tree per iteration")
        objective = str(dump.get("objective", "binary")).split()
        if not objective or objective[0] != "binary":
            raise Unsupported(f"objective {dump.get('objective')!r}")
        self.sigmoid = 1.0
        for part in objective[1:]:
            if part.startswith("sigmoid:"):
                self.sigmoid = float(part.split(":", 1)[1])
        if dump.get("linear_tree") or any(info.get("is_linear") for info in dump["tree_info"]):
            raise Unsupported("linear trees")
        parts = [_lightgbm_tree(info["tree_structure"]) for info in dump["tree_info"]]
        self.booster = _CompiledBooster(
            [p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts], int(booster.num_feature())
        )

    @classmethod
    def compile(cls, model: Any) -> CompiledLGBM | None:
        """The compiled model of a binary ``LGBMClassifier`` (or its ``Booster``); None when unsupported."""
        if _row_kernel is None:
            return None
        if type(model).__name__ == "LGBMClassifier":
            if list(getattr(model, "classes_", [])) != [0, 1] or getattr(model, "objective_", "binary") != "binary":
                return None
            if getattr(model, "best_iteration_", None):  # predict would stop at the best iteration: lightgbm's job
                return None
            booster = model.booster_
        elif type(model).__name__ == "Booster":
            booster = model
        else:
            return None
        if booster.best_iteration not in (0, -1, None):
            return None
        try:
            return cls(booster)
        except (Unsupported, KeyError):
            return None

    def predict_positive(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of class 1 per row, equal to ``booster.predict(matrix)``."""
        return 1.0 / (1.0 + np.exp(-self.sigmoid * self.booster.raw(matrix)))


class CompiledXGB:
    """A fitted ``binary:logistic`` XGBoost gbtree model with numerical splits, compiled (float32, as XGBoost)."""

    def __init__(self, booster: Any):
        learner = json.loads(booster.save_raw("json"))["learner"]
        parameters = learner["learner_model_param"]
        if learner["objective"]["name"] != "binary:logistic" or learner["gradient_booster"]["name"] != "gbtree":
            raise Unsupported("not a binary:logistic gbtree model")
        if int(parameters.get("num_class", 0)) > 1 or int(parameters.get("num_target", 1)) != 1:
            raise Unsupported("more than one output")
        trees = []
        for tree in learner["gradient_booster"]["model"]["trees"]:
            if any(tree["split_type"]) or int(tree["tree_param"].get("size_leaf_vector", 1)) > 1:
                raise Unsupported("categorical splits or vector leaves")
            left = np.asarray(tree["left_children"], dtype=np.int64)
            leaf = left < 0
            condition = np.asarray(tree["split_conditions"], dtype=np.float32)  # a leaf's holds its value
            below = np.nextafter(condition, np.float32(-np.inf))  # x < c  <=>  not (x > the float32 below c)
            trees.append(
                Tree(
                    left=np.where(leaf, 0, left),
                    right=np.where(leaf, 0, np.asarray(tree["right_children"], dtype=np.int64)),
                    is_leaf=leaf,
                    feature=np.asarray(tree["split_indices"], dtype=np.int64),
                    threshold=np.where(leaf, np.float32(np.inf), below).astype(np.float32),
                    value=condition,
                )
            )
        self._booster = booster
        self.lockstep = LockstepTrees(trees, np.float32, sum_dtype=np.float32)
        self.margin = np.float32(_margin_kernel(np.float32(float(parameters["base_score"]))))
        self.n_features = int(parameters["num_feature"])

    @classmethod
    def compile(cls, model: Any) -> CompiledXGB | None:
        """The compiled model of a binary ``XGBClassifier`` (or its ``Booster``); None when unsupported."""
        if _row_kernel is None:
            return None
        if type(model).__name__ == "XGBClassifier":
            if list(getattr(model, "classes_", [])) != [0, 1]:
                return None
            booster = model.get_booster()
        elif type(model).__name__ == "Booster":
            booster = model
        else:
            return None
        if "best_iteration" in booster.attributes():  # predict_proba would stop at the best iteration
            return None
        try:
            return cls(booster)
        except (Unsupported, KeyError, ValueError):
            return None

    def predict_positive(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of class 1 per row (float32), equal to ``booster.inplace_predict(matrix)``."""
        x = as_rows(matrix, self.n_features, np.float32)  # XGBoost splits on float32 inputs
        if np.isnan(x).any():  # missing values: XGBoost's default directions
            return self._booster.inplace_predict(matrix)
        margin = self.lockstep.add_to(x, np.full(x.shape[0], self.margin, dtype=np.float32))
        out = np.empty(x.shape[0], dtype=np.float32)
        _sigmoid_kernel(margin, out)
        return out

"""The model classes an AutoML bundle may hold, beyond the libraries' own (numpy/sklearn only, no FLAML).

They are pickled into ``estimator.joblib``, so their module path is part of the bundle
format: move or rename them only with a compatibility import here.

- ``OneHotLogistic``: logistic regression on one-hot categoricals and standardized numbers.
  The bundle's matrix holds label codes for categoricals, which a linear model cannot use as
  numbers; this gives it the encoding it needs, and scores with two numpy products.
- ``FittedCombination``: a weighted mean of fitted models (``churn.automl.ensemble`` builds
  the served ensemble from it); ``BaggedModel``: the mean of one candidate's k fold models.
- ``positive_scorer``: the fastest call that returns exactly a model's positive-class
  probability (compiled trees for forests, HistGradientBoosting, LightGBM and XGBoost).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class OneHotLogistic(ClassifierMixin, BaseEstimator):
    """Logistic regression on one-hot ``categorical_columns`` and the other columns standardized.

    Categorical columns hold label codes (0, 1, 2, ... as the bundle's preprocessor writes them).
    Cost-aware on wide, high-cardinality data: the one-hot matrix is sparse (CSR), and levels
    seen fewer than ``min_level_count`` times in training share one "rare" indicator per
    column (so do codes unseen in training). Scoring never builds the one-hot matrix: one
    product for the numbers, one lookup in a coefficient table for all categorical columns.
    """

    def __init__(
        self,
        categorical_columns: Sequence[int] = (),
        C: float = 1.0,
        max_iter: int = 2000,
        random_state: int = 0,
        min_level_count: int = 2,
    ):
        self.categorical_columns = categorical_columns
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state
        self.min_level_count = min_level_count

    def fit(self, X: np.ndarray, y: np.ndarray) -> OneHotLogistic:
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, dtype=np.float64)
        categorical = sorted(int(c) for c in self.categorical_columns)
        self.numeric_ = np.array([j for j in range(X.shape[1]) if j not in categorical], dtype=np.intp)
        self.categorical_ = np.array(categorical, dtype=np.intp)
        codes = X[:, self.categorical_]
        if codes.size and ((codes < 0).any() or (codes != np.floor(codes)).any()):
            bad = int(np.flatnonzero(((codes < 0) | (codes != np.floor(codes))).any(axis=0))[0])
            raise ValueError(f"categorical column {categorical[bad]} must hold label codes (integers >= 0)")
        # per column: code -> its one-hot position (kept levels 0..m-1; rare and unseen: m)
        self.positions_ = []
        for i in range(len(categorical)):
            counts = np.bincount(codes[:, i].astype(np.int64))
            kept = counts >= self.min_level_count
            position = np.full(len(counts) + 1, int(kept.sum()), dtype=np.int64)  # last slot: unseen codes
            position[: len(counts)][kept] = np.arange(int(kept.sum()))
            self.positions_.append(position)
        numbers = X[:, self.numeric_]
        self.mean_ = numbers.mean(axis=0)
        scale = numbers.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        model.fit(self._encode(X), y)
        self.classes_ = model.classes_
        coef = model.coef_[0]
        self.coef_ = coef[: len(self.numeric_)].copy()
        self.intercept_ = float(model.intercept_[0])
        # scoring table: all columns' code -> coefficient lookups, end to end (offsets_ into table_)
        tables, start = [], len(self.numeric_)
        for position in self.positions_:
            width = int(position[-1]) + 1
            tables.append(coef[start : start + width][position])
            start += width
        self.offsets_ = np.cumsum([0] + [len(t) for t in tables[:-1]]).astype(np.int64)
        self.max_code_ = np.array([len(t) - 2 for t in tables], dtype=np.float64)  # last slot: unseen
        self.table_ = np.concatenate(tables) if tables else np.zeros(0)
        return self

    def _encode(self, X: np.ndarray):
        """The training design matrix, CSR: standardized numbers, then per column its level's (or rare's) 1."""
        from scipy import sparse

        n, k = len(X), len(self.numeric_)
        width = k + len(self.positions_)
        data = np.ones((n, width))
        data[:, :k] = (X[:, self.numeric_] - self.mean_) / self.scale_
        indices = np.empty((n, width), dtype=np.int64)
        indices[:, :k] = np.arange(k)
        offset = k
        for i, position in enumerate(self.positions_):
            indices[:, k + i] = offset + position[X[:, self.categorical_[i]].astype(np.int64)]
            offset += int(position[-1]) + 1
        indptr = np.arange(0, n * width + 1, width)
        return sparse.csr_matrix((data.ravel(), indices.ravel(), indptr), shape=(n, offset))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        out = ((X[:, self.numeric_] - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        if len(self.categorical_):
            codes = X[:, self.categorical_]
            seen = (codes >= 0) & (codes <= self.max_code_)  # False for NaN too
            codes = np.where(seen, codes, self.max_code_ + 1).astype(np.int64)  # a fractional code: its floor
            out += self.table_[codes + self.offsets_].sum(axis=1)
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        positive = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]


class FittedCombination:
    """A weighted mean of already fitted models' positive-class probabilities (no ``fit``).

    The per-model scorers are built on first use and never pickled (they hold compiled views).
    """

    def __init__(self, models: list[Any], weights: Sequence[float]):
        if len(models) != len(weights) or not models:
            raise ValueError("one weight per model, at least one model")
        self.models = list(models)
        self.weights = [float(w) for w in weights]
        self.classes_ = np.array([0, 1])
        self._scorers = None

    @property
    def estimators_(self) -> list[Any]:  # for serving_requirements' walk over nested models
        return list(self.models)

    def __getstate__(self):
        return {**self.__dict__, "_scorers": None}

    def prepare(self) -> FittedCombination:
        """Build the members' scorers (compile their trees) now, not at the first call."""
        if self._scorers is None:
            self._scorers = [positive_scorer(m) for m in self.models]
        return self

    def predict_positive(self, X: np.ndarray) -> np.ndarray:
        self.prepare()
        X = np.asarray(X, dtype=np.float64)
        total = sum(self.weights)
        out = np.zeros(len(X))
        for scorer, weight in zip(self._scorers, self.weights):
            out += (weight / total) * scorer(X)
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        positive = self.predict_positive(X)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_positive(X) > 0.5).astype(np.int64)


class BaggedModel(FittedCombination):
    """The mean probability of one candidate's k fold models (``final_fit: bag``)."""

    def __init__(self, models: list[Any]):
        super().__init__(models, [1.0] * len(models))


def positive_scorer(model: Any, one_off: bool = False) -> Callable[[np.ndarray], np.ndarray]:
    """A function of the float matrix returning ``model.predict_proba(X)[:, class 1]``, without its overheads.

    Args:
        model: a fitted binary classifier.
        one_off: the scorer is called once (training's out-of-fold predictions): LightGBM and
            XGBoost keep their library's predict, since compiling them (a JSON dump of every
            tree, up to a second) costs more than one call, and it would come out of the search budget.

    Returns:
        The scorer; the same numbers (to 1e-9) whichever path it takes.
    """
    positive = list(model.classes_).index(1)
    name = type(model).__name__
    if name == "LGBMClassifier" and getattr(model, "objective_", "binary") == "binary":
        from churn.automl.fast_boosting import CompiledLGBM

        compiled = None if one_off else CompiledLGBM.compile(model)
        if compiled is not None:  # equal to the booster's predict; the trees walked 16 rows at a time
            return compiled.predict_positive
        booster = model.booster_
        return lambda X: booster.predict(X, num_threads=1)
    if name == "XGBClassifier" and model.get_params().get("objective") in (None, "binary:logistic"):
        from churn.automl.fast_boosting import CompiledXGB

        compiled = None if one_off else CompiledXGB.compile(model)
        if compiled is not None:  # XGBoost's float32 probabilities bit for bit, without its per-call cost
            return compiled.predict_positive
        booster = model.get_booster()
        return lambda X: booster.inplace_predict(X)
    if name in ("RandomForestClassifier", "ExtraTreesClassifier"):
        try:
            from churn.fast_forest import CompiledForest

            compiled = CompiledForest.compile(model)
        except Exception:  # an older or newer fast_forest: scikit-learn alone is exact too
            compiled = None
        if compiled is not None:  # equal to predict_proba at any batch size
            return compiled.predict_positive
    if name == "HistGradientBoostingClassifier":
        from churn.automl.fast_boosting import CompiledHistGB

        compiled = CompiledHistGB.compile(model)
        if compiled is not None:  # equal to predict_proba; microseconds instead of milliseconds per call
            return compiled.predict_positive
    return lambda X: model.predict_proba(X)[:, positive]


def scoring_cost(model: Any) -> float:
    """Tree-node visits per scored row (a linear model: 1): what one member adds to the endpoint's time.

    Boosted trees: trees x their depth (LightGBM/HistGB: log2 of their leaf cap); forests: the
    sum of their trees' depths; combinations: the sum of their models'. Unknown models: 100.
    """
    name = type(model).__name__
    if isinstance(model, FittedCombination):
        return float(sum(scoring_cost(m) for m in model.models))
    if name == "OneHotLogistic":
        return 1.0
    if name == "LGBMClassifier":
        leaves = model.get_params().get("num_leaves") or 31
        return float(model.booster_.num_trees() * max(1.0, np.log2(leaves)))
    if name == "XGBClassifier":
        depth = model.get_params().get("max_depth") or 6
        return float(model.get_booster().num_boosted_rounds() * depth)
    if name == "HistGradientBoostingClassifier":
        leaves = model.get_params().get("max_leaf_nodes") or 31
        return float(model.n_iter_ * max(1.0, np.log2(leaves)))
    if name in ("RandomForestClassifier", "ExtraTreesClassifier"):
        return float(sum(tree.tree_.max_depth for tree in model.estimators_))
    return 100.0

"""The model classes an AutoML bundle may hold, beyond the libraries' own (numpy/sklearn only, no FLAML).

They are pickled into ``estimator.joblib``, so their module path is part of the bundle
format: move or rename them only with a compatibility import here.

- ``OneHotLogistic``: logistic regression on one-hot categoricals and standardized numbers.
  The bundle's matrix holds label codes for categoricals, which a linear model cannot use as
  numbers; this gives it the encoding it needs, and scores with two numpy products.
- ``FittedCombination``: a weighted mean of fitted models (``churn.automl.ensemble`` builds
  the served ensemble from it); ``BaggedModel``: the mean of one candidate's k fold models.
- ``positive_scorer``: the fastest call that returns exactly a model's positive-class
  probability (the booster for LightGBM/XGBoost, the compiled trees for a forest on a few rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

SMALL_BATCH_ROWS = 128  # at most this many rows: a forest is scored by churn.fast_forest


class OneHotLogistic(ClassifierMixin, BaseEstimator):
    """Logistic regression on one-hot ``categorical_columns`` and the other columns standardized."""

    def __init__(
        self, categorical_columns: Sequence[int] = (), C: float = 1.0, max_iter: int = 2000, random_state: int = 0
    ):
        self.categorical_columns = categorical_columns
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> OneHotLogistic:
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, dtype=np.float64)
        categorical = sorted(int(c) for c in self.categorical_columns)
        self.numeric_ = np.array([j for j in range(X.shape[1]) if j not in categorical], dtype=np.intp)
        self.categorical_ = np.array(categorical, dtype=np.intp)
        self.categories_ = [np.unique(X[:, j]) for j in categorical]
        numbers = X[:, self.numeric_]
        self.mean_ = numbers.mean(axis=0)
        scale = numbers.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)
        model.fit(self._encode(X), y)
        self.classes_ = model.classes_
        self.coef_ = model.coef_[0].copy()
        self.intercept_ = float(model.intercept_[0])
        return self

    def _encode(self, X: np.ndarray) -> np.ndarray:
        parts = [(X[:, self.numeric_] - self.mean_) / self.scale_]
        parts += [
            (X[:, [j]] == categories[None, :]).astype(np.float64)
            for j, categories in zip(self.categorical_, self.categories_)
        ]
        return np.hstack(parts)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self._encode(np.asarray(X, dtype=np.float64)) @ self.coef_ + self.intercept_

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

    def predict_positive(self, X: np.ndarray) -> np.ndarray:
        if self._scorers is None:
            self._scorers = [positive_scorer(m) for m in self.models]
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


def positive_scorer(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A function of the float matrix returning ``model.predict_proba(X)[:, class 1]``, without its overheads."""
    positive = list(model.classes_).index(1)
    name = type(model).__name__
    if name == "LGBMClassifier" and getattr(model, "objective_", "binary") == "binary":
        booster = model.booster_
        return lambda X: booster.predict(X, num_threads=1)
    if name == "XGBClassifier" and model.get_params().get("objective") in (None, "binary:logistic"):
        booster = model.get_booster()
        return lambda X: booster.inplace_predict(X)
    if name in ("RandomForestClassifier", "ExtraTreesClassifier"):
        try:
            from churn.fast_forest import CompiledForest

            compiled = CompiledForest.compile(model)
        except Exception:  # an older or newer fast_forest: scikit-learn alone is exact too
            compiled = None
        if compiled is not None:
            return lambda X: (
                compiled.predict_positive(X) if len(X) <= SMALL_BATCH_ROWS else model.predict_proba(X)[:, positive]
            )
    return lambda X: model.predict_proba(X)[:, positive]

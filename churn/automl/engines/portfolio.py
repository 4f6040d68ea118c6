"""Candidates and their out-of-fold predictions: the portfolio of strong defaults, and FLAML's finds.

A candidate is a model family plus a configuration. The portfolio is a fixed, ordered list
of configurations known to do well on tabular data (each library's defaults first, then a
few slower-learning boosted trees, as AutoGluon's and FLAML's zero-shot portfolios do); it is
evaluated before any search, in order, with the same stratified k folds (the config's seed),
so while the budget lasts it is deterministic. FLAML's best configuration per family is a
candidate too (``source: flaml``), fitted through FLAML's own learner classes so that its
hyperparameter names mean what they meant in the search; the fitted model is the library's
own (no FLAML needed to load it).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from churn.automl.models import OneHotLogistic, positive_scorer


@dataclass(frozen=True)
class Candidate:
    """One model to evaluate: ``family`` (a FLAML learner name or ``logistic``) and its ``config``."""

    name: str
    family: str
    config: dict[str, Any]
    source: str = "portfolio"  # portfolio | flaml


# Ordered: the strong defaults first (what a data scientist tries first, cheapest first on the
# data at hand: see ``portfolio``), then slower learners. When the budget runs out the rest is
# skipped, so the order is what a short budget gets.
DEFAULTS: Sequence[Candidate] = (
    Candidate("logistic_default", "logistic", {"C": 1.0}),  # on narrow data it costs ~1% of a boosted model
    Candidate("histgb_default", "histgb", {}),
    Candidate("lgbm_default", "lgbm", {}),
)
PORTFOLIO: Sequence[Candidate] = (
    *DEFAULTS,
    Candidate("logistic_c0.1", "logistic", {"C": 0.1}),
    Candidate(
        "lgbm_slow",
        "lgbm",
        {
            "n_estimators": 400,
            "learning_rate": 0.03,
            "num_leaves": 15,
            "min_child_samples": 20,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.7,
            "reg_lambda": 1.0,
        },
    ),
    Candidate("rf_spec", "rf", {"n_estimators": 100, "max_depth": 10}),
    Candidate(
        "xgboost_d4",
        "xgboost",
        {
            "n_estimators": 300,
            "learning_rate": 0.05,
            "max_depth": 4,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "min_child_weight": 2,
        },
    ),
    Candidate("extra_tree_300", "extra_tree", {"n_estimators": 300, "min_samples_leaf": 2}),
    Candidate(
        "histgb_slow",
        "histgb",
        {
            "learning_rate": 0.05,
            "max_iter": 250,
            "max_leaf_nodes": 15,
            "min_samples_leaf": 40,
            "l2_regularization": 1.0,
            "early_stopping": False,
        },
    ),
    Candidate(
        "lgbm_xt",
        "lgbm",
        {
            "n_estimators": 300,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "extra_trees": True,
            "colsample_bytree": 0.8,
            "min_child_samples": 10,
        },
    ),
    Candidate(
        "xgboost_d6",
        "xgboost",
        {
            "n_estimators": 400,
            "learning_rate": 0.03,
            "max_depth": 6,
            "subsample": 0.8,
            "colsample_bytree": 0.6,
            "min_child_weight": 3,
        },
    ),
)


@dataclass(frozen=True)
class DataProfile:
    """What a candidate's fit cost depends on: rows, numeric columns and one-hot width of the categoricals."""

    rows: int
    numeric: int
    categorical: int
    one_hot_width: int  # the linear model's levels (rare levels grouped, as OneHotLogistic does)

    @classmethod
    def of(cls, X: np.ndarray, categorical: Sequence[int], min_level_count: int = 2) -> DataProfile:
        width = 0
        for j in categorical:
            counts = np.unique(X[:, j], return_counts=True)[1]
            width += int((counts >= min_level_count).sum()) + 1
        return cls(len(X), X.shape[1] - len(categorical), len(categorical), width)


def expected_cost(candidate: Candidate, data: DataProfile) -> float:
    """A fit's relative cost on ``data`` (for ordering only; one unit ~ one row x feature x tree).

    Trees: rows x features x trees. The linear model (sparse one-hot, see OneHotLogistic): rows x
    its nonzeros per row (one per column) x ~10 solver passes, plus its width's share (its
    parameters grow with the one-hot width, and so do the passes to converge); measured: a
    fold of 40k rows with a 500-level column costs about a default LightGBM's.
    """
    features = data.numeric + data.categorical
    if candidate.family == "logistic":
        return data.rows * (features + data.one_hot_width / 10.0) * 10.0
    trees = candidate.config.get("n_estimators", candidate.config.get("max_iter", 100))
    return float(data.rows * features * trees)


def portfolio(families: Sequence[str], data: DataProfile | None = None) -> list[Candidate]:
    """The portfolio's candidates whose family is allowed, in order: the defaults cheapest first on ``data``."""
    defaults = [c for c in DEFAULTS if c.family in families]
    if data is not None:
        defaults.sort(key=lambda c: expected_cost(c, data))  # stable: equal costs keep the listed order
    return defaults + [c for c in PORTFOLIO[len(DEFAULTS) :] if c.family in families]


def build(candidate: Candidate, categorical: Sequence[int], seed: int, n_jobs: int) -> Any:
    """An unfitted estimator for a portfolio candidate (seeded, ``n_jobs`` threads)."""
    family, config = candidate.family, dict(candidate.config)
    if family == "logistic":
        return OneHotLogistic(categorical_columns=tuple(categorical), random_state=seed, **config)
    if family == "histgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=seed, **config)
    if family == "lgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(random_state=seed, n_jobs=n_jobs, verbose=-1, **config)
    if family in ("xgboost", "xgb_limitdepth"):
        from xgboost import XGBClassifier

        return XGBClassifier(random_state=seed, n_jobs=n_jobs, tree_method="hist", verbosity=0, **config)
    if family == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **config)
    if family == "extra_tree":
        from sklearn.ensemble import ExtraTreesClassifier

        return ExtraTreesClassifier(random_state=seed, n_jobs=n_jobs, **config)
    raise ValueError(f"no portfolio builder for family {family!r}")


def fit_candidate(
    candidate: Candidate, X: np.ndarray, y: np.ndarray, categorical: Sequence[int], seed: int, n_jobs: int
) -> Any:
    """``candidate`` fitted on (X, y): the library's own model object."""
    if candidate.source == "flaml":
        from churn.automl.engines.flaml_search import flaml_learner

        wrapper = flaml_learner(candidate.family, categorical)(task="binary", n_jobs=n_jobs, **candidate.config)
        wrapper.fit(X, y)
        return wrapper.estimator
    return build(candidate, categorical, seed, n_jobs).fit(X, y)


@dataclass
class Evaluated:
    """A candidate with its out-of-fold probabilities, score and k fold models."""

    candidate: Candidate
    oof: np.ndarray
    score: float
    fold_models: list[Any] = field(repr=False)
    fit_seconds: float  # mean seconds of one fold's fit
    complete: bool = True  # False: the deadline came after some folds (oof/score cover only those rows)


def evaluate(
    candidate: Candidate,
    X: np.ndarray,
    y: np.ndarray,
    folds: list[tuple],
    categorical: Sequence[int],
    seed: int,
    n_jobs: int,
    score,
    deadline: float,
    fold_seconds: float = 0.0,
) -> Evaluated | None:
    """Fit ``candidate`` on each fold and predict the held-out rows, within ``deadline``.

    A fold is started only when the expected fold time (``fold_seconds`` before the first fold,
    then the mean so far) still fits before ``deadline``. Cut short after some folds: an
    incomplete result (its fold models can still serve if nothing completes); before any: None.
    """
    score_rows = getattr(score, "rows", None) or (lambda proba, rows: score(proba))
    oof = np.zeros(len(y))
    models, seconds = [], []
    for train_rows, valid_rows in folds:
        expected = np.mean(seconds) if seconds else fold_seconds
        if time.perf_counter() + expected > deadline:
            if not models:
                return None
            done = np.concatenate([valid for _, valid in folds[: len(models)]])
            return Evaluated(
                candidate, oof, float(score_rows(oof[done], done)), models, float(np.mean(seconds)), complete=False
            )
        started = time.perf_counter()
        model = fit_candidate(candidate, X[train_rows], y[train_rows], categorical, seed, n_jobs)
        seconds.append(time.perf_counter() - started)
        oof[valid_rows] = positive_scorer(model, one_off=True)(X[valid_rows])
        models.append(model)
    return Evaluated(candidate, oof, float(score(oof)), models, float(np.mean(seconds)))

"""Model training as plain functions (the train steps wrap these)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from churn.bundle import ModelBundle
from churn.preprocessing import Preprocessor


def train_random_forest(
    train: pd.DataFrame,
    preprocessor: Preprocessor,
    hyperparameters: dict[str, Any],
    random_state: int,
    info: dict[str, Any] | None = None,
) -> ModelBundle:
    """Fit the spec's RandomForest on preprocessed training rows; return the bundle.

    ``n_jobs=1`` on the estimator: single-row scoring is 5x slower with a thread pool.
    """
    from sklearn.ensemble import RandomForestClassifier

    matrix, _ = preprocessor.transform(train)
    y = train[preprocessor.target].to_numpy(dtype=int)
    estimator = RandomForestClassifier(**hyperparameters, random_state=random_state, n_jobs=-1)
    started = time.perf_counter()
    estimator.fit(matrix, y)
    seconds = time.perf_counter() - started
    estimator.set_params(n_jobs=1)
    bundle_info = {
        "model_type": "random_forest",
        "hyperparameters": dict(hyperparameters),
        "random_state": random_state,
        "train_rows": int(len(train)),
        "train_seconds": round(seconds, 3),
        "feature_importances": dict(zip(preprocessor.feature_order, map(float, estimator.feature_importances_))),
    }
    bundle_info.update(info or {})
    return ModelBundle(estimator=estimator, preprocessor=preprocessor, info=bundle_info)


def evaluate_bundle(bundle: ModelBundle, test: pd.DataFrame) -> dict[str, Any]:
    """The spec's evaluation report for ``bundle`` on held-out rows."""
    from churn.evaluation import classification_metrics

    proba, unseen = bundle.predict_proba(test)
    report = classification_metrics(test[bundle.target].to_numpy(dtype=int), proba)
    report["unseen_categories"] = unseen
    return report

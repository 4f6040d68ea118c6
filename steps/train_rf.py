"""TrainModel: the spec's RandomForest, tracked in the stack's experiment tracker (MLflow)."""

from __future__ import annotations

from typing import Annotated

import mlflow
import pandas as pd
from zenml import step

from churn.artifacts import FeatureLineage
from churn.bundle import ModelBundle
from churn.preprocessing import Preprocessor
from churn.training import train_random_forest
from materializers.bundle_materializer import ModelBundleMaterializer
from stacks.contracts import EXPERIMENT_TRACKER
from steps.caching import TRAINING_CACHE


@step(experiment_tracker=EXPERIMENT_TRACKER, cache_policy=TRAINING_CACHE, output_materializers=ModelBundleMaterializer)
def train_rf(
    train_set: pd.DataFrame,
    preprocessor: Preprocessor,
    hyperparameters: dict,
    random_state: int,
    feature_query: FeatureLineage,
) -> Annotated[ModelBundle, "model_bundle"]:
    """Fit RandomForest with the configured hyperparameters; the bundle carries the preprocessing.

    Args:
        train_set: Raw training rows (features + target) from the preprocess step.
        preprocessor: The fitted preprocessing (travels in the bundle).
        hyperparameters: The config's ``hyperparameters`` (``churn.config.RandomForestParams``).
        random_state: Seed of the forest.
        feature_query: Lineage of the training data (recorded in the bundle and in MLflow).

    Returns:
        The trained model bundle.
    """
    bundle = train_random_forest(
        train_set,
        preprocessor,
        hyperparameters,
        random_state,
        feature_query.bundle_info(mlflow.active_run().info.run_id),
    )
    mlflow.log_params(
        {
            **hyperparameters,
            "model_type": "random_forest",
            "random_state": random_state,
            "train_rows": len(train_set),
            "feature_group": feature_query.feature_group,
        }
    )
    mlflow.log_metric("train_seconds", bundle.info["train_seconds"])
    mlflow.set_tags({"data_fingerprint": feature_query.data_fingerprint, "feature_query": feature_query.description})
    mlflow.log_text(feature_query.sql, "feature_query.sql")
    print(f"Trained RandomForest on {len(train_set)} rows in {bundle.info['train_seconds']:.2f}s")
    return bundle

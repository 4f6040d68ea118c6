"""AutoMLTraining: search model families within the budget, on the engine the active stack names."""

from __future__ import annotations

from typing import Annotated

import mlflow
import pandas as pd
from zenml import log_metadata, step
from zenml.client import Client
from zenml.config.cache_policy import CachePolicy

from churn.artifacts import FeatureLineage
from churn.automl import AutoMLSettings
from churn.automl import train_automl as run_automl
from churn.bundle import ModelBundle
from churn.preprocessing import Preprocessor
from materializers.bundle_materializer import ModelBundleMaterializer
from stacks.contracts import AUTOML_ENGINE_LABEL as ENGINE_LABEL  # label absent: local engine
from stacks.contracts import EXPERIMENT_TRACKER
from steps.caching import churn_code_hash


def stack_automl_engine() -> str | None:
    """The AutoML engine the active stack names in its labels.

    Returns:
        The engine's name, or None for the default (local, in-process) engine.
    """
    labels = Client().active_stack_model.labels or {}
    return labels.get(ENGINE_LABEL)


def automl_cache_key() -> str:
    """The training cache key's extra part: our code, and the engine the active stack names.

    Returns:
        ``<code hash>:<engine or "default">``.
    """
    return f"{churn_code_hash()}:{stack_automl_engine() or 'default'}"


@step(
    experiment_tracker=EXPERIMENT_TRACKER,
    cache_policy=CachePolicy(cache_func=automl_cache_key),
    output_materializers=ModelBundleMaterializer,
)
def train_automl(
    train_set: pd.DataFrame,
    preprocessor: Preprocessor,
    settings: AutoMLSettings,
    feature_query: FeatureLineage,
) -> Annotated[ModelBundle, "model_bundle"]:
    """Run the AutoML search on the training split; the best model comes back as a bundle with the preprocessing.

    Args:
        train_set: Raw training rows (features + target) from the preprocess step.
        preprocessor: The fitted preprocessing (travels in the bundle).
        settings: What to search and for how long (objective, budget, mode, families, seed): a step
            parameter that ZenML validates into ``AutoMLSettings``.
        feature_query: Lineage of the training data (feature group, range, fingerprint).

    Returns:
        The best model (or ensemble) as a bundle.

    Raises:
        churn.automl.AutoMLError: The stack names an unknown engine, or the search cannot run.
    """
    lineage = feature_query.bundle_info(mlflow.active_run().info.run_id)
    bundle = run_automl(train_set, preprocessor, settings, engine=stack_automl_engine(), info=lineage)
    automl = bundle.info["automl"]
    mlflow.log_params(
        {
            "model_type": "automl",
            "automl_engine": bundle.info["automl_engine"],
            "objective_metric_name": settings.objective,
            "mode": settings.mode,
            "max_runtime_sec": settings.max_runtime_sec,
            "max_candidates": settings.max_candidates,
            "families": ",".join(settings.families),
            "best_family": automl["best_family"],
            "ensemble": ",".join(f"{m['name']}:{m['weight']}" for m in automl["ensemble_members"]),
            "random_state": settings.seed,
            "train_rows": len(train_set),
            "feature_group": feature_query.feature_group,
            **{f"best_{k}": v for k, v in automl["best_config"].items()},
        }
    )
    mlflow.log_metrics(
        {
            "train_seconds": bundle.info["train_seconds"],
            "automl_trials": automl["trials"],
            **{f"automl_{k}": automl[k] for k in ("best_cv_score", "ensemble_cv_score") if automl[k] is not None},
            **{f"automl_trials_{f}": s["trials"] for f, s in automl["families"].items()},
        }
    )
    mlflow.set_tags({"data_fingerprint": feature_query.data_fingerprint, "feature_query": feature_query.description})
    mlflow.log_dict(automl, "automl/search.json")
    mlflow.log_text(feature_query.sql, "feature_query.sql")
    log_metadata(
        metadata={"automl": {k: automl[k] for k in ("best_family", "best_cv_score", "trials", "total_seconds")}}
    )
    members = " + ".join(f"{m['weight']:.2f} {m['name']}" for m in automl["ensemble_members"])
    print(
        f"AutoML ({bundle.info['automl_engine']}, {settings.objective}, {settings.mode}): "
        f"{automl['trials']} candidates "
        f"in {automl['total_seconds']:.1f}s; best family {automl['best_family']} "
        f"(cv {settings.objective} {automl['best_cv_score']}); model: {members}"
    )
    return bundle

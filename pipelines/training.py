"""The training pipelines: DataSource -> Preprocess -> Train -> Evaluate -> Gate -> Register -> Deploy.

The two variants differ only in their train step; everything around it is :func:`_train_gate_register_deploy`,
written once and called inside both ``@pipeline`` bodies. With ``compare_to_champion`` on, ScoreChampion
scores the current champion on the test set before Evaluate, whose verdict then holds the new model against it.

Each run is a version of the ZenML model named after the config's ``model_package_group``
(``churn.model_control``: its metrics, bundle, report, registry version and endpoint; stage from
approval and deployment).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zenml import pipeline

from churn.automl import AutoMLSettings
from churn.config import deploy_settings
from churn.model_control import version_this_run
from steps.alert import notify_failure
from steps.deploy import deploy
from steps.evaluate import evaluate
from steps.gate import gate
from steps.preprocess import preprocess
from steps.register import register
from steps.score_champion import score_champion
from steps.source import source_features
from steps.train_automl import train_automl
from steps.train_rf import train_rf

# (train_set, preprocessor, feature_query) -> the model_bundle step output
TrainStep = Callable[[Any, Any, Any], Any]


def _train_gate_register_deploy(config: dict, train: TrainStep) -> None:
    """The steps both variants share, around ``train`` (``config`` is a validated PipelineConfig dump)."""
    version_this_run(config["model_package_group"])  # Model Control Plane: one version per run
    raw, feature_query = source_features(
        config["feature_group_name"], config["customer_id_start"], config["customer_id_end"], config["as_of"]
    )
    train_set, test_set, preprocessor, _ = preprocess(
        raw, config["target_column"], config["test_size"], config["random_state"]
    )
    bundle = train(train_set, preprocessor, feature_query)
    champion = None
    if config["compare_to_champion"]:  # the champion/challenger gate; off, the spec's threshold alone decides
        champion = score_champion(
            test_set, config["model_package_group"], config["gate_metric"], config["champion_tolerance"]
        )
    report = evaluate(bundle, test_set, config["gate_metric"], config["accuracy_threshold"], champion)
    verdict = gate(report)
    registration, _ = register(
        bundle, report, verdict, feature_query, config["model_package_group"], config["approval_status"], test_set
    )
    deploy(registration, config["endpoint_name"], config["deploy"], deploy_settings(config))


@pipeline(on_failure=notify_failure)
def churn_rf_training(config: dict) -> None:
    """The spec's RandomForest training pipeline; ``config`` is a validated PipelineConfig dump."""
    _train_gate_register_deploy(
        config,
        lambda train_set, preprocessor, feature_query: train_rf(
            train_set, preprocessor, config["hyperparameters"], config["random_state"], feature_query
        ),
    )


@pipeline(on_failure=notify_failure)
def churn_automl_training(config: dict) -> None:
    """The spec's AutoML training pipeline: the rf pipeline's steps, with AutoML in place of RandomForest.

    Which AutoML engine runs follows the active stack (local: FLAML in process); it
    registers into ``model_package_group`` and deploys to ``endpoint_name`` from the config.
    """
    settings = AutoMLSettings.from_config(config)
    _train_gate_register_deploy(
        config,
        lambda train_set, preprocessor, feature_query: train_automl(train_set, preprocessor, settings, feature_query),
    )

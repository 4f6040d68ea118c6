"""RegisterModel: a new version in the stack's model registry, with full lineage.

All or nothing (``churn.model_registry.register_all_or_nothing``): the version is created
pending, the lineage is recorded, and only then is it given its approval status; a
failure in between withdraws the version.
"""

from __future__ import annotations

import tempfile
from typing import Annotated

import mlflow
import pandas as pd
import zenml
from zenml import get_step_context, log_metadata, step
from zenml.client import Client
from zenml.types import HTMLString

from churn.artifacts import FeatureLineage, GateVerdict, Registration
from churn.bundle import ModelBundle
from churn.evaluation import EvaluationReport
from churn.mlflow_model import log_bundle_model
from churn.model_control import record_run_version, stage_for, version_metadata, warn_only
from churn.model_registry import register_all_or_nothing, version_bundle_uri
from churn.report_html import model_card_html
from materializers.artifact_materializer import TypedArtifactMaterializer
from stacks.contracts import EXPERIMENT_TRACKER


@step(
    experiment_tracker=EXPERIMENT_TRACKER,
    enable_cache=False,
    output_materializers={"registration": TypedArtifactMaterializer},
)
def register(
    model_bundle: ModelBundle,
    evaluation_report: EvaluationReport,
    gate_verdict: GateVerdict,
    feature_query: FeatureLineage,
    model_name: str,
    approval_status: str,
    test_set: pd.DataFrame,
) -> tuple[Annotated[Registration, "registration"], Annotated[HTMLString, "model_card"]]:
    """Register the bundle when the gate passed; otherwise register nothing and say why.

    Args:
        model_bundle: The trained model with its preprocessing.
        evaluation_report: Its metrics (recorded on the version and, when training was reused, logged again).
        gate_verdict: CheckModelQuality's verdict; nothing is registered unless it passed.
        feature_query: Lineage of the training data (recorded on the version).
        model_name: The registered model (the config's ``model_package_group``).
        approval_status: The status the version gets once registration completed.
        test_set: The held-out rows; a few of them become the MLflow model's input example.

    Returns:
        The registration record and a model card (data, metrics, gate, lineage).

    Raises:
        Exception: The registry's or MLflow's error, re-raised after the half-made version was withdrawn.
    """
    if not gate_verdict.passed:
        print(f"Not registered: {gate_verdict.message}")
        registration = Registration.refused(gate_verdict.message)
        warn_only(  # the refusal's metrics and verdict on the run's ZenML model version: bookkeeping only
            "the refused run's metrics and gate verdict on its ZenML model version",
            record_run_version,
            version_metadata(evaluation_report, gate_verdict.model_dump()),
        )
        return registration, HTMLString(
            model_card_html(registration, evaluation_report, gate_verdict, feature_query, model_bundle.info)
        )
    context = get_step_context()
    run = mlflow.active_run()
    trained_in = model_bundle.info.get("mlflow_run_id") or run.info.run_id
    if trained_in != run.info.run_id:  # training reused from an earlier run (ZenML cache: same data and code)
        mlflow.log_metrics({k: v for k, v in evaluation_report.items() if isinstance(v, float)})
        print(f"Training and evaluation reused from MLflow run {trained_in} (unchanged data and code)")
    with tempfile.TemporaryDirectory() as tmp:  # an MLflow pyfunc model with the bundle inside, unchanged
        sha256 = model_bundle.save(f"{tmp}/bundle")
        logged = log_bundle_model(model_bundle, f"{tmp}/bundle", sha256, example_rows=test_set)
    bundle_uri = logged.bundle_uri  # what our server and batch load (and verify against bundle_sha256)
    tags = {
        "approval_status": approval_status,
        "bundle_sha256": sha256,
        "bundle_uri": bundle_uri,
        "mlflow_model_id": logged.model_id,
        "mlflow_run_id": run.info.run_id,
        "trained_in_mlflow_run_id": trained_in,
        **feature_query.registry_tags(),
        **{f"metric_{k}": f"{v:.6f}" for k, v in evaluation_report.items() if isinstance(v, float)},
    }
    metadata = dict(
        zenml_version=zenml.__version__,
        zenml_run_name=context.pipeline_run.name,
        zenml_pipeline_name=context.pipeline.name,
        zenml_pipeline_run_uuid=str(context.pipeline_run.id),
        zenml_step_name=context.step_name,
        zenml_project=str(context.pipeline_run.project_id),
        **tags,
    )

    def record_lineage(version) -> Registration:  # runs before the version is approved; a failure here withdraws it
        mlflow.set_tags(
            {
                "registered_model": model_name,
                "registered_model_version": version.version,
                "approval_status": approval_status,
                "trained_in_mlflow_run_id": trained_in,
            }
        )
        registration = Registration(
            registered=True,
            model_name=model_name,
            version=str(version.version),
            bundle_uri=version_bundle_uri(version),  # where the registry keeps it (SageMaker: its S3 copy)
            sha256=sha256,
            approval_status=approval_status,
            mlflow_run_id=run.info.run_id,
            trained_in_mlflow_run_id=trained_in,
            zenml_run_id=str(context.pipeline_run.id),
        )
        log_metadata(metadata={"registration": registration.model_dump(mode="json", exclude_none=True)})
        return registration

    version, registration = register_all_or_nothing(
        Client().active_stack.model_registry,
        model_name,
        logged.model_uri,
        metadata,
        approval_status,
        description=f"{type(model_bundle.estimator).__name__}; {gate_verdict.message}",
        then=record_lineage,
    )
    print(f"Registered {model_name} version {version.version} ({approval_status})")
    warn_only(  # the run's ZenML model version: metrics, registry version (package ARN), stage; after the commit
        f"{model_name} v{version.version}'s metadata and stage on the run's ZenML model version",
        record_run_version,
        version_metadata(
            evaluation_report,
            gate_verdict.model_dump(),
            registration.model_dump(),
            version.metadata.model_dump() if version.metadata else None,
        ),
        stage_for(approval_status, deployed=False),
    )
    card = model_card_html(
        registration,
        evaluation_report,
        gate_verdict,
        feature_query,
        model_bundle.info,
        mlflow_tracking_uri=mlflow.get_tracking_uri(),
    )
    return registration, HTMLString(card)

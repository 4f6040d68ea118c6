"""Load the latest Approved model version from the active stack's model registry."""

from __future__ import annotations

import tempfile
from typing import Annotated, Tuple

from zenml import log_metadata, step
from zenml.client import Client
from zenml.model_registries.base_model_registry import ModelRegistryModelMetadata

from churn.batch import fetch_bundle
from churn.bundle import ModelBundle
from materializers.bundle_materializer import ModelBundleMaterializer


@step(enable_cache=False, output_materializers={"model_bundle": ModelBundleMaterializer})
def load_approved_model(model_name: str) -> Tuple[Annotated[ModelBundle, "model_bundle"], Annotated[dict, "model_version"]]:
    """The newest version whose approval_status is Approved, its bundle checked against the recorded SHA-256."""
    registry = Client().active_stack.model_registry
    if registry is None:
        raise RuntimeError("the active stack has no model registry")
    versions = registry.list_model_versions(
        name=model_name, metadata=ModelRegistryModelMetadata(approval_status="Approved"), order_by_date="desc", count=1)
    if not versions:
        raise RuntimeError(f"model '{model_name}' has no Approved version in the registry; train one with `python run.py --variant rf`")
    version = versions[0]
    tags = version.metadata.model_dump() if version.metadata else {}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = fetch_bundle(version.model_source_uri, f"{tmp}/bundle", expected_sha256=tags.get("bundle_sha256"))
    info = {"model_name": model_name, "version": str(version.version), "model_source_uri": version.model_source_uri,
            "bundle_sha256": tags.get("bundle_sha256"), "mlflow_run_id": tags.get("mlflow_run_id"),
            "zenml_pipeline_run_uuid": tags.get("zenml_pipeline_run_uuid")}
    log_metadata(metadata={"model_version": info})
    print(f"Scoring with {model_name} version {version.version}")
    return bundle, info

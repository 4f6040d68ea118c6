"""Load the approved model from the active stack's model registry, verified against its recorded SHA-256."""

from __future__ import annotations

import tempfile
from typing import Annotated

from zenml import log_metadata, step
from zenml.client import Client

from churn.batch import fetch_bundle
from churn.bundle import ModelBundle, require_recorded_sha256
from churn.model_registry import model_to_serve, version_bundle_uri
from materializers.bundle_materializer import ModelBundleMaterializer


@step(enable_cache=False, output_materializers={"model_bundle": ModelBundleMaterializer})
def load_approved_model(
    model_name: str,
) -> tuple[Annotated[ModelBundle, "model_bundle"], Annotated[dict, "model_version"]]:
    """The model to serve (``churn.model_registry.model_to_serve``: the rule deploy uses too).

    Its bundle is refused when the registry recorded no SHA-256 or the bytes differ.

    Args:
        model_name: The registered model (the batch config's ``model_package_group``).

    Returns:
        The verified bundle, and the version it is (name, version, source URI, sha256, MLflow and ZenML runs).

    Raises:
        RuntimeError: The stack has no model registry, or the model has no Approved version.
        churn.bundle.BundleError: No SHA-256 was recorded, or the bundle's bytes differ from it.
    """
    registry = Client().active_stack.model_registry
    if registry is None:
        raise RuntimeError("the active stack has no model registry")
    version = model_to_serve(registry, model_name)
    if version is None:
        raise RuntimeError(
            f"model '{model_name}' has no Approved version in the registry; train one with `python run.py --variant rf`"
        )
    tags = version.metadata.model_dump() if version.metadata else {}
    sha256 = require_recorded_sha256(
        tags.get("bundle_sha256"), f"the registry's record of {model_name} version {version.version}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        bundle = fetch_bundle(version_bundle_uri(version), f"{tmp}/bundle", expected_sha256=sha256)
    info = {
        "model_name": model_name,
        "version": str(version.version),
        "model_source_uri": version.model_source_uri,
        "bundle_uri": version_bundle_uri(version),
        "bundle_sha256": sha256,
        "mlflow_run_id": tags.get("mlflow_run_id"),
        "zenml_pipeline_run_uuid": tags.get("zenml_pipeline_run_uuid"),
    }
    log_metadata(metadata={"model_version": info})
    print(f"Scoring with {model_name} version {version.version}")
    return bundle, info

"""Batch inference pipeline (the spec's batch_inference_poc): feature store -> latest approved model -> predictions."""

from __future__ import annotations

from zenml import pipeline

from steps.alert import notify_failure
from steps.batch_predict import batch_predict
from steps.load_model import load_approved_model
from steps.source import source_features


@pipeline(on_failure=notify_failure, enable_cache=False)
def churn_batch_inference(config: dict) -> None:
    """``config`` is a validated BatchConfig dump."""
    raw, _ = source_features(
        config["feature_group_name"], config["customer_id_start"], config["customer_id_end"], config["as_of"]
    )
    bundle, version = load_approved_model(config["model_package_group"])
    batch_predict(
        raw,
        bundle,
        version,
        config["output_uri"],
        config["output_format"],
        config["chunk_rows"],
        config["instance_type"],
        config["instance_count"],
    )

"""Item 9: the rf training pipeline, unchanged, on our four SageMaker components (emulator).

Local orchestrator + local artifact store + the MLflow tracker ``mlflow_tracker``, with the
SageMaker feature store, model registry, endpoint deployer and SNS alerter. No step knows
which backend it talks to: the same pipeline runs in tests/test_pipeline_local.py.
"""

from __future__ import annotations

import json

import mlflow
import pytest

from churn.config import load_config
from churn.feature_query import FeatureQuery
from tests.cloud import moto_extensions as emulator
from tests.cloud.conftest import REGION, boto

pytestmark = pytest.mark.pipeline
GROUP = "mlops_poc_churn_classification_feature"
MODEL = "classification-model-group"
ENDPOINT = "classification-model-endpoint"
CUSTOMERS, TRAIN_END = 1000, 800


def _out(run, step, name):
    return run.steps[step].outputs[name][0].load()


def test_rf_training_pipeline_runs_on_the_sagemaker_stack(aws, bucket, sns_inbox, active_stack, tmp_path):
    from zenml.client import Client

    from churn.demo_data import generate_customers
    from pipelines.training import churn_rf_training

    _, read_inbox = sns_inbox
    assert [
        c.flavor
        for c in (
            active_stack.feature_store,
            active_stack.model_registry,
            active_stack.model_deployer,
            active_stack.alerter,
        )
    ] == ["churn_sagemaker_feature_store", "churn_sagemaker_registry", "churn_sagemaker_endpoint", "churn_sns"]
    summary = active_stack.feature_store.ingest(GROUP, generate_customers(CUSTOMERS, seed=42), "churn")
    assert summary["created"] and summary["records"] == CUSTOMERS
    query = FeatureQuery(GROUP, 1, TRAIN_END)
    expected_sql = emulator.queue_latest_records(aws, query, REGION)
    # the pipeline config's deploy keys are what the SageMaker endpoint gets (not the stack's or a default)
    config = load_config(
        "configs/rf.yaml",
        customer_id_end=TRAIN_END,
        inference_instance_type="ml.c5.large",
        autoscaling_min_capacity=2,
        autoscaling_max_capacity=3,
        target_invocations_per_instance=50,
    ).model_dump()

    run = Client().get_pipeline_run(churn_rf_training.with_options(enable_cache=False)(config=config).id)

    assert run.status.value == "completed"
    lineage = _out(run, "source_features", "feature_query")
    assert lineage.sql == expected_sql == emulator.athena_queries()[-1] and lineage.rows == TRAIN_END
    registration, deployment = _out(run, "register", "registration"), _out(run, "deploy", "deployment")
    assert registration.registered and registration.version == "1" and deployment.deployed

    # registry version <-> MLflow run <-> ZenML run <-> data, both ways
    version = active_stack.model_registry.get_model_version(MODEL, "1")
    tags = version.metadata.model_dump()
    assert version.stage.value == "Production" and tags["approval_status"] == "Approved"
    assert tags["zenml_pipeline_run_uuid"] == str(run.id) and tags["mlflow_run_id"] == registration.mlflow_run_id
    assert tags["feature_query_sql"] == expected_sql and tags["data_fingerprint"] == lineage.data_fingerprint
    mlflow.set_tracking_uri(active_stack.experiment_tracker.get_tracking_uri())
    mlflow_run = mlflow.get_run(registration.mlflow_run_id)
    assert mlflow_run.data.tags["sagemaker_model_package_arn"] == tags["model_package_arn"]
    assert float(mlflow_run.data.metrics["accuracy"]) > 0.7
    # the run's ZenML model version (Model Control Plane) names the package and the endpoint
    recorded = Client().get_model_version(MODEL, run.model_version.id, hydrate=True)
    assert recorded.stage == "production" and recorded.run_metadata["registry_version"] == "1"
    assert recorded.run_metadata["model_package_arn"] == tags["model_package_arn"]
    assert recorded.run_metadata["endpoint"]["name"] == ENDPOINT

    # the endpoint serves the registered package, and answers as the trained bundle predicts
    assert deployment.details["model_package_arn"] == tags["model_package_arn"]
    assert deployment.details["model_data_url"] == tags["model_data_url"]
    # Studio: the endpoint's model is made from the package; ModelQuality is the evaluation, in Model Monitor's format
    model = boto("sagemaker").describe_model(ModelName=deployment.details["sagemaker_model_name"])
    assert model["PrimaryContainer"]["ModelPackageName"] == tags["model_package_arn"]
    package = boto("sagemaker").describe_model_package(ModelPackageName=tags["model_package_arn"])
    statistics_bucket, key = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"][5:].split("/", 1)
    quality = json.loads(boto("s3").get_object(Bucket=statistics_bucket, Key=key)["Body"].read())
    quality, report = quality["binary_classification_metrics"], _out(run, "evaluate", "evaluation_report")
    assert quality["auc"]["value"] == pytest.approx(report["roc_auc"]) and quality["auc"]["standard_deviation"] > 0
    assert "receiver_operating_characteristic_curve" in quality
    assert "GeneratedBy" not in (package.get("MetadataProperties") or {})  # local orchestrator: no execution ARN
    described = boto("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert (
        described["EndpointStatus"] == "InService"
        and described["EndpointConfigName"] == deployment.details["endpoint_config_name"]
    )
    [variant] = boto("sagemaker").describe_endpoint_config(
        EndpointConfigName=deployment.details["endpoint_config_name"]
    )["ProductionVariants"]
    assert variant["InstanceType"] == "ml.c5.large" == deployment.details["instance_type"]
    scaling = boto("application-autoscaling")
    resource = f"endpoint/{ENDPOINT}/variant/AllTraffic"
    [target] = scaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])[
        "ScalableTargets"
    ]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 3)
    [policy] = scaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 50
    test_set, bundle = _out(run, "preprocess", "test_set"), _out(run, "train_rf", "model_bundle")
    response = active_stack.model_deployer.invoke(ENDPOINT, test_set.iloc[:20].to_csv(index=False).encode())
    assert response.text.splitlines() == [str(v) for v in bundle.predict(test_set.iloc[:20])]
    assert read_inbox() == []

    # what batch inference does with the registry: newest Approved version, bundle loaded from its URI
    from zenml.model_registries.base_model_registry import ModelRegistryModelMetadata

    from churn.batch import fetch_bundle

    [approved] = active_stack.model_registry.list_model_versions(
        name=MODEL, metadata=ModelRegistryModelMetadata(approval_status="Approved"), order_by_date="desc", count=1
    )
    loaded = fetch_bundle(approved.model_source_uri, tmp_path / "bundle", expected_sha256=tags["bundle_sha256"])
    assert (loaded.predict(test_set) == bundle.predict(test_set)).all()

    # the champion/challenger gate reads the same registry interface: the approved package, hash-verified, scored
    from churn.champion import score_champion

    champion = score_champion(active_stack.model_registry, MODEL, test_set, "accuracy")
    assert (champion.version, champion.sha256) == ("1", tags["bundle_sha256"])
    assert champion.value == pytest.approx(_out(run, "evaluate", "evaluation_report")["accuracy"])

    # a second run whose endpoint update fails: rolled back, the step fails, one alert is sent
    emulator.fail_next_endpoint_change(ENDPOINT)
    emulator.queue_latest_records(aws, query, REGION)
    with pytest.raises(RuntimeError, match="deploy"):
        churn_rf_training.with_options(enable_cache=True)(config=config)
    [alert] = read_inbox()
    assert alert["Subject"] == "[Pipeline Failed] churn_rf_training.deploy"
    assert "rolled back to the previous endpoint config" in alert["Message"] and "Step: deploy" in alert["Message"]
    described = boto("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert (
        described["EndpointStatus"] == "InService"
        and described["EndpointConfigName"] == deployment.details["endpoint_config_name"]
    )
    assert [v.version for v in active_stack.model_registry.list_model_versions(MODEL)] == ["2", "1"]

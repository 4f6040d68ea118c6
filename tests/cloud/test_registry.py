"""SageMaker model registry flavor against the emulator: register, approve, latest approved, load."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from zenml.model_registries.base_model_registry import ModelRegistryModelMetadata, ModelVersionStage

from tests.cloud.conftest import BUCKET, PREFIX, boto

GROUP = "classification-model-group"
LONG_SQL = "SELECT " + ", ".join(f'"c{i}"' for i in range(60)) + " FROM (SELECT ...) WHERE _rank = 1 AND NOT is_deleted"


def _metadata(sha256: str, status: str, run: str) -> ModelRegistryModelMetadata:
    return ModelRegistryModelMetadata(
        zenml_pipeline_name="churn_rf_training",
        zenml_pipeline_run_uuid=f"run-{run}",
        zenml_run_name=f"run {run}",
        approval_status=status,
        bundle_sha256=sha256,
        mlflow_run_id=f"mlflow{run}",
        feature_group="fg",
        customer_id_range="1-4000",
        data_fingerprint="f" * 64,
        feature_query_sql=LONG_SQL,
        metric_accuracy="0.812000",
    )


@pytest.fixture
def saved_bundle(trained_bundle, tmp_path):
    bundle, _ = trained_bundle
    sha256 = bundle.save(tmp_path / "bundle")
    return str(tmp_path / "bundle"), sha256


def _register(registry, uri: str, sha256: str, status: str, run: str):
    stage = {"Approved": ModelVersionStage.PRODUCTION, "PendingManualApproval": ModelVersionStage.STAGING}[status]
    version = registry.register_model_version(
        name=GROUP,
        model_source_uri=uri,
        metadata=_metadata(sha256, status, run),
        description="RandomForestClassifier; accuracy 0.8120 >= 0.5",
    )
    registry.update_model_version(name=GROUP, version=version.version, stage=stage)
    return version


def test_register_then_latest_approved(aws, bucket, sagemaker_stack, saved_bundle, trained_bundle):
    registry = sagemaker_stack.model_registry
    uri, sha256 = saved_bundle
    assert registry.latest_approved(GROUP) is None

    first = _register(registry, uri, sha256, "Approved", "1")
    second = _register(registry, f"file://{uri}", sha256, "PendingManualApproval", "2")
    assert (first.version, second.version) == ("1", "2")
    assert registry.latest_approved(GROUP).version == "1"  # the pending one is not served
    assert [v.version for v in registry.list_model_versions(GROUP)] == ["2", "1"]
    assert [v.version for v in registry.list_model_versions(GROUP, stage=ModelVersionStage.STAGING)] == ["2"]

    registry.approve(GROUP, "2")
    assert registry.latest_approved(GROUP).version == "2"
    registry.reject(GROUP, "2")
    assert registry.latest_approved(GROUP).version == "1"
    assert registry.get_model_version(GROUP, "2").stage == ModelVersionStage.ARCHIVED
    approved = registry.list_model_versions(
        GROUP, metadata=ModelRegistryModelMetadata(approval_status="Approved"), count=1
    )
    assert [v.version for v in approved] == ["1"]  # the live status, not the one registered

    # the package: serving image + model.tar.gz, metrics in S3, lineage in its properties
    package = boto("sagemaker").describe_model_package(
        ModelPackageName=registry.get_model_version(GROUP, "1").metadata.model_dump()["model_package_arn"]
    )
    container = package["InferenceSpecification"]["Containers"][0]
    from churn.image import content_tag

    # our image by default: the stack account's churn-mlops repository, tagged with this code's content tag
    assert container["Image"] == f"123456789012.dkr.ecr.us-west-2.amazonaws.com/churn-mlops:{content_tag()}"
    assert container["Environment"]["CHURN_BUNDLE_SHA256"] == sha256  # the container verifies the bundle with it
    assert "Framework" not in container
    assert container["ModelDataUrl"].startswith(f"s3://{BUCKET}/{PREFIX}/registry/{GROUP}/")
    properties = package["CustomerMetadataProperties"]
    assert properties["mlflow_run_id"] == "mlflow1" and properties["zenml_pipeline_run_uuid"] == "run-1"
    assert properties["data_fingerprint"] == "f" * 64 and properties["bundle_sha256"] == sha256
    assert "feature_query_sql" not in properties  # too long for SageMaker: in metadata.json
    assert package["ModelApprovalStatus"] == "Approved"  # approving v2 did not wipe v1's fields
    metrics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket_name, key = metrics_uri[len("s3://") :].split("/", 1)
    quality = json.loads(boto("s3").get_object(Bucket=bucket_name, Key=key)["Body"].read())
    assert quality["binary_classification_metrics"]["accuracy"]["value"] == 0.812  # Studio's model-quality format
    flat_uri = registry.get_model_version(GROUP, "1").metadata.model_dump()["evaluation_uri"]
    flat = boto("s3").get_object(Bucket=BUCKET, Key=flat_uri.split(f"{BUCKET}/", 1)[1])["Body"].read()
    assert json.loads(flat) == {"accuracy": 0.812}  # the flat evaluation.json stays next to it
    spec_registration = boto("s3").get_object(Bucket=BUCKET, Key=f"{PREFIX}/registration/registration.json")
    assert json.loads(spec_registration["Body"].read())["version"] == "2"

    archive = (
        boto("s3").get_object(Bucket=BUCKET, Key=container["ModelDataUrl"].split(f"{BUCKET}/", 1)[1])["Body"].read()
    )
    names = tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz").getnames()
    assert sorted(names) == ["bundle.json", "estimator.joblib"]  # the code and its libraries are the image's

    # the full lineage comes back, including what did not fit in the properties
    version = registry.get_model_version(GROUP, "1")
    lineage = version.metadata.model_dump()
    assert lineage["feature_query_sql"] == LONG_SQL and lineage["mlflow_run_id"] == "mlflow1"
    assert version.model_source_uri == container["ModelDataUrl"].replace("model.tar.gz", "bundle")
    assert lineage["model_data_url"] == container["ModelDataUrl"] and lineage["approval_status"] == "Approved"

    bundle, split = trained_bundle
    loaded = registry.load_model_version(GROUP, "1")
    assert (loaded.predict(split.test) == bundle.predict(split.test)).all()


def test_a_bundle_that_is_not_the_registered_one_is_refused(aws, bucket, sagemaker_stack, saved_bundle):
    from churn.bundle import BundleError

    registry = sagemaker_stack.model_registry
    uri, _ = saved_bundle
    with pytest.raises(BundleError, match="refusing to package"):
        registry.register_model_version(name=GROUP, model_source_uri=uri, metadata=_metadata("0" * 64, "Approved", "x"))
    assert boto("sagemaker").list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"] == []
    keys = boto("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/registry/").get("Contents", [])
    assert keys == []  # nothing half-registered


def _approved(registry):
    from churn.model_registry import approved_version

    version = approved_version(registry, GROUP)
    return version.version if version else None


def test_a_failure_after_create_model_package_withdraws_the_package(
    aws, bucket, sagemaker_stack, saved_bundle, monkeypatch
):
    """Fault injected (a patched S3 write, standing in for S3 failing) after CreateModelPackage succeeded."""
    from churn.aws import s3
    from churn.aws.clients import AwsError
    from churn.aws.registry import RegistryError

    registry = sagemaker_stack.model_registry
    uri, sha256 = saved_bundle
    _register(registry, uri, sha256, "Approved", "1")
    real_upload = s3.upload_bytes

    def failing_upload(data, target, *args, **kwargs):
        if target.endswith("registration.json"):
            raise AwsError("writing registration.json: injected S3 failure")
        return real_upload(data, target, *args, **kwargs)

    monkeypatch.setattr(s3, "upload_bytes", failing_upload)
    with pytest.raises(RegistryError, match="injected S3 failure"):
        registry.register_model_version(name=GROUP, model_source_uri=uri, metadata=_metadata(sha256, "Approved", "2"))
    monkeypatch.setattr(s3, "upload_bytes", real_upload)
    assert [v.version for v in registry.list_model_versions(GROUP)] == ["1"]  # version 2 was deleted
    assert _approved(registry) == "1"  # batch and deploy still use 1


def test_register_all_or_nothing_approves_last_and_withdraws_on_failure(aws, bucket, sagemaker_stack, saved_bundle):
    from churn.model_registry import register_all_or_nothing

    registry = sagemaker_stack.model_registry
    uri, sha256 = saved_bundle
    lineage = _metadata(sha256, "Approved", "1").model_dump()
    seen = []

    def record(version):
        seen.append(registry.get_model_version(GROUP, version.version).metadata.model_dump()["approval_status"])
        return "recorded"

    first, result = register_all_or_nothing(registry, GROUP, uri, lineage, "Approved", then=record)
    assert result == "recorded" and seen == ["PendingManualApproval"]  # not selectable while the lineage is written
    assert _approved(registry) == first.version == "1"
    spec_registration = json.loads(
        boto("s3").get_object(Bucket=BUCKET, Key=f"{PREFIX}/registration/registration.json")["Body"].read()
    )
    assert spec_registration["approval_status"] == "Approved"  # the record follows the approval made last

    def fail(version):
        raise RuntimeError("injected: MLflow tagging failed after the package was created")

    with pytest.raises(RuntimeError, match="injected"):
        register_all_or_nothing(
            registry, GROUP, uri, _metadata(sha256, "Approved", "2").model_dump(), "Approved", then=fail
        )
    assert [v.version for v in registry.list_model_versions(GROUP)] == ["1"] and _approved(registry) == "1"

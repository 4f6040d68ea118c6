"""What SageMaker Studio shows for our model packages and endpoints (issue 13.6).

- ModelQuality statistics in Model Monitor's model-quality format (values checked against sklearn,
  shape against the documented example);
- MetadataProperties.GeneratedBy: the pipeline execution ARN inside a SageMaker pipeline step
  (ZenML's orchestrator sets ZENML_SAGEMAKER_RUN_ID to it; emulated here with that variable), absent elsewhere;
- endpoint models created from the model package (PrimaryContainer.ModelPackageName), through the
  emulator's CreateModel-from-package handler (tests/cloud/moto_model_package_models.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cloud.conftest import BUCKET, PREFIX, REGION, ROLE_ARN, boto

GROUP = "classification-model-group"
ENDPOINT = "classification-model-endpoint"  # the stack's: the IAM documents allow only its names
IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/churn-mlops:studio-test"
EXECUTION_ARN = f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/churn-rf-training/execution/abc123def456"
# the documented example (Model quality metrics, binary classification): 4 rows, 1 positive
DOCUMENTED = {
    "recall": 1.0,
    "precision": 0.3333333333333333,
    "accuracy": 0.5,
    "recall_best_constant_classifier": 1.0,
    "precision_best_constant_classifier": 0.25,
    "accuracy_best_constant_classifier": 0.25,
    "true_positive_rate": 1.0,
    "true_negative_rate": 0.33333333333333337,
    "false_positive_rate": 0.6666666666666666,
    "false_negative_rate": 0.0,
    "f0_5": 0.3846153846153846,
    "f1": 0.5,
    "f2": 0.7142857142857143,
    "f0_5_best_constant_classifier": 0.29411764705882354,
    "f1_best_constant_classifier": 0.4,
    "f2_best_constant_classifier": 0.625,
}


def _rows(n: int = 600, seed: int = 3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)


def test_the_documented_example_is_reproduced_from_its_confusion_matrix():
    from churn.aws.model_quality import model_quality_document

    document = model_quality_document({"confusion_matrix": {"tn": 1, "fp": 2, "fn": 0, "tp": 1}})
    metrics = document["binary_classification_metrics"]
    assert document["version"] == 0.0
    assert metrics["confusion_matrix"] == {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}  # as documented
    assert {k: pytest.approx(v["value"]) for k, v in metrics.items() if k != "confusion_matrix"} == DOCUMENTED
    assert {v["standard_deviation"] for k, v in metrics.items() if k != "confusion_matrix"} == {"NaN"}


def test_the_document_matches_sklearn_and_its_deviations_are_a_seeded_bootstrap():
    from sklearn import metrics as sk

    from churn.aws.model_quality import model_quality_statistics

    y, p = _rows()
    document = model_quality_statistics(y, p)
    assert set(document) == {"version", "binary_classification_metrics"}
    m = document["binary_classification_metrics"]
    assert set(m) == {
        "confusion_matrix",
        "auc",
        "receiver_operating_characteristic_curve",
        "precision_recall_curve",
    } | set(DOCUMENTED)
    pred = (p > 0.5).astype(int)
    tn, fp, fn, tp = sk.confusion_matrix(y, pred).ravel()
    assert m["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    expected = {
        "recall": sk.recall_score(y, pred),
        "precision": sk.precision_score(y, pred),
        "accuracy": sk.accuracy_score(y, pred),
        "f0_5": sk.fbeta_score(y, pred, beta=0.5),
        "f1": sk.f1_score(y, pred),
        "f2": sk.fbeta_score(y, pred, beta=2),
        "auc": sk.roc_auc_score(y, p),
        "true_negative_rate": tn / (tn + fp),
        "precision_best_constant_classifier": y.mean(),
        "f1_best_constant_classifier": sk.f1_score(y, np.ones_like(y)),
    }
    assert {k: m[k]["value"] for k in expected} == pytest.approx(expected)
    for name, entry in m.items():
        if "value" in entry:
            assert isinstance(entry["standard_deviation"], float), name
    # accuracy's bootstrap spread is about sqrt(a(1-a)/n); the same seed gives the same numbers
    accuracy = expected["accuracy"]
    assert m["accuracy"]["standard_deviation"] == pytest.approx((accuracy * (1 - accuracy) / len(y)) ** 0.5, rel=0.25)
    assert 0.005 < m["auc"]["standard_deviation"] < 0.05
    assert model_quality_statistics(y, p) == document
    fpr, tpr, _ = sk.roc_curve(y, p)
    curve = m["receiver_operating_characteristic_curve"]
    assert curve["false_positive_rates"][0] == 0.0 and curve["true_positive_rates"][-1] == 1.0
    assert np.trapezoid(curve["true_positive_rates"], curve["false_positive_rates"]) == pytest.approx(
        np.trapezoid(tpr, fpr), abs=0.01
    )
    recalls = m["precision_recall_curve"]["recalls"]
    assert recalls == sorted(recalls) and recalls[-1] == 1.0  # recall ascending, as in the documented example


def test_bad_rows_are_refused_by_name():
    from churn.aws.model_quality import model_quality_document
    from churn.evaluation import bootstrap_standard_deviations

    with pytest.raises(ValueError, match="equally long"):
        bootstrap_standard_deviations([0, 1, 1], [0.2, 0.8])
    with pytest.raises(ValueError, match="0 or 1"):
        bootstrap_standard_deviations([0, 2], [0.2, 0.8])
    with pytest.raises(ValueError, match="no metric Studio can show"):
        model_quality_document({"n_test": 10})


def test_pipeline_execution_arn_is_read_only_from_a_sagemaker_pipeline_step():
    from churn.aws.registry import pipeline_execution_arn

    assert pipeline_execution_arn({"ZENML_SAGEMAKER_RUN_ID": EXECUTION_ARN}) == EXECUTION_ARN
    assert pipeline_execution_arn({}) is None  # the local orchestrator
    # a training job run outside a pipeline: ZenML's run id is the job's ARN, not a pipeline execution
    job = f"arn:aws:sagemaker:{REGION}:123456789012:training-job/churn-rf-training-abc"
    assert pipeline_execution_arn({"ZENML_SAGEMAKER_RUN_ID": job}) is None


@pytest.fixture
def registry(aws, bucket):
    from churn.aws.registry import ModelPackageClient

    return ModelPackageClient(REGION, BUCKET, PREFIX, image_uri=IMAGE, progress=lambda message: None)


@pytest.fixture
def bundle_dir(trained_bundle, tmp_path):
    bundle, split = trained_bundle
    sha256 = bundle.save(tmp_path / "bundle")
    return str(tmp_path / "bundle"), sha256, bundle, split


def _report(bundle, split):
    from churn.evaluation import classification_metrics

    return classification_metrics(split.test["churn"].to_numpy(), bundle.predict_proba(split.test)[0])


def _s3_json(uri: str) -> dict:
    bucket, key = uri[len("s3://") :].split("/", 1)
    return json.loads(boto("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def test_a_package_registered_in_a_pipeline_step_carries_studio_metrics_and_its_execution(
    registry, bundle_dir, monkeypatch
):
    from churn.aws.model_quality import model_quality_document

    uri, sha256, bundle, split = bundle_dir
    report = _report(bundle, split)
    monkeypatch.setenv("ZENML_SAGEMAKER_RUN_ID", EXECUTION_ARN)  # what ZenML's SageMaker orchestrator sets
    package = registry.register(GROUP, uri, sha256, {"mlflow_run_id": "m1"}, "Approved", evaluation=report)
    assert package["MetadataProperties"]["GeneratedBy"] == EXECUTION_ARN
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    document = _s3_json(statistics["S3Uri"])
    assert document == json.loads(json.dumps(model_quality_document(report)))
    assert document["binary_classification_metrics"]["accuracy"]["value"] == pytest.approx(report["accuracy"])
    assert isinstance(document["binary_classification_metrics"]["auc"]["standard_deviation"], float)
    flat = _s3_json(registry.metadata(package)["evaluation_uri"])  # the flat evaluation.json is still there
    assert flat["accuracy"] == report["accuracy"] and flat["confusion_matrix"] == report["confusion_matrix"]


def test_a_package_registered_elsewhere_names_no_generator(registry, bundle_dir, monkeypatch):
    from churn.aws.registry import RegistryError

    uri, sha256, _, _ = bundle_dir
    monkeypatch.delenv("ZENML_SAGEMAKER_RUN_ID", raising=False)
    package = registry.register(GROUP, uri, sha256, {"metric_accuracy": "0.8"}, "Approved")
    assert "GeneratedBy" not in (package.get("MetadataProperties") or {})
    document = _s3_json(package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"])
    assert document["binary_classification_metrics"] == {"accuracy": {"value": 0.8, "standard_deviation": "NaN"}}
    with pytest.raises(RegistryError, match="generated_by must be an ARN"):
        registry.register(GROUP, uri, sha256, {}, "Approved", generated_by="churn-mlops")


def _endpoints():
    from churn.aws.athena import Polling
    from churn.aws.endpoint import EndpointSettings, SageMakerEndpoints

    settings = EndpointSettings(
        REGION, ROLE_ARN, BUCKET, PREFIX, image_uri=IMAGE, polling=Polling(initial=0.01, maximum=0.05, timeout=30)
    )
    return SageMakerEndpoints(settings, progress=lambda message: None)


def test_the_endpoint_model_is_created_from_the_approved_package(registry, bundle_dir):
    from churn.config import DeploySettings

    uri, sha256, bundle, split = bundle_dir
    package = registry.register(GROUP, uri, sha256, {"metric_accuracy": "0.8"}, "Approved")
    arn = package["ModelPackageArn"]
    record = _endpoints().deploy(ENDPOINT, GROUP, "1", uri, sha256, settings=DeploySettings())
    assert record["model_package_arn"] == arn
    model = boto("sagemaker").describe_model(ModelName=record["sagemaker_model_name"])
    assert model["PrimaryContainer"]["ModelPackageName"] == arn  # Studio lists the deployment under the version
    # the package's container Environment reached the container: it verified the bundle before serving
    assert model["PrimaryContainer"]["Environment"]["CHURN_BUNDLE_SHA256"] == sha256
    rows = split.test.iloc[:20]
    answer = _endpoints().invoke(ENDPOINT, rows.to_csv(index=False).encode())
    assert answer.status_code == 200 and answer.text.splitlines() == [str(v) for v in bundle.predict(rows)]


def test_an_unapproved_package_is_not_a_model_source(registry, bundle_dir):
    from botocore.exceptions import ClientError

    from churn.config import DeploySettings

    uri, sha256, _, _ = bundle_dir
    arn = registry.register(GROUP, uri, sha256, {"metric_accuracy": "0.8"}, "PendingManualApproval")["ModelPackageArn"]
    with pytest.raises(ClientError, match="must be Approved"):  # as AWS: only Approved versions are deployed
        boto("sagemaker").create_model(
            ModelName="from-pending", ExecutionRoleArn=ROLE_ARN, PrimaryContainer={"ModelPackageName": arn}
        )
    record = _endpoints().deploy(ENDPOINT, GROUP, "1", uri, sha256, settings=DeploySettings())
    model = boto("sagemaker").describe_model(ModelName=record["sagemaker_model_name"])
    assert "ModelPackageName" not in model["PrimaryContainer"] and model["PrimaryContainer"]["Image"] == IMAGE


def test_the_aws_layer_raises_the_contracts_deployment_error(aws):
    from churn.config import DeploySettings
    from stacks.contracts import DeploymentError  # the class every deployer raises, defined once in churn

    settings = DeploySettings(inference_instance_type="ml.t3.medium")
    with pytest.raises(DeploymentError, match="ml.t3.medium is not an instance type"):
        _endpoints().deploy(ENDPOINT, GROUP, "1", "/nowhere", "0" * 64, settings=settings)

"""The AutoML pipeline on SageMaker Autopilot (AutoML V2), against the emulator.

``churn_automl_training`` runs unchanged on a SageMaker stack whose label says
``automl_engine: sagemaker_autopilot`` (the same components as ``sagemaker_stack``); the
training step never names the engine. ``moto_automl`` makes the AutoML V2 job finish (or
fail), fits a stand-in model for the best candidate and runs batch transforms with it, so
the evaluation metrics can be checked against that model's own predictions.
"""

from __future__ import annotations

import io
import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest

from churn.aws.autopilot_job import ENV_GRACE, AutopilotConfig, AutopilotEngine
from churn.aws.autopilot_transform import INFERENCE_KEYS, AutopilotError, inference_containers, positive_probabilities
from churn.config import load_config
from churn.feature_query import FeatureQuery
from tests.cloud import moto_automl
from tests.cloud import moto_extensions as emulator
from tests.cloud.conftest import BUCKET, PREFIX, REGION, ROLE_ARN, boto

pytestmark = pytest.mark.pipeline
FEATURE_GROUP = "mlops_poc_churn_classification_feature"
GROUP = "classification-model-automl-group"
ENDPOINT = "automl-classification-endpoint"
CUSTOMERS, TRAIN_END = 600, 500
MODEL_NAME = re.compile(r"^classification-model-automl-\d{10}-[0-9a-f]{4}$")


@pytest.fixture(scope="module")
def automl_emulator(moto_server):
    moto_automl.install()
    yield
    moto_automl.uninstall()


@pytest.fixture
def autopilot(aws, bucket, automl_emulator):
    moto_automl.reset()
    return aws


@pytest.fixture(scope="module")
def autopilot_stack(sagemaker_stack, automl_emulator):
    """``sagemaker_stack``'s components in a stack labelled ``automl_engine: sagemaker_autopilot``, active."""
    from zenml.client import Client

    client = Client()
    components = {kind: items[0].id for kind, items in client.get_stack(sagemaker_stack.name).components.items()}
    name = f"{sagemaker_stack.name}-autopilot"
    client.create_stack(name=name, components=components, labels={"automl_engine": "sagemaker_autopilot"})
    before = client.active_stack_model.name
    client.activate_stack(name)
    try:
        yield client.active_stack
    finally:
        client.activate_stack(before)
        client.delete_stack(name)


def _out(run, step, name):
    return run.steps[step].outputs[name][0].load()


def _read(uri: str) -> bytes:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return boto("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def _keys(prefix_uri: str) -> list:
    bucket, _, prefix = prefix_uri[len("s3://") :].partition("/")
    pages = boto("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(f"s3://{bucket}/{item['Key']}" for page in pages for item in page.get("Contents", []))


def _ingest(stack) -> None:
    from churn.demo_data import generate_customers

    stack.feature_store.ingest(FEATURE_GROUP, generate_customers(CUSTOMERS, seed=42), "churn")


def _run(endpoint_url: str, **overrides):
    from zenml.client import Client

    from pipelines.training import churn_automl_training

    emulator.queue_latest_records(endpoint_url, FeatureQuery(FEATURE_GROUP, 1, TRAIN_END), REGION)
    config = load_config("configs/automl.yaml", customer_id_end=TRAIN_END, **overrides).model_dump()
    run = churn_automl_training.with_options(enable_cache=False)(config=config)
    return Client().get_pipeline_run(run.id), config


# -- the pipeline on Autopilot ----------------------------------------------------------


def test_automl_pipeline_on_autopilot_trains_evaluates_by_batch_transform_registers_and_deploys(
    autopilot, sns_inbox, autopilot_stack, tmp_path
):
    from churn.evaluation import classification_metrics

    _, read_inbox = sns_inbox
    _ingest(autopilot_stack)
    moto_automl.script_next_job("Completed", polls=3, candidates=4)
    run, config = _run(autopilot, autopilot_max_runtime_sec=900)
    assert run.status.value == "completed"

    # the job request carries the configured settings
    [request] = moto_automl.job_requests()
    job = request["AutoMLJobName"]
    assert request["AutoMLProblemTypeConfig"] == {
        "TabularJobConfig": {
            "Mode": "ENSEMBLING",
            "ProblemType": "BinaryClassification",
            "TargetAttributeName": "churn",
            "CompletionCriteria": {"MaxAutoMLJobRuntimeInSeconds": 900},
        }
    }
    assert request["AutoMLJobObjective"] == {"MetricName": config["objective_metric_name"]} == {"MetricName": "AUC"}
    assert request["RoleArn"] == ROLE_ARN
    root = f"s3://{BUCKET}/{PREFIX}/automl/{job}/"
    [channel] = request["AutoMLJobInputDataConfig"]
    assert channel["ContentType"] == "text/csv;header=present"
    assert channel["DataSource"] == {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": root + "data/train/"}}
    assert request["OutputDataConfig"] == {"S3OutputPath": root + "output/"}

    # Autopilot's input prefix holds the training rows only; the preprocessing artifacts sit outside it
    keys = _keys(root)
    assert [k for k in keys if k.startswith(root + "data/train/")] == [root + "data/train/train.csv"]
    assert {root + "meta/preprocessor.json", root + "meta/metadata.json"} <= set(keys)
    train_set, test_set = _out(run, "preprocess", "train_set"), _out(run, "preprocess", "test_set")
    bundle = _out(run, "train_automl", "model_bundle")
    train_csv = pd.read_csv(io.BytesIO(_read(root + "data/train/train.csv")))
    assert list(train_csv.columns) == [*bundle.feature_order, "churn"] and len(train_csv) == len(train_set)
    np.testing.assert_array_equal(
        train_csv[bundle.feature_order].to_numpy(), bundle.preprocessor.transform(train_set)[0]
    )
    metadata = json.loads(_read(root + "meta/metadata.json"))
    assert (
        metadata["feature_names"] == bundle.feature_order and metadata["label_encoders"] == bundle.preprocessor.classes
    )

    # the best candidate became a SageMaker model with a unique timestamp name, and model_info.json
    handle = bundle.estimator
    assert MODEL_NAME.match(handle.model_name) and list(handle.classes_) == [0, 1]
    model = boto("sagemaker").describe_model(ModelName=handle.model_name)
    [container] = model["Containers"]
    assert container["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == ",".join(INFERENCE_KEYS)
    model_info = json.loads(_read(root + "model/model_info.json"))
    assert model_info["model_name"] == handle.model_name and model_info["model_arn"] == model["ModelArn"]
    assert model_info["auto_ml_job_name"] == job and model_info["best_candidate_name"] == moto_automl.BEST
    assert model_info["inference_containers"][0]["ModelDataUrl"] == container["ModelDataUrl"]
    assert model_info["preprocessing_uri"] == root + "meta/" and bundle.info["autopilot"] == model_info
    automl = bundle.info["automl"]
    assert bundle.info["automl_engine"] == "sagemaker_autopilot" and automl["trials"] == 4
    assert automl["job_name"] == job and automl["best_family"] == moto_automl.BEST

    # evaluation: one batch transform on the (encoded) test rows; the metrics come from its output
    [transform] = moto_automl.transform_requests()
    assert transform["ModelName"] == handle.model_name
    source = transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    assert source.startswith(root + "transform/") and transform["TransformInput"]["ContentType"] == "text/csv"
    matrix, _ = bundle.preprocessor.transform(test_set)
    np.testing.assert_array_equal(np.loadtxt(io.BytesIO(_read(source + "rows.csv")), delimiter=",", ndmin=2), matrix)
    predictions = _read(transform["Output"]).decode().splitlines()  # saved next to the transform input
    assert transform["Output"].startswith(transform["TransformOutput"]["S3OutputPath"]) and len(predictions) == len(
        test_set
    )
    expected = classification_metrics(
        test_set["churn"].to_numpy(), moto_automl.candidate_model(job).predict_proba(matrix)[:, 1]
    )
    report = _out(run, "evaluate", "evaluation_report")
    for metric in ("accuracy", "precision", "recall", "f1_score", "roc_auc"):
        assert report[metric] == pytest.approx(expected[metric], abs=1e-12), metric
    assert report["n_test"] == len(test_set) and report["accuracy"] >= config["accuracy_threshold"]

    # registered in the AutoML group, deployed to the AutoML endpoint
    registration, deployment = _out(run, "register", "registration"), _out(run, "deploy", "deployment")
    assert registration.registered and registration.model_name == GROUP and registration.version == "1"
    version = autopilot_stack.model_registry.get_model_version(GROUP, "1")
    assert version.metadata.model_dump()["approval_status"] == "Approved"
    assert float(version.metadata.model_dump()["metric_accuracy"]) == pytest.approx(report["accuracy"], abs=1e-6)
    assert deployment.deployed and deployment.endpoint_name == ENDPOINT
    described = boto("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert (
        described["EndpointStatus"] == "InService"
        and described["EndpointConfigName"] == deployment.details["endpoint_config_name"]
    )

    # the package and the endpoint's model are one serial pipeline: our container encoding the
    # request, the best candidate's container, our container answering (same archive, two roles)
    package = boto("sagemaker").describe_model_package(ModelPackageName=deployment.details["model_package_arn"])
    chain = package["InferenceSpecification"]["Containers"]
    served = boto("sagemaker").describe_model(ModelName=deployment.details["sagemaker_model_name"])["Containers"]
    assert [c["Image"] for c in served] == [c["Image"] for c in chain] == deployment.details["containers"]
    # created from the package (Studio lists the deployment under the version): SageMaker runs all its
    # containers, in its default mode for several containers, Serial (moto_model_package_models)
    assert {c["ModelPackageName"] for c in served} == {deployment.details["model_package_arn"]}
    assert emulator.execution_mode(deployment.details["sagemaker_model_name"]) is None
    assert [c["Environment"].get("CHURN_SERVING_ROLE") for c in served] == ["encode", None, "respond"]
    assert served[0]["ModelDataUrl"] == served[2]["ModelDataUrl"] == deployment.details["model_data_url"]
    assert served[1]["ModelDataUrl"] == container["ModelDataUrl"]
    assert served[1]["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == ",".join(INFERENCE_KEYS)

    # raw rows with a header (ids and extra columns included) get the candidate's predictions
    # back in our contract; JSON adds the probabilities; bad input is a 4xx naming the column
    deployer = autopilot_stack.model_deployer
    rows = test_set.iloc[:20]
    candidate = moto_automl.candidate_model(job).predict_proba(bundle.preprocessor.transform(rows)[0])[:, 1]
    response = deployer.invoke(ENDPOINT, rows.to_csv(index=False).encode())
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/csv"
    assert response.text.splitlines() == [str(int(p > 0.5)) for p in candidate]
    bare = boto("sagemaker-runtime").invoke_endpoint(
        EndpointName=ENDPOINT,
        ContentType="text/csv",  # no Accept: CSV
        Body=rows.to_csv(index=False).encode(),
    )
    assert bare["ContentType"] == "text/csv" and bare["Body"].read().decode() == response.text
    answer = json.loads(
        deployer.invoke(ENDPOINT, rows.to_json(orient="records").encode(), "application/json", probabilities=True).text
    )
    assert answer["predictions"] == [int(p > 0.5) for p in candidate]
    np.testing.assert_allclose(answer["probabilities"], candidate, rtol=0, atol=1e-9)
    missing = deployer.invoke(ENDPOINT, rows.drop(columns=["tenure_months"]).to_csv(index=False).encode())
    assert missing.status_code == 400 and "tenure_months" in missing.text
    bad = rows.astype({"monthly_charges": object})
    bad.iloc[3, bad.columns.get_loc("monthly_charges")] = "lots"
    wrong = deployer.invoke(ENDPOINT, bad.to_csv(index=False).encode())
    assert wrong.status_code == 400 and "monthly_charges" in wrong.text and "row 4" in wrong.text
    calls = [(i["containers"], i["ran"], i["status"]) for i in emulator.invocations() if i["endpoint"] == ENDPOINT]
    assert calls == [(3, 3, 200), (3, 3, 200), (3, 3, 200), (3, 1, 400), (3, 1, 400)]  # bad input stops at container 1
    assert read_inbox() == []

    # batch inference with the registered version: its bundle from S3, scored by ONE transform job
    from churn.batch import fetch_bundle, score_in_chunks

    registered = fetch_bundle(
        version.model_source_uri,
        tmp_path / "registered",
        expected_sha256=version.metadata.model_dump()["bundle_sha256"],
    )
    before = len(moto_automl.transform_requests())
    scored = pd.concat(score_in_chunks(registered, test_set, 25, GROUP, "1", "batch-run"))
    assert len(moto_automl.transform_requests()) == before + 1
    everything = moto_automl.candidate_model(job).predict_proba(matrix)[:, 1]
    np.testing.assert_allclose(scored["probability"].to_numpy(), everything, rtol=0, atol=1e-12)


def test_a_failed_autopilot_job_fails_the_step_with_its_reason_and_one_alert(autopilot, sns_inbox, autopilot_stack):
    _, read_inbox = sns_inbox
    _ingest(autopilot_stack)
    reason = "ClientError: The target attribute churn has fewer than 2 unique values in the validation split"
    moto_automl.script_next_job("Failed", polls=2, failure_reason=reason)
    with pytest.raises(RuntimeError):
        _run(autopilot, autopilot_max_runtime_sec=900, max_runtime_per_training_job_sec=120, max_candidates=5)
    [request] = moto_automl.job_requests()
    job = request["AutoMLJobName"]
    assert request["AutoMLProblemTypeConfig"]["TabularJobConfig"]["CompletionCriteria"] == {
        "MaxAutoMLJobRuntimeInSeconds": 900,
        "MaxRuntimePerTrainingJobInSeconds": 120,
        "MaxCandidates": 5,
    }
    [alert] = read_inbox()
    assert alert["Subject"] == "[Pipeline Failed] churn_automl_training.train_automl"
    assert f"Autopilot job '{job}' Failed: {reason}" in alert["Message"] and "Step: train_automl" in alert["Message"]
    models = boto("sagemaker").list_models()["Models"]
    assert not [m for m in models if m["ModelName"].startswith("classification-model-automl-")]
    assert moto_automl.transform_requests() == []


def test_an_autopilot_job_past_its_time_is_stopped_and_fails_the_step_with_one_alert(
    autopilot, sns_inbox, autopilot_stack, monkeypatch
):
    _, read_inbox = sns_inbox
    _ingest(autopilot_stack)
    monkeypatch.setenv(ENV_GRACE, "0")  # the wait is autopilot_max_runtime_sec + grace; the emulated job never finishes
    with pytest.raises(RuntimeError):
        _run(autopilot, autopilot_max_runtime_sec=2)
    [request] = moto_automl.job_requests()
    job = request["AutoMLJobName"]
    assert moto_automl.job_status(job) == "Stopped"
    [alert] = read_inbox()
    assert alert["Subject"] == "[Pipeline Failed] churn_automl_training.train_automl"
    assert (
        f"Autopilot job '{job}' did not finish within 2s" in alert["Message"] and "it was stopped" in alert["Message"]
    )


# -- the engine on its own ------------------------------------------------------------------


def test_each_completed_job_gives_its_own_model_and_the_handle_scores_by_batch_transform(autopilot):
    from churn.automl import AutoMLSettings
    from churn.demo_data import generate_customers
    from churn.preprocessing import Preprocessor

    frame = generate_customers(300, seed=7)
    preprocessor = Preprocessor.fit(frame, "churn")
    lines: list = []
    engine = AutopilotEngine(
        AutopilotConfig(
            region=REGION,
            role_arn=ROLE_ARN,
            bucket=BUCKET,
            prefix=PREFIX,
            poll_initial_seconds=0.01,
            poll_max_seconds=0.05,
        ),
        progress=lines.append,
    )
    settings = AutoMLSettings(objective="F1", max_runtime_sec=600, mode="ENSEMBLING")
    bundles = []
    for _ in range(2):
        moto_automl.script_next_job("Completed", polls=4)
        bundles.append(engine.train(frame, preprocessor, settings))
    names = [b.estimator.model_name for b in bundles]
    assert len(set(names)) == 2 and all(MODEL_NAME.match(n) for n in names)
    listed = {m["ModelName"] for m in boto("sagemaker").list_models()["Models"]}
    assert set(names) <= listed
    for bundle in bundles:
        assert (
            json.loads(_read(bundle.info["autopilot"]["model_info_uri"]))["model_name"] == bundle.estimator.model_name
        )
    assert any("InProgress / AnalyzingData" in line for line in lines) and any("Completed" in line for line in lines)

    # the handle pickles (it travels in the bundle) and scores through a batch transform
    handle = pickle.loads(pickle.dumps(bundles[1].estimator))
    rows = frame.iloc[:25]
    matrix, _ = preprocessor.transform(rows)
    proba = handle.predict_proba(matrix, progress=lines.append)
    job = bundles[1].info["automl"]["job_name"]
    np.testing.assert_allclose(
        proba[:, 1], moto_automl.candidate_model(job).predict_proba(matrix)[:, 1], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert handle.last_transform["predictions_uri"].endswith("rows.csv.out") and handle.last_transform["rows"] == 25
    with pytest.raises(AutopilotError, match="takes rows of 12 encoded features"):
        handle.predict_proba(matrix[:, :5])


# -- plain logic ----------------------------------------------------------------------------


def test_transform_output_is_read_as_the_probability_of_class_one():
    quoted = "1,\"[0.2, 0.8]\",\"['0', '1']\"\n0,\"[0.9, 0.1]\",\"['0', '1']\"\n"
    plain = "0,[0.3, 0.7],['1', '0']\n"  # labels in another order, fields unquoted
    assert positive_probabilities(quoted).tolist() == [0.8, 0.1]
    assert positive_probabilities(plain).tolist() == [0.3]
    with pytest.raises(AutopilotError, match="line 1 has 1 fields"):
        positive_probabilities("1\n")


def test_inference_containers_are_asked_for_probabilities_as_the_sdk_does():
    supported = {"SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability,probabilities,labels"}
    hpo = [
        {"Image": "fe", "Environment": {}},
        {"Image": "algo", "Environment": dict(supported)},
        {"Image": "inverse", "Environment": dict(supported)},
    ]
    out = inference_containers(hpo)
    assert "SAGEMAKER_INFERENCE_OUTPUT" not in out[0]["Environment"]
    assert out[1]["Environment"]["SAGEMAKER_INFERENCE_OUTPUT"] == "predicted_label,probabilities,labels"
    assert out[2]["Environment"]["SAGEMAKER_INFERENCE_INPUT"] == "predicted_label,probabilities,labels"
    assert hpo[1]["Environment"] == supported  # the candidate's definitions are not changed
    with pytest.raises(AutopilotError, match="cannot return probabilities, labels"):
        inference_containers([{"Image": "x", "Environment": {"SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label"}}])


def test_a_bundle_needing_a_library_the_image_lacks_is_not_packaged(tmp_path):
    import tarfile

    from sklearn.linear_model import LogisticRegression

    from churn.aws.packaging import build_model_tarball
    from churn.bundle import BundleError, ModelBundle
    from churn.demo_data import generate_customers
    from churn.image import locked_versions
    from churn.preprocessing import Preprocessor

    frame = generate_customers(60, seed=3)
    preprocessor = Preprocessor.fit(frame, "churn")
    estimator = LogisticRegression(max_iter=500).fit(preprocessor.transform(frame)[0], frame["churn"])
    locked = locked_versions()
    fits = {"xgboost-cpu": locked["xgboost-cpu"], "lightgbm": locked["lightgbm"]}  # what the image holds
    ModelBundle(estimator, preprocessor, {"serving_requirements": fits}).save(tmp_path / "ok")
    built = build_model_tarball(tmp_path / "ok", tmp_path / "ok.tar.gz")
    with tarfile.open(built["path"]) as tar:
        assert sorted(tar.getnames()) == ["bundle.json", "estimator.joblib"]  # the libraries are the image's
    needs = {"lightgbm": "0.1.0", "catboost": "1.2"}
    ModelBundle(estimator, preprocessor, {"serving_requirements": needs}).save(tmp_path / "bad")
    with pytest.raises(
        BundleError,
        match=r"catboost==1.2 \(not in requirements.lock\), lightgbm==0.1.0 "
        r"\(requirements.lock has " + locked["lightgbm"],
    ):
        build_model_tarball(tmp_path / "bad", tmp_path / "bad.tar.gz")

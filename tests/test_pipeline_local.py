"""End to end on an isolated local stack: ingest -> train -> gate -> register -> deploy -> HTTP.

Real parts only: a fresh ZenML sqlite store, MLflow (sqlite) tracking and registry, the
parquet/DuckDB feature store and our server as a daemon on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from click.testing import CliRunner

from churn.bundle import ModelBundle
from churn.config import load_config
from churn.model_registry import version_bundle_uri
from tests.conftest import assert_endpoint_serves_registered_bundle

pytestmark = pytest.mark.pipeline
MODEL = "classification-model-group"


@pytest.fixture(scope="module")
def stack(session_dir):
    from zenml.client import Client
    from zenml.utils import source_utils

    from stacks.local import setup_local_stack

    source_utils.set_custom_source_root(str(Path(__file__).resolve().parents[1]))
    setup_local_stack(activate=True)
    active = Client().active_stack
    deployer = active.model_deployer
    yield active
    for endpoint in deployer.list_endpoints():
        deployer.stop_endpoint(endpoint["endpoint_name"])


def _config(**overrides) -> dict:
    return load_config("configs/rf.yaml", **overrides).model_dump()


def _run(config: dict):
    from zenml.client import Client

    from pipelines.training import churn_rf_training

    run = churn_rf_training.with_options(enable_cache=True)(config=config)
    return Client().get_pipeline_run(run.id)


def _out(run, step, name):
    return run.steps[step].outputs[name][0].load()


def _versions(stack):
    try:
        return stack.model_registry.list_model_versions(name=MODEL) or []
    except KeyError:
        return []


def _model_version(run):
    """The ZenML model version a training run created (hydrated: with its metadata)."""
    from zenml.client import Client

    return Client().get_model_version(MODEL, run.model_version.id, hydrate=True)


def _alerts(stack):
    path = Path(stack.alerter.outbox_path)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def first_run(stack):
    from pipelines.ingestion import churn_feature_ingestion

    churn_feature_ingestion(feature_group_name="mlops_poc_churn_classification_feature")
    return _run(_config())


def test_pipeline_registers_with_lineage_and_serves_the_csv_contract(stack, first_run):
    report = _out(first_run, "evaluate", "evaluation_report")
    assert 0.7 < report["accuracy"] < 0.9 and 0.75 < report["roc_auc"] < 0.95
    registration = _out(first_run, "register", "registration")
    deployment = _out(first_run, "deploy", "deployment")
    assert registration.registered and deployment.deployed

    # registry version -> ZenML run, MLflow run and the data
    version = stack.model_registry.get_model_version(MODEL, registration.version)
    tags = version.metadata.model_dump()
    assert tags["zenml_pipeline_run_uuid"] == str(first_run.id)
    assert tags["feature_group"] == "mlops_poc_churn_classification_feature" and tags["customer_id_range"] == "1-4000"
    assert tags["data_fingerprint"] == _out(first_run, "source_features", "feature_query").data_fingerprint
    assert "ROW_NUMBER()" in tags["feature_query_sql"] and tags["approval_status"] == "Approved"
    mlflow.set_tracking_uri(stack.experiment_tracker.get_tracking_uri())
    mlflow_run = mlflow.get_run(tags["mlflow_run_id"])
    assert mlflow_run.data.metrics["accuracy"] == pytest.approx(report["accuracy"])
    assert mlflow_run.data.params["n_estimators"] == "100"
    assert mlflow_run.data.tags["registered_model_version"] == registration.version  # run -> registry
    charts = mlflow.MlflowClient().list_artifacts(mlflow_run.info.run_id, "evaluation")  # the MLflow UI's images
    assert {"evaluation/roc_curve.png", "evaluation/precision_recall_curve.png", "evaluation/confusion_matrix.png"} <= {
        a.path for a in charts
    }
    png = mlflow.artifacts.download_artifacts(run_id=mlflow_run.info.run_id, artifact_path="evaluation/roc_curve.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    aliases = mlflow.MlflowClient().get_registered_model(MODEL).aliases
    assert str(aliases.get("champion")) == registration.version

    # the endpoint answers raw-feature CSV exactly as the registered bundle predicts
    test_set = _out(first_run, "preprocess", "test_set")
    assert_endpoint_serves_registered_bundle(deployment.invocations_url, registration, test_set)
    # the version is an MLflow model (pyfunc around that bundle): MLflow's and ZenML's loaders predict the same
    bundle = ModelBundle.load(registration.bundle_uri.removeprefix("file://"), expected_sha256=registration.sha256)
    rows = test_set[bundle.feature_order]
    assert mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(rows).tolist() == bundle.predict(rows).tolist()
    zenml_model = stack.model_registry.load_model_version(MODEL, registration.version)
    assert zenml_model.predict(rows).tolist() == bundle.predict(rows).tolist()

    # Model Control Plane: the run is a version of the ZenML model of the group, in production once deployed
    model_version = _model_version(first_run)
    assert (model_version.model.name, model_version.stage) == (MODEL, "production")
    recorded = model_version.run_metadata
    assert recorded["registry_version"] == registration.version and recorded["approval_status"] == "Approved"
    assert recorded["metrics"]["accuracy"] == pytest.approx(report["accuracy"]) and "roc_auc" in recorded["metrics"]
    assert recorded["endpoint"] == {"name": "classification-model-endpoint", "url": deployment.url}
    assert (
        model_version.get_model_artifact("model_bundle").id == first_run.steps["train_rf"].outputs["model_bundle"][0].id
    )
    assert model_version.get_artifact("evaluation_report").load()["accuracy"] == report["accuracy"]


def test_predict_command_prints_one_prediction_per_row(stack, first_run):
    import run as cli_module

    result = CliRunner().invoke(cli_module.cli, ["predict", "--csv", "sample_input.csv"])
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if line in ("0", "1")].__len__() == 3


def test_rerun_replaces_the_served_model_while_the_endpoint_stays_up(stack, first_run):
    url = _out(first_run, "deploy", "deployment").url
    failures, stop = [], threading.Event()
    body = (
        "age,tenure_months,monthly_charges,total_charges,contract_type,payment_method,internet_service,phone_service,"
        "multiple_lines,online_security,tech_support,device_protection\n"
        "35,12,70.5,840.0,Month-to-month,Electronic check,DSL,Yes,No,Yes,No,No\n"
    )

    def load():
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    r = session.post(url + "/invocations", data=body, headers={"Content-Type": "text/csv"}, timeout=10)
                    if r.status_code != 200:
                        failures.append(r.status_code)
                except requests.RequestException as error:
                    failures.append(str(error))
                time.sleep(0.01)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        second = _run(_config())
    finally:
        stop.set()
        thread.join()
    deployment = _out(second, "deploy", "deployment")
    assert deployment.deployed and deployment.url == url  # same endpoint, same address
    assert int(deployment.version) == int(_out(first_run, "register", "registration").version) + 1
    assert requests.get(url + "/ping", timeout=5).headers["X-Model-Version"] == deployment.version
    assert failures == []
    # the data did not change: training was reused (ZenML cache), lineage still names the run that trained
    statuses = {name: second.steps[name].status.value for name in second.steps}
    assert statuses == {
        "source_features": "completed",
        "preprocess": "cached",
        "train_rf": "cached",
        "evaluate": "cached",
        "gate": "cached",
        "register": "completed",
        "deploy": "completed",
    }
    first_registration = _out(first_run, "register", "registration")
    registration = _out(second, "register", "registration")
    assert registration.trained_in_mlflow_run_id == first_registration.mlflow_run_id
    assert registration.mlflow_run_id != first_registration.mlflow_run_id
    mlflow.set_tracking_uri(stack.experiment_tracker.get_tracking_uri())
    logged = mlflow.get_run(registration.mlflow_run_id).data  # the version's own run shows the metrics it was gated on
    assert logged.metrics["accuracy"] == pytest.approx(_out(first_run, "evaluate", "evaluation_report")["accuracy"])
    assert logged.tags["trained_in_mlflow_run_id"] == first_registration.mlflow_run_id
    # a new ZenML model version, linked to the reused bundle; it serves now, so the first run's is archived
    assert _model_version(second).stage == "production" and _model_version(first_run).stage == "archived"
    assert _model_version(second).get_model_artifact("model_bundle").id == (
        first_run.steps["train_rf"].outputs["model_bundle"][0].id
    )


def test_a_changed_record_invalidates_the_cached_training(stack, first_run):
    from churn.demo_data import generate_customers

    group = "mlops_poc_churn_classification_feature"
    record = _out(first_run, "source_features", "raw_features").set_index("customer_id").loc[["CUST_000010"]]
    changed = record.reset_index().assign(
        monthly_charges=record["monthly_charges"].iloc[0] + 1.0,
        event_time=pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    stack.feature_store.ingest(group, changed[generate_customers(1).columns.tolist()], "churn")
    run = _run(_config())
    assert {name: run.steps[name].status.value for name in ("preprocess", "train_rf", "evaluate", "gate")} == {
        "preprocess": "completed",
        "train_rf": "completed",
        "evaluate": "completed",
        "gate": "completed",
    }
    raw = _out(run, "source_features", "raw_features").set_index("customer_id")
    assert raw.loc["CUST_000010", "monthly_charges"] == record["monthly_charges"].iloc[0] + 1.0


def test_a_model_below_the_gate_is_neither_registered_nor_deployed(stack, first_run):
    before = len(_versions(stack))
    served = requests.get(_out(first_run, "deploy", "deployment").url + "/ping", timeout=5).headers["X-Model-Version"]
    run = _run(_config(accuracy_threshold=0.99))
    assert run.status.value == "completed"
    assert not _out(run, "gate", "gate_verdict").passed
    registration = _out(run, "register", "registration")
    assert not registration.registered and "accuracy" in registration.reason and "< 0.99" in registration.reason
    assert not _out(run, "deploy", "deployment").deployed
    assert len(_versions(stack)) == before
    assert (
        requests.get(_out(first_run, "deploy", "deployment").url + "/ping", timeout=5).headers["X-Model-Version"]
        == served
    )
    refused = _model_version(run)  # its ZenML version records the metrics and the verdict, nothing registered
    assert "registry_version" not in refused.run_metadata and refused.stage in (None, "none")
    assert refused.run_metadata["gate"] == {"passed": False, "message": registration.reason}


def test_with_compare_to_champion_a_worse_model_is_not_registered_and_the_champion_keeps_serving(stack, first_run):
    from churn.model_registry import approved_version
    from churn.training import evaluate_bundle

    champion = approved_version(stack.model_registry, MODEL)
    recorded_sha = champion.metadata.model_dump()["bundle_sha256"]
    url = _out(first_run, "deploy", "deployment").url
    assert requests.get(url + "/ping", timeout=5).headers["X-Model-Version"] == str(champion.version)
    before = len(_versions(stack))
    run = _run(_config(compare_to_champion=True, hyperparameters={"n_estimators": 1, "max_depth": 1}))
    assert run.status.value == "completed"

    # the champion was fetched from the registry, verified, and scored on this run's test set
    score = _out(run, "score_champion", "champion_score")
    assert (score.version, score.sha256) == (str(champion.version), recorded_sha)
    champion_bundle = ModelBundle.load(
        version_bundle_uri(champion).removeprefix("file://"), expected_sha256=recorded_sha
    )
    assert score.value == pytest.approx(
        evaluate_bundle(champion_bundle, _out(run, "preprocess", "test_set"))["accuracy"]
    )
    challenger = _out(run, "evaluate", "evaluation_report")["accuracy"]
    assert 0.5 <= challenger < score.value  # above the threshold: only the champion stops it

    verdict = _out(run, "gate", "gate_verdict")
    assert not verdict.passed and verdict.champion_value == score.value
    assert (
        f"accuracy {challenger:.4f} >= 0.5 but < champion v{champion.version} {score.value:.4f} - 0.0"
        in verdict.message
    )
    registration = _out(run, "register", "registration")
    assert not registration.registered and registration.reason == verdict.message
    assert not _out(run, "deploy", "deployment").deployed
    assert len(_versions(stack)) == before
    assert requests.get(url + "/ping", timeout=5).headers["X-Model-Version"] == str(champion.version)


def test_a_champion_whose_bundle_fails_its_hash_check_fails_the_comparison_closed(stack, first_run):
    from churn.champion import ChampionUnavailable, score_champion
    from churn.model_registry import approved_version

    champion = approved_version(stack.model_registry, MODEL)
    recorded_sha = champion.metadata.model_dump()["bundle_sha256"]
    mlflow.set_tracking_uri(stack.experiment_tracker.get_tracking_uri())
    client = mlflow.MlflowClient()
    client.set_model_version_tag(MODEL, str(champion.version), "bundle_sha256", "0" * 64)  # the record tampered with
    try:
        with pytest.raises(
            ChampionUnavailable,
            match=rf"cannot compare with the champion \({MODEL} version "
            rf"{champion.version}\): .*has sha256 {recorded_sha}.*"
            r"nothing is registered",
        ):
            score_champion(stack.model_registry, MODEL, _out(first_run, "preprocess", "test_set"), "accuracy")
    finally:
        client.set_model_version_tag(MODEL, str(champion.version), "bundle_sha256", recorded_sha)
    assert score_champion(
        stack.model_registry, MODEL, _out(first_run, "preprocess", "test_set"), "accuracy"
    ).version == str(champion.version)
    # a model nobody registered yet has no champion: the threshold alone decides
    assert (
        score_champion(
            stack.model_registry, "never-registered", _out(first_run, "preprocess", "test_set"), "accuracy"
        ).version
        is None
    )


def test_a_failing_step_sends_exactly_one_alert_and_registers_nothing(stack, first_run):
    alerts_before, versions_before = len(_alerts(stack)), len(_versions(stack))
    with pytest.raises(RuntimeError, match="source_features"):
        _run(_config(customer_id_start=900000, customer_id_end=900100))
    new = _alerts(stack)[alerts_before:]
    assert len(new) == 1
    alert = new[0]
    assert alert["pipeline"] == "churn_rf_training" and alert["step"] == "source_features"
    assert (
        "no records found for feature group 'mlops_poc_churn_classification_feature', "
        "customer_id CUST_900000..CUST_900100" in alert["error"]
    )
    assert alert["logs"] and alert["subject"] == "[Pipeline Failed] churn_rf_training.source_features"
    assert len(_versions(stack)) == versions_before


def test_csv_ingest_refuses_bad_files_and_keeps_extra_columns(stack, tmp_path, demo_frame):
    import run as cli_module

    store = stack.feature_store
    bad = tmp_path / "bad.csv"
    demo_frame.iloc[:50].assign(churn=2).to_csv(bad, index=False)
    result = CliRunner().invoke(cli_module.cli, ["ingest", "--csv", str(bad), "--feature-group", "custom_group"])
    assert result.exit_code != 0 and "must be binary 0/1, found value(s) 2" in result.output
    assert store.describe("custom_group") is None  # nothing written

    good = tmp_path / "good.csv"
    rng = np.random.default_rng(0)
    frame = (
        demo_frame.drop(columns=["event_time"])
        .rename(columns={"churn": "left"})
        .assign(support_calls=rng.integers(0, 8, len(demo_frame)))
    )
    frame.to_csv(good, index=False)
    result = CliRunner().invoke(
        cli_module.cli, ["ingest", "--csv", str(good), "--target", "left", "--feature-group", "custom_group"]
    )
    assert result.exit_code == 0, result.output
    assert store.describe("custom_group").features["support_calls"] == "Integral"
    # ingesting a changed record again does not duplicate the customer
    frame.iloc[:1].assign(support_calls=99).to_csv(good, index=False)
    assert (
        CliRunner()
        .invoke(cli_module.cli, ["ingest", "--csv", str(good), "--target", "left", "--feature-group", "custom_group"])
        .exit_code
        == 0
    )
    assert store.record_count("custom_group") == len(frame)
    info = store.describe("custom_group")  # the contract's description, the same on every backend
    assert (info.name, info.target_column, info.record_identifier) == ("custom_group", "left", "customer_id")
    assert store.get_online_features([{"customer_id": "CUST_000001"}], ["custom_group:support_calls"]) == {
        "customer_id": ["CUST_000001"],
        "support_calls": [99],
    }
    historical = store.get_historical_features(
        {"feature_group": "custom_group", "customer_id_start": 1, "customer_id_end": 2}, ["support_calls"]
    )
    assert set(historical.columns) == {"customer_id", "support_calls"} and len(historical) == 2
    with pytest.raises(ValueError, match="references to one feature group"):
        store.get_online_features([{"customer_id": "CUST_000001"}], ["custom_group:support_calls", "other:x"])

    run = _run(
        _config(
            feature_group_name="custom_group", target_column="left", deploy=False, model_package_group="custom-model"
        )
    )
    bundle = _out(run, "train_rf", "model_bundle")
    assert "support_calls" in bundle.feature_order and bundle.target == "left"
    raw = _out(run, "source_features", "raw_features")
    assert raw.set_index("customer_id").loc["CUST_000001", "support_calls"] == 99


def test_a_bundle_that_fails_its_health_check_is_not_switched_in(stack, first_run):
    from stacks.contracts import DeploymentError

    registration = _out(first_run, "register", "registration")
    url = _out(first_run, "deploy", "deployment").url
    served = requests.get(url + "/ping", timeout=5).headers["X-Model-Version"]
    with pytest.raises(DeploymentError, match="v999 failed its health check and was not deployed: .*refusing to load"):
        stack.model_deployer.deploy_bundle(
            "classification-model-endpoint", MODEL, "999", registration.bundle_uri, "0" * 64
        )
    assert requests.get(url + "/ping", timeout=5).headers["X-Model-Version"] == served


def test_batch_inference_scores_held_out_customers_with_the_latest_approved_model(stack, first_run, tmp_path):
    from zenml.client import Client

    from churn.batch import load_batch_config
    from pipelines.batch_inference import churn_batch_inference

    config = load_batch_config("configs/batch.yaml", output_uri=str(tmp_path)).model_dump()
    run = Client().get_pipeline_run(churn_batch_inference(config=config).id)
    summary = _out(run, "batch_predict", "batch_summary")
    written = pd.read_parquet(summary["location"])
    assert summary["location"].startswith(str(tmp_path)) and summary["rows"] == len(written) == 1000
    assert written["customer_id"].iloc[0] == "CUST_004001" and written["customer_id"].iloc[-1] == "CUST_005000"
    approved = [v for v in _versions(stack) if v.metadata.model_dump().get("approval_status") == "Approved"]
    latest = max(approved, key=lambda v: int(v.version))
    assert set(written["model_version"]) == {str(latest.version)} and set(written["run_id"]) == {str(run.id)}
    bundle = ModelBundle.load(version_bundle_uri(latest).removeprefix("file://"))
    raw = _out(run, "source_features", "raw_features")
    expected, _ = bundle.predict_proba(raw)
    assert (
        np.allclose(written["probability"], expected, atol=1e-12)
        and (written["prediction"] == bundle.label(expected)).all()
    )
    assert not list(tmp_path.glob(".*partial"))  # nothing half-written left behind


def test_schedule_commands_on_the_local_stack(stack):
    import run as cli_module
    from stacks.scheduling import local_scheduler_pid, stop_local_scheduler

    runner = CliRunner()
    try:
        bad = runner.invoke(cli_module.cli, ["--variant", "rf", "--schedule", "0 3 * *"])
        assert bad.exit_code != 0 and "has 4 fields; use the standard 5" in bad.output
        created = runner.invoke(
            cli_module.cli, ["--variant", "rf", "--schedule", "0 3 * * 1", "--schedule-name", "weekly-rf"]
        )
        assert created.exit_code == 0, created.output
        assert "local schedule 'weekly-rf' (0 3 * * 1) created" in created.output
        assert local_scheduler_pid() is not None
        listed = runner.invoke(cli_module.cli, ["schedule", "list"])
        assert "weekly-rf: '0 3 * * 1' on local scheduler (running)" in listed.output
        assert (
            "deleted local schedule 'weekly-rf'"
            in runner.invoke(cli_module.cli, ["schedule", "delete", "weekly-rf"]).output
        )
        missing = runner.invoke(cli_module.cli, ["schedule", "delete", "weekly-rf"])
        assert missing.exit_code != 0 and "no local schedule named 'weekly-rf'" in missing.output
    finally:
        stop_local_scheduler()

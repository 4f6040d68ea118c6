"""The AutoML variant: the local engine (FLAML) as plain logic, then the pipeline end to end.

Budgets are seconds, so the numbers here say nothing about model quality
(bench/model_quality.py measures that); they check the contracts: the engine searches
several families within the budget, optimizes the configured objective, and returns the
same ModelBundle type as rf, loadable without FLAML; the pipeline registers into the
AutoML group and serves the same predictions at the AutoML endpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_endpoint_serves_registered_bundle

from churn.automl import (AutoMLError, AutoMLSettings, FAMILIES, FlamlEngine, flaml_metric, objective_score,
                          register_engine, resolve_engine, train_automl)
from churn.bundle import ModelBundle
from churn.config import ConfigError, PipelineConfig, load_config, parse_config
from churn.preprocessing import Preprocessor, split_train_test

REPO = Path(__file__).resolve().parents[1]
GROUP = "classification-model-automl-group"
ENDPOINT = "automl-classification-endpoint"


# -- config ---------------------------------------------------------------------------

def test_automl_config_has_the_spec_keys_and_its_own_group_and_endpoint():
    config = load_config("configs/automl.yaml")
    assert config.variant == "automl" and config.pipeline_name == "classification-model-automl-pipeline"
    assert config.model_package_group == GROUP and config.endpoint_name == ENDPOINT
    assert config.target_attribute_name == config.target_column == "churn"
    assert config.problem_type == "BinaryClassification" and config.objective_metric_name in typing.get_args(
        PipelineConfig.model_fields["objective_metric_name"].annotation)
    assert config.mode == "ENSEMBLING" and config.accuracy_threshold == 0.5
    settings = AutoMLSettings.from_config(config.model_dump())
    assert settings.max_runtime_sec == config.max_runtime_sec and settings.seed == config.random_state
    assert len(settings.families) >= 4


def test_config_and_engine_agree_on_objectives_and_families():
    from churn.automl import OBJECTIVES

    objectives = typing.get_args(PipelineConfig.model_fields["objective_metric_name"].annotation)
    families = typing.get_args(typing.get_args(typing.get_args(PipelineConfig.model_fields["automl_families"].annotation)[0])[0])
    assert set(objectives) == set(OBJECTIVES) and set(families) == set(FAMILIES)


@pytest.mark.parametrize("raw, message", [
    ({"problem_type": "Regression"}, "key 'problem_type'.*only BinaryClassification"),
    ({"objective_metric_name": "RMSE"}, "key 'objective_metric_name'"),
    ({"mode": "STACKING"}, "key 'mode'"),
    ({"max_runtime_sec": 0}, "key 'max_runtime_sec'"),
    ({"automl_families": ["lgbm", "catboost"]}, "key 'automl_families.1'"),
    ({"target_attribute_name": "churn", "target_column": "left"}, "must name the same column"),
    ({"max_runtime_sec": 60, "max_runtime_per_training_job_sec": 120}, "above max_runtime_sec"),
    ({"max_runtim_sec": 60}, "unknown key 'max_runtim_sec'"),
])
def test_bad_automl_config_is_refused_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_target_attribute_name_alone_sets_the_target_column():
    assert parse_config({"target_attribute_name": "left"}).target_column == "left"


# -- the engine -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_split(demo_frame):
    split = split_train_test(demo_frame.iloc[:1500], "churn", 0.2, 42)
    return split, Preprocessor.fit(split.train, "churn")


@pytest.fixture(scope="module")
def automl_bundle(small_split):
    split, pre = small_split
    # bounded by candidates (~5 s idle) so ensemble selection always has time, even on a busy box
    settings = AutoMLSettings(objective="AUC", max_runtime_sec=30, max_candidates=30, mode="ENSEMBLING", seed=7)
    started = time.perf_counter()
    bundle = train_automl(split.train, pre, settings, info={"lineage": "test"})
    return bundle, time.perf_counter() - started


def test_engine_searches_several_families_within_the_candidate_budget(automl_bundle):
    bundle, seconds = automl_bundle
    automl = bundle.info["automl"]
    assert automl["trials"] <= 30 and seconds < 30 + 4
    tried = [f for f, s in automl["families"].items() if s["trials"] > 0]
    assert len(tried) >= 4, automl["families"]
    assert automl["trials"] == sum(s["trials"] for s in automl["families"].values())
    assert automl["objective"] == "AUC" and automl["flaml_metric"] == "roc_auc" and 0.5 < automl["best_cv_score"] <= 1
    assert automl["best_family"] in tried and automl["best_config"]
    assert bundle.info["automl_engine"] == "flaml" and bundle.info["lineage"] == "test"
    assert bundle.info["automl"]["settings"]["seed"] == 7 and "flaml" in automl["library_versions"]


def test_ensembling_returns_a_plain_sklearn_bundle(automl_bundle, small_split):
    from sklearn.ensemble import VotingClassifier

    bundle, _ = automl_bundle
    split, _ = small_split
    automl = bundle.info["automl"]
    members = automl["ensemble_members"]
    assert 1 <= len(members) <= 3 and sum(m["weight"] for m in members) == pytest.approx(1.0, abs=1e-5)
    assert automl["ensemble_cv_score"] is not None  # the weights were selected on out-of-fold predictions
    if len(members) > 1:
        assert isinstance(bundle.estimator, VotingClassifier)
        assert bundle.estimator.weights == [m["weight"] for m in members]
    assert isinstance(bundle, ModelBundle) and list(bundle.estimator.classes_) == [0, 1]
    assert set(bundle.info["serving_requirements"]) <= {"lightgbm", "xgboost-cpu", "xgboost"}  # never flaml
    proba, unseen = bundle.predict_proba(split.test)
    assert proba.shape == (len(split.test),) and ((proba >= 0) & (proba <= 1)).all() and unseen == {}
    assert objective_score("AUC", split.test["churn"].to_numpy(), proba) > 0.7
    one_row = {c: [split.test[c].iloc[0]] for c in bundle.feature_order}
    assert bundle.predict(one_row).tolist() in ([0], [1])


def test_bundle_loads_and_predicts_without_flaml(automl_bundle, small_split, tmp_path):
    bundle, _ = automl_bundle
    split, _ = small_split
    sha = bundle.save(tmp_path / "bundle")
    split.test.to_csv(tmp_path / "test.csv", index=False)
    script = (
        "import sys, json; sys.modules['flaml'] = None\n"  # any import of flaml now fails
        "import pandas as pd\n"
        "from churn.bundle import ModelBundle\n"
        f"b = ModelBundle.load({str(tmp_path / 'bundle')!r}, expected_sha256={sha!r})\n"
        f"print(json.dumps(b.predict_proba(pd.read_csv({str(tmp_path / 'test.csv')!r}))[0].tolist()))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                            env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(json.loads(result.stdout), bundle.predict_proba(split.test)[0], rtol=1e-9)


def test_hyperparameter_tuning_mode_returns_the_single_best_model_within_the_time_budget(small_split):
    split, pre = small_split
    settings = AutoMLSettings(objective="F1", max_runtime_sec=3, mode="HYPERPARAMETER_TUNING",
                              families=("lgbm", "logistic"), seed=1)
    bundle = FlamlEngine().train(split.train, pre, settings)
    automl = bundle.info["automl"]
    assert automl["search_seconds"] <= 3 + 2 and automl["total_seconds"] <= 3 + 4
    assert automl["flaml_metric"] == "f1" and automl["ensemble_members"] == [{"family": automl["best_family"], "weight": 1.0}]
    assert type(bundle.estimator).__module__.split(".")[0] in ("lightgbm", "sklearn")
    assert list(bundle.estimator.classes_) == [0, 1]


@pytest.mark.parametrize("objective, expected", [
    ("Accuracy", "accuracy"), ("AUC", "roc_auc"), ("F1", "f1"), ("LogLoss", "log_loss"),
    ("Precision", "flaml_Precision"), ("Recall", "flaml_Recall"), ("BalancedAccuracy", "flaml_BalancedAccuracy"),
])
def test_every_spec_objective_maps_to_a_flaml_metric(objective, expected):
    metric = flaml_metric(objective)
    assert (metric if isinstance(metric, str) else metric.__name__) == expected


def test_custom_objective_is_a_loss_flaml_minimizes():
    from sklearn.linear_model import LogisticRegression

    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    model = LogisticRegression().fit(X, y)
    loss, logged = flaml_metric("Recall")(X, y, model, [0, 1], X, y)
    assert loss == pytest.approx(1 - logged["Recall"]) and logged["Recall"] == 1.0


def test_settings_refuse_what_the_engine_cannot_do():
    with pytest.raises(ValueError, match="problem_type"):
        AutoMLSettings(problem_type="Regression")
    with pytest.raises(ValueError, match="unknown: \\['catboost'\\]"):
        AutoMLSettings(families=("lgbm", "catboost"))
    assert AutoMLSettings.from_dict(AutoMLSettings(seed=3).to_dict()) == AutoMLSettings(seed=3)


class FakeEngine:
    """A stand-in for another engine (e.g. Autopilot): same interface, no search."""

    name = "fake"

    def train(self, train_frame, preprocessor, settings):
        from sklearn.dummy import DummyClassifier

        X, _ = preprocessor.transform(train_frame)
        model = DummyClassifier(strategy="prior").fit(X, train_frame[preprocessor.target])
        return ModelBundle(model, preprocessor, {"automl_engine": self.name})


def test_engines_are_pluggable_by_name(small_split):
    split, pre = small_split
    with pytest.raises(AutoMLError, match="unknown AutoML engine 'autopilot'"):
        resolve_engine("autopilot")
    register_engine("fake", "tests.test_automl:FakeEngine")
    bundle = train_automl(split.train, pre, AutoMLSettings(), engine="fake", info={"x": 1})
    assert bundle.info == {"automl_engine": "fake", "x": 1}
    assert isinstance(resolve_engine(None), FlamlEngine)


def test_a_single_class_target_fails_clearly(small_split):
    split, pre = small_split
    with pytest.raises(AutoMLError, match="needs both classes"):
        FlamlEngine().train(split.train.assign(churn=0), pre, AutoMLSettings(max_runtime_sec=1))


# -- the pipeline on the local stack -----------------------------------------------------

@pytest.fixture(scope="module")
def stack(session_dir):
    from zenml.client import Client
    from zenml.utils import source_utils

    from stacks.local import setup_local_stack

    source_utils.set_custom_source_root(str(REPO))
    setup_local_stack(activate=True)
    active = Client().active_stack
    yield active
    active.model_deployer.stop_endpoint(ENDPOINT)


@pytest.fixture(scope="module")
def automl_run(stack):
    from zenml.client import Client

    from churn.demo_data import generate_customers
    from pipelines.training import churn_automl_training

    config = load_config("configs/automl.yaml", max_runtime_sec=6)
    if stack.feature_store.record_count(config.feature_group_name) == 0:  # what `run.py ingest` writes
        stack.feature_store.ingest(config.feature_group_name, generate_customers(5000, 42), config.target_column)
    run = churn_automl_training.with_options(enable_cache=False)(config=config.model_dump())
    return Client().get_pipeline_run(run.id)


def _out(run, step, name):
    return run.steps[step].outputs[name][0].load()


@pytest.mark.pipeline
def test_automl_pipeline_registers_in_its_group_and_serves_its_endpoint(stack, automl_run):
    import mlflow

    assert automl_run.status.value == "completed"
    assert set(automl_run.steps) == {"source_features", "preprocess", "train_automl", "evaluate", "gate", "register", "deploy"}
    report = _out(automl_run, "evaluate", "evaluation_report")
    assert report["accuracy"] >= 0.5 and report["roc_auc"] > 0.7
    registration = _out(automl_run, "register", "registration")
    deployment = _out(automl_run, "deploy", "deployment")
    assert registration.registered and registration.model_name == GROUP
    assert deployment.deployed and deployment.endpoint_name == ENDPOINT

    version = stack.model_registry.get_model_version(GROUP, registration.version)
    tags = version.metadata.model_dump()
    assert tags["zenml_pipeline_run_uuid"] == str(automl_run.id) and tags["approval_status"] == "Approved"
    mlflow.set_tracking_uri(stack.experiment_tracker.get_tracking_uri())
    params = mlflow.get_run(tags["mlflow_run_id"]).data.params
    assert params["model_type"] == "automl" and params["automl_engine"] == "flaml"
    assert params["objective_metric_name"] == load_config("configs/automl.yaml").objective_metric_name
    assert params["max_runtime_sec"] == "6.0"

    # a real CSV request to the AutoML endpoint answers as the registered bundle predicts
    bundle = ModelBundle.load(registration.bundle_uri.removeprefix("file://"), expected_sha256=registration.sha256)
    assert bundle.info["automl"]["best_family"] == params["best_family"]
    assert_endpoint_serves_registered_bundle(deployment.invocations_url, registration, _out(automl_run, "preprocess", "test_set"))


@pytest.mark.pipeline
def test_the_engine_follows_the_active_stack(stack):
    from zenml.client import Client

    from steps.train_automl import ENGINE_LABEL, automl_cache_key, stack_automl_engine

    client = Client()
    before = dict(client.active_stack_model.labels or {})
    assert stack_automl_engine() == before.get(ENGINE_LABEL)  # the local stack: the default engine
    key = automl_cache_key()
    try:
        client.update_stack(client.active_stack_model.id, labels={**before, ENGINE_LABEL: "fake"})
        assert stack_automl_engine() == "fake"
        assert automl_cache_key() != key  # another engine never reuses a cached search
    finally:
        client.update_stack(client.active_stack_model.id, labels={**before, ENGINE_LABEL: before.get(ENGINE_LABEL)})

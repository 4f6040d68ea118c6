"""The AutoML variant: the local engine as plain logic, then the pipeline end to end.

Budgets are seconds, so the numbers here say nothing about model quality
(bench/model_quality.py measures that); they check the contracts: the engine evaluates the
portfolio of defaults, then searches, within the budget; its ensemble is never worse out of
fold than its best member and lists its members; the same seed gives the same model; the
result is the same ModelBundle type as rf, loadable without FLAML; the pipeline registers
into the AutoML group and serves the same predictions at the AutoML endpoint.
"""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from churn.automl import (
    FAMILIES,
    AutoMLError,
    AutoMLSettings,
    flaml_metric,
    objective_score,
    register_engine,
    resolve_engine,
    train_automl,
)
from churn.automl.engines.local import LocalEngine as FlamlEngine
from churn.bundle import ModelBundle
from churn.config import ConfigError, PipelineConfig, load_config, parse_config
from churn.preprocessing import Preprocessor, split_train_test
from tests.conftest import assert_endpoint_serves_registered_bundle

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
        PipelineConfig.model_fields["objective_metric_name"].annotation
    )
    assert config.mode == "ENSEMBLING" and config.accuracy_threshold == 0.5
    settings = AutoMLSettings.from_config(config.model_dump())
    assert settings.max_runtime_sec == config.max_runtime_sec and settings.seed == config.random_state
    assert len(settings.families) >= 4


def test_config_and_engine_agree_on_objectives_and_families():
    from churn.automl import OBJECTIVES

    objectives = typing.get_args(PipelineConfig.model_fields["objective_metric_name"].annotation)
    families = typing.get_args(
        typing.get_args(typing.get_args(PipelineConfig.model_fields["automl_families"].annotation)[0])[0]
    )
    assert set(objectives) == set(OBJECTIVES) and set(families) == set(FAMILIES)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"problem_type": "Regression"}, "key 'problem_type'.*only BinaryClassification"),
        ({"objective_metric_name": "RMSE"}, "key 'objective_metric_name'"),
        ({"mode": "STACKING"}, "key 'mode'"),
        ({"max_runtime_sec": 0}, "key 'max_runtime_sec'"),
        ({"automl_families": ["lgbm", "catboost"]}, "key 'automl_families.1'"),
        ({"target_attribute_name": "churn", "target_column": "left"}, "must name the same column"),
        ({"max_runtime_sec": 60, "max_runtime_per_training_job_sec": 120}, "above max_runtime_sec"),
        ({"max_runtim_sec": 60}, "unknown key 'max_runtim_sec'"),
    ],
)
def test_bad_automl_config_is_refused_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_target_attribute_name_alone_sets_the_target_column():
    assert parse_config({"target_attribute_name": "left"}).target_column == "left"


# -- the engine -----------------------------------------------------------------------

# A small search: four families; the candidate cap ends it (the 8 portfolio candidates of these
# families, then 4 FLAML trials), so the result does not depend on how busy the machine is.
FAMILIES_SMALL = ("histgb", "lgbm", "logistic", "extra_tree")


@pytest.fixture(scope="module")
def small_split(demo_frame):
    import flaml  # noqa: F401  (imports mlflow, seconds; the training step has it loaded already)

    split = split_train_test(demo_frame.iloc[:1500], "churn", 0.2, 42)
    return split, Preprocessor.fit(split.train, "churn")


def _settings(**overrides):
    # max_runtime_sec is far above what the capped search needs, even on a busy machine
    return AutoMLSettings(
        **{
            "objective": "AUC",
            "max_runtime_sec": 900,
            "max_candidates": 12,
            "mode": "ENSEMBLING",
            "families": FAMILIES_SMALL,
            "seed": 7,
            **overrides,
        }
    )


@pytest.fixture(scope="module")
def automl_bundle(small_split):
    split, pre = small_split
    return train_automl(split.train, pre, _settings(), info={"lineage": "test"})


def test_engine_evaluates_the_portfolio_of_defaults_then_searches(automl_bundle):
    automl = automl_bundle.info["automl"]
    names = [c["name"] for c in automl["leaderboard"]]
    # every library's defaults and the one-hot logistic regression are candidates, whatever FLAML finds
    assert {"histgb_default", "lgbm_default", "logistic_default"} <= set(names)
    assert any(c["source"] == "flaml" for c in automl["leaderboard"]), automl["leaderboard"]
    assert automl["trials"] == 12 == sum(s["trials"] for s in automl["families"].values())
    assert automl["objective"] == "AUC" and automl["flaml_metric"] == "roc_auc" and 0.5 < automl["best_cv_score"] <= 1
    scores = [c["cv_score"] for c in automl["leaderboard"]]
    assert scores == sorted(scores, reverse=True) and automl["best_cv_score"] == scores[0]
    assert automl["best_name"] == names[0] and automl["best_family"] == automl["leaderboard"][0]["family"]
    assert automl_bundle.info["automl_engine"] == "flaml" and automl_bundle.info["lineage"] == "test"
    assert automl["settings"]["seed"] == 7 and "flaml" in automl["library_versions"]


def test_the_ensemble_beats_or_ties_its_best_member_out_of_fold(automl_bundle):
    automl = automl_bundle.info["automl"]
    assert automl["ensemble_cv_score"] >= automl["best_cv_score"]
    assert automl["ensemble_cv_score"] >= max(m["cv_score"] for m in automl["ensemble_members"])


def test_the_ensemble_members_are_listed_and_are_what_the_bundle_scores(automl_bundle, small_split):
    from churn.automl.ensemble import WeightedEnsemble

    split, _ = small_split
    members = automl_bundle.info["automl"]["ensemble_members"]
    assert 1 <= len(members) <= 3 and sum(m["weight"] for m in members) == pytest.approx(1.0, abs=1e-5)
    assert all(m["weight"] > 0 and m["family"] in FAMILIES_SMALL and isinstance(m["config"], dict) for m in members)
    estimator = automl_bundle.estimator
    if len(members) > 1:
        assert isinstance(estimator, WeightedEnsemble)
        assert estimator.names == [m["name"] for m in members] and estimator.weights == [m["weight"] for m in members]
        X, _ = automl_bundle.preprocessor.transform(split.test)
        by_hand = sum(m["weight"] * model.predict_proba(X)[:, 1] for m, model in zip(members, estimator.models))
        np.testing.assert_allclose(automl_bundle.predict_proba(split.test)[0], by_hand, rtol=1e-9)
    assert list(estimator.classes_) == [0, 1]
    assert set(automl_bundle.info["serving_requirements"]) <= {"lightgbm", "xgboost-cpu", "xgboost"}  # never flaml
    proba, unseen = automl_bundle.predict_proba(split.test)
    assert proba.shape == (len(split.test),) and ((proba >= 0) & (proba <= 1)).all() and unseen == {}
    assert objective_score("AUC", split.test["churn"].to_numpy(), proba) > 0.7
    one_row = {c: [split.test[c].iloc[0]] for c in automl_bundle.feature_order}
    assert automl_bundle.predict(one_row).tolist() in ([0], [1])


def test_same_seed_same_model(small_split):
    split, pre = small_split
    settings = _settings(max_candidates=5)  # the portfolio part: deterministic by design
    first, second = (train_automl(split.train, pre, settings) for _ in range(2))
    assert first.info["automl"]["ensemble_members"] == second.info["automl"]["ensemble_members"]
    assert first.info["automl"]["leaderboard"] == [
        {**c, "fold_fit_seconds": first.info["automl"]["leaderboard"][i]["fold_fit_seconds"]}
        for i, c in enumerate(second.info["automl"]["leaderboard"])
    ]
    np.testing.assert_array_equal(first.predict_proba(split.test)[0], second.predict_proba(split.test)[0])
    other = train_automl(split.train, pre, _settings(max_candidates=5, seed=8))
    assert other.info["automl"]["leaderboard"] != first.info["automl"]["leaderboard"]


def test_the_time_budget_is_honoured_including_the_final_fit(small_split):
    split, pre = small_split
    settings = _settings(
        max_runtime_sec=12, max_candidates=None, families=("histgb", "lgbm", "logistic", "rf", "extra_tree", "xgboost")
    )
    bundle = FlamlEngine().train(split.train, pre, settings)
    automl = bundle.info["automl"]
    assert automl["total_seconds"] <= 12 + 3, automl  # a fold or a trial may run past the deadline, no more
    assert automl["ensemble_members"] and automl["final_fit_seconds"] < automl["total_seconds"]


def test_bagging_serves_the_fold_models(small_split):
    from churn.automl.models import BaggedModel

    split, pre = small_split
    bundle = train_automl(split.train, pre, _settings(max_candidates=3, final_fit="bag", mode="HYPERPARAMETER_TUNING"))
    assert isinstance(bundle.estimator, BaggedModel) and len(bundle.estimator.models) == 5
    assert bundle.info["automl"]["ensemble_members"][0]["fit"] == "bag"
    X, _ = pre.transform(split.test)
    by_hand = np.mean([m.predict_proba(X)[:, 1] for m in bundle.estimator.models], axis=0)
    np.testing.assert_allclose(bundle.predict_proba(split.test)[0], by_hand, rtol=1e-9)


def test_fast_member_scoring_equals_predict_proba(small_split):
    from churn.automl.engines.portfolio import PORTFOLIO, build
    from churn.automl.models import positive_scorer

    split, pre = small_split
    X, _ = pre.transform(split.train)
    y = split.train["churn"].to_numpy()
    categorical = [j for j, c in enumerate(pre.feature_order) if c in pre.classes]
    for candidate in PORTFOLIO:
        model = build(candidate, categorical, seed=0, n_jobs=1).fit(X, y)
        for rows in (X[:1], X[:200]):
            np.testing.assert_allclose(
                positive_scorer(model)(rows),
                model.predict_proba(rows)[:, 1],
                rtol=1e-9,
                atol=1e-12,
                err_msg=candidate.name,
            )


def test_greedy_selection_blends_complementary_candidates_and_caps_members():
    from churn.automl.ensemble import greedy_selection

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    signal = y + rng.normal(0, 1, 4000)
    a, b = signal + rng.normal(0, 1.5, 4000), signal + rng.normal(0, 1.5, 4000)  # same signal, independent errors
    weak = rng.random(4000)
    oof = np.array([1 / (1 + np.exp(-v)) for v in (a, b, weak)])
    score = lambda p: objective_score("AUC", y, p)  # noqa: E731
    selection = greedy_selection(oof, score, max_members=2)
    assert selection.score > max(score(oof[0]), score(oof[1]))
    assert selection.weights[2] == 0 and selection.weights[0] > 0 and selection.weights[1] > 0
    assert sum(selection.weights) == pytest.approx(1.0)
    dominated = greedy_selection(np.array([oof[0], weak]), score)
    assert dominated.weights == [1.0, 0.0] and dominated.score == pytest.approx(score(oof[0]))


def test_bundle_loads_and_predicts_without_flaml(automl_bundle, small_split, tmp_path):
    bundle = automl_bundle
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
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(json.loads(result.stdout), bundle.predict_proba(split.test)[0], rtol=1e-9)


def test_hyperparameter_tuning_mode_returns_the_single_best_model(small_split):
    split, pre = small_split
    settings = AutoMLSettings(
        objective="F1",
        max_runtime_sec=600,
        max_candidates=4,
        mode="HYPERPARAMETER_TUNING",
        families=("lgbm", "logistic"),
        seed=1,
    )
    bundle = FlamlEngine().train(split.train, pre, settings)
    automl = bundle.info["automl"]
    assert automl["flaml_metric"] == "f1" and len(automl["ensemble_members"]) == 1
    member = automl["ensemble_members"][0]
    assert member["weight"] == 1.0 and member["name"] == automl["best_name"] and member["fit"] == "refit"
    assert type(bundle.estimator).__module__.split(".")[0] in ("lightgbm", "churn")
    assert list(bundle.estimator.classes_) == [0, 1]


@pytest.mark.parametrize(
    "objective, expected",
    [
        ("Accuracy", "accuracy"),
        ("AUC", "roc_auc"),
        ("F1", "f1"),
        ("LogLoss", "log_loss"),
        ("Precision", "flaml_Precision"),
        ("Recall", "flaml_Recall"),
        ("BalancedAccuracy", "flaml_BalancedAccuracy"),
    ],
)
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
    with pytest.raises(ValueError, match="final_fit must be one of refit, bag, got 'stack'"):
        AutoMLSettings(final_fit="stack")
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
    assert set(automl_run.steps) == {
        "source_features",
        "preprocess",
        "train_automl",
        "evaluate",
        "gate",
        "register",
        "deploy",
    }
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
    assert_endpoint_serves_registered_bundle(
        deployment.invocations_url, registration, _out(automl_run, "preprocess", "test_set")
    )


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

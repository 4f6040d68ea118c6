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
    DEFAULT_FAMILIES,
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
from tests.conftest import assert_endpoint_serves_registered_bundle, local_stack_fixture

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
    if automl["ensemble_cv_score"] is None:  # the blend's gain did not hold across the folds: the best model
        assert [m["name"] for m in automl["ensemble_members"]] == [automl["best_name"]]
        assert len(automl["ensemble_fold_gains"] or []) in (0, automl["cv_folds"])
    else:
        assert automl["ensemble_cv_score"] >= automl["best_cv_score"]
        assert automl["ensemble_cv_score"] >= max(m["cv_score"] for m in automl["ensemble_members"])
        assert len(automl["ensemble_fold_gains"]) == automl["cv_folds"] and np.mean(automl["ensemble_fold_gains"]) > 0


def test_the_ensemble_members_are_listed_and_are_what_the_bundle_scores(automl_bundle, small_split):
    from churn.automl.ensemble import WeightedEnsemble

    split, _ = small_split
    members = automl_bundle.info["automl"]["ensemble_members"]
    assert 1 <= len(members) <= 3 and sum(m["weight"] for m in members) == pytest.approx(1.0, abs=1e-5)
    assert all(m["weight"] > 0 and m["family"] in FAMILIES_SMALL and isinstance(m["config"], dict) for m in members)
    # the model cards show the hyperparameters: the members lead them
    assert automl_bundle.info["hyperparameters"]["ensemble"] == " + ".join(
        f"{m['weight']:.3f} {m['name']}" for m in members
    )
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
        for rows, one_off in ((X[:1], False), (X[:200], False), (X[:200], True)):  # served (compiled) and OOF
            np.testing.assert_allclose(
                positive_scorer(model, one_off=one_off)(rows),
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


def _wide_high_cardinality(rows=6000, levels=3000, seed=0):
    """Label-coded frame: 5 numbers, a 4-level column and a Zipf ``levels``-level column, each level its effect."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, 5))
    p = 1.0 / np.arange(1, levels + 1) ** 1.1
    high = rng.choice(levels, rows, p=p / p.sum())
    low = rng.integers(0, 4, rows)
    logit = numbers[:, 0] - numbers[:, 1] + rng.normal(0, 1, levels)[high] + np.array([0, 1, -1, 0.5])[low]
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return np.column_stack([numbers, low, high]).astype(np.float64), y, [5, 6]


def test_the_linear_model_is_ordered_by_its_cost_on_wide_high_cardinality_data():
    from churn.automl.engines.portfolio import DataProfile, portfolio

    X, _, categorical = _wide_high_cardinality()
    narrow = DataProfile.of(X[:, :6], [5])
    assert narrow.one_hot_width == 5  # 4 levels + the rare/unseen slot
    assert [c.name for c in portfolio(DEFAULT_FAMILIES, narrow)[:3]] == [
        "logistic_default",
        "histgb_default",
        "lgbm_default",
    ]
    # 200k rows with a 100k-level column: the one-hot model costs more than a boosted model's defaults
    wide = DataProfile(rows=200_000, numeric=5, categorical=2, one_hot_width=100_000)
    order = [c.name for c in portfolio(DEFAULT_FAMILIES, wide)]
    assert order[:3] == ["histgb_default", "lgbm_default", "logistic_default"]
    assert sorted(order) == sorted(c.name for c in portfolio(DEFAULT_FAMILIES))  # reordered, nothing dropped


def test_one_hot_logistic_is_sparse_groups_rare_levels_and_matches_a_dense_one_hot_fit():
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from churn.automl.models import OneHotLogistic

    X, y, categorical = _wide_high_cardinality()
    model = OneHotLogistic(categorical_columns=categorical, min_level_count=1).fit(X, y)
    design = model._encode(X)
    assert sparse.issparse(design) and design.nnz == X.size  # one nonzero per column and row
    # the same problem, densely: one-hot (all levels) + standardized numbers
    dense = np.hstack(
        [StandardScaler().fit_transform(X[:, :5]), OneHotEncoder(sparse_output=False).fit_transform(X[:, 5:])]
    )
    reference = LogisticRegression(max_iter=2000).fit(dense, y).predict_proba(dense)[:, 1]
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], reference, atol=2e-3)
    # rare levels (seen once) share one coefficient, as do codes never seen in training and NaN
    grouped = OneHotLogistic(categorical_columns=categorical, min_level_count=2).fit(X, y)
    counts = np.bincount(X[:, 6].astype(int))
    once = np.flatnonzero(counts == 1)[:2]
    rows = np.repeat(X[:1], 4, axis=0)
    rows[:, 6] = [once[0], once[1], 10**6, np.nan]
    assert np.unique(grouped.decision_function(rows)).size == 1
    assert grouped.decision_function(X[:200]).shape == (200,)
    with pytest.raises(ValueError, match="categorical column 6 must hold label codes"):
        OneHotLogistic(categorical_columns=categorical).fit(np.column_stack([X[:, :6], X[:, 6] + 0.5]), y)


def test_pruning_drops_members_that_cost_scoring_time_for_nothing():
    from churn.automl.ensemble import prune

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 4000)
    signal = y + rng.normal(0, 1, 4000)
    strong = 1 / (1 + np.exp(-(signal + rng.normal(0, 0.5, 4000))))
    second = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.5, 4000))))
    oof = np.array([strong, second, second + rng.normal(0, 0.01, 4000)])
    score = lambda p: objective_score("AUC", y, p)  # noqa: E731
    full = [0.75, 0.2, 0.05]
    reference = score(np.asarray(full) @ oof)
    # no cap: only the tiny member goes, and the blend scores within the tolerance of the full blend
    weights = prune(oof, full, score, costs=[500, 500, 500], max_cost=10_000, tolerance=0.0005)
    assert weights[2] == 0 and weights[0] > 0 and weights[1] > 0 and sum(weights) == pytest.approx(1.0)
    assert score(np.asarray(weights) @ oof) >= reference - 0.0005
    # a cap below two members' cost: the costly, less useful member goes first
    capped = prune(oof, full, score, costs=[500, 3000, 100], max_cost=1000)
    assert capped[1] == 0 and capped[0] > 0 and sum(capped) == pytest.approx(1.0)
    # one member over the cap alone still serves (an ensemble is never empty)
    assert prune(oof[:1], [1.0], score, costs=[9999], max_cost=10) == [1.0]


def test_the_served_ensemble_is_within_the_scoring_cost_cap(automl_bundle):
    from churn.automl.models import scoring_cost

    automl = automl_bundle.info["automl"]
    cap = automl["settings"]["max_scoring_cost"]
    estimator = automl_bundle.estimator
    # the cap was applied to the fold models' costs; a refit on all rows may grow a tree a level deeper
    assert cap and (scoring_cost(estimator) <= 1.25 * cap or len(automl["ensemble_members"]) == 1)


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


stack = local_stack_fixture(ENDPOINT)


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
    # the ensemble's members: in the bundle, in MLflow and on the dashboard's model card
    members = bundle.info["automl"]["ensemble_members"]
    assert params["ensemble"] == ",".join(f"{m['name']}:{m['weight']}" for m in members)
    artifact = automl_run.steps["train_automl"].outputs["model_bundle"][0]
    card = Path(artifact.uri, "model_card.md").read_text()  # what the dashboard shows (local artifact store)
    assert all(f"{m['weight']:.3f} {m['name']}" in card for m in members), card
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


def test_the_blend_is_served_only_if_its_out_of_fold_gain_holds_across_the_folds():
    from sklearn.model_selection import StratifiedKFold

    from churn.automl.engines.portfolio import Candidate, Evaluated

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 4000)
    signal = y + rng.normal(0, 1, 4000)
    a, b = signal + rng.normal(0, 1.5, 4000), signal + rng.normal(0, 1.5, 4000)  # independent errors
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(a, y))
    lucky = a.copy()  # same as ``a`` except on one fold's rows, where its errors are independent of a's
    lucky[folds[0][1]] = b[folds[0][1]]

    def score(p):
        return objective_score("AUC", y, p)

    score.rows = lambda p, rows: objective_score("AUC", y[rows], p)
    settings = AutoMLSettings(objective="AUC", max_scoring_cost=None)

    def select(*oofs):
        oofs = [1 / (1 + np.exp(-v)) for v in oofs]
        ranked = sorted(
            (Evaluated(Candidate(f"c{i}", "logistic", {}), p, score(p), [], 0.1) for i, p in enumerate(oofs)),
            key=lambda e: -e.score,
        )
        return FlamlEngine._select(ranked, settings, score, folds)

    weights, blended, gains = select(a, b)  # complementary: the blend is better in every fold
    assert np.count_nonzero(weights) == 2 and blended > score(1 / (1 + np.exp(-a))) and min(gains) > 0
    weights, blended, gains = select(a, lucky)  # the blend is better out of fold, but in one fold only
    assert weights == [1.0, 0.0] and blended is None
    assert sum(g > 0 for g in gains) == 1 and np.mean(gains) > 0

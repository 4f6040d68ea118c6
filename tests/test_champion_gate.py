"""The champion/challenger gate as plain functions: the verdict holds a new model against the champion's number.

The pipeline test (tests/test_pipeline_local.py) runs it end to end on the local stack, with the
champion fetched from the real MLflow registry and verified by its hash.
"""

from __future__ import annotations

import numpy as np
import pytest

from churn import metrics
from churn.artifacts import ChampionScore, GateVerdict
from churn.config import ConfigError, load_config, parse_config
from churn.evaluation import EvaluationReport, check_quality, classification_metrics


def _champion(value, version="3", tolerance=0.0, metric="accuracy"):
    return ChampionScore(
        model_name="classification-model-group",
        metric=metric,
        tolerance=tolerance,
        version=version,
        value=value,
        sha256="a" * 64,
    )


def test_a_better_champion_fails_the_gate_and_the_verdict_names_both_numbers():
    verdict = check_quality({"accuracy": 0.7}, "accuracy", 0.5, _champion(0.8))
    assert not verdict.passed
    assert verdict.message == (
        "quality gate FAILED: accuracy 0.7000 >= 0.5 but < champion v3 0.8000 - 0.0; "
        "the model is not registered and not deployed"
    )
    assert (verdict.champion_version, verdict.champion_value) == ("3", 0.8)


def test_a_worse_or_equal_champion_passes():
    verdict = check_quality({"accuracy": 0.81}, "accuracy", 0.5, _champion(0.8))
    assert verdict.passed
    assert verdict.message == "quality gate passed: accuracy 0.8100 >= 0.5 and >= champion v3 0.8000 - 0.0"
    assert check_quality({"accuracy": 0.8}, "accuracy", 0.5, _champion(0.8)).passed  # retraining the same model


def test_the_tolerance_lets_a_slightly_worse_model_through_and_no_further():
    assert check_quality({"accuracy": 0.78}, "accuracy", 0.5, _champion(0.8, tolerance=0.03)).passed
    verdict = check_quality({"accuracy": 0.76}, "accuracy", 0.5, _champion(0.8, tolerance=0.03))
    assert not verdict.passed and "accuracy 0.7600 >= 0.5 but < champion v3 0.8000 - 0.03" in verdict.message


def test_the_threshold_still_applies_when_the_champion_is_beaten():
    verdict = check_quality({"accuracy": 0.45}, "accuracy", 0.5, _champion(0.4))
    assert not verdict.passed and "accuracy 0.4500 < 0.5 but >= champion v3 0.4000 - 0.0" in verdict.message
    both = check_quality({"accuracy": 0.3}, "accuracy", 0.5, _champion(0.4))
    assert not both.passed and "accuracy 0.3000 < 0.5 and < champion v3 0.4000 - 0.0" in both.message


def test_no_champion_yet_passes_on_the_threshold_alone_and_says_so():
    none_yet = ChampionScore(model_name="classification-model-group", metric="accuracy")
    verdict = check_quality({"accuracy": 0.7}, "accuracy", 0.5, none_yet)
    assert verdict.passed and verdict.compared_to_champion and verdict.champion_version is None
    assert verdict.message == (
        "quality gate passed: accuracy 0.7000 >= 0.5; no champion yet, so the threshold alone decides"
    )
    assert not check_quality({"accuracy": 0.4}, "accuracy", 0.5, none_yet).passed
    no_value = check_quality({"accuracy": 0.7}, "accuracy", 0.5, _champion(None))  # e.g. ROC-AUC on one class
    assert no_value.passed and no_value.message.endswith("; champion v3 has no accuracy on this test set")


def test_without_comparison_the_spec_verdict_is_unchanged():
    verdict = check_quality({"accuracy": 0.7}, "accuracy", 0.5)
    assert verdict.passed and not verdict.compared_to_champion
    assert verdict.message == "quality gate passed: accuracy 0.7000 >= 0.5"


@pytest.fixture
def with_brier_score(monkeypatch):
    """A lower-is-better metric, added to the registry as one would add it to churn/metrics.py."""

    def brier(y_true, y_pred, proba):
        return float(np.mean((np.asarray(proba) - np.asarray(y_true)) ** 2))

    added = metrics.Metric("brier_score", brier, higher_is_better=False)
    monkeypatch.setattr(metrics, "METRICS", metrics.METRICS + (added,))


def test_a_lower_is_better_metric_compares_the_other_way(with_brier_score):
    report = classification_metrics([0, 0, 0, 1, 1, 1], [0.1, 0.6, 0.2, 0.7, 0.9, 0.4])  # brier 0.145
    assert check_quality(report, "brier_score", 0.3, _champion(0.2, metric="brier_score")).passed
    worse = check_quality(report, "brier_score", 0.3, _champion(0.1, metric="brier_score"))
    assert not worse.passed and "brier_score 0.1450 <= 0.3 but > champion v3 0.1000 + 0.0" in worse.message
    assert check_quality(report, "brier_score", 0.3, _champion(0.1, tolerance=0.05, metric="brier_score")).passed


def test_a_champion_scored_on_another_metric_is_refused():
    with pytest.raises(ValueError, match="champion was scored on 'roc_auc', the gate metric is 'accuracy'"):
        check_quality({"accuracy": 0.9}, "accuracy", 0.5, _champion(0.8, metric="roc_auc"))


def test_the_verdict_travels_in_the_report_and_shows_the_champion_on_the_dashboard():
    report = EvaluationReport({"accuracy": 0.7})
    report["gate"] = check_quality(report, "accuracy", 0.5, _champion(0.8)).model_dump(mode="json")
    verdict = report.verdict()
    assert isinstance(verdict, GateVerdict) and not verdict.passed and verdict.champion_value == 0.8
    assert "| champion on this test set | v3: 0.8000 (tolerance 0.0) |" in verdict.markdown()
    assert "| champion | classification-model-group version 3 |" in _champion(0.8).markdown()
    assert _champion(0.8).describe() == (
        "champion classification-model-group version 3: accuracy 0.8000 on this run's test set"
    )
    assert ChampionScore(model_name="m", metric="accuracy").describe() == "no champion yet: m has no Approved version"


def test_the_config_keys_are_off_by_default_and_validated():
    for path in ("configs/rf.yaml", "configs/automl.yaml"):
        config = load_config(path)
        assert config.compare_to_champion is False and config.champion_tolerance == 0.0
    assert parse_config({"compare_to_champion": True, "champion_tolerance": 0.02}).champion_tolerance == 0.02
    for bad, message in (
        (-0.1, "greater than or equal to 0"),
        (1.5, "less than or equal to 1"),
        (float("nan"), "finite number"),
    ):
        with pytest.raises(ConfigError, match=rf"key 'champion_tolerance': .*{message}"):
            parse_config({"champion_tolerance": bad})
    with pytest.raises(ConfigError, match="key 'compare_to_champion'"):
        parse_config({"compare_to_champion": "sometimes"})

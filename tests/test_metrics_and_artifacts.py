"""The metrics registry drives every place that names metrics; the typed artifacts round-trip and read well.

No pipeline run: the plain functions the steps call, and the materializers on the session's
own (temporary) local artifact store.
"""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest

from churn import metrics
from churn.artifacts import Deployment, FeatureLineage, GateVerdict, Registration
from churn.config import ConfigError, parse_config
from churn.evaluation import EvaluationReport, check_quality, classification_metrics
from churn.report_html import evaluation_html, model_card_html

Y_TRUE = [0, 0, 0, 1, 1, 1]
PROBA = [0.1, 0.6, 0.2, 0.7, 0.9, 0.4]
LINEAGE = FeatureLineage(
    feature_group="g",
    customer_id_start=1,
    customer_id_end=6,
    description="feature group 'g'",
    sql="SELECT 1",
    rows=6,
    data_fingerprint="f" * 64,
)


def _balanced_accuracy(y_true, y_pred, proba):
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y_true, y_pred))


def _brier(y_true, y_pred, proba):
    return float(np.mean((np.asarray(proba) - np.asarray(y_true)) ** 2))


@pytest.fixture
def with_added_metrics(monkeypatch):
    """The registry with two more entries, exactly as one would add them to churn/metrics.py."""
    added = (
        metrics.Metric("balanced_accuracy", _balanced_accuracy),
        metrics.Metric("brier_score", _brier, higher_is_better=False, fmt=".3f"),
    )
    monkeypatch.setattr(metrics, "METRICS", metrics.METRICS + added)


def test_a_metric_not_in_the_registry_is_refused_by_config_and_gate():
    with pytest.raises(
        ConfigError,
        match=r"key 'gate_metric': gate_metric must be one of accuracy, precision, "
        r"recall, f1_score, roc_auc \(got 'balanced_accuracy'\)",
    ):
        parse_config({"gate_metric": "balanced_accuracy"})
    with pytest.raises(ValueError, match="gate metric must be one of accuracy, precision"):
        check_quality({"balanced_accuracy": 0.9}, "balanced_accuracy", 0.5)


def test_one_registry_entry_drives_validation_evaluation_gate_report_card_and_cli_summary(with_added_metrics):
    assert parse_config({"gate_metric": "balanced_accuracy"}).gate_metric == "balanced_accuracy"  # config validation
    report = EvaluationReport(classification_metrics(Y_TRUE, PROBA))  # evaluation
    assert report["balanced_accuracy"] == pytest.approx(4 / 6) and report["brier_score"] == pytest.approx(0.145)
    verdict = check_quality(report, "balanced_accuracy", 0.6)  # the gate
    assert verdict.passed and verdict.message == "quality gate passed: balanced_accuracy 0.6667 >= 0.6"
    report["gate"] = verdict.model_dump(mode="json")
    page = evaluation_html(report)  # the report
    assert '<td class="l">balanced_accuracy</td><td>0.6667</td>' in page
    assert '<td class="l">brier_score</td><td>0.145</td>' in page  # its format
    card = model_card_html(Registration.refused(verdict.message), report, verdict, LINEAGE, {})  # the model card
    assert "balanced_accuracy" in card and "brier_score" in card
    assert "balanced_accuracy=0.6667" in metrics.summary_line(report)  # the CLI summary
    assert "brier_score=0.145" in metrics.summary_line(report)


def test_a_lower_is_better_metric_gates_at_most_its_threshold(with_added_metrics):
    report = classification_metrics(Y_TRUE, PROBA)
    assert check_quality(report, "brier_score", 0.2).passed
    failed = check_quality(report, "brier_score", 0.1)
    assert not failed.passed and "brier_score 0.1450 > 0.1" in failed.message


def test_a_metric_can_be_reported_without_being_allowed_to_gate(monkeypatch):
    monkeypatch.setattr(metrics, "METRICS", metrics.METRICS + (metrics.Metric("brier_score", _brier, gate=False),))
    assert "brier_score" in classification_metrics(Y_TRUE, PROBA)
    with pytest.raises(ConfigError, match="key 'gate_metric'"):
        parse_config({"gate_metric": "brier_score"})


def test_registration_and_deployment_refuse_incomplete_records():
    with pytest.raises(ValueError, match="a registration must name .*version"):
        Registration(registered=True, model_name="m")
    with pytest.raises(ValueError, match="must say why"):
        Registration(registered=False)
    deployment = Deployment.of_endpoint(
        {
            "endpoint_name": "e",
            "model_name": "m",
            "version": 3,
            "sha256": "s",
            "url": "http://127.0.0.1:1",
            "pid": 42,
            "endpoint_arn": "arn:x",
            "invocations_url": "http://127.0.0.1:1/invocations",
        }
    )
    assert deployment.deployed and deployment.version == "3"
    assert deployment.details == {"pid": 42, "endpoint_arn": "arn:x"}


def _materialize(materializer_class, value):
    """Save, visualize and load ``value`` with a materializer, on the active stack's artifact store."""
    from zenml.client import Client

    uri = os.path.join(Client().active_stack.artifact_store.path, "test-materializers", uuid.uuid4().hex)
    os.makedirs(uri)
    materializer = materializer_class(uri)
    materializer.save(value)
    visualizations = materializer.save_visualizations(value)
    return materializer.load(type(value)), visualizations, materializer.extract_metadata(value)


@pytest.mark.parametrize(
    "artifact",
    [
        LINEAGE,
        GateVerdict(passed=False, metric="accuracy", value=0.41, threshold=0.5),
        Registration(
            registered=True,
            model_name="m",
            version="2",
            bundle_uri="file:///b",
            sha256="a" * 64,
            approval_status="Approved",
            mlflow_run_id="r1",
            trained_in_mlflow_run_id="r0",
            zenml_run_id="z",
        ),
        Deployment.skipped("version 2 is PendingManualApproval; only Approved models are deployed"),
    ],
    ids=lambda a: type(a).__name__,
)
def test_typed_artifacts_round_trip_and_show_a_table_on_the_dashboard(artifact):
    from zenml.enums import VisualizationType

    from materializers.artifact_materializer import TypedArtifactMaterializer

    loaded, visualizations, metadata = _materialize(TypedArtifactMaterializer, artifact)
    assert loaded == artifact and type(loaded) is type(artifact)
    [(path, kind)] = visualizations.items()
    text = open(path).read()
    assert kind == VisualizationType.MARKDOWN and "|---|---|" in text and not text.lstrip().startswith("{")
    assert "schema" not in metadata  # its fields, not ZenML's JSON schema
    if isinstance(artifact, GateVerdict):
        assert "quality gate FAILED: accuracy 0.4100 < 0.5" in text and metadata["passed"] is False


def test_the_preprocessor_travels_as_itself_and_shows_its_features(demo_frame):
    from churn.preprocessing import Preprocessor
    from materializers.preprocessor_materializer import PreprocessorMaterializer

    preprocessor = Preprocessor.fit(demo_frame.iloc[:200], "churn")
    loaded, visualizations, _ = _materialize(PreprocessorMaterializer, preprocessor)
    assert isinstance(loaded, Preprocessor) and loaded.to_dict() == json.loads(json.dumps(preprocessor.to_dict()))
    text = open(next(iter(visualizations))).read()
    assert all(f"| {name} |" in text for name in preprocessor.feature_order)
    assert "| categorical |" in text and "| numeric | median" in text

"""The evaluation charts (churn.plots): what they draw is the report's numbers, and they are real PNG images."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from churn.evaluation import classification_metrics
from churn.plots import CHARTS, evaluation_figures, png_bytes
from churn.report_html import evaluation_html

RNG = np.random.default_rng(7)
Y_TRUE = RNG.integers(0, 2, 400)
PROBA = np.clip(Y_TRUE * 0.35 + RNG.random(400) * 0.65, 0, 1)


def _image(data: bytes) -> np.ndarray:
    from matplotlib import image

    return image.imread(io.BytesIO(data), format="png")


def test_roc_precision_recall_and_confusion_matrix_show_the_reports_numbers():
    report = classification_metrics(Y_TRUE, PROBA)
    figures = evaluation_figures(report)
    assert tuple(figures) == CHARTS

    roc = figures["roc_curve"].axes[0]
    fpr, tpr = roc.lines[0].get_data()
    assert list(fpr) == report["curves"]["roc"]["fpr"] and list(tpr) == report["curves"]["roc"]["tpr"]
    assert roc.get_legend().get_texts()[0].get_text() == f"ROC-AUC {report['roc_auc']:.3f}"

    recall, precision = figures["precision_recall_curve"].axes[0].lines[0].get_data()
    assert list(recall) == report["curves"]["pr"]["recall"] and list(precision) == report["curves"]["pr"]["precision"]

    matrix = report["confusion_matrix"]
    cells = [text.get_text() for text in figures["confusion_matrix"].axes[0].texts]
    assert cells == [str(matrix[k]) for k in ("tn", "fp", "fn", "tp")]
    assert sum(map(int, cells)) == len(Y_TRUE)


@pytest.mark.parametrize("name", CHARTS)
def test_each_chart_is_a_png_a_person_can_read(name):
    data = png_bytes(evaluation_figures(classification_metrics(Y_TRUE, PROBA))[name])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = _image(data)
    height, width = pixels.shape[:2]
    assert 200 < width < 600 and 200 < height < 600  # small enough for a page, large enough to read
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20  # drawn, not a blank canvas


def test_a_single_class_test_set_gets_the_confusion_matrix_only():
    report = classification_metrics([1, 1, 1, 1], [0.9, 0.2, 0.7, 0.6])
    assert report["roc_auc"] is None
    figures = evaluation_figures(report)
    assert list(figures) == ["confusion_matrix"]
    assert [t.get_text() for t in figures["confusion_matrix"].axes[0].texts] == ["0", "0", "1", "3"]
    assert evaluation_html(report).count("<img") == 1  # the dashboard report shows the same single chart


def test_the_dashboard_report_embeds_the_same_three_charts():
    report = classification_metrics(Y_TRUE, PROBA)
    page = evaluation_html(report)
    assert page.count('src="data:image/png;base64,') == len(CHARTS)


def test_the_dashboard_gets_the_report_and_each_chart_as_an_image(tmp_path):
    from zenml.enums import VisualizationType

    from churn.evaluation import EvaluationReport
    from materializers.evaluation_materializer import EvaluationReportMaterializer

    report = EvaluationReport(classification_metrics(Y_TRUE, PROBA))
    materializer = EvaluationReportMaterializer(str(tmp_path))
    materializer.save(report)
    visualizations = list(materializer.save_visualizations(report).items())
    (html_path, html_type), *charts = visualizations
    assert html_type == VisualizationType.HTML and "Evaluation report" in open(html_path).read()  # shown first
    assert [(path.rsplit("/", 1)[-1], kind) for path, kind in charts] == [
        (f"{name}.png", VisualizationType.IMAGE) for name in CHARTS
    ]
    page = open(html_path).read()
    for path, _ in charts:
        png = open(path, "rb").read()
        assert _image(png).shape[0] > 200
        assert base64.b64encode(png).decode() in page  # drawn once: the report embeds the same image

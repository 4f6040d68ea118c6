"""Materializer for EvaluationReport: evaluation.json; for the dashboard, the HTML report and each chart as a PNG.

The charts are also IMAGE visualizations of their own, so the dashboard shows each at its size (with its own
download button) rather than inside the report's fixed-height frame. ZenML 0.98's dashboard asks for a
"Load Preview" click before it shows any visualization, whatever its type.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from churn.evaluation import EvaluationReport
from churn.plots import evaluation_pngs
from churn.report_html import evaluation_html

FILE = "evaluation.json"


class EvaluationReportMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (EvaluationReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def load(self, data_type: type[Any]) -> EvaluationReport:
        with fileio.open(os.path.join(self.uri, FILE), "r") as handle:
            return EvaluationReport(json.load(handle))

    def save(self, data: EvaluationReport) -> None:
        with fileio.open(os.path.join(self.uri, FILE), "w") as handle:
            json.dump(dict(data), handle, indent=2)

    def save_visualizations(self, data: EvaluationReport) -> dict[str, VisualizationType]:
        charts = evaluation_pngs(data)  # ROC, precision-recall, confusion matrix
        path = os.path.join(self.uri, "evaluation.html")
        with fileio.open(path, "w") as handle:
            handle.write(evaluation_html(data, data.get("feature_importances"), charts))
        visualizations = {path: VisualizationType.HTML}
        for name, png in charts.items():
            chart = os.path.join(self.uri, f"{name}.png")
            with fileio.open(chart, "wb") as handle:
                handle.write(png)
            visualizations[chart] = VisualizationType.IMAGE
        return visualizations

    def extract_metadata(self, data: EvaluationReport) -> dict[str, Any]:
        return {k: v for k, v in data.items() if isinstance(v, float)}

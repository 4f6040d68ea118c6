"""Materializer for EvaluationReport: evaluation.json plus an HTML page for the dashboard."""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar, Dict, Tuple, Type

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from churn.evaluation import EvaluationReport
from churn.report_html import evaluation_html

FILE = "evaluation.json"


class EvaluationReportMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (EvaluationReport,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA_ANALYSIS

    def load(self, data_type: Type[Any]) -> EvaluationReport:
        with fileio.open(os.path.join(self.uri, FILE), "r") as handle:
            return EvaluationReport(json.load(handle))

    def save(self, data: EvaluationReport) -> None:
        with fileio.open(os.path.join(self.uri, FILE), "w") as handle:
            json.dump(dict(data), handle, indent=2)

    def save_visualizations(self, data: EvaluationReport) -> Dict[str, VisualizationType]:
        path = os.path.join(self.uri, "evaluation.html")
        with fileio.open(path, "w") as handle:
            handle.write(evaluation_html(data, data.get("feature_importances")))
        return {path: VisualizationType.HTML}

    def extract_metadata(self, data: EvaluationReport) -> Dict[str, Any]:
        return {k: v for k, v in data.items() if isinstance(v, float)}

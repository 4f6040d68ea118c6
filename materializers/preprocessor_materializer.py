"""Materializer for the fitted ``Preprocessor``: its own ``to_dict`` as JSON, a feature table for the dashboard.

The preprocess step hands the train steps the ``Preprocessor`` itself (no dict to rebuild);
the file is the same document the model bundle stores (``Preprocessor.to_dict``).
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from churn.artifacts import preprocessor_markdown
from churn.preprocessing import Preprocessor

FILE = "preprocessor.json"


class PreprocessorMaterializer(BaseMaterializer):
    """Stores a fitted ``churn.preprocessing.Preprocessor`` as JSON; visualizes its features as Markdown."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (Preprocessor,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def load(self, data_type: type[Any]) -> Preprocessor:
        with fileio.open(os.path.join(self.uri, FILE), "r") as handle:
            return Preprocessor.from_dict(json.load(handle))

    def save(self, data: Preprocessor) -> None:
        with fileio.open(os.path.join(self.uri, FILE), "w") as handle:
            json.dump(data.to_dict(), handle, indent=2)

    def save_visualizations(self, data: Preprocessor) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "features.md")
        with fileio.open(path, "w") as handle:
            handle.write(preprocessor_markdown(data))
        return {path.replace("\\", "/"): VisualizationType.MARKDOWN}

    def extract_metadata(self, data: Preprocessor) -> dict[str, Any]:
        return {"target": data.target, "features": len(data.feature_order), "categorical": len(data.classes)}

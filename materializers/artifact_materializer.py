"""Materializer for the typed artifacts (``churn.artifacts``): ZenML's pydantic JSON plus a Markdown table.

The files are ZenML's own ``PydanticMaterializer``'s (``data_v2.json``); the dashboard shows
the artifact's ``markdown()`` (a table) instead of the raw JSON, and its metadata are its
scalar fields (not the JSON schema ZenML's materializer records).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.pydantic_materializer import PydanticMaterializer

from churn.artifacts import Deployment, FeatureLineage, GateVerdict, Registration, TypedArtifact


class TypedArtifactMaterializer(PydanticMaterializer):
    """Stores a ``churn.artifacts.TypedArtifact`` as JSON; visualizes it as Markdown."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (FeatureLineage, GateVerdict, Registration, Deployment)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save_visualizations(self, data: TypedArtifact) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "summary.md")
        with fileio.open(path, "w") as handle:
            handle.write(data.markdown())
        return {path.replace("\\", "/"): VisualizationType.MARKDOWN}

    def extract_metadata(self, data: TypedArtifact) -> dict[str, Any]:
        return {
            k: v
            for k, v in data.model_dump(mode="json").items()
            if isinstance(v, (str, int, float, bool)) and k != "sql"
        }

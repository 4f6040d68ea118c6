"""Materializer for ModelBundle: the bundle directory as is, plus a model card for the dashboard."""

from __future__ import annotations

import os
import tempfile
from typing import Any, ClassVar, Dict, Tuple, Type

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from churn.bundle import BUNDLE_FILE, ESTIMATOR_FILE, ModelBundle, bundle_sha256


class ModelBundleMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[Tuple[Type[Any], ...]] = (ModelBundle,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def load(self, data_type: Type[Any]) -> ModelBundle:
        with tempfile.TemporaryDirectory() as tmp:
            for name in (BUNDLE_FILE, ESTIMATOR_FILE):
                fileio.copy(os.path.join(self.uri, name), os.path.join(tmp, name))
            return ModelBundle.load(tmp)

    def save(self, data: ModelBundle) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "bundle")
            data.save(local)
            fileio.makedirs(self.uri)
            for name in (BUNDLE_FILE, ESTIMATOR_FILE):
                fileio.copy(os.path.join(local, name), os.path.join(self.uri, name), overwrite=True)

    def extract_metadata(self, data: ModelBundle) -> Dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            sha = data.save(os.path.join(tmp, "bundle"))
        return {
            "estimator": type(data.estimator).__name__,
            "n_features": len(data.feature_order),
            "target": data.target,
            "bundle_sha256_at_save": sha,
        }

    def save_visualizations(self, data: ModelBundle) -> Dict[str, VisualizationType]:
        path = os.path.join(self.uri, "model_card.md")
        with fileio.open(path, "w") as card:
            card.write(model_card_markdown(data))
        return {path: VisualizationType.MARKDOWN}


def model_card_markdown(bundle: ModelBundle) -> str:
    info = bundle.info
    pre = bundle.preprocessor
    rows = "\n".join(
        f"| `{c}` | {'numeric (median ' + format(pre.medians[c], '.4g') + ')' if c in pre.medians else 'categorical: ' + ', '.join(pre.classes[c][:8])} |"
        for c in pre.feature_order
    )
    params = ", ".join(f"{k}={v}" for k, v in sorted((info.get("hyperparameters") or {}).items()))
    query = info.get("feature_query") or {}
    return (
        f"# Model card: {type(bundle.estimator).__name__}\n\n"
        f"- **Target**: `{pre.target}` (1 = churn)\n"
        f"- **Hyperparameters**: {params or 'n/a'}\n"
        f"- **Training data**: {query.get('description', 'n/a')}, {info.get('train_rows', '?')} rows, "
        f"fingerprint `{str(info.get('data_fingerprint', ''))[:16]}`\n"
        f"- **Unseen categories**: mapped to the first known class (reported by the endpoint)\n"
        f"- **Libraries**: {', '.join(f'{k} {v}' for k, v in (info.get('library_versions') or {}).items())}\n\n"
        f"| feature | handling |\n|---|---|\n{rows}\n"
    )

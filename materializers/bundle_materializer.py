"""Materializer for ModelBundle: the bundle directory as is, plus a model card for the dashboard.

The bundle's sha256 is recorded in ZenML's store (the artifact version's metadata,
``bundle_sha256``), not beside the files, and ``load`` verifies the files against it
(``churn.bundle.load_verified``): an artifact whose files were changed or replaced in the
artifact store, or one with no recorded hash, is refused.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer

from churn.bundle import BUNDLE_FILE, ESTIMATOR_FILE, BundleError, ModelBundle, files_sha256, verified_from_files

SHA256_KEY = "bundle_sha256"


class ModelBundleMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (ModelBundle,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    _saved_sha256: str = ""

    def load(self, data_type: type[Any]) -> ModelBundle:
        expected = recorded_sha256(self.uri)
        files = {}
        for name in (BUNDLE_FILE, ESTIMATOR_FILE):  # read once, straight from the artifact store
            try:
                with fileio.open(os.path.join(self.uri, name), "rb") as handle:
                    files[name] = handle.read()
            except FileNotFoundError:
                raise BundleError(f"{self.uri} is not a model bundle: {name} is missing") from None
        return verified_from_files(files, expected, self.uri, source=f"the metadata of ZenML artifact {self.uri}")

    def save(self, data: ModelBundle) -> None:
        files = data.to_files()  # serialized once; the hash is of these bytes
        fileio.makedirs(self.uri)
        for name, content in files.items():
            with fileio.open(os.path.join(self.uri, name), "wb") as handle:
                handle.write(content)
        self._saved_sha256 = files_sha256(files)

    def extract_metadata(self, data: ModelBundle) -> dict[str, Any]:
        if not self._saved_sha256:  # ZenML calls save() first; this is for a materializer used on its own
            self._saved_sha256 = files_sha256(data.to_files())
        return {
            "estimator": type(data.estimator).__name__,
            "n_features": len(data.feature_order),
            "target": data.target,
            SHA256_KEY: self._saved_sha256,
        }

    def save_visualizations(self, data: ModelBundle) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "model_card.md")
        with fileio.open(path, "w") as card:
            card.write(model_card_markdown(data))
        return {path: VisualizationType.MARKDOWN}


def recorded_sha256(uri: str) -> str:
    """The sha256 ZenML's store recorded for the bundle artifact at ``uri``; BundleError when there is none."""
    from zenml.client import Client

    versions = Client().list_artifact_versions(uri=uri, hydrate=True, size=2)
    if not versions.items:
        raise BundleError(
            f"no ZenML artifact is recorded at {uri}: refusing to load a model bundle that cannot be verified"
        )
    metadata = versions.items[0].run_metadata or {}
    sha = metadata.get(SHA256_KEY) or metadata.get("bundle_sha256_at_save")  # the key before this version
    if not sha:
        raise BundleError(
            f"ZenML artifact {uri} has no recorded {SHA256_KEY}: refusing to load a model bundle "
            "that cannot be verified (re-run the step that produced it with --no-cache)"
        )
    return str(sha)


def model_card_markdown(bundle: ModelBundle) -> str:
    info = bundle.info
    pre = bundle.preprocessor

    def kind(column: str) -> str:
        if column in pre.medians:
            return f"numeric (median {format(pre.medians[column], '.4g')})"
        return "categorical: " + ", ".join(pre.classes[column][:8])

    rows = "\n".join(f"| `{c}` | {kind(c)} |" for c in pre.feature_order)
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

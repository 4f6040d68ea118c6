"""The model bundle: a trained estimator with everything inference needs.

On disk it is a directory of two files, readable without ZenML or MLflow:
- ``bundle.json``: preprocessing state, feature order, target, library versions and
  training info (human-readable, diffable);
- ``estimator.joblib``: the fitted scikit-learn-compatible classifier.
``sha256`` covers both files; the registry records it and the server checks it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from churn.fast_forest import CompiledForest
from churn.preprocessing import Preprocessor

FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"
ESTIMATOR_FILE = "estimator.joblib"


class BundleError(RuntimeError):
    """A bundle directory that is missing, corrupt or not what was expected."""


def library_versions() -> Dict[str, str]:
    import joblib
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
    }


@dataclass
class ModelBundle:
    """A classifier plus its preprocessing; predicts from raw feature columns."""

    estimator: Any
    preprocessor: Preprocessor
    info: Dict[str, Any] = field(default_factory=dict)
    _compiled: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._fast_path()  # compile the forest (and its kernel) at load, not on the first request

    def _fast_path(self) -> Optional[CompiledForest]:
        if self._compiled is None:
            self._compiled = CompiledForest.compile(self.estimator) or False
        return self._compiled or None

    @property
    def feature_order(self) -> List[str]:
        return self.preprocessor.feature_order

    @property
    def target(self) -> str:
        return self.preprocessor.target

    def predict_proba(self, columns: Mapping[str, Sequence[Any]]) -> Tuple[np.ndarray, Dict[str, List[str]]]:
        """Probability of the positive class (1) per row, and unseen categories per column."""
        matrix, unseen = self.preprocessor.transform(columns)
        fast = self._fast_path()
        if fast is not None:  # same numbers as predict_proba, at any batch size
            return fast.predict_positive(matrix), unseen
        proba = self.estimator.predict_proba(matrix)
        positive = list(self.estimator.classes_).index(1)
        return proba[:, positive], unseen

    @staticmethod
    def label(proba: np.ndarray) -> np.ndarray:
        """0/1 labels from positive-class probabilities (argmax, ties to 0, as sklearn)."""
        return (proba > 0.5).astype(np.int64)

    def predict(self, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
        return self.label(self.predict_proba(columns)[0])

    # -- persistence -------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> str:
        """Write the bundle to ``directory`` (created or replaced whole); return its sha256."""
        import joblib

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=directory.parent))
        try:
            joblib.dump(self.estimator, staging / ESTIMATOR_FILE)
            document = {
                "format_version": FORMAT_VERSION,
                "preprocessor": self.preprocessor.to_dict(),
                "info": {"library_versions": library_versions(), **self.info},
            }
            (staging / BUNDLE_FILE).write_text(json.dumps(document, indent=2, sort_keys=True, default=str))
            if directory.exists():
                shutil.rmtree(directory)
            staging.rename(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return bundle_sha256(directory)

    @classmethod
    def load(cls, directory: str | os.PathLike, expected_sha256: str | None = None) -> "ModelBundle":
        """Load a bundle; with ``expected_sha256`` refuse one whose content differs."""
        import joblib

        directory = Path(directory)
        for name in (BUNDLE_FILE, ESTIMATOR_FILE):
            if not (directory / name).is_file():
                raise BundleError(f"{directory} is not a model bundle: {name} is missing")
        if expected_sha256 is not None:
            actual = bundle_sha256(directory)
            if actual != expected_sha256:
                raise BundleError(
                    f"bundle {directory} has sha256 {actual}, but the registry recorded "
                    f"{expected_sha256}: refusing to load a bundle that is not the registered one"
                )
        document = json.loads((directory / BUNDLE_FILE).read_text())
        if document.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{directory}: unsupported bundle format {document.get('format_version')!r}")
        return cls(
            estimator=joblib.load(directory / ESTIMATOR_FILE),
            preprocessor=Preprocessor.from_dict(document["preprocessor"]),
            info=document.get("info", {}),
        )


def bundle_sha256(directory: str | os.PathLike) -> str:
    """SHA-256 over the bundle's files (names and bytes, in name order)."""
    directory = Path(directory)
    digest = hashlib.sha256()
    for name in (BUNDLE_FILE, ESTIMATOR_FILE):
        digest.update(name.encode() + b"\0")
        with open(directory / name, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()

"""The model bundle: a trained estimator with everything inference needs.

On disk it is a directory of two files, readable without ZenML or MLflow:
- ``bundle.json``: preprocessing state, feature order, target, library versions and
  training info (human-readable, diffable);
- ``estimator.joblib``: the fitted scikit-learn-compatible classifier, a plain pickle
  (protocol 5) that ``joblib.load`` and ``pickle.load`` both read. Bundles written with
  ``joblib.dump`` (before this format note) still load.
``sha256`` covers both files; the registry records it and every loader checks it.

Serializing once: :meth:`ModelBundle.to_files` gives the files' bytes, and the hash is taken
over those bytes (no second read of what was just written). The plain pickler is used
because ``joblib.dump`` runs a pure-Python pickler: for the spec's forest it took ~0.2 s
against ~0.04 s, and ``joblib.load`` of its format ~0.1-0.25 s against ~0.04 s for
``pickle.loads`` (the pipeline saves and loads a bundle several times a run).

Integrity fails closed: :func:`load_verified` refuses a bundle when no hash was recorded
or the hash differs, and it hashes the very bytes it then deserializes (the files are read
once), so a file swapped between the check and the load cannot slip through.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import json
import os
import pickle
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from churn.fast_forest import CompiledForest
from churn.preprocessing import Preprocessor

FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"
ESTIMATOR_FILE = "estimator.joblib"


class BundleError(RuntimeError):
    """A bundle directory that is missing, corrupt or not what was expected."""


def library_versions() -> dict[str, str]:
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


COMPILE_AT_ROWS = 256  # an uncompiled bundle compiles its forest at the first call with this many rows


@dataclass
class ModelBundle:
    """A classifier plus its preprocessing; predicts from raw feature columns."""

    estimator: Any
    preprocessor: Preprocessor
    info: dict[str, Any] = field(default_factory=dict)
    _compiled: Any = field(default=None, init=False, repr=False, compare=False)

    def prepare(self) -> ModelBundle:
        """Compile the trees (and load the kernel) now: servers call it before their first request.

        A forest compiles here; an AutoML ensemble compiles its members (``prepare`` of its own).
        """
        self._fast_path()
        if hasattr(self.estimator, "prepare"):
            self.estimator.prepare()
        return self

    def _fast_path(self) -> CompiledForest | None:
        if self._compiled is None:
            self._compiled = CompiledForest.compile(self.estimator) or False
        return self._compiled or None

    def _scorer(self, rows: int) -> CompiledForest | None:
        # Compiling costs about a second in a fresh process (numba's kernel load), so a bundle that only
        # scores a few rows (the pipeline's smoke tests and MLflow's input example) keeps the estimator:
        # the same numbers (to 1e-9). Compiled once, every call takes the compiled path.
        if self._compiled is None and rows < COMPILE_AT_ROWS:
            return None
        return self._fast_path()

    @property
    def feature_order(self) -> list[str]:
        return self.preprocessor.feature_order

    @property
    def target(self) -> str:
        return self.preprocessor.target

    def predict_proba(self, columns: Mapping[str, Sequence[Any]]) -> tuple[np.ndarray, dict[str, list[str]]]:
        """Probability of the positive class (1) per row, and unseen categories per column."""
        matrix, unseen = self.preprocessor.transform(columns)
        fast = self._scorer(len(matrix))
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
    def to_files(self) -> dict[str, bytes]:
        """The bundle's files' bytes, ``{BUNDLE_FILE: ..., ESTIMATOR_FILE: ...}``.

        Hash them with :func:`files_sha256`.
        """
        document = {
            "format_version": FORMAT_VERSION,
            "preprocessor": self.preprocessor.to_dict(),
            "info": {"library_versions": library_versions(), **self.info},
        }
        return {
            BUNDLE_FILE: json.dumps(document, indent=2, sort_keys=True, default=str).encode("utf-8"),
            ESTIMATOR_FILE: pickle.dumps(self.estimator, protocol=5),
        }

    def save(self, directory: str | os.PathLike) -> str:
        """Write the bundle to ``directory`` (created or replaced whole); return its sha256."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        files = self.to_files()
        staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=directory.parent))
        try:
            for name, data in files.items():
                (staging / name).write_bytes(data)
            if directory.exists():
                shutil.rmtree(directory)
            staging.rename(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return files_sha256(files)

    @classmethod
    def load(cls, directory: str | os.PathLike, expected_sha256: str | None = None) -> ModelBundle:
        """Load a bundle; with ``expected_sha256`` refuse one whose content differs.

        Without a hash nothing is verified: only for a bundle this process just wrote or a
        caller trusts otherwise. Everything loading a *registered* bundle uses
        :func:`load_verified`, which refuses a missing hash.
        """
        files = read_bundle_files(directory)
        if expected_sha256 is not None:
            _check_digest(directory, files, expected_sha256)
        return cls.from_files(files, directory)

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], where: str | os.PathLike = "bundle") -> ModelBundle:
        """The bundle from its files' bytes (as :func:`read_bundle_files` returns them)."""
        try:
            document = json.loads(files[BUNDLE_FILE].decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise BundleError(f"{where}: {BUNDLE_FILE} is not valid JSON ({error})") from None
        if not isinstance(document, dict) or document.get("format_version") != FORMAT_VERSION:
            version = document.get("format_version") if isinstance(document, dict) else None
            raise BundleError(f"{where}: unsupported bundle format {version!r}")
        return cls(
            estimator=_unpickle_estimator(files[ESTIMATOR_FILE], where),
            preprocessor=Preprocessor.from_dict(document["preprocessor"]),
            info=document.get("info", {}),
        )


# Modules that bundles written by earlier versions name for their estimator's classes, and where
# those classes live now (a pickle names a class by module and name).
MOVED_MODULES = {"churn.aws.autopilot": "churn.aws.autopilot_transform"}


def _unpickle_estimator(data: bytes, where: str | os.PathLike = "bundle") -> Any:
    """The estimator from ``estimator.joblib``'s bytes: a plain pickle, or joblib's format (older bundles).

    Raises:
        BundleError: the estimator names a class this version of the code does not have.
    """
    for old, new in MOVED_MODULES.items():
        if old.encode() in data and old not in sys.modules and importlib.util.find_spec(old) is None:
            sys.modules[old] = importlib.import_module(new)
    try:
        if data[:1] == b"\x80" and b"joblib.numpy_pickle" not in data:  # the plain pickle save() writes
            return pickle.loads(data)
        import joblib  # joblib.dump's format (numpy arrays stored beside the pickle stream), compressed or not

        return joblib.load(io.BytesIO(data))
    except (ImportError, AttributeError) as error:
        raise BundleError(
            f"{where}: {ESTIMATOR_FILE} names code this version of churn-mlops does not have "
            f"({error}); retrain the model with this version"
        ) from None


def read_bundle_files(directory: str | os.PathLike) -> dict[str, bytes]:
    """The bundle's files' bytes, each read once; BundleError when one is missing."""
    directory = Path(directory)
    files: dict[str, bytes] = {}
    for name in (BUNDLE_FILE, ESTIMATOR_FILE):
        try:
            files[name] = (directory / name).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BundleError(f"{directory} is not a model bundle: {name} is missing") from None
    return files


def files_sha256(files: Mapping[str, bytes]) -> str:
    """SHA-256 over the bundle's files (names and bytes, in name order): :func:`bundle_sha256` of bytes in hand."""
    digest = hashlib.sha256()
    for name in (BUNDLE_FILE, ESTIMATOR_FILE):
        digest.update(name.encode() + b"\0")
        digest.update(files[name])
    return digest.hexdigest()


_SHA256 = re.compile(r"[0-9a-f]{64}")


def require_recorded_sha256(expected_sha256: object, source: str = "the registry") -> str:
    """The recorded hash, normalized; BundleError when it is missing or not a sha256 digest."""
    text = "" if expected_sha256 is None else str(expected_sha256).strip().lower()
    if not text:
        raise BundleError(
            f"no bundle sha256 is recorded in {source}: refusing to load a bundle that cannot be "
            "verified (re-register the model, e.g. `python run.py --variant rf`)"
        )
    if not _SHA256.fullmatch(text):
        raise BundleError(
            f"the bundle sha256 recorded in {source} ({str(expected_sha256)[:80]!r}) is not a "
            "64-character hex digest: refusing to load the bundle"
        )
    return text


def _check_digest(where: str | os.PathLike, files: Mapping[str, bytes], expected_sha256: str) -> None:
    expected = require_recorded_sha256(expected_sha256)
    actual = files_sha256(files)
    if actual != expected:
        raise BundleError(
            f"bundle {where} has sha256 {actual}, but the registry recorded "
            f"{expected}: refusing to load a bundle that is not the registered one"
        )


def load_verified(
    directory: str | os.PathLike, expected_sha256: str | None, source: str = "the registry"
) -> ModelBundle:
    """Load the bundle at ``directory`` only if its bytes hash to ``expected_sha256``.

    Fails closed: BundleError when no hash is recorded (``None`` or empty), when the
    recorded value is not a sha256 digest, or when the bytes differ. The files are read
    once; the hash is computed over exactly the bytes that are deserialized.
    ``source`` names where the hash came from, for the message.
    """
    expected = require_recorded_sha256(expected_sha256, source)
    return verified_from_files(read_bundle_files(directory), expected, directory)


def verified_from_files(
    files: Mapping[str, bytes],
    expected_sha256: str | None,
    where: str | os.PathLike = "bundle",
    source: str = "the registry",
) -> ModelBundle:
    """:func:`load_verified` for files' bytes already in hand (read from any file system)."""
    expected = require_recorded_sha256(expected_sha256, source)
    _check_digest(where, files, expected)
    return ModelBundle.from_files(files, where)


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

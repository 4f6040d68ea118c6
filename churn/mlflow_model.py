"""The model bundle as a real MLflow model: a pyfunc flavor wrapping the bundle directory.

What :func:`log_bundle_model` logs (in the active MLflow run) is an ordinary MLflow model, so
the tools MLflow and ZenML users know work on a registered version:

- ``mlflow.pyfunc.load_model("models:/<group>@champion")`` and ZenML's ``load_model_version``;
- ``mlflow models serve -m models:/<group>@champion --env-manager local``, answering with the same
  0/1 predictions as our endpoint for the same raw rows.

The model holds:

- the bundle, unchanged, at ``<model>/artifacts/bundle`` (:data:`BUNDLE_PATH`): the unit our server and
  batch scoring load, by its own URI (:attr:`LoggedBundleModel.bundle_uri`) and verified against the
  recorded sha256; the pyfunc verifies the same hash (kept in the model's ``model_config``) when it loads;
- a signature: the raw feature columns, as the endpoint's CSV contract takes them (categoricals as
  strings, numbers as in the training data, every column required), output the 0/1 prediction; the parameter
  ``include_probability=True`` adds the positive-class probability;
- an input example: a few raw rows;
- our code: only the ``churn`` modules loading and predicting need (:func:`code_modules`);
- pinned requirements: the serving libraries at the versions of ``requirements.lock`` (what our image
  holds), plus the bundle's own ``serving_requirements`` (AutoML's extra libraries).
"""

from __future__ import annotations

import ast
import re
import shutil
import tempfile
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

ARTIFACT_PATH = "model"  # the logged model's name
BUNDLE_PATH = "artifacts/bundle"  # where the bundle sits inside the MLflow model
# Distributions loading and predicting need (the serving subset of requirements.lock).
SERVING_DISTRIBUTIONS = ("mlflow", "scikit-learn", "scipy", "numpy", "pandas", "pyarrow", "joblib", "cloudpickle")
EXAMPLE_ROWS = 5


class BundlePyfunc(mlflow.pyfunc.PythonModel):
    """Predicts 0/1 from raw feature columns through the same ModelBundle our endpoint serves."""

    def load_context(self, context) -> None:
        from churn.bundle import load_verified

        sha256 = (context.model_config or {}).get("bundle_sha256")
        self.bundle = load_verified(context.artifacts["bundle"], sha256, "the MLflow model's model_config")

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        proba, _unseen = self.bundle.predict_proba(model_input)
        labels = self.bundle.label(proba)
        if (params or {}).get("include_probability"):
            return pd.DataFrame({"prediction": labels, "probability": proba})
        return labels


@dataclass(frozen=True)
class LoggedBundleModel:
    """Where :func:`log_bundle_model` put the model.

    ``model_uri`` (``models:/<model_id>``) is what a registry version's source is; ``bundle_uri`` is the storage
    URI of the bundle directory inside the model (``<model files>/artifacts/bundle``), what our server loads.
    """

    model_uri: str
    bundle_uri: str
    model_id: str


def raw_example(bundle, rows: pd.DataFrame | None = None, count: int = EXAMPLE_ROWS) -> pd.DataFrame:
    """``count`` raw rows of the bundle's feature columns as the endpoint takes them (categoricals as text,
    numbers in the data's own types: integer columns stay integers).

    From ``rows`` (e.g. the test set) when given; otherwise one row made from the preprocessing state
    (each number its training median, each category its first class).
    """
    features = bundle.feature_order
    classes = bundle.preprocessor.classes
    if rows is None or rows.empty:
        medians = bundle.preprocessor.medians
        rows = pd.DataFrame([{c: (classes[c][0] if classes.get(c) else medians.get(c, 0.0)) for c in features}])
    missing = [c for c in features if c not in rows.columns]
    if missing:
        raise ValueError(f"the example rows lack the feature column(s) {', '.join(missing)}")
    example = rows[features].head(count).reset_index(drop=True)
    text = {
        c: example[c].astype(object).where(example[c].notna(), None).map(lambda v: v if v is None else str(v))
        for c in features
        if c in classes
    }  # missing stays missing (None), as an empty CSV field
    return pd.DataFrame({c: text.get(c, example[c]) for c in features})


def signature_for(bundle, example: pd.DataFrame):
    """The model signature: ``example``'s columns in (all required), the 0/1 prediction out, one optional parameter."""
    import warnings

    from mlflow.models import infer_signature

    labels = np.zeros(len(example), dtype=np.int64)  # the 0/1 prediction's type; no need to score the example
    with warnings.catch_warnings():  # its hint on integer columns: they are integers in our data, missing or not
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
        return infer_signature(example, labels, params={"include_probability": False})


def pinned_requirements(bundle, lock_root: Path | None = None) -> list[str]:
    """``name==version`` for the serving libraries: requirements.lock's pins, else the installed versions."""
    from churn.image import REPO, locked_versions

    locked = locked_versions(lock_root or REPO)
    wanted = {name: None for name in SERVING_DISTRIBUTIONS}
    wanted.update(bundle.info.get("serving_requirements") or {})
    pins = []
    for name, version in wanted.items():
        version = locked.get(name.lower().replace("_", "-")) or version
        if not version:
            try:
                version = installed_version(name)
            except PackageNotFoundError:
                raise ValueError(f"serving requirement {name} is neither in requirements.lock nor installed") from None
        pins.append(f"{name}=={version}")
    return pins


def code_modules(estimator_pickle: bytes = b"") -> list[str]:
    """The ``churn`` modules and packages the pyfunc imports when it loads and predicts.

    This module, ``churn.bundle``, the ``churn`` modules whose classes the estimator's pickle names
    (e.g. ``churn.automl`` for an ensemble, ``churn.aws`` for an Autopilot handle), and every ``churn``
    module those import, transitively (read from their import statements; a package whole).

    Args:
        estimator_pickle: The bundle's ``estimator.joblib`` bytes (empty: the bundle code alone).

    Returns:
        Module and package names under ``churn`` (``"bundle"``, ``"automl"``, ...), sorted.
    """
    source = Path(__file__).resolve().parent
    named = {m.decode() for m in re.findall(rb"churn\.([A-Za-z_][A-Za-z0-9_]*)", estimator_pickle)}
    found, todo = {"__init__", "mlflow_model"}, ["bundle", *sorted(named)]
    while todo:
        module = todo.pop()
        if module in found:
            continue
        found.add(module)
        if (source / module).is_dir():
            paths = sorted((source / module).rglob("*.py"))
        elif (source / f"{module}.py").is_file():
            paths = [source / f"{module}.py"]
        else:
            continue
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module]
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level
                    else []
                )
                todo += [name.split(".")[1] for name in names if name.startswith("churn.")]
    return sorted(m for m in found if m == "__init__" or (source / m).is_dir() or (source / f"{m}.py").is_file())


def _code_package(destination: Path, estimator_pickle: bytes = b"") -> Path:
    """A copy of the ``churn`` package holding only :func:`code_modules` (the model's code_paths)."""
    source = Path(__file__).resolve().parent
    package = destination / "churn"
    package.mkdir(parents=True)
    for module in code_modules(estimator_pickle):
        if (source / module).is_dir():
            shutil.copytree(source / module, package / module, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source / f"{module}.py", package / f"{module}.py")
    return package


def _model_arguments(
    bundle, bundle_dir: str | Path, sha256: str, example_rows: pd.DataFrame | None, code_dir: Path
) -> dict[str, Any]:
    """What ``mlflow.pyfunc.save_model``/``log_model`` get, besides where the model goes."""
    from churn.bundle import ESTIMATOR_FILE

    example = raw_example(bundle, example_rows)
    return dict(
        python_model=BundlePyfunc(),
        artifacts={"bundle": str(bundle_dir)},
        code_paths=[str(_code_package(code_dir, (Path(bundle_dir) / ESTIMATOR_FILE).read_bytes()))],
        signature=signature_for(bundle, example),
        # MLflow checks the example by scoring it: not for a model whose every prediction is a SageMaker job
        input_example=None if getattr(bundle.estimator, "scores_remotely", False) else example,
        pip_requirements=pinned_requirements(bundle),
        model_config={"bundle_sha256": sha256},
        metadata={"bundle_sha256": sha256},
    )


def log_bundle_model(
    bundle, bundle_dir: str | Path, sha256: str, example_rows: pd.DataFrame | None = None, name: str = ARTIFACT_PATH
) -> LoggedBundleModel:
    """Log the bundle saved at ``bundle_dir`` (hashing to ``sha256``) as an MLflow pyfunc model in the active run.

    Args:
        bundle: The ModelBundle saved at ``bundle_dir`` (for the signature, example and requirements).
        bundle_dir: The saved bundle directory; it is copied into the model unchanged.
        sha256: The bundle's sha256 (``ModelBundle.save``'s result); the pyfunc refuses other bytes.
        example_rows: Raw rows to take the input example from (e.g. the test set).
        name: The logged model's name.

    Returns:
        The model's URI and the URI of the bundle inside it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        arguments = _model_arguments(bundle, bundle_dir, sha256, example_rows, Path(tmp))
        info = mlflow.pyfunc.log_model(name=name, **arguments)
    files = mlflow.MlflowClient().get_logged_model(info.model_id).artifact_location.rstrip("/")  # holds MLmodel
    return LoggedBundleModel(
        model_uri=f"models:/{info.model_id}", bundle_uri=f"{files}/{BUNDLE_PATH}", model_id=info.model_id
    )


def save_bundle_model(bundle_dir: str | Path, path: str | Path) -> str:
    """Write the bundle at ``bundle_dir`` as an MLflow model directory at ``path`` (no tracking server); return it."""
    from churn.bundle import ModelBundle, bundle_sha256

    sha256 = bundle_sha256(bundle_dir)
    bundle = ModelBundle.load(bundle_dir, expected_sha256=sha256)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(path=str(path), **_model_arguments(bundle, bundle_dir, sha256, None, Path(tmp)))
    return str(path)

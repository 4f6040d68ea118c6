"""The model bundle as an MLflow pyfunc model, for `mlflow models serve` comparisons and MLflow users."""

from __future__ import annotations

import mlflow.pyfunc


class BundlePyfunc(mlflow.pyfunc.PythonModel):
    """Predicts 0/1 from raw feature columns through the same ModelBundle the endpoint serves."""

    def load_context(self, context) -> None:
        from churn.bundle import ModelBundle

        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None):
        return self.bundle.predict(model_input)


def save_pyfunc(bundle_dir: str, path: str) -> str:
    """Write an MLflow model at ``path`` that serves the bundle at ``bundle_dir``."""
    from pathlib import Path

    package = str(Path(__file__).resolve().parents[1])
    mlflow.pyfunc.save_model(path=path, python_model=BundlePyfunc(), artifacts={"bundle": bundle_dir}, code_paths=[package])
    return path

"""The model bundle as an MLflow pyfunc model, for the `mlflow models serve` comparison in bench/serving.py.

Not product code: nothing in churn/ serves through MLflow (our endpoint is churn/serving/server.py).
The pyfunc class is pickled by reference (``bench.mlflow_pyfunc``), so whoever loads the model needs
the repository on PYTHONPATH, as bench/serving.py gives ``mlflow models serve``.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc

REPO = Path(__file__).resolve().parents[1]


class BundlePyfunc(mlflow.pyfunc.PythonModel):
    """Predicts 0/1 from raw feature columns through the same ModelBundle the endpoint serves."""

    def load_context(self, context) -> None:
        from churn.bundle import ModelBundle

        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None):
        return self.bundle.predict(model_input)


def save_pyfunc(bundle_dir: str, path: str) -> str:
    """Write an MLflow model at ``path`` that serves the bundle at ``bundle_dir`` (churn/ copied in as code)."""
    mlflow.pyfunc.save_model(
        path=path, python_model=BundlePyfunc(), artifacts={"bundle": bundle_dir}, code_paths=[str(REPO / "churn")]
    )
    return path

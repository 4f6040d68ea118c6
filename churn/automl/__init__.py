"""AutoML: search model families within a budget, return a ModelBundle (the public API).

The training step does not know which engine runs. It builds ``AutoMLSettings`` from the
config (the spec's keys: objective_metric_name, max_runtime_sec, max_candidates, mode ...)
and calls ``train_automl`` with the engine the active stack names (stack label
``automl_engine``; none means the local default). The package:

- ``settings.py``: ``AutoMLSettings`` and the spec's objectives, modes and families;
- ``objectives.py``: the objective as a score and as a FLAML metric;
- ``engines/``: the engines by name (``resolve_engine``); ``engines/local.py`` is the local
  engine (portfolio of strong defaults, FLAML search, greedy ensemble, final fit);
- ``ensemble.py`` and ``models.py``: greedy selection and the model classes a bundle holds
  (loadable with numpy, scikit-learn and the boosting libraries; no FLAML).

Nothing here imports FLAML at import time, so loading a bundle never needs it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from churn.automl.engines import DEFAULT_ENGINE, ENGINES, AutoMLEngine, register_engine, resolve_engine
from churn.automl.objectives import flaml_metric, objective_score
from churn.automl.settings import (
    DEFAULT_FAMILIES,
    FAMILIES,
    FINAL_FITS,
    MODES,
    OBJECTIVES,
    PROBLEM_TYPES,
    AutoMLError,
    AutoMLSettings,
)
from churn.bundle import ModelBundle
from churn.preprocessing import Preprocessor

__all__ = [
    "AutoMLEngine",
    "AutoMLError",
    "AutoMLSettings",
    "DEFAULT_ENGINE",
    "DEFAULT_FAMILIES",
    "ENGINES",
    "FAMILIES",
    "FINAL_FITS",
    "MODES",
    "OBJECTIVES",
    "PROBLEM_TYPES",
    "flaml_metric",
    "objective_score",
    "register_engine",
    "resolve_engine",
    "train_automl",
]


def train_automl(
    train_frame: pd.DataFrame,
    preprocessor: Preprocessor,
    settings: AutoMLSettings,
    engine: str | None = None,
    info: dict[str, Any] | None = None,
) -> ModelBundle:
    """Run ``engine`` (default: the local engine) and merge ``info`` (lineage) into the bundle's info."""
    bundle = resolve_engine(engine).train(train_frame, preprocessor, settings)
    bundle.info.update(info or {})
    return bundle

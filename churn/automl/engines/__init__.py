"""AutoML engines by name: the stack's ``automl_engine`` label picks one; all return a ModelBundle.

Every engine implements the same small interface::

    engine.train(train_frame, preprocessor, settings) -> ModelBundle

so evaluation, the gate, the registry, the server and batch scoring are the same code for
every engine. Engines register by name in ``ENGINES`` as ``"module:attribute"`` sources
(imported on first use): ``flaml``, the local in-process engine (``engines/local.py``: a
portfolio of strong defaults, a FLAML search, a greedy ensemble), and
``sagemaker_autopilot``, the SageMaker Autopilot adapter (in ``churn/aws``, with the AWS code).
"""

from __future__ import annotations

import importlib
from typing import Protocol

import pandas as pd

from churn.automl.settings import AutoMLError, AutoMLSettings
from churn.bundle import ModelBundle
from churn.preprocessing import Preprocessor


class AutoMLEngine(Protocol):
    """One way to run an AutoML search (in process, or a cloud AutoML job)."""

    name: str

    def train(self, train_frame: pd.DataFrame, preprocessor: Preprocessor, settings: AutoMLSettings) -> ModelBundle:
        """Search on ``train_frame`` (raw features + target) and return the best model as a bundle."""
        ...


# Engine name -> "module:attribute" of a zero-argument factory (a class). The stack names
# the engine (label ``automl_engine``); the step never branches on the backend.
DEFAULT_ENGINE = "flaml"
ENGINES: dict[str, str] = {
    "flaml": "churn.automl.engines.local:LocalEngine",
    "sagemaker_autopilot": "churn.aws.autopilot_job:AutopilotEngine",
}


def register_engine(name: str, source: str) -> None:
    """Make an engine available under ``name`` (``source`` is ``"module:attribute"``)."""
    ENGINES[name] = source


def resolve_engine(name: str | None = None) -> AutoMLEngine:
    """The engine called ``name`` (None or empty: the local default)."""
    name = name or DEFAULT_ENGINE
    if name not in ENGINES:
        raise AutoMLError(f"unknown AutoML engine {name!r}; known engines: {', '.join(sorted(ENGINES))}")
    module, _, attribute = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)()

"""The champion/challenger gate's other number: the current champion's gate metric on this run's test set.

The champion is the model deploy serves and batch scores (``churn.model_registry.model_to_serve``).
Its bundle comes from the registry, verified against the recorded sha256
(``churn.model_registry.verified_bundle``), and is scored on the same test rows as the new model with
the same code (``churn.training.evaluate_bundle``). ``churn.evaluation.check_quality`` then holds the
new model's value against it.

A champion that exists but cannot be fetched, verified or scored fails closed
(:class:`ChampionUnavailable`): the run stops before anything is registered and the failure alert
names the version. A quiet "passed on the threshold alone" would let an unchecked model replace it.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pandas as pd

from churn.artifacts import ChampionScore
from churn.metrics import gate_metric
from churn.model_registry import model_to_serve, verified_bundle
from churn.training import evaluate_bundle


class ChampionUnavailable(RuntimeError):
    """The champion exists but its bundle cannot be fetched, verified or scored: nothing may be registered."""


def _advice(which: str) -> str:
    return (
        f"nothing is registered; fix or reject {which} in the registry, "
        "or set compare_to_champion: false to gate on the threshold alone"
    )


def score_champion(
    registry: Any, name: str, test_set: pd.DataFrame, metric: str, tolerance: float = 0.0
) -> ChampionScore:
    """The current champion of ``name`` scored on ``test_set`` (``version`` None: no champion yet).

    Args:
        registry: The active stack's model registry (any ZenML ``BaseModelRegistry``).
        name: The registered model (the config's ``model_package_group``).
        test_set: This run's held-out rows (raw features + target), the ones the new model is scored on.
        metric: The gate metric (a ``churn.metrics`` gate entry).
        tolerance: How far the new model may fall short of the champion (the config's ``champion_tolerance``).

    Returns:
        The champion's version, verified bundle hash and ``metric`` on ``test_set``.

    Raises:
        ValueError: ``metric`` is not a gate metric.
        ChampionUnavailable: The champion's bundle cannot be fetched, verified against its recorded
            sha256, or scored on ``test_set``.
    """
    gate_metric(metric)
    version = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            version = model_to_serve(registry, name)
            if version is None:
                return ChampionScore(model_name=name, metric=metric, tolerance=tolerance)
            bundle, sha256 = verified_bundle(name, version, f"{tmp}/bundle")
        except Exception as error:  # noqa: BLE001 - whatever keeps the champion from loading fails closed, named
            which = f"{name} version {version.version}" if version is not None else f"the approved version of {name}"
            raise ChampionUnavailable(
                f"cannot compare with the champion ({which}): {error}; {_advice(which)}"
            ) from error
    which = f"{name} version {version.version}"
    try:
        report = evaluate_bundle(bundle, test_set)
    except Exception as error:  # noqa: BLE001
        raise ChampionUnavailable(
            f"the champion ({which}) cannot score this run's test set "
            f"({type(error).__name__}: {error}); {_advice(which)}"
        ) from error
    value = report.get(metric)
    return ChampionScore(
        model_name=name,
        metric=metric,
        tolerance=tolerance,
        version=str(version.version),
        value=None if value is None else float(value),
        sha256=sha256,
    )

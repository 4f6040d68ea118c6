"""ScoreChampion: the current champion's gate metric on this run's test set (the champion/challenger gate)."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step
from zenml.client import Client

from churn.artifacts import ChampionScore
from churn.champion import score_champion as champion_on
from materializers.artifact_materializer import TypedArtifactMaterializer


@step(enable_cache=False, output_materializers=TypedArtifactMaterializer)
def score_champion(
    test_set: pd.DataFrame, model_name: str, gate_metric: str, tolerance: float = 0.0
) -> Annotated[ChampionScore, "champion_score"]:
    """Score the model deploy serves (the approved version) on the rows the new model is evaluated on.

    Only in the pipeline when the config's ``compare_to_champion`` is on. Never cached: the
    champion changes between runs. EvaluateModel's verdict holds the new model against it.

    Args:
        test_set: This run's held-out rows.
        model_name: The registered model (the config's ``model_package_group``).
        gate_metric: The gate's metric.
        tolerance: The config's ``champion_tolerance``.

    Returns:
        The champion's version and score (version None: no champion yet).

    Raises:
        churn.champion.ChampionUnavailable: The champion's bundle cannot be fetched, verified or scored.
    """
    champion = champion_on(Client().active_stack.model_registry, model_name, test_set, gate_metric, tolerance)
    log_metadata(metadata={"champion": champion.model_dump(mode="json", exclude_none=True)})
    print(champion.describe())
    return champion

"""The ensemble: greedy selection on out-of-fold predictions, and the served weighted ensemble.

Greedy ensemble selection with replacement (Caruana et al., 2004, as AutoGluon's weighted
ensemble does): start empty; each round add the candidate (again, if it is already in) whose
addition gives the best out-of-fold score of the mean; keep the weights of the best round.
The first round picks the best single candidate, so the ensemble's out-of-fold score is never
below its best member's. At most ``max_members`` distinct candidates are used (each one costs
scoring time at the endpoint); candidates with weight 0 are not in the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from churn.automl.models import FittedCombination


@dataclass(frozen=True)
class Selection:
    """Greedy selection's result: ``weights[i]`` for candidate ``i`` (0: not in), and the blend's score."""

    weights: list[float]
    score: float
    best_single: int
    best_single_score: float
    rounds: int


def greedy_selection(
    oof: np.ndarray, score: Callable[[np.ndarray], float], rounds: int = 25, max_members: int = 3
) -> Selection:
    """Caruana selection over ``oof`` (candidates x rows of out-of-fold positive probabilities).

    ``score`` maps a blend (one probability per row) to the objective (higher is better).
    Ties go to the lower index: order candidates best first, so ties keep the ensemble small.
    """
    oof = np.asarray(oof, dtype=np.float64)
    n_candidates = len(oof)
    if n_candidates == 0:
        raise ValueError("greedy selection needs at least one candidate")
    singles = [score(oof[i]) for i in range(n_candidates)]
    best_single = int(np.argmax(singles))
    counts = np.zeros(n_candidates, dtype=int)
    total = np.zeros(oof.shape[1])
    best_counts, best_score, best_round = None, -np.inf, 0
    for step in range(1, rounds + 1):
        chosen_now = np.flatnonzero(counts)
        allowed = chosen_now if len(chosen_now) >= max_members else np.arange(n_candidates)
        trial = [score((total + oof[i]) / step) for i in allowed]
        pick = int(allowed[int(np.argmax(trial))])
        counts[pick] += 1
        total += oof[pick]
        if max(trial) > best_score + 1e-12:  # strictly better: prefer the earlier, smaller blend
            best_counts, best_score, best_round = counts.copy(), float(max(trial)), step
    weights = [round(float(c) / best_round, 6) for c in best_counts]
    return Selection(
        weights=weights,
        score=best_score,
        best_single=best_single,
        best_single_score=float(singles[best_single]),
        rounds=best_round,
    )


def prune(
    oof: np.ndarray,
    weights: Sequence[float],
    score: Callable[[np.ndarray], float],
    costs: Sequence[float],
    max_cost: float,
    min_weight: float = 0.1,
    tolerance: float = 0.0005,
) -> list[float]:
    """Drop members whose scoring time buys (almost) nothing: the scoring-cost cap of the served ensemble.

    ``costs[i]`` is candidate ``i``'s scoring cost (``churn.automl.models.scoring_cost``). While
    the members' total cost exceeds ``max_cost``, the member whose removal keeps the best
    out-of-fold score goes (the last one always stays). Then each member of weight below
    ``min_weight`` goes, smallest first, if the blend without it scores within ``tolerance``
    of the blend before pruning. The remaining weights are renormalized to sum to 1.
    """
    oof = np.asarray(oof, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    costs = np.asarray(costs, dtype=np.float64)

    def blend_score(w: np.ndarray) -> float:
        return float(score(w @ oof / w.sum()))

    reference = blend_score(weights)
    while np.count_nonzero(weights) > 1 and costs[weights > 0].sum() > max_cost:
        trials = []
        for i in np.flatnonzero(weights):
            trial = weights.copy()
            trial[i] = 0.0
            trials.append((blend_score(trial), -costs[i], i))  # ties: drop the costlier member
        weights[max(trials)[2]] = 0.0
    reference = min(reference, blend_score(weights))
    for i in sorted(np.flatnonzero(weights), key=lambda i: (weights[i], -costs[i])):
        if np.count_nonzero(weights) == 1 or weights[i] / weights.sum() >= min_weight:
            continue
        trial = weights.copy()
        trial[i] = 0.0
        if blend_score(trial) >= reference - tolerance:
            weights = trial
    return [round(float(w), 6) for w in weights / weights.sum()]


class WeightedEnsemble(FittedCombination):
    """The served ensemble: ``sum(weight * member.predict_proba)``, members named by their candidate."""

    def __init__(self, models: list[Any], weights: Sequence[float], names: Sequence[str]):
        super().__init__(models, weights)
        self.names = list(names)

    def __repr__(self) -> str:
        return "WeightedEnsemble(" + ", ".join(f"{w:.3f} {n}" for w, n in zip(self.weights, self.names)) + ")"

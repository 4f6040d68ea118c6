"""AutoML settings: what to search for and how long (the spec's AutoML keys, engine-neutral)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# The spec's objective_metric_name (Autopilot names) -> our evaluation report's key.
OBJECTIVES: dict[str, str | None] = {
    "Accuracy": "accuracy",
    "AUC": "roc_auc",
    "F1": "f1_score",
    "Precision": "precision",
    "Recall": "recall",
    "BalancedAccuracy": None,
    "LogLoss": None,
}
MODES = ("ENSEMBLING", "HYPERPARAMETER_TUNING", "AUTO")
PROBLEM_TYPES = ("BinaryClassification",)
# Model families the local engine can search (FLAML learner names, plus our one-hot logistic).
FAMILIES = ("lgbm", "xgboost", "xgb_limitdepth", "rf", "extra_tree", "histgb", "logistic", "lrl1", "lrl2")
DEFAULT_FAMILIES = ("histgb", "lgbm", "xgboost", "rf", "extra_tree", "logistic")
# How the ensemble's members become the served models: refit each on all training rows, or
# bag the k fold models the out-of-fold predictions came from (no extra fit, k times the scoring).
FINAL_FITS = ("refit", "bag")


class AutoMLError(RuntimeError):
    """An AutoML search that could not produce a model; the message says why."""


@dataclass(frozen=True)
class AutoMLSettings:
    """What to search for and how long: the spec's AutoML keys, engine-neutral.

    ``max_runtime_sec`` bounds the whole search (the cloud engine maps it to the AutoML
    job's total runtime); ``max_runtime_per_candidate_sec`` bounds one training job.
    ``ensemble_size`` caps the ensemble's distinct members (each costs scoring time);
    ``final_fit`` says how they become the served models (see ``FINAL_FITS``).
    ``max_scoring_cost`` caps the served ensemble's tree-node visits per scored row (None: no
    cap); the default keeps a 10,000-row request above 100k rows/s on one core.
    """

    target: str = "churn"
    problem_type: str = "BinaryClassification"
    objective: str = "Accuracy"
    max_runtime_sec: float = 300.0  # the local engine's budget
    autopilot_max_runtime_sec: float = 3600.0  # the SageMaker Autopilot job's budget (spec default)
    max_candidates: int | None = None
    max_runtime_per_candidate_sec: float | None = None
    mode: str = "ENSEMBLING"
    families: tuple[str, ...] = DEFAULT_FAMILIES
    ensemble_size: int = 3
    cv_folds: int = 5
    seed: int = 42
    n_jobs: int = 1
    final_fit: str = "refit"
    max_scoring_cost: float | None = 4000.0

    def __post_init__(self) -> None:
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {', '.join(PROBLEM_TYPES)}, got {self.problem_type!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"families must be a non-empty subset of {', '.join(FAMILIES)}; unknown: {unknown}")
        if self.final_fit not in FINAL_FITS:
            raise ValueError(f"final_fit must be one of {', '.join(FINAL_FITS)}, got {self.final_fit!r}")
        if self.max_runtime_sec <= 0 or self.autopilot_max_runtime_sec <= 0:
            raise ValueError(
                f"max_runtime_sec and autopilot_max_runtime_sec must be positive, got "
                f"{self.max_runtime_sec} and {self.autopilot_max_runtime_sec}"
            )
        if self.max_candidates is not None and self.max_candidates < 1:
            raise ValueError(f"max_candidates must be at least 1, got {self.max_candidates}")
        if self.max_scoring_cost is not None and self.max_scoring_cost <= 0:
            raise ValueError(f"max_scoring_cost must be positive or None, got {self.max_scoring_cost}")
        if self.ensemble_size < 1 or self.cv_folds < 2 or self.n_jobs < 1:
            raise ValueError("ensemble_size >= 1, cv_folds >= 2 and n_jobs >= 1 are required")
        object.__setattr__(self, "families", tuple(self.families))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AutoMLSettings:
        """Settings from a validated PipelineConfig dump (the spec's key names)."""
        families = config.get("automl_families") or DEFAULT_FAMILIES
        return cls(
            target=config.get("target_attribute_name") or config.get("target_column", "churn"),
            problem_type=config.get("problem_type", "BinaryClassification"),
            objective=config.get("objective_metric_name", "Accuracy"),
            max_runtime_sec=float(config.get("max_runtime_sec", 300)),
            autopilot_max_runtime_sec=float(config.get("autopilot_max_runtime_sec", 3600)),
            max_candidates=config.get("max_candidates"),
            max_runtime_per_candidate_sec=config.get("max_runtime_per_training_job_sec"),
            mode=config.get("mode", "ENSEMBLING"),
            families=tuple(families),
            ensemble_size=int(config.get("ensemble_size", 3)),
            seed=int(config.get("random_state", 42)),
            n_jobs=int(config.get("automl_n_jobs", 1)),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["families"] = list(self.families)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AutoMLSettings:
        return cls(**{**data, "families": tuple(data.get("families", DEFAULT_FAMILIES))})

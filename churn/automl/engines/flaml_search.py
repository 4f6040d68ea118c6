"""The search part of the local engine: FLAML in this process, seeded, within the time it is given.

FLAML spends its budget by wall-clock time and picks the next family from measured trial
times, so two runs with the same seed need not try the same candidates (FLAML issue #151);
the portfolio evaluated before it is what makes the engine's result stable.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from churn.automl.models import OneHotLogistic
from churn.automl.objectives import flaml_metric
from churn.automl.settings import AutoMLSettings


def logistic_learner(categorical_columns: Sequence[int]):
    """A FLAML learner class for ``OneHotLogistic`` (tunes C), bound to the categorical columns."""
    from flaml import tune
    from flaml.automl.model import SKLearnEstimator

    columns = tuple(int(c) for c in categorical_columns)

    class OneHotLogisticLearner(SKLearnEstimator):
        @classmethod
        def search_space(cls, data_size, task, **params):
            return {
                "C": {
                    "domain": tune.loguniform(lower=1 / 1024, upper=1024.0),
                    "init_value": 1.0,
                    "low_cost_init_value": 1.0,
                }
            }

        @classmethod
        def cost_relative2lgbm(cls):
            return 2.0

        def config2params(self, config: dict) -> dict:
            params = super().config2params(config)
            params.pop("n_jobs", None)
            return params

        def __init__(self, task="binary", **config):
            super().__init__(task, **config)
            self.params.setdefault("random_state", 0)
            self.estimator_class = lambda **params: OneHotLogistic(categorical_columns=columns, **params)

    return OneHotLogisticLearner


def flaml_learner(family: str, categorical: Sequence[int]):
    """FLAML's learner class for ``family`` (ours for ``logistic``)."""
    if family == "logistic":
        return logistic_learner(categorical)
    from flaml.automl.task.factory import task_factory

    return task_factory("binary").estimator_class_from_str(family)


def search(
    X: np.ndarray, y: np.ndarray, categorical: list[int], settings: AutoMLSettings, folds: int, budget: float
) -> dict[str, Any]:
    """Run FLAML for ``budget`` seconds; per family: trials, best loss and best config (FLAML's names)."""
    from flaml import AutoML
    from flaml.automl.training_log import training_log_reader

    automl = AutoML()
    if "logistic" in settings.families:
        automl.add_learner("logistic", logistic_learner(categorical))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flaml-") as tmp:
        log_path = os.path.join(tmp, "trials.jsonl")
        automl.fit(
            X_train=X,
            y_train=y,
            task="classification",
            metric=flaml_metric(settings.objective),
            estimator_list=list(settings.families),
            time_budget=budget,
            max_iter=settings.max_candidates,
            train_time_limit=settings.max_runtime_per_candidate_sec,
            eval_method="cv",
            n_splits=folds,
            split_type="stratified",
            seed=settings.seed,
            n_jobs=settings.n_jobs,
            n_concurrent_trials=1,
            retrain_full=False,
            mlflow_logging=False,
            log_file_name=log_path,
            log_type="all",
            verbose=0,
        )
        with training_log_reader(log_path) as reader:
            trials = list(reader.records())
    families: dict[str, dict[str, Any]] = {}
    for family in settings.families:
        loss = automl.best_loss_per_estimator.get(family)
        config = automl.best_config_per_estimator.get(family)
        mine = [t for t in trials if t.learner == family and np.isfinite(t.validation_loss)]
        best_trial = min(mine, key=lambda t: t.validation_loss) if mine else None
        families[family] = {
            "trials": sum(1 for t in trials if t.learner == family),
            # the best trial's cross-validation time (k fits, maybe on a sample): a fold fit's estimate
            "best_trial_seconds": None if best_trial is None else float(best_trial.trial_time),
            "best_loss": None if loss is None or not np.isfinite(loss) else float(loss),
            "best_config": None if config is None else {k: v for k, v in config.items() if k != "FLAML_sample_size"},
        }
    return {"families": families, "trials": len(trials), "seconds": time.perf_counter() - started, "budget": budget}

"""AutoML engines: search several model families within a budget, return a ModelBundle.

The training step does not know which engine runs. It builds ``AutoMLSettings`` from the
config (the spec's keys: objective_metric_name, max_runtime_sec, max_candidates, mode ...)
and asks ``resolve_engine(name)`` for the engine the active stack names (stack label
``automl_engine``; none means the local default). Every engine implements the same small
interface::

    engine.train(train_frame, preprocessor, settings) -> ModelBundle

so evaluation, the gate, the registry, the server and batch scoring are the same code for
every engine. Engines register by name in ``ENGINES`` as ``"module:attribute"`` sources
(imported on first use): ``flaml`` here; a SageMaker Autopilot engine can be added as
``"churn.aws.autopilot_job:AutopilotEngine"`` without touching this module's callers.

The local engine, ``FlamlEngine``, runs FLAML in process (sequential trials, ``n_jobs``
threads per model, 1 by default for a shared 2-core box), optimizing the configured
objective with stratified cross-validation on the training rows, seeded. Its result is a
plain scikit-learn-compatible model (no FLAML needed to load it):

- ``mode: HYPERPARAMETER_TUNING``: the best model of the best family, refitted on all rows;
- ``mode: ENSEMBLING`` (the spec's Autopilot mode, and ``AUTO``): a weighted soft-voting
  ``VotingClassifier`` over the best model of each of the top ``ensemble_size`` families,
  weights from greedy ensemble selection on out-of-fold predictions (as AutoGluon, which
  Autopilot's ensembling mode runs, does).

Reproducibility: every model and the CV folds are seeded, but FLAML spends its budget by
wall-clock time and picks the next family from measured trial times, so two runs with the
same seed need not try the same candidates (FLAML issue #151). What holds is the score:
``bench/model_quality.py`` checks two same-seed runs end within 0.002 ROC-AUC.
"""

from __future__ import annotations

import importlib
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

import numpy as np
import pandas as pd

from churn.bundle import ModelBundle
from churn.preprocessing import Preprocessor

# -- settings -----------------------------------------------------------------------

# The spec's objective_metric_name (Autopilot names) -> our evaluation report's key.
OBJECTIVES: Dict[str, Optional[str]] = {
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
DEFAULT_FAMILIES = ("lgbm", "xgboost", "rf", "extra_tree", "logistic")


class AutoMLError(RuntimeError):
    """An AutoML search that could not produce a model; the message says why."""


@dataclass(frozen=True)
class AutoMLSettings:
    """What to search for and how long: the spec's AutoML keys, engine-neutral.

    ``max_runtime_sec`` bounds the whole search (the cloud engine maps it to the AutoML
    job's total runtime); ``max_runtime_per_candidate_sec`` bounds one training job.
    """

    target: str = "churn"
    problem_type: str = "BinaryClassification"
    objective: str = "Accuracy"
    max_runtime_sec: float = 300.0             # the local engine's budget
    autopilot_max_runtime_sec: float = 3600.0  # the SageMaker Autopilot job's budget (spec default)
    max_candidates: Optional[int] = None
    max_runtime_per_candidate_sec: Optional[float] = None
    mode: str = "ENSEMBLING"
    families: Tuple[str, ...] = DEFAULT_FAMILIES
    ensemble_size: int = 3
    cv_folds: int = 5
    seed: int = 42
    n_jobs: int = 1

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
        if self.max_runtime_sec <= 0 or self.autopilot_max_runtime_sec <= 0:
            raise ValueError(f"max_runtime_sec and autopilot_max_runtime_sec must be positive, got "
                             f"{self.max_runtime_sec} and {self.autopilot_max_runtime_sec}")
        if self.max_candidates is not None and self.max_candidates < 1:
            raise ValueError(f"max_candidates must be at least 1, got {self.max_candidates}")
        if self.ensemble_size < 1 or self.cv_folds < 2 or self.n_jobs < 1:
            raise ValueError("ensemble_size >= 1, cv_folds >= 2 and n_jobs >= 1 are required")
        object.__setattr__(self, "families", tuple(self.families))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "AutoMLSettings":
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

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["families"] = list(self.families)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AutoMLSettings":
        return cls(**{**data, "families": tuple(data.get("families", DEFAULT_FAMILIES))})


# -- the engine interface -----------------------------------------------------------

class AutoMLEngine(Protocol):
    """One way to run an AutoML search (in process, or a cloud AutoML job)."""

    name: str

    def train(self, train_frame: pd.DataFrame, preprocessor: Preprocessor, settings: AutoMLSettings) -> ModelBundle:
        """Search on ``train_frame`` (raw features + target) and return the best model as a bundle."""
        ...


# Engine name -> "module:attribute" of a zero-argument factory (a class). The stack names
# the engine (label ``automl_engine``); the step never branches on the backend.
DEFAULT_ENGINE = "flaml"
ENGINES: Dict[str, str] = {"flaml": "churn.automl:FlamlEngine",
                           "sagemaker_autopilot": "churn.aws.autopilot_job:AutopilotEngine"}


def register_engine(name: str, source: str) -> None:
    """Make an engine available under ``name`` (``source`` is ``"module:attribute"``)."""
    ENGINES[name] = source


def resolve_engine(name: Optional[str] = None) -> AutoMLEngine:
    """The engine called ``name`` (None or empty: the local default)."""
    name = name or DEFAULT_ENGINE
    if name not in ENGINES:
        raise AutoMLError(f"unknown AutoML engine {name!r}; known engines: {', '.join(sorted(ENGINES))}")
    module, _, attribute = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)()


def train_automl(train_frame: pd.DataFrame, preprocessor: Preprocessor, settings: AutoMLSettings,
                 engine: Optional[str] = None, info: Optional[Dict[str, Any]] = None) -> ModelBundle:
    """Run ``engine`` (default: local FLAML) and merge ``info`` (lineage) into the bundle's info."""
    bundle = resolve_engine(engine).train(train_frame, preprocessor, settings)
    bundle.info.update(info or {})
    return bundle


# -- objectives -----------------------------------------------------------------------

def _positive_proba(estimator: Any, X: np.ndarray) -> np.ndarray:
    proba = estimator.predict_proba(X)
    return proba[:, list(estimator.classes_).index(1)] if hasattr(estimator, "classes_") else proba[:, 1]


def _custom_metric(score: Callable[[np.ndarray, np.ndarray], float], name: str) -> Callable:
    """A FLAML metric function (loss = 1 - score) for a metric FLAML has no name for."""

    def metric(X_val, y_val, estimator, labels, X_train, y_train, weight_val=None, weight_train=None, *args, **kwargs):
        y_pred = (_positive_proba(estimator, X_val) > 0.5).astype(int)
        value = float(score(np.asarray(y_val, dtype=int), y_pred))
        return 1.0 - value, {name: value}

    metric.__name__ = f"flaml_{name}"
    return metric


def flaml_metric(objective: str) -> Any:
    """The FLAML metric (a name, or a function) that optimizes the spec's objective."""
    from sklearn import metrics

    builtin = {"Accuracy": "accuracy", "AUC": "roc_auc", "F1": "f1", "LogLoss": "log_loss"}
    if objective in builtin:
        return builtin[objective]
    custom = {
        "Precision": lambda y, p: metrics.precision_score(y, p, zero_division=0),
        "Recall": lambda y, p: metrics.recall_score(y, p, zero_division=0),
        "BalancedAccuracy": metrics.balanced_accuracy_score,
    }
    if objective not in custom:
        raise AutoMLError(f"objective {objective!r} has no FLAML metric")
    return _custom_metric(custom[objective], objective)


def objective_score(objective: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    """The objective's value (higher is better; LogLoss is negated) for positive-class probabilities."""
    from sklearn import metrics

    y_true = np.asarray(y_true, dtype=int)
    y_pred = (np.asarray(proba) > 0.5).astype(int)
    if objective == "AUC":
        return float(metrics.roc_auc_score(y_true, proba))
    if objective == "LogLoss":
        return -float(metrics.log_loss(y_true, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1]))
    scorer = {
        "Accuracy": metrics.accuracy_score,
        "F1": lambda y, p: metrics.f1_score(y, p, zero_division=0),
        "Precision": lambda y, p: metrics.precision_score(y, p, zero_division=0),
        "Recall": lambda y, p: metrics.recall_score(y, p, zero_division=0),
        "BalancedAccuracy": metrics.balanced_accuracy_score,
    }[objective]
    return float(scorer(y_true, y_pred))


# -- the local engine: FLAML ---------------------------------------------------------

def onehot_logistic(categorical_columns: Sequence[int], C: float = 1.0, random_state: int = 0):
    """Logistic regression on one-hot categoricals and standardized numbers (a plain sklearn Pipeline).

    The bundle's matrix holds label codes for categoricals, which a linear model cannot use
    as numbers; this family gives the linear model the encoding it needs.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categorical = list(categorical_columns)
    encode = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical)],
        remainder=StandardScaler(),
    )
    return Pipeline([("encode", encode),
                     ("model", LogisticRegression(C=C, max_iter=2000, random_state=random_state))])


def _logistic_learner(categorical_columns: Sequence[int]):
    """A FLAML learner class for ``onehot_logistic`` (tunes C), bound to the categorical columns."""
    from flaml import tune
    from flaml.automl.model import SKLearnEstimator

    columns = tuple(int(c) for c in categorical_columns)

    class OneHotLogisticLearner(SKLearnEstimator):
        @classmethod
        def search_space(cls, data_size, task, **params):
            return {"C": {"domain": tune.loguniform(lower=1 / 1024, upper=1024.0), "init_value": 1.0,
                          "low_cost_init_value": 1.0}}

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
            self.estimator_class = lambda **params: onehot_logistic(columns, **params)

    return OneHotLogisticLearner


def _library_versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("flaml", "lightgbm", "xgboost", "xgboost-cpu"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def _model_objects(estimator: Any) -> List[Any]:
    """``estimator`` and every model inside it (ensemble members, frozen wrappers, pipeline steps)."""
    found, stack = [], [estimator]
    while stack:
        obj = stack.pop()
        found.append(obj)
        stack.extend(getattr(obj, "estimators_", None) or [])
        if type(obj).__name__ == "FrozenEstimator":
            stack.append(obj.estimator)
        stack.extend(step for _, step in (getattr(obj, "steps", None) or []))
    return found


def serving_requirements(estimator: Any) -> Dict[str, str]:
    """Distributions (pip name -> version) that loading ``estimator`` needs beyond scikit-learn/numpy.

    E.g. ``{"lightgbm": "4.7.0", "xgboost-cpu": "2.1.4"}``: whatever serves the bundle (an
    inference image's requirements) must install these. FLAML is never among them.
    """
    from importlib.metadata import packages_distributions, version

    distributions = packages_distributions()
    out: Dict[str, str] = {}
    for obj in _model_objects(estimator):
        module = type(obj).__module__.split(".")[0]
        if module in ("sklearn", "numpy", "builtins", "churn"):
            continue
        for name in distributions.get(module, []):
            out[name] = version(name)
    return dict(sorted(out.items()))


def _serving_threads(estimator: Any, n_jobs: int = 1) -> Any:
    """Set n_jobs on every model inside ``estimator`` (one-row scoring is fastest single-threaded)."""
    try:
        keys = [k for k in estimator.get_params(deep=True) if k == "n_jobs" or k.endswith("__n_jobs")]
        estimator.set_params(**{k: n_jobs for k in keys})
    except Exception:  # a model without sklearn params is served as is
        pass
    return estimator


class FlamlEngine:
    """The local engine: FLAML in this process, seeded, within ``max_runtime_sec``."""

    name = "flaml"
    # Budget kept back after the search for ensemble selection and the final fit: 15%, at most 30 s.
    FINAL_FIT_SHARE, FINAL_FIT_MAX_SEC = 0.15, 30.0

    def train(self, train_frame: pd.DataFrame, preprocessor: Preprocessor, settings: AutoMLSettings) -> ModelBundle:
        from threadpoolctl import threadpool_limits

        started = time.perf_counter()
        if settings.target != preprocessor.target:
            raise AutoMLError(f"settings target {settings.target!r} differs from the preprocessor's {preprocessor.target!r}")
        X, _ = preprocessor.transform(train_frame)
        y = train_frame[preprocessor.target].to_numpy(dtype=int)
        if len(np.unique(y)) != 2:
            raise AutoMLError(f"target '{preprocessor.target}' needs both classes 0 and 1 to train a binary classifier")
        folds = int(min(settings.cv_folds, np.bincount(y).min()))
        if folds < 2:
            raise AutoMLError(f"too few rows of the minority class ({np.bincount(y).min()}) for cross-validation")
        categorical = [j for j, c in enumerate(preprocessor.feature_order) if c in preprocessor.classes]
        with threadpool_limits(limits=settings.n_jobs), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            search = self._search(X, y, categorical, settings, folds, deadline=started + settings.max_runtime_sec)
            final_started = time.perf_counter()
            estimator, ensemble = self._final_model(search, X, y, categorical, settings, folds,
                                                    deadline=started + settings.max_runtime_sec)
            search["summary"]["final_fit_seconds"] = round(time.perf_counter() - final_started, 3)
        seconds = time.perf_counter() - started
        info = {
            "model_type": "automl",
            "automl_engine": self.name,
            "automl": {**search["summary"], "mode": settings.mode, "ensemble_members": ensemble["members"],
                       "ensemble_cv_score": ensemble["ensemble_cv_score"],
                       "settings": settings.to_dict(), "total_seconds": round(seconds, 3),
                       "library_versions": _library_versions()},
            "hyperparameters": {"best_family": search["summary"]["best_family"],
                                **{f"best_{k}": v for k, v in search["summary"]["best_config"].items()}},
            "serving_requirements": serving_requirements(estimator),
            "random_state": settings.seed,
            "train_rows": int(len(train_frame)),
            "train_seconds": round(seconds, 3),
        }
        return ModelBundle(estimator=_serving_threads(estimator), preprocessor=preprocessor, info=info)

    # The search --------------------------------------------------------------------
    def _search(self, X: np.ndarray, y: np.ndarray, categorical: List[int], settings: AutoMLSettings,
                folds: int, deadline: float) -> Dict[str, Any]:
        from flaml import AutoML  # a few seconds: counted in the budget, which is wall time from the call
        from flaml.automl.training_log import training_log_reader

        automl = AutoML()
        if "logistic" in settings.families:
            automl.add_learner("logistic", _logistic_learner(categorical))
        started = time.perf_counter()
        reserve = min(settings.max_runtime_sec * self.FINAL_FIT_SHARE, self.FINAL_FIT_MAX_SEC)
        budget = max(1.0, deadline - started - reserve)
        with tempfile.TemporaryDirectory(prefix="flaml-") as tmp:
            log_path = os.path.join(tmp, "trials.jsonl")
            automl.fit(
                X_train=X, y_train=y, task="classification", metric=flaml_metric(settings.objective),
                estimator_list=list(settings.families), time_budget=budget,
                max_iter=settings.max_candidates, train_time_limit=settings.max_runtime_per_candidate_sec,
                eval_method="cv", n_splits=folds, split_type="stratified", seed=settings.seed,
                n_jobs=settings.n_jobs, n_concurrent_trials=1, retrain_full=True, mlflow_logging=False,
                log_file_name=log_path, log_type="all", verbose=0, keep_search_state=True,
            )
            search_seconds = time.perf_counter() - started
            with training_log_reader(log_path) as reader:
                trials = [record for record in reader.records()]
        if automl.best_estimator is None or automl.model is None:
            raise AutoMLError(
                f"the AutoML search found no model within max_runtime_sec={settings.max_runtime_sec}"
                f"{'' if settings.max_candidates is None else f' / max_candidates={settings.max_candidates}'}; "
                "raise the budget"
            )
        per_family: Dict[str, Dict[str, Any]] = {}
        for family in settings.families:
            family_trials = [t for t in trials if t.learner == family]
            loss = automl.best_loss_per_estimator.get(family)
            per_family[family] = {
                "trials": len(family_trials),
                "best_cv_loss": None if loss is None or not np.isfinite(loss) else round(float(loss), 6),
                "best_config": automl.best_config_per_estimator.get(family),
            }
        best = automl.best_estimator
        summary = {
            "objective": settings.objective,
            "flaml_metric": getattr(flaml_metric(settings.objective), "__name__", flaml_metric(settings.objective)),
            "best_family": best,
            "best_config": dict(automl.best_config),
            "best_cv_score": _loss_to_score(settings.objective, automl.best_loss),
            "trials": len(trials),
            "families": per_family,
            "search_budget_sec": round(budget, 3),
            "search_seconds": round(search_seconds, 3),
            "cv_folds": folds,
        }
        return {"automl": automl, "summary": summary}

    # The final model ---------------------------------------------------------------
    def _final_model(self, search: Dict[str, Any], X: np.ndarray, y: np.ndarray, categorical: List[int],
                     settings: AutoMLSettings, folds: int, deadline: float) -> Tuple[Any, Dict[str, Any]]:
        """The best model (HYPERPARAMETER_TUNING), or a weighted soft-voting ensemble (ENSEMBLING, AUTO).

        Ensemble weights come from greedy ensemble selection (Caruana et al., 2004, as
        AutoGluon's weighted ensemble does) on out-of-fold predictions of the best model of
        the top ``ensemble_size`` families; members whose weight is 0 are dropped.
        """
        from flaml.automl.task.factory import task_factory

        automl, summary = search["automl"], search["summary"]
        best = summary["best_family"]
        best_model = automl.model.estimator  # refitted on all rows by FLAML (retrain_full)
        ranked = sorted(((f, s["best_cv_loss"]) for f, s in summary["families"].items()
                         if s["best_cv_loss"] is not None and f != best), key=lambda item: (item[1], item[0]))
        families = [best] + [f for f, _ in ranked][: settings.ensemble_size - 1]
        single = {"members": [{"family": best, "weight": 1.0}], "ensemble_cv_score": None}
        if settings.mode == "HYPERPARAMETER_TUNING" or len(families) < 2:
            return best_model, single

        task = task_factory("binary")

        def fit(family: str, X_fit: np.ndarray, y_fit: np.ndarray) -> Any:
            """The family's best configuration, fitted on the given rows (the underlying model)."""
            learner = _logistic_learner(categorical) if family == "logistic" else task.estimator_class_from_str(family)
            config = summary["best_config"] if family == best else summary["families"][family]["best_config"]
            wrapper = learner(task="binary", n_jobs=settings.n_jobs, **config)
            wrapper.fit(X_fit, y_fit)
            return wrapper.estimator

        weights = self._selection_weights(families, fit, X, y, settings, folds, deadline)
        if weights is None:  # out of time: equal weights
            weights = {f: round(1.0 / len(families), 6) for f in families}
            ensemble_score = None
        else:
            weights, ensemble_score = weights
        members = [(f, best_model if f == best else fit(f, X, y)) for f in families if weights.get(f, 0) > 0]
        if len(members) == 1:
            return members[0][1], {"members": [{"family": members[0][0], "weight": 1.0}], "ensemble_cv_score": ensemble_score}
        from sklearn.ensemble import VotingClassifier
        from sklearn.frozen import FrozenEstimator

        ensemble = VotingClassifier([(f, FrozenEstimator(_serving_threads(m))) for f, m in members], voting="soft",
                                    weights=[weights[f] for f, _ in members])
        ensemble.fit(X, y)  # frozen members are not refitted: this only records the classes
        return ensemble, {"members": [{"family": f, "weight": weights[f]} for f, _ in members],
                          "ensemble_cv_score": ensemble_score}

    @staticmethod
    def _selection_weights(families: List[str], fit: Callable, X: np.ndarray, y: np.ndarray, settings: AutoMLSettings,
                           folds: int, deadline: float, rounds: int = 20) -> Optional[Tuple[Dict[str, float], float]]:
        """Greedy ensemble selection with replacement on out-of-fold probabilities (None if past the deadline)."""
        from sklearn.model_selection import StratifiedKFold

        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=settings.seed)
        oof = np.zeros((len(families), len(y)))
        for i, family in enumerate(families):
            for train_rows, valid_rows in splitter.split(X, y):
                if time.perf_counter() > deadline:
                    return None
                oof[i, valid_rows] = _positive_proba(fit(family, X[train_rows], y[train_rows]), X[valid_rows])
        counts = np.zeros(len(families))
        blend = np.zeros(len(y))
        for step in range(rounds):
            scores = [objective_score(settings.objective, y, (blend * step + oof[i]) / (step + 1)) for i in range(len(families))]
            chosen = int(np.argmax(scores))  # ties go to the better-ranked family
            counts[chosen] += 1
            blend = (blend * step + oof[chosen]) / (step + 1)
        weights = {f: round(float(c / rounds), 6) for f, c in zip(families, counts) if c > 0}
        return weights, round(objective_score(settings.objective, y, blend), 6)


def _loss_to_score(objective: str, loss: float) -> Optional[float]:
    if loss is None or not np.isfinite(loss):
        return None
    return round(-float(loss) if objective == "LogLoss" else 1.0 - float(loss), 6)

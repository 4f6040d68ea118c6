"""The local engine: portfolio, then FLAML search, then a greedy ensemble, within ``max_runtime_sec``.

What strong AutoML systems do, in one process (``n_jobs`` threads per model, 1 by default
for a shared 2-core box), all within the budget, which is wall time from the call and
includes the final fit:

1. **Portfolio** (``portfolio.py``): each library's defaults and a few known-good
   configurations, each with k-fold out-of-fold (OOF) predictions on the same stratified
   folds (the config's seed). Deterministic while the budget lasts.
2. **Search**: FLAML (``flaml_search.py``) for part of the remaining time; its best
   configuration per family is then evaluated on the same folds, so it is one more candidate.
3. **Ensemble** (``churn/automl/ensemble.py``): greedy selection with replacement on the
   OOF predictions of all candidates, across families (linear ones included), at most
   ``ensemble_size`` members; never worse on OOF than the best single candidate. Then the
   scoring-cost cap (``max_scoring_cost``, tree-node visits per row): members go while the
   total is over it (the least useful first), and members of tiny weight go if the blend
   loses (almost) nothing without them (``ensemble.prune``). The blend is served only if its
   gain over the best single candidate holds across the folds (mean fold gain at least
   ``BLEND_MIN_T`` standard errors): otherwise the best single candidate is (on noisy labels a
   small OOF gain of weights chosen on those same OOF predictions does not carry to new rows).
   ``mode: HYPERPARAMETER_TUNING`` keeps the best single candidate instead.
4. **Final fit** (``final_fit``): ``refit`` fits each member once on all training rows
   (one model per member at the endpoint); ``bag`` serves its k fold models (no extra fit,
   k times the scoring). A member whose refit would not fit in the budget left is served as its
   first fold model (trained on (k-1)/k of the rows): same scoring cost as a refit.

Time is kept back for step 4 from the start: the estimated refit time of the best
candidates so far (their measured fold fit times, scaled to all rows).

Length: the engine's phases (portfolio, search, ensemble selection, final fit) share one deadline
and one fold split; each phase is a function, kept together so the budget accounting reads in one
file.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from churn.automl.engines import flaml_search
from churn.automl.engines.portfolio import Candidate, DataProfile, Evaluated, evaluate, fit_candidate, portfolio
from churn.automl.ensemble import WeightedEnsemble, greedy_selection, prune
from churn.automl.models import BaggedModel, scoring_cost
from churn.automl.objectives import flaml_metric, loss_to_score, objective_score
from churn.automl.settings import AutoMLError, AutoMLSettings
from churn.bundle import ModelBundle
from churn.preprocessing import Preprocessor

MIN_SEARCH_SEC = 5.0  # less than this left after the portfolio: no FLAML search
SEARCH_SHARE = 0.6  # of the time left after the portfolio: FLAML; the rest evaluates its finds
FLAML_CANDIDATES = 3  # FLAML's best configs (of different families) evaluated on our folds
SELECTION_ROUNDS = 25
# the blend's mean out-of-fold gain over the best single model, in standard errors over the folds,
# needed to serve the blend (see ``LocalEngine._select``)
BLEND_MIN_T = 2.0


class LocalEngine:
    """The local engine (stack label value ``flaml``, the default)."""

    name = "flaml"

    def train(self, train_frame: pd.DataFrame, preprocessor: Preprocessor, settings: AutoMLSettings) -> ModelBundle:
        from threadpoolctl import threadpool_limits

        started = time.perf_counter()
        deadline = started + settings.max_runtime_sec
        X, y, categorical, folds = _training_data(train_frame, preprocessor, settings)
        import flaml  # noqa: F401  (imports mlflow: seconds in a fresh process, counted in the budget)

        def score(proba: np.ndarray) -> float:
            return objective_score(settings.objective, y, proba)

        score.rows = lambda proba, rows: objective_score(settings.objective, y[rows], proba)  # a fold subset
        with threadpool_limits(limits=settings.n_jobs), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluated = self._portfolio(X, y, categorical, folds, settings, score, deadline)
            portfolio_seconds = time.perf_counter() - started
            search = self._search(X, y, categorical, folds, settings, score, deadline, evaluated)
            if not evaluated:
                raise AutoMLError(
                    f"no candidate model finished within max_runtime_sec={settings.max_runtime_sec} "
                    f"on {len(y)} rows; raise the budget"
                )
            ranked = sorted(evaluated, key=lambda e: -e.score)  # stable: ties keep the evaluation order
            weights, ensemble_score, blend_check = self._select(ranked, settings, score, folds)
            final_started = time.perf_counter()
            estimator, members = self._final_fit(ranked, weights, X, y, categorical, settings, deadline)
            final_seconds = time.perf_counter() - final_started
        seconds = time.perf_counter() - started
        best = ranked[0]
        families = _family_summary(settings, evaluated, search)
        summary = {
            "objective": settings.objective,
            "flaml_metric": getattr(flaml_metric(settings.objective), "__name__", flaml_metric(settings.objective)),
            "best_family": best.candidate.family,
            "best_name": best.candidate.name,
            "best_config": dict(best.candidate.config),
            "best_cv_score": round(best.score, 6),
            "trials": sum(f["trials"] for f in families.values()),
            "families": families,
            "leaderboard": [
                {
                    "name": e.candidate.name,
                    "family": e.candidate.family,
                    "source": e.candidate.source,
                    "cv_score": round(e.score, 6),
                    "fold_fit_seconds": round(e.fit_seconds, 3),
                    "folds": len(e.fold_models),
                }
                for e in ranked
            ],
            "portfolio_seconds": round(portfolio_seconds, 3),
            "search_budget_sec": round(search["budget"], 3),
            "search_seconds": round(search["seconds"], 3),
            "cv_folds": len(folds),
            "mode": settings.mode,
            "final_fit": settings.final_fit,
            "ensemble_members": members,
            "ensemble_cv_score": ensemble_score,
            "ensemble_fold_gains": blend_check,
            "final_fit_seconds": round(final_seconds, 3),
            "settings": settings.to_dict(),
            "total_seconds": round(seconds, 3),
            "library_versions": _library_versions(),
        }
        info = {
            "model_type": "automl",
            "automl_engine": self.name,
            "automl": summary,
            "hyperparameters": {  # what the model cards (dashboard, registration) show: the members first
                "ensemble": " + ".join(f"{m['weight']:.3f} {m['name']}" for m in members),
                "best_family": best.candidate.family,
                **{f"best_{k}": v for k, v in best.candidate.config.items()},
            },
            "serving_requirements": serving_requirements(estimator),
            "random_state": settings.seed,
            "train_rows": int(len(train_frame)),
            "train_seconds": round(seconds, 3),
        }
        return ModelBundle(estimator=serving_threads(estimator), preprocessor=preprocessor, info=info)

    # 1. the portfolio ---------------------------------------------------------------
    @staticmethod
    def _portfolio(X, y, categorical, folds, settings, score, deadline) -> list[Evaluated]:
        evaluated: list[Evaluated] = []
        for candidate in portfolio(settings.families, DataProfile.of(X, categorical)):
            if settings.max_candidates is not None and len(evaluated) >= settings.max_candidates:
                break
            result = evaluate(
                candidate,
                X,
                y,
                folds,
                categorical,
                settings.seed,
                settings.n_jobs,
                score,
                deadline=deadline - _final_fit_reserve(evaluated, settings, len(folds)),
            )
            if result is None or not result.complete:  # out of time: the rest of the portfolio is skipped
                if result is not None and not evaluated:
                    evaluated.append(result)  # nothing else finished: its fold models serve (see _select)
                break
            evaluated.append(result)
        return evaluated

    # 2. the search ------------------------------------------------------------------
    @staticmethod
    def _search(X, y, categorical, folds, settings, score, deadline, evaluated: list[Evaluated]) -> dict[str, Any]:
        """FLAML for a share of the time left; its best config per family joins ``evaluated`` (in place)."""
        empty = {"families": {}, "trials": 0, "seconds": 0.0, "budget": 0.0}
        left_candidates = None if settings.max_candidates is None else settings.max_candidates - len(evaluated)
        if left_candidates is not None and left_candidates < 1:
            return empty
        left = deadline - time.perf_counter() - _final_fit_reserve(evaluated, settings, len(folds))
        budget = left * SEARCH_SHARE if evaluated else left
        if budget < MIN_SEARCH_SEC and evaluated:
            return empty
        search_settings = (
            settings
            if left_candidates is None
            else AutoMLSettings(
                **{**settings.to_dict(), "families": settings.families, "max_candidates": left_candidates}
            )
        )
        partial = [e for e in evaluated if not e.complete]
        evaluated[:] = [e for e in evaluated if e.complete]
        result = flaml_search.search(X, y, categorical, search_settings, len(folds), budget=max(1.0, budget))
        found = sorted(
            (
                (info["best_loss"], family, info)
                for family, info in result["families"].items()
                if info["best_config"] is not None and info["best_loss"] is not None
            ),
            key=lambda item: (item[0], item[1]),
        )
        for _, family, info in found[:FLAML_CANDIDATES]:
            candidate = Candidate(f"flaml_{family}", family, info["best_config"], source="flaml")
            outcome = evaluate(
                candidate,
                X,
                y,
                folds,
                categorical,
                settings.seed,
                settings.n_jobs,
                score,
                deadline=deadline - _final_fit_reserve(evaluated, settings, len(folds)),
                fold_seconds=(info["best_trial_seconds"] or 0.0) / len(folds),
            )
            if outcome is None or not outcome.complete:
                break
            evaluated.append(outcome)
        if not evaluated:
            evaluated.extend(partial)
        return result

    # 3. the ensemble ----------------------------------------------------------------
    @staticmethod
    def _select(ranked: list[Evaluated], settings: AutoMLSettings, score, folds):
        """Weights per ranked candidate (0: out), the ensemble's OOF score (None: a single model), the fold gains.

        The blend replaces the best single model only if its out-of-fold gain is consistent across
        the folds (mean gain at least ``BLEND_MIN_T`` standard errors above 0): the blend's weights
        are chosen on the same out-of-fold predictions they are scored on, so a small gain there is
        often selection noise (noisy labels), and the simpler model then scores better on new rows.
        """
        single = [1.0] + [0.0] * (len(ranked) - 1)
        if settings.mode == "HYPERPARAMETER_TUNING" or len(ranked) == 1 or not all(e.complete for e in ranked):
            return single, None, None
        oof = np.array([e.oof for e in ranked])
        selection = greedy_selection(oof, score, rounds=SELECTION_ROUNDS, max_members=settings.ensemble_size)
        weights = selection.weights
        if settings.max_scoring_cost is not None:
            # the served cost of a member: one refit model, or its k fold models when bagged
            costs = [
                sum(map(scoring_cost, e.fold_models)) if settings.final_fit == "bag" else scoring_cost(e.fold_models[0])
                for e in ranked
            ]
            weights = prune(oof, weights, score, costs, max_cost=settings.max_scoring_cost)
        blend = np.asarray(weights) @ oof
        blended = float(score(blend))
        if blended < ranked[0].score or np.count_nonzero(weights) == 1:
            return single, None, None
        gains = np.array(
            [score.rows(blend[rows], rows) - score.rows(oof[0][rows], rows) for _, rows in folds], dtype=np.float64
        )
        spread = gains.std(ddof=1) / np.sqrt(len(gains))
        fold_gains = [round(float(g), 6) for g in gains]
        if gains.mean() <= 0 or gains.mean() < BLEND_MIN_T * spread:
            return single, None, fold_gains
        return weights, round(blended, 6), fold_gains

    # 4. the final fit ---------------------------------------------------------------
    @staticmethod
    def _final_fit(ranked, weights, X, y, categorical, settings, deadline):
        models, names, member_weights, members = [], [], [], []
        for evaluated, weight in zip(ranked, weights):
            if weight <= 0:
                continue
            candidate = evaluated.candidate
            expected = _refit_seconds(evaluated, len(ranked[0].fold_models))
            if settings.final_fit == "bag":
                model, how = BaggedModel(evaluated.fold_models), "bag"
            elif time.perf_counter() + expected <= deadline:
                model, how = fit_candidate(candidate, X, y, categorical, settings.seed, settings.n_jobs), "refit"
            else:  # no time to refit: its first fold model (k-1 of k parts of the rows), at a refit's scoring cost
                model, how = evaluated.fold_models[0], "fold"
            models.append(model)
            names.append(candidate.name)
            member_weights.append(weight)
            members.append(
                {
                    "family": candidate.family,
                    "weight": weight,
                    "config": dict(candidate.config),
                    "name": candidate.name,
                    "source": candidate.source,
                    "cv_score": round(evaluated.score, 6),
                    "fit": how,
                }
            )
        if len(models) == 1:
            members[0]["weight"] = 1.0
            return models[0], members
        return WeightedEnsemble(models, member_weights, names), members


def _training_data(train_frame: pd.DataFrame, preprocessor: Preprocessor, settings: AutoMLSettings):
    """The float matrix, 0/1 labels, categorical column indexes and the stratified folds (seeded)."""
    from sklearn.model_selection import StratifiedKFold

    if settings.target != preprocessor.target:
        raise AutoMLError(
            f"settings target {settings.target!r} differs from the preprocessor's {preprocessor.target!r}"
        )
    X, _ = preprocessor.transform(train_frame)
    y = train_frame[preprocessor.target].to_numpy(dtype=int)
    if len(np.unique(y)) != 2:
        raise AutoMLError(f"target '{preprocessor.target}' needs both classes 0 and 1 to train a binary classifier")
    n_folds = int(min(settings.cv_folds, np.bincount(y).min()))
    if n_folds < 2:
        raise AutoMLError(f"too few rows of the minority class ({np.bincount(y).min()}) for cross-validation")
    categorical = [j for j, c in enumerate(preprocessor.feature_order) if c in preprocessor.classes]
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=settings.seed)
    return np.ascontiguousarray(X, dtype=np.float64), y, categorical, list(splitter.split(X, y))


def _refit_seconds(evaluated: Evaluated, n_folds: int) -> float:
    """Expected seconds to fit on all rows: a fold fit scaled to k/(k-1) the rows, with a margin (load varies)."""
    return 1.6 * evaluated.fit_seconds * n_folds / max(1, n_folds - 1)


def _final_fit_reserve(evaluated: list[Evaluated], settings: AutoMLSettings, n_folds: int) -> float:
    """Seconds kept back for the final fit: the refit of the best ``ensemble_size`` candidates so far."""
    if settings.final_fit == "bag":
        return 0.5
    best = sorted(evaluated, key=lambda e: -e.score)[: settings.ensemble_size]
    return 0.5 + sum(_refit_seconds(e, n_folds) for e in best)


def _family_summary(settings: AutoMLSettings, evaluated: list[Evaluated], search: dict[str, Any]) -> dict[str, Any]:
    """Per family: candidates tried (portfolio + FLAML trials), the best CV loss and its config."""
    out: dict[str, Any] = {}
    for family in settings.families:
        mine = [e for e in evaluated if e.candidate.family == family]
        flaml = search["families"].get(family, {})
        portfolio_trials = sum(1 for e in mine if e.candidate.source == "portfolio")
        best: Evaluated | None = max(mine, key=lambda e: e.score) if mine else None
        flaml_score = loss_to_score(settings.objective, flaml.get("best_loss"))
        out[family] = {
            "trials": portfolio_trials + int(flaml.get("trials", 0)),
            "best_cv_loss": None if best is None else round(_score_to_loss(settings.objective, best.score), 6),
            "best_config": None if best is None else dict(best.candidate.config),
            "flaml_best_cv_score": flaml_score,
        }
    return out


def _score_to_loss(objective: str, score: float) -> float:
    return -score if objective == "LogLoss" else 1.0 - score


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("flaml", "lightgbm", "xgboost", "xgboost-cpu"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def model_objects(estimator: Any) -> list[Any]:
    """``estimator`` and every model inside it (ensemble members, bagged fold models, pipeline steps)."""
    found, stack = [], [estimator]
    while stack:
        obj = stack.pop()
        found.append(obj)
        stack.extend(getattr(obj, "estimators_", None) or [])
        if type(obj).__name__ == "FrozenEstimator":
            stack.append(obj.estimator)
        stack.extend(step for _, step in (getattr(obj, "steps", None) or []))
    return found


def serving_requirements(estimator: Any) -> dict[str, str]:
    """Distributions (pip name -> version) that loading ``estimator`` needs beyond scikit-learn/numpy.

    E.g. ``{"lightgbm": "4.7.0", "xgboost-cpu": "2.1.4"}``: whatever serves the bundle (an
    inference image's requirements) must install these. FLAML is never among them.
    """
    from importlib.metadata import packages_distributions, version

    distributions = packages_distributions()
    out: dict[str, str] = {}
    for obj in model_objects(estimator):
        module = type(obj).__module__.split(".")[0]
        if module in ("sklearn", "numpy", "builtins", "churn"):
            continue
        for name in distributions.get(module, []):
            out[name] = version(name)
    return dict(sorted(out.items()))


def serving_threads(estimator: Any, n_jobs: int = 1) -> Any:
    """Set n_jobs on every model inside ``estimator`` (one-row scoring is fastest single-threaded)."""
    for obj in model_objects(estimator):
        try:
            if "n_jobs" in obj.get_params(deep=False):
                obj.set_params(n_jobs=n_jobs)
        except Exception:  # a model without sklearn params is served as is
            pass
    return estimator

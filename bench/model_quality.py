"""Benchmark: an offline ROC-AUC leaderboard of our AutoML against other systems, on several data sets.

Every system gets the project's split (80/20 stratified, seed 42: churn.preprocessing.split_train_test)
and, for the budgeted ones, the same ``max_runtime_sec``:

- ``automl``: our local engine (churn.automl, configs/automl.yaml's settings) at each budget;
  ``automl_bag``: the same with ``final_fit: bag`` (the k fold models served instead of a refit);
- ``flaml``: FLAML alone (AutoML.fit on the raw frame, roc_auc, same budget and seed);
- ``autogluon``: AutoGluon (same budget, one CPU) in its own venv, bench/.venv-autogluon, built on
  demand with uv from bench/autogluon/requirements.txt (its pins conflict with ours) and run as a
  subprocess on the same split written to parquet; skipped with a message if the venv cannot be built;
- ``histgb``, ``lgbm``: each library's defaults on the bundle's matrix (label-coded categoricals);
- ``logistic``: one-hot categoricals + standardized numbers + LogisticRegression (defaults);
- ``rf``: the spec's RandomForest (configs/rf.yaml), as the rf variant trains it.

Data sets (no downloads): the demo data (customers 1-4000, what ``run.py ingest`` writes);
scikit-learn's bundled breast cancer data; synthetic churn variants generated here
(interactions, high-cardinality categoricals, 5-15% positives, noisy labels, 20-50 features,
2k-50k rows). It prints ROC-AUC per data set and system, each system's rank per data set, and
the mean AUC and mean rank; for automl also the ensemble, the time it took and the one-row /
10,000-row scoring speed of its bundle.

Goals (issue 14, benchmark not test): at 300 s on 2 cores our automl's ROC-AUC is at least the
best of the others on every data set within 0.002, and better on average; same seed, same score
within 0.002 (``--runs 2``).

Usage: python bench/model_quality.py [--budget 60 300] [--datasets demo synth_noisy ...]
                                     [--systems automl flaml histgb ...] [--runs 1] [--json out.json]
Each system runs with OMP_NUM_THREADS=1 (set before numpy loads) and n_jobs=1.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # FACTS: boosted trees slow 10-60x on a busy 2-core box otherwise
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from churn.automl import AutoMLError, AutoMLSettings, train_automl  # noqa: E402
from churn.bundle import ModelBundle  # noqa: E402
from churn.config import load_config  # noqa: E402
from churn.preprocessing import Preprocessor, split_train_test  # noqa: E402
from churn.schema import NON_FEATURE_COLUMNS  # noqa: E402
from churn.training import train_random_forest  # noqa: E402

TARGET = "churn"
AUTOGLUON_DIR = REPO / "bench" / "autogluon"
AUTOGLUON_VENV = REPO / "bench" / ".venv-autogluon"
TOLERANCE = 0.002
# Results of the other systems (not ours: our code changes between runs), one JSON file per
# data set + system + budget + seed, so AutoGluon/FLAML at 300 s run once (``--no-cache``: rerun).
CACHE_DIR = REPO / "bench" / "results" / "model_quality"
SEED = 42

# -- data sets -------------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def synthetic_churn(
    rows: int,
    numeric: int,
    categorical: int,
    positive_rate: float,
    seed: int,
    interactions: bool = False,
    high_cardinality: tuple = (),
    label_noise: float = 0.0,
) -> pd.DataFrame:
    """A churn-like table: skewed numbers, categoricals with level effects, a target at ``positive_rate``.

    ``interactions`` adds products, thresholds and a periodic term to the logit (trees find
    them, a linear model does not); ``high_cardinality`` gives extra categoricals that many
    levels, Zipf-distributed, each with its own effect; ``label_noise`` flips that share of labels.
    """
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, numeric))
    numbers[:, : numeric // 4] = np.exp(numbers[:, : numeric // 4] * 0.7)  # charge-like, skewed
    informative = max(3, numeric // 2)
    weights = rng.normal(0, 0.6, informative) * (rng.random(informative) < 0.8)
    standardized = (numbers - numbers.mean(axis=0)) / numbers.std(axis=0)
    logit = standardized[:, :informative] @ weights
    if interactions:
        x = standardized
        logit += 1.2 * x[:, 0] * x[:, 1] - 1.5 * ((x[:, 2] > 0.5) & (x[:, 3] < 0)) + 0.8 * np.sin(2 * x[:, 4])
        logit += 0.7 * np.abs(x[:, 5]) - 0.6 * x[:, 6] * (x[:, 7] > 0)
    frame = {f"num_{i:02d}": numbers[:, i].round(4) for i in range(numeric)}
    levels = [int(rng.integers(3, 9)) for _ in range(categorical)] + list(high_cardinality)
    for j, n_levels in enumerate(levels):
        if j < categorical:
            codes = rng.integers(0, n_levels, rows)
            effects = rng.normal(0, 0.5, n_levels) * (j < max(1, categorical // 2) + 1)
        else:  # Zipf frequencies: a few common levels, a long tail of rare ones
            p = 1.0 / np.arange(1, n_levels + 1) ** 1.1
            codes = rng.choice(n_levels, rows, p=p / p.sum())
            effects = rng.normal(0, 0.8, n_levels)
        logit += effects[codes]
        frame[f"cat_{j:02d}"] = np.array([f"level_{c}" for c in range(n_levels)])[codes]
    lo, hi = -20.0, 20.0  # the intercept that gives the positive rate
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _sigmoid(logit + mid).mean() < positive_rate else (lo, mid)
    y = (rng.random(rows) < _sigmoid(logit + lo)).astype(int)
    flip = rng.random(rows) < label_noise
    y[flip] = 1 - y[flip]
    out = pd.DataFrame(frame)
    for column in list(out.columns)[1:numeric:5]:  # a few missing numbers, as real exports have
        out.loc[rng.random(rows) < 0.03, column] = np.nan
    out[TARGET] = y
    return out


def _demo() -> pd.DataFrame:
    from churn.demo_data import generate_customers

    return generate_customers(5000, seed=42).iloc[:4000]


def _breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    return data.data.rename(columns=lambda c: c.replace(" ", "_")).assign(**{TARGET: data.target.to_numpy()})


DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "demo": _demo,
    "breast_cancer": _breast_cancer,
    "synth_interactions": lambda: synthetic_churn(10_000, 16, 6, 0.12, seed=1, interactions=True),
    "synth_highcard": lambda: synthetic_churn(8_000, 14, 4, 0.08, seed=2, high_cardinality=(300, 2000)),
    "synth_noisy": lambda: synthetic_churn(5_000, 30, 5, 0.15, seed=3, label_noise=0.10),
    "synth_small_wide": lambda: synthetic_churn(2_000, 45, 5, 0.10, seed=4, interactions=True),
    "synth_large": lambda: synthetic_churn(50_000, 36, 6, 0.05, seed=5, interactions=True, high_cardinality=(500,)),
}

# -- systems ---------------------------------------------------------------------------


class Split:
    """The project's split of one data set, its fitted preprocessor and the bundle matrices."""

    def __init__(self, frame: pd.DataFrame):
        split = split_train_test(frame, TARGET, 0.2, 42)
        self.train, self.test = split.train, split.test
        self.pre = Preprocessor.fit(self.train, TARGET)
        self.X_train, _ = self.pre.transform(self.train)
        self.X_test, _ = self.pre.transform(self.test)
        self.y_train = self.train[TARGET].to_numpy(dtype=int)
        self.y_test = self.test[TARGET].to_numpy(dtype=int)
        self.categorical = [j for j, c in enumerate(self.pre.feature_order) if c in self.pre.classes]

    def raw(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame.drop(columns=[c for c in NON_FEATURE_COLUMNS if c in frame.columns and c != TARGET])


def _auc(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, proba))


def run_default(name: str, split: Split) -> dict[str, Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    started = time.perf_counter()
    if name == "rf":
        rf = load_config(REPO / "configs" / "rf.yaml")
        bundle = train_random_forest(split.train, split.pre, rf.hyperparameters.model_dump(), rf.random_state)
        proba = bundle.predict_proba(split.test)[0]
    else:
        if name == "histgb":
            model = HistGradientBoostingClassifier(random_state=42)
        elif name == "lgbm":
            from lightgbm import LGBMClassifier

            model = LGBMClassifier(random_state=42, n_jobs=1, verbose=-1)
        elif name == "logistic":
            encode = ColumnTransformer(
                [("categorical", OneHotEncoder(handle_unknown="ignore"), split.categorical)], remainder=StandardScaler()
            )
            model = Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=5000))])
        else:
            raise ValueError(name)
        model.fit(split.X_train, split.y_train)
        proba = model.predict_proba(split.X_test)[:, 1]
    return {"auc": _auc(split.y_test, proba), "seconds": time.perf_counter() - started}


def run_automl(
    split: Split, budget: float, final_fit: str = "refit", save: Path | None = None
) -> dict[str, Any] | None:
    config = load_config(REPO / "configs" / "automl.yaml")
    settings = AutoMLSettings.from_config({**config.model_dump(), "max_runtime_sec": budget})
    settings = AutoMLSettings(**{**settings.to_dict(), "families": settings.families, "final_fit": final_fit})
    started = time.perf_counter()
    try:
        bundle = train_automl(split.train, split.pre, settings)
    except AutoMLError as error:
        print(f"  automl failed: {error}", flush=True)
        return None
    seconds = time.perf_counter() - started
    if save is not None:
        bundle.save(save)
    automl = bundle.info["automl"]
    speed = scoring_speed(bundle, split.test)
    return {
        "auc": _auc(split.y_test, bundle.predict_proba(split.test)[0]),
        "seconds": seconds,
        "model": " + ".join(f"{m['weight']:.2f} {m['name']}({m['fit']})" for m in automl["ensemble_members"]),
        "cv": automl["ensemble_cv_score"] or automl["best_cv_score"],
        "candidates": len(automl["leaderboard"]),
        "flaml_trials": automl["trials"],
        **speed,
    }


def scoring_speed(bundle: ModelBundle, test: pd.DataFrame) -> dict[str, float]:
    """One-row p50 (ms) of ``predict_proba`` on a one-row dict, and rows/s on a 10,000-row frame."""
    rows = [{c: [test[c].iloc[i]] for c in bundle.feature_order} for i in range(min(50, len(test)))]
    for row in rows[:10]:
        bundle.predict_proba(row)
    times = []
    for i in range(300):
        started = time.perf_counter()
        bundle.predict_proba(rows[i % len(rows)])
        times.append(time.perf_counter() - started)
    big = test.sample(10_000, replace=True, random_state=0).reset_index(drop=True)
    columns = {c: big[c].tolist() for c in bundle.feature_order}  # as parsed request columns
    bundle.predict_proba(columns)
    started = time.perf_counter()
    for _ in range(3):
        bundle.predict_proba(columns)
    return {"p50_ms": statistics.median(times) * 1000, "rows_per_s": 3 * 10_000 / (time.perf_counter() - started)}


def run_flaml(split: Split, budget: float) -> dict[str, Any]:
    from flaml import AutoML

    train, test = split.raw(split.train), split.raw(split.test)
    X_train, X_test = train.drop(columns=[TARGET]), test.drop(columns=[TARGET])
    for frame in (X_train, X_test):
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column] = frame[column].astype("category")
    automl = AutoML()
    started = time.perf_counter()
    automl.fit(
        X_train,
        split.y_train,
        task="classification",
        metric="roc_auc",
        time_budget=budget,
        seed=42,
        n_jobs=1,
        verbose=0,
        mlflow_logging=False,
    )
    seconds = time.perf_counter() - started
    return {
        "auc": _auc(split.y_test, automl.predict_proba(X_test)[:, 1]),
        "seconds": seconds,
        "model": automl.best_estimator,
    }


def autogluon_python() -> Path | None:
    """bench/.venv-autogluon's python, building the venv with uv on first use (None: it could not be built)."""
    python = AUTOGLUON_VENV / "bin" / "python"
    if (
        python.exists()
        and subprocess.run([str(python), "-c", "import autogluon.tabular"], capture_output=True).returncode == 0
    ):
        return python
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    print(f"building {AUTOGLUON_VENV} with uv from {AUTOGLUON_DIR / 'requirements.txt'} (once, ~1 GB) ...", flush=True)
    try:
        subprocess.run(
            [uv, "venv", "--python", "3.11", str(AUTOGLUON_VENV)], check=True, capture_output=True, text=True
        )
        subprocess.run(
            [uv, "pip", "install", "--python", str(python), "-r", str(AUTOGLUON_DIR / "requirements.txt")],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        print(f"SKIP autogluon: cannot build {AUTOGLUON_VENV}: {detail.strip()[-300:]}", flush=True)
        return None
    return python


def run_autogluon(split: Split, budget: float, presets: str) -> dict[str, Any] | None:
    python = autogluon_python()
    if python is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-autogluon-") as tmp:
        train, test = Path(tmp) / "train.parquet", Path(tmp) / "test.parquet"
        split.raw(split.train).to_parquet(train)
        split.raw(split.test).to_parquet(test)
        out = Path(tmp) / "out.json"
        started = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        result = subprocess.run(
            [
                str(python),
                str(AUTOGLUON_DIR / "run_autogluon.py"),
                str(train),
                str(test),
                TARGET,
                str(budget),
                presets,
                str(out),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=budget * 3 + 300,
        )
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            print(f"  autogluon failed: {result.stderr.strip()[-500:]}", flush=True)
            return None
        document = json.loads(out.read_text())
    best = document["leaderboard"][0]["model"] if document["leaderboard"] else ""
    return {
        "auc": _auc(split.y_test, np.array(document["proba"])),
        "seconds": seconds,
        "fit_seconds": document["fit_seconds"],
        "model": best,
    }


def cache_path(dataset: str, system: str, budget: float | None, extra: str = "") -> Path:
    """Where one external system's result on one data set is kept (budget None: an unbudgeted default)."""
    at = "" if budget is None else f"@{budget:g}"
    return CACHE_DIR / f"{dataset}__{system}{at}{extra}__seed{SEED}.json"


def cached(path: Path | None, run: Callable[..., dict[str, Any] | None], *args: Any) -> dict[str, Any] | None:
    """``run(*args)``'s result, read from ``path`` if it is there (marked ``cached``), else run and written there."""
    if path is not None and path.exists():
        return {**json.loads(path.read_text()), "cached": True}
    outcome = run(*args)
    if path is not None and outcome is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            **outcome,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average": round(os.getloadavg()[0], 2),
        }
        path.write_text(json.dumps(document, indent=2, default=str))
    return outcome


# -- the table -------------------------------------------------------------------------


def ranks(scores: dict[str, float]) -> dict[str, float]:
    """Rank 1 = best AUC; ties share the mean rank."""
    ordered = sorted(scores.items(), key=lambda item: -item[1])
    out: dict[str, float] = {}
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and abs(ordered[j + 1][1] - ordered[i][1]) < 1e-12:
            j += 1
        for k in range(i, j + 1):
            out[ordered[k][0]] = (i + j) / 2 + 1
        i = j + 1
    return out


def leaderboard(results: dict[str, dict[str, float]], columns: list[str]) -> str:
    lines = ["| data set | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    all_ranks: dict[str, list[float]] = {c: [] for c in columns}
    for dataset, scores in results.items():
        present = {c: scores[c] for c in columns if c in scores}
        rank = ranks(present)
        for c, r in rank.items():
            all_ranks[c].append(r)
        lines.append(
            f"| {dataset} | "
            + " | ".join(f"{present[c]:.4f} ({rank[c]:g})" if c in present else "-" for c in columns)
            + " |"
        )
    means = [
        statistics.mean([results[d][c] for d in results if c in results[d]]) if all_ranks[c] else None for c in columns
    ]
    lines.append("| **mean AUC** | " + " | ".join("-" if m is None else f"{m:.4f}" for m in means) + " |")
    lines.append(
        "| **mean rank** | "
        + " | ".join(f"{statistics.mean(all_ranks[c]):.2f}" if all_ranks[c] else "-" for c in columns)
        + " |"
    )
    return "\n".join(lines)


SYSTEMS = ("automl", "automl_bag", "flaml", "autogluon", "histgb", "lgbm", "logistic", "rf")
DEFAULT_SYSTEMS = ("automl", "flaml", "autogluon", "histgb", "lgbm", "logistic", "rf")


def report(results: dict[str, dict[str, float]], budgets: list[float]) -> None:
    """Print the leaderboard and, per budget, on how many data sets our automl reaches the best other system."""
    columns = list(dict.fromkeys(c for scores in results.values() for c in scores))
    print("\nROC-AUC on the 20% test split (rank per data set in parentheses; 1 = best):\n")
    print(leaderboard(results, columns))
    for budget in budgets:
        ours = f"automl@{budget:g}"
        if not any(ours in r for r in results.values()):
            continue
        misses = []
        for dataset, scores in results.items():
            others = [
                v
                for c, v in scores.items()
                if not c.startswith("automl") and ("@" not in c or c.endswith(f"@{budget:g}"))
            ]
            if ours in scores and others and scores[ours] < max(others) - TOLERANCE:
                misses.append(f"{dataset} ({scores[ours]:.4f} < {max(others):.4f})")
        print(
            f"\nautoml@{budget:g}: at least the best other system within {TOLERANCE} on "
            f"{len([d for d in results if ours in results[d]]) - len(misses)} of "
            f"{len([d for d in results if ours in results[d]])} data sets"
            + (f"; below on {', '.join(misses)}" if misses else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, nargs="+", default=[60, 300], help="max_runtime_sec values")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--systems", nargs="+", default=list(DEFAULT_SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--runs", type=int, default=1, help="same-seed automl runs (2: the reproducibility check)")
    parser.add_argument("--autogluon-presets", default="medium_quality", help="AutoGluon presets (its default)")
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help=f"rerun the other systems instead of reading {CACHE_DIR.relative_to(REPO)}",
    )
    parser.add_argument(
        "--save-bundles", default=None, help="keep each automl bundle in DIR/<data set>-automl@<budget>"
    )
    parser.add_argument("--table-from", nargs="+", default=None, help="only print the table of these --json files")
    parser.add_argument("--json", dest="json_path", default=None, help="also write all results as JSON here")
    args = parser.parse_args()
    if args.table_from:  # merge the results of earlier runs (e.g. two halves run in parallel) into one table
        merged: dict[str, dict[str, float]] = {}
        for path in args.table_from:
            for dataset, scores in json.loads(Path(path).read_text())["results"].items():
                merged.setdefault(dataset, {}).update(scores)
        return report(merged, args.budget)
    warnings.simplefilter("ignore")
    if {"automl", "automl_bag", "flaml"} & set(args.systems):
        import flaml  # noqa: F401  (imports mlflow, ~5-10 s here; the training step has it loaded already)

    print(
        f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; {os.cpu_count()} cores; load average "
        f"{os.getloadavg()[0]:.1f}; budgets {args.budget}; systems {args.systems}",
        flush=True,
    )
    results: dict[str, dict[str, float]] = {}
    details: list[dict[str, Any]] = []
    columns: list[str] = []

    def record(dataset: str, column: str, outcome: dict[str, Any] | None) -> None:
        if outcome is None:
            return
        if column not in columns:
            columns.append(column)
        results.setdefault(dataset, {})[column] = outcome["auc"]
        details.append({"dataset": dataset, "system": column, **outcome})
        if args.json_path:  # after each result: a run cut short keeps what it measured
            Path(args.json_path).write_text(json.dumps({"results": results, "details": details}, indent=2, default=str))
        extra = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in outcome.items()
            if k not in ("auc", "seconds", "measured_at", "load_average")
        )
        print(
            f"  {column:<16} auc={outcome['auc']:.4f} {outcome['seconds']:6.1f}s load={os.getloadavg()[0]:.1f} {extra}",
            flush=True,
        )

    def cache(dataset: str, system: str, budget: float | None, extra: str = "") -> Path | None:
        return None if args.no_cache else cache_path(dataset, system, budget, extra)

    for dataset in args.datasets:
        split = Split(DATASETS[dataset]())
        print(
            f"\n{dataset}: {len(split.train)} train / {len(split.test)} test rows, {len(split.pre.feature_order)} "
            f"features ({len(split.categorical)} categorical), {split.y_train.mean():.1%} positives",
            flush=True,
        )

        for system in ("histgb", "lgbm", "logistic", "rf"):
            if system in args.systems:
                record(dataset, system, cached(cache(dataset, system, None), run_default, system, split))
        for budget in args.budget:
            b = f"@{budget:g}"
            for run in range(args.runs):
                suffix = b + ("" if run == 0 else f"#{run + 1}")
                if "automl" in args.systems:
                    save = None if args.save_bundles is None else Path(args.save_bundles) / f"{dataset}-automl{suffix}"
                    record(dataset, "automl" + suffix, run_automl(split, budget, save=save))
            if "automl_bag" in args.systems:
                record(dataset, "automl_bag" + b, run_automl(split, budget, final_fit="bag"))
            if "flaml" in args.systems:
                record(dataset, "flaml" + b, cached(cache(dataset, "flaml", budget), run_flaml, split, budget))
            if "autogluon" in args.systems:
                outcome = cached(
                    cache(dataset, "autogluon", budget, f"_{args.autogluon_presets}"),
                    run_autogluon,
                    split,
                    budget,
                    args.autogluon_presets,
                )
                record(dataset, "autogluon" + b, outcome)

    report(results, args.budget)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"results": results, "details": details}, indent=2, default=str))


if __name__ == "__main__":
    main()

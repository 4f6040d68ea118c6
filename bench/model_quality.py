"""Benchmark: the rf and automl variants side by side on the same split.

Trains the spec's RandomForest (configs/rf.yaml) and the AutoML variant's local engine
(configs/automl.yaml: objective, mode, families, seed) at each budget on the same 80/20
stratified split, and prints accuracy, F1, ROC-AUC, train seconds and one-row predict
latency (``ModelBundle.predict_proba`` on a one-row dict, as the endpoint calls it).
Each AutoML budget runs twice with the same seed: the reproducibility check.

Goals (issue 5): at 300 s on 2 cores the automl ROC-AUC beats rf by >= 0.01 on the demo
data, and two same-seed runs end within 0.002 ROC-AUC.

Data: the demo data (customers 1-4000 of ``generate_customers(5000, seed=42)``, what
``run.py ingest`` writes) by default, or ``--feature-group NAME`` read through the active
ZenML stack's feature store (customer range from the config).

Usage: python bench/model_quality.py [--budgets 60 300] [--objective AUC] [--json out.json]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # FACTS: boosted trees slow 10-60x on a busy 2-core box otherwise
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from churn.automl import AutoMLSettings, FlamlEngine  # noqa: E402
from churn.bundle import ModelBundle  # noqa: E402
from churn.config import load_config  # noqa: E402
from churn.preprocessing import Preprocessor, split_train_test  # noqa: E402
from churn.training import evaluate_bundle, train_random_forest  # noqa: E402

ROC_AUC_GOAL = 0.01
REPRODUCIBILITY_TOLERANCE = 0.002


def load_data(feature_group: str | None, config) -> tuple:
    if feature_group is None:
        from churn.demo_data import generate_customers

        frame = generate_customers(5000, seed=42).iloc[config.customer_id_start - 1:config.customer_id_end]
        return frame, f"demo data, customers {config.customer_id_start}-{config.customer_id_end}"
    from zenml.client import Client

    from churn.feature_query import FeatureQuery

    query = FeatureQuery(feature_group, config.customer_id_start, config.customer_id_end, config.as_of)
    store = Client().active_stack.feature_store
    if store is None:
        sys.exit("the active ZenML stack has no feature store; run `python run.py stack setup local`")
    frame, _ = store.read(query)
    return frame, query.describe()


def one_row_latency_ms(bundle: ModelBundle, frame, repeats: int = 200) -> float:
    """Median milliseconds of ``predict_proba`` on a one-row dict of raw features."""
    rows = [{c: [frame[c].iloc[i]] for c in bundle.feature_order} for i in range(min(20, len(frame)))]
    for row in rows[:5]:  # warm up
        bundle.predict_proba(row)
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        bundle.predict_proba(rows[i % len(rows)])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(name: str, budget: Any, bundle: ModelBundle, seconds: float, test) -> Dict[str, Any]:
    report = evaluate_bundle(bundle, test)
    row = {"variant": name, "budget_s": budget, "accuracy": report["accuracy"], "f1": report["f1_score"],
           "roc_auc": report["roc_auc"], "train_s": seconds, "predict_1row_ms": one_row_latency_ms(bundle, test)}
    automl = bundle.info.get("automl")
    if automl:
        row.update(trials=automl["trials"], best_family=automl["best_family"],
                   model=" + ".join(f"{m['weight']:.2f} {m['family']}" for m in automl["ensemble_members"]),
                   cv_score=automl["best_cv_score"])
    print(f"  {name:<7} budget={budget!s:<5} acc={row['accuracy']:.4f} f1={row['f1']:.4f} auc={row['roc_auc']:.4f} "
          f"train={seconds:.1f}s predict={row['predict_1row_ms']:.2f}ms" + (f" model={row['model']} trials={row['trials']}" if automl else ""),
          flush=True)
    return row


def markdown(rows: List[Dict[str, Any]]) -> str:
    lines = ["| variant | budget (s) | run | accuracy | F1 | ROC-AUC | train (s) | 1-row predict (ms) | model | candidates |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['budget_s']} | {r.get('run', '')} | {r['accuracy']:.4f} | {r['f1']:.4f} | "
                     f"{r['roc_auc']:.4f} | {r['train_s']:.1f} | {r['predict_1row_ms']:.2f} | "
                     f"{r.get('model', 'random_forest')} | {r.get('trials', '')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[60, 300], help="AutoML max_runtime_sec values")
    parser.add_argument("--runs", type=int, default=2, help="same-seed AutoML runs per budget (2 = reproducibility check)")
    parser.add_argument("--feature-group", default=None, help="read this feature group from the active stack (default: demo data)")
    parser.add_argument("--config", default=str(REPO / "configs" / "automl.yaml"))
    parser.add_argument("--rf-config", default=str(REPO / "configs" / "rf.yaml"))
    parser.add_argument("--objective", default=None, help="override objective_metric_name")
    parser.add_argument("--mode", default=None, help="override mode (ENSEMBLING | HYPERPARAMETER_TUNING)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()

    config = load_config(args.config, **({"objective_metric_name": args.objective} if args.objective else {}),
                         **({"mode": args.mode} if args.mode else {}))
    rf_config = load_config(args.rf_config)
    frame, source = load_data(args.feature_group, config)
    split = split_train_test(frame, config.target_column, config.test_size, config.random_state)
    pre = Preprocessor.fit(split.train, config.target_column)
    print(f"Data: {source}; {len(split.train)} train / {len(split.test)} test rows (split seed {config.random_state}); "
          f"automl: {config.objective_metric_name}, {config.mode}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; "
          f"{os.cpu_count()} cores", flush=True)

    rows = []
    started = time.perf_counter()
    rf = train_random_forest(split.train, pre, rf_config.hyperparameters.model_dump(), rf_config.random_state)
    rows.append(measure("rf", "-", rf, time.perf_counter() - started, split.test))
    for budget in args.budgets:
        for run in range(1, args.runs + 1):
            settings = AutoMLSettings.from_config({**config.model_dump(), "max_runtime_sec": budget})
            started = time.perf_counter()
            bundle = FlamlEngine().train(split.train, pre, settings)
            row = measure("automl", int(budget), bundle, time.perf_counter() - started, split.test)
            rows.append({**row, "run": run})

    print("\n" + markdown(rows) + "\n")
    rf_auc = rows[0]["roc_auc"]
    for budget in args.budgets:
        runs = [r for r in rows if r["variant"] == "automl" and r["budget_s"] == int(budget)]
        gain = runs[0]["roc_auc"] - rf_auc
        verdict = f"automl@{int(budget)}s ROC-AUC {runs[0]['roc_auc']:.4f} vs rf {rf_auc:.4f}: {gain:+.4f}"
        if int(budget) >= 300:
            verdict += f" (goal >= +{ROC_AUC_GOAL}: {'met' if gain >= ROC_AUC_GOAL else 'NOT met'})"
        print(verdict)
        if len(runs) > 1:
            spread = max(r["roc_auc"] for r in runs) - min(r["roc_auc"] for r in runs)
            print(f"  reproducibility @{int(budget)}s, {len(runs)} same-seed runs: ROC-AUC spread {spread:.4f} "
                  f"(goal <= {REPRODUCIBILITY_TOLERANCE}: {'met' if spread <= REPRODUCIBILITY_TOLERANCE else 'NOT met'})")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"source": source, "rows": rows}, indent=2, default=str))


if __name__ == "__main__":
    main()

"""Run AutoGluon on one train/test split (run by bench/model_quality.py inside bench/.venv-autogluon).

Usage: run_autogluon.py TRAIN.parquet TEST.parquet LABEL TIME_LIMIT_SEC PRESETS OUT.json
Writes {"proba": [...positive-class probability per test row...], "fit_seconds": ..., "leaderboard": [...]}.
"""

import json
import sys
import tempfile
import time

import pandas as pd
from autogluon.tabular import TabularPredictor


def main() -> None:
    train_path, test_path, label, time_limit, presets, out_path = sys.argv[1:7]
    train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
    with tempfile.TemporaryDirectory(prefix="autogluon-") as tmp:
        started = time.perf_counter()
        predictor = TabularPredictor(label=label, eval_metric="roc_auc", path=tmp, verbosity=0).fit(
            train, time_limit=float(time_limit), presets=presets, num_cpus=1, num_gpus=0
        )
        fit_seconds = time.perf_counter() - started
        proba = predictor.predict_proba(test.drop(columns=[label]))
        positive = proba[1] if 1 in proba.columns else proba.iloc[:, -1]
        board = predictor.leaderboard(silent=True)[["model", "score_val"]].head(5).to_dict("records")
    with open(out_path, "w") as handle:
        json.dump({"proba": positive.astype(float).tolist(), "fit_seconds": fit_seconds, "leaderboard": board}, handle)


if __name__ == "__main__":
    main()

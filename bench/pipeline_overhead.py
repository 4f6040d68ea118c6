"""Benchmark: what ZenML costs around the RF training computation.

Prints the wall time of `python run.py --variant rf` as a process (uncached, then
cached) beside the same computation done as plain functions (read the feature store,
split, fit preprocessing, train, evaluate, gate, save the bundle) in one process, and
the ratios. Goals (issue): uncached <= 2x plain, cached re-run <= 8 s on 2 cores.

Runs in a throwaway ZenML config (nothing touches your own stack); stops the endpoint
it started. Usage: python bench/pipeline_overhead.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLAIN = """
import time; t0 = time.perf_counter()
from churn.config import load_config
from churn.feature_query import FeatureQuery
from churn.offline_store import LocalOfflineStore
from churn.preprocessing import Preprocessor, split_train_test
from churn.training import train_random_forest, evaluate_bundle
from churn.evaluation import check_quality
import glob, sys, tempfile
c = load_config("configs/rf.yaml")
root = glob.glob(sys.argv[1] + "/**/feature_store/*", recursive=True)[0]
frame, _ = LocalOfflineStore(root).read_latest(FeatureQuery(c.feature_group_name, c.customer_id_start, c.customer_id_end))
split = split_train_test(frame, c.target_column, c.test_size, c.random_state)
pre = Preprocessor.fit(split.train, c.target_column)
bundle = train_random_forest(split.train, pre, c.hyperparameters.model_dump(), c.random_state)
verdict = check_quality(evaluate_bundle(bundle, split.test), c.gate_metric, c.accuracy_threshold)
bundle.save(tempfile.mkdtemp() + "/bundle")
print(f"compute {time.perf_counter() - t0:.2f}s", verdict.message)
"""


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="churn-bench-")
    env = {**os.environ, "ZENML_CONFIG_PATH": home, "ZENML_ANALYTICS_OPT_IN": "false", "OMP_NUM_THREADS": "1",
           "ZENML_LOGGING_VERBOSITY": "WARN", "PYTHONPATH": str(REPO)}
    py = sys.executable
    print("setting up a throwaway local stack and demo data ...")
    timed([py, "run.py", "stack", "setup", "local"], env)
    timed([py, "run.py", "ingest"], env)
    try:
        plain = [timed([py, "-c", PLAIN, home], env) for _ in range(args.repeats)]
        uncached = [timed([py, "run.py", "--variant", "rf", "--no-cache"], env) for _ in range(args.repeats)]
        cached = [timed([py, "run.py", "--variant", "rf"], env) for _ in range(args.repeats)]
        imports = timed([py, "-c", "import zenml, mlflow, sklearn, pandas; from zenml.client import Client"], env)
    finally:
        subprocess.run([py, "run.py", "cleanup", "--yes"], cwd=REPO, env=env, capture_output=True)
    p, u, c = (statistics.median(x) for x in (plain, uncached, cached))
    print(f"\n{'what':44} {'median s':>9}  runs")
    print(f"{'plain functions, one process':44} {p:9.2f}  {', '.join(f'{x:.1f}' for x in plain)}")
    print(f"{'run.py --variant rf --no-cache (uncached)':44} {u:9.2f}  {', '.join(f'{x:.1f}' for x in uncached)}")
    print(f"{'run.py --variant rf (cached re-run)':44} {c:9.2f}  {', '.join(f'{x:.1f}' for x in cached)}")
    print(f"{'import zenml + mlflow + sklearn alone':44} {imports:9.2f}")
    print(f"\nratio uncached / plain: {u / p:.2f}x  (goal <= 2x)")
    print(f"cached re-run: {c:.1f}s  (goal <= 8 s)")


if __name__ == "__main__":
    main()

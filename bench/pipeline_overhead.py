"""Benchmark: what our pipeline costs beside ZenML's own floor and beside the plain computation.

Times, in one invocation and interleaved round by round (so a machine that slows down
mid-way moves every figure alike), each as a whole process in this venv:

- floor:    ZenML's floor, seven no-op steps on the same local stack (bench/zenml_floor.py);
- plain:    the same computation as plain functions, no ZenML: read the feature store, split,
            fit the preprocessing, train, evaluate, gate, save the bundle (what register
            hands MLflow), load it verified and score a row (what deploy checks);
- uncached: ``run.py --variant rf --no-cache``;
- cached:   ``run.py --variant rf`` right after it.

Prints min/median/max of wall and CPU (user + system) seconds per figure, and the ratios
against the goals (issue 12): uncached <= floor + 1.5 x plain; cached <= 1.1 x floor. The
ratios are taken round by round and their median printed. With ``--fresh-clone`` it also
times, once, ``make run`` in a fresh ``git clone`` of this repository (venv set-up included).

Each invocation uses its own ZenML config and MLflow store in a temporary directory, stops
the endpoint servers its runs started (``run.py cleanup --yes``) and removes the directory.

Usage: python bench/pipeline_overhead.py [--repeats N] [--fresh-clone]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def plain_computation(home: str) -> None:
    """The pipeline's computation without ZenML (run as its own process: imports count)."""
    import glob

    from churn.bundle import load_verified
    from churn.config import load_config
    from churn.evaluation import check_quality
    from churn.feature_query import FeatureQuery, fingerprint
    from churn.offline_store import LocalOfflineStore
    from churn.preprocessing import Preprocessor, split_train_test
    from churn.training import evaluate_bundle, train_random_forest

    c = load_config(REPO / "configs" / "rf.yaml")
    root = glob.glob(f"{home}/**/feature_store/*", recursive=True)[0]
    frame, _ = LocalOfflineStore(root).read_latest(
        FeatureQuery(c.feature_group_name, c.customer_id_start, c.customer_id_end, c.as_of)
    )
    fingerprint(frame)
    split = split_train_test(frame, c.target_column, c.test_size, c.random_state)
    pre = Preprocessor.fit(split.train, c.target_column)
    bundle = train_random_forest(split.train, pre, c.hyperparameters.model_dump(), c.random_state)
    verdict = check_quality(evaluate_bundle(bundle, split.test), c.gate_metric, c.accuracy_threshold)
    with tempfile.TemporaryDirectory() as tmp:
        sha256 = bundle.save(f"{tmp}/bundle")
        served = load_verified(f"{tmp}/bundle", sha256)
        served.predict_proba({name: [None] for name in served.feature_order})
    print(verdict.message)


class Runner:
    def __init__(self, home: str):
        self.env = {
            **os.environ,
            "ZENML_CONFIG_PATH": home,
            "ZENML_ANALYTICS_OPT_IN": "false",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO),
            "MLFLOW_ENABLE_TELEMETRY": "false",
            "DO_NOT_TRACK": "1",
        }
        self.home = home

    def timed(self, command: list[str], cwd: Path = REPO, env: dict | None = None) -> tuple[float, float]:
        """(wall, cpu) seconds of ``command`` as a process; exits with its output when it fails."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            command, cwd=cwd, env=env or self.env, capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            sys.exit(f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def spread(values: list[float]) -> str:
    return f"{min(values):7.2f} {statistics.median(values):7.2f} {max(values):7.2f}"


def fresh_clone_make_run() -> float:
    """Wall seconds of ``make run`` in a fresh clone (own ZenML config); the clone is removed after."""
    scratch = Path(tempfile.mkdtemp(prefix="churn-clone-"))
    clone, home = scratch / "repo", scratch / "zen"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(ZENML_CONFIG_PATH=str(home), ZENML_ANALYTICS_OPT_IN="false")
    runner = Runner(str(home))
    try:
        wall, _ = runner.timed(["make", "run"], cwd=clone, env=env)
    finally:
        if (clone / ".venv" / "bin" / "python").exists():
            subprocess.run(
                [str(clone / ".venv" / "bin" / "python"), "run.py", "cleanup", "--yes"],
                cwd=clone,
                env=env,
                capture_output=True,
            )
        shutil.rmtree(scratch, ignore_errors=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds (each: floor, plain, uncached, cached)")
    parser.add_argument("--fresh-clone", action="store_true", help="also time `make run` once in a fresh clone")
    parser.add_argument("--plain", metavar="ZENML_CONFIG_PATH", help=argparse.SUPPRESS)  # the plain process
    args = parser.parse_args()
    if args.plain:
        plain_computation(args.plain)
        return
    home = tempfile.mkdtemp(prefix="churn-bench-")
    runner, py = Runner(home), sys.executable
    figures: dict[str, list[tuple[float, float]]] = {k: [] for k in ("floor", "plain", "uncached", "cached")}
    commands = {
        "floor": [py, "bench/zenml_floor.py"],
        "plain": [py, "bench/pipeline_overhead.py", "--plain", home],
        "uncached": [py, "run.py", "--variant", "rf", "--no-cache"],
        "cached": [py, "run.py", "--variant", "rf"],
    }
    print(f"throwaway ZenML config {home}: local stack, demo data, one warm-up of each ...", flush=True)
    try:
        runner.timed([py, "run.py", "stack", "setup", "local"])
        runner.timed([py, "run.py", "ingest"])
        first = runner.timed(commands["uncached"])  # creates the MLflow store (its schema migrations) and the endpoint
        runner.timed(commands["floor"])
        for round_ in range(args.repeats):
            for name, command in commands.items():
                figures[name].append(runner.timed(command))
            print(
                f"round {round_ + 1} (wall/cpu s): "
                + ", ".join(f"{k} {v[-1][0]:.1f}/{v[-1][1]:.1f}" for k, v in figures.items()),
                flush=True,
            )
    finally:
        subprocess.run([py, "run.py", "cleanup", "--yes"], cwd=REPO, env=runner.env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    labels = {
        "floor": "ZenML floor: 7 no-op steps",
        "plain": "plain functions, one process",
        "uncached": "run.py --variant rf --no-cache",
        "cached": "run.py --variant rf (cached re-run)",
    }
    print(
        f"\n{'whole process, seconds':38} {'wall min':>8} {'median':>7} {'max':>7}   "
        f"{'cpu min':>7} {'median':>7} {'max':>7}"
    )
    for name, values in figures.items():
        print(f"{labels[name]:38}  {spread([w for w, _ in values])}   {spread([c for _, c in values])}")
    print(f"{'first uncached run on a fresh stack':38}  {first[0]:7.2f}{'':16}   {first[1]:7.2f}")
    print("\nratios, round by round (median [min-max]; goal <= 1.00):")
    for kind, index in (("wall", 0), ("cpu", 1)):
        f, p, u, c = ([x[index] for x in figures[k]] for k in ("floor", "plain", "uncached", "cached"))
        uncached = [ui / (fi + 1.5 * pi) for ui, fi, pi in zip(u, f, p)]
        cached = [ci / (1.1 * fi) for ci, fi in zip(c, f)]
        ours = [ui - fi - pi for ui, fi, pi in zip(u, f, p)]
        print(
            f"  {kind}: uncached / (floor + 1.5 x plain) {statistics.median(uncached):.2f} "
            f"[{min(uncached):.2f}-{max(uncached):.2f}]   cached / (1.1 x floor) {statistics.median(cached):.2f} "
            f"[{min(cached):.2f}-{max(cached):.2f}]   uncached - floor - plain {statistics.median(ours):.1f}s"
        )
    if args.fresh_clone:
        print("\ntiming `make run` in a fresh clone (venv set-up included) ...", flush=True)
        print(f"fresh clone, make run: {fresh_clone_make_run():.1f}s wall (goal < 90 s)")


if __name__ == "__main__":
    main()

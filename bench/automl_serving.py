"""Benchmark: the automl endpoint's scoring speed (issue 14 point 3), over loopback HTTP.

    python bench/automl_serving.py [--budget 60] [--dataset demo] [--bundle DIR] [--requests 2000]

Trains our AutoML (configs/automl.yaml's settings, ``--budget`` seconds) on a data set of
bench/model_quality.py (default: the demo data, what the product trains on), or takes a
saved bundle (``--bundle``), serves it with our server (churn.serving.server, one worker,
OMP_NUM_THREADS=1) and measures, with bench/serving.py's own client functions:
1. one-row CSV requests, one at a time on a kept-alive connection: p50 / p99;
2. a 10,000-row CSV request: rows/s (and rows per server CPU-second).
It prints the ensemble's members and their weights. Goals (issue 14): one-row p50 <= 3 ms,
a 10,000-row request >= 100k rows/s.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import model_quality  # noqa: E402  (the data sets and the split)
import serving  # noqa: E402  (the HTTP client functions and server start)

from churn.bundle import ModelBundle  # noqa: E402
from churn.net import free_port  # noqa: E402
from tests.processes import stop_process_group, wait_for_ping  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60, help="max_runtime_sec of the AutoML run")
    parser.add_argument("--dataset", default="demo", choices=list(model_quality.DATASETS))
    parser.add_argument("--bundle", default=None, help="a saved automl bundle directory (skips training)")
    parser.add_argument("--save", default=None, help="also keep the trained bundle in this directory")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()

    split = model_quality.Split(model_quality.DATASETS[args.dataset]())
    work = Path(tempfile.mkdtemp(prefix="churn-bench-automl-serving-"))
    endpoint = work / "endpoint"
    if args.bundle:
        bundle = ModelBundle.load(args.bundle)
    else:
        import flaml  # noqa: F401  (as the training step has it loaded)

        from churn.automl import AutoMLSettings, train_automl
        from churn.config import load_config

        config = load_config(REPO / "configs" / "automl.yaml")
        settings = AutoMLSettings.from_config({**config.model_dump(), "max_runtime_sec": args.budget})
        bundle = train_automl(split.train, split.pre, settings)
        if args.save:
            bundle.save(Path(args.save))
    sha = bundle.save(endpoint / "bundles" / "v1")
    (endpoint / "current.json").write_text(
        json.dumps({"version": "1", "sha256": sha, "bundle_dir": str(endpoint / "bundles" / "v1")})
    )
    members = bundle.info.get("automl", {}).get("ensemble_members", [])
    print(f"{args.dataset}: " + " + ".join(f"{m['weight']:.3f} {m['name']}({m['fit']})" for m in members))
    features = bundle.feature_order
    test = split.test[features]
    one_row = test.iloc[:1].to_csv(index=False).encode()
    batch = test.sample(10_000, replace=True, random_state=0).to_csv(index=False).encode()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    port = free_port()
    server = serving.start(
        [sys.executable, "-m", "churn.serving.server", "--endpoint-dir", str(endpoint), "--port", str(port)], env
    )
    try:
        wait_for_ping(f"http://127.0.0.1:{port}", server, "our server", 120)
        p50, p99 = serving.latency(port, one_row, args.requests)
        best, median, rows_per_cpu_s = serving.throughput(port, batch, 10_000, server.pid)
    finally:
        stop_process_group(server)
    print(
        f"one-row p50 {p50:.2f} ms, p99 {p99:.2f} ms; 10,000-row request {best:,.0f} rows/s best, "
        f"{median:,.0f} median ({rows_per_cpu_s:,.0f} rows per server CPU-second); "
        f"load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()

"""Benchmark: our inference server vs `mlflow models serve` on the same model, and a load test.

    python bench/serving.py [--requests 2000] [--load-seconds 30] [--clients 32] [--workers 1]

Trains the spec's RandomForest on the demo data (plain functions), then over loopback HTTP:
1. one-row CSV requests, one at a time on a kept-alive connection: p50 / p99;
2. a 10,000-row CSV request: rows/s;
for our server (workers=1) and for `mlflow models serve` of the same bundle (as a pyfunc),
with the ratios; then 3. `--clients` concurrent clients for `--load-seconds` against our
server with `--workers`: requests, errors, throughput and p99; 4. the hostile-input attack of
tests/test_server_resilience.py (deep nesting, huge integers, non-scalar cells, distinct keys,
wide headers with a duplicate, 10 MB HTTP headers, 50 half-open connections) with /ping polled
from another thread: the worst and p99 /ping latency, and what each attack was answered.
Goals (issue): p50 <= 2 ms, p99 <= 5 ms, >= 200k rows/s, 0 errors under load; /ping live under attack.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from churn.net import free_port  # noqa: E402  (after the repo is on sys.path)
from tests.processes import mlflow_serve_command, stop_process_group, wait_for_ping  # noqa: E402

HEADER = (
    "age,tenure_months,monthly_charges,total_charges,contract_type,payment_method,internet_service,"
    "phone_service,multiple_lines,online_security,tech_support,device_protection"
)
ONE_ROW = (HEADER + "\n35,12,70.5,840.0,Month-to-month,Electronic check,DSL,Yes,No,Yes,No,No\n").encode()


def latency(port: int, body: bytes, n: int) -> tuple[float, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    samples = []
    for i in range(n + 200):
        started = time.perf_counter()
        connection.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        if i >= 200:
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of one process group (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == pgid:  # fields from the state on: state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def throughput(port: int, body: bytes, rows: int, pgid: int, repeats: int = 7) -> tuple[float, float, float]:
    """Rows/s of a ``rows``-row request: best and median wall time, and per CPU-second of the server."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    times = []
    cpu = group_cpu_seconds(pgid)
    for _ in range(repeats):
        started = time.perf_counter()
        connection.request("POST", "/invocations", body, {"Content-Type": "text/csv"})
        response = connection.getresponse()
        out = response.read()
        answered = len(json.loads(out)["predictions"]) if out.startswith(b"{") else len(out.splitlines())
        assert response.status == 200 and answered == rows, (response.status, out[:200])
        times.append(time.perf_counter() - started)
    cpu = group_cpu_seconds(pgid) - cpu
    return rows / min(times), rows / statistics.median(times), rows * repeats / max(cpu, 1e-9)


def load_test(port: int, clients: int, seconds: float) -> dict:
    stop = time.monotonic() + seconds
    lock, latencies, errors = threading.Lock(), [], []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                connection.request("POST", "/invocations", ONE_ROW, {"Content-Type": "text/csv"})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    errors.append(response.status)
            except OSError as error:
                errors.append(repr(error))
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine.append((time.perf_counter() - started) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
    }


def start(command: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--load-seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--attack-only", action="store_true", help="only the hostile-input attack (step 4)")
    parser.add_argument("--skip-attack", action="store_true", help="skip the hostile-input attack (step 4)")
    args = parser.parse_args()
    import pandas as pd

    from churn.demo_data import generate_customers
    from churn.mlflow_model import save_bundle_model
    from churn.preprocessing import Preprocessor, split_train_test
    from churn.training import train_random_forest

    work = Path(tempfile.mkdtemp(prefix="churn-bench-serving-"))
    data = generate_customers(5000, 42)
    split = split_train_test(data.iloc[:4000], "churn", 0.2, 42)
    bundle = train_random_forest(
        split.train,
        Preprocessor.fit(split.train, "churn"),
        {"n_estimators": 100, "max_depth": 10, "min_samples_split": 2, "min_samples_leaf": 1},
        42,
    )
    endpoint = work / "endpoint"
    sha = bundle.save(endpoint / "bundles" / "v1")
    (endpoint / "current.json").write_text(
        json.dumps({"version": "1", "sha256": sha, "bundle_dir": str(endpoint / "bundles" / "v1")})
    )
    batch = pd.concat([data[bundle.feature_order]] * 2).iloc[:10_000].to_csv(index=False).encode()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # mlflow execs uvicorn

    if args.attack_only:
        return attack(endpoint, env)
    results = {}
    port = free_port()
    ours = start(
        [sys.executable, "-m", "churn.serving.server", "--endpoint-dir", str(endpoint), "--port", str(port)], env
    )
    try:
        wait_for_ping(f"http://127.0.0.1:{port}", ours, "our server", 120)
        results["ours"] = (*latency(port, ONE_ROW, args.requests), throughput(port, batch, 10_000, ours.pid))
    finally:
        stop_process_group(ours)
    if not args.skip_mlflow:
        model = save_bundle_model(str(endpoint / "bundles" / "v1"), str(work / "mlflow_model"))
        port = free_port()
        mlflow_server = start(
            mlflow_serve_command(model, port),
            env,
        )
        try:
            wait_for_ping(f"http://127.0.0.1:{port}", mlflow_server, "mlflow models serve", 120)
            results["mlflow models serve"] = (
                *latency(port, ONE_ROW, args.requests),
                throughput(port, batch, 10_000, mlflow_server.pid),
            )
        finally:
            stop_process_group(mlflow_server)

    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine: figures are noisy)")
    print(
        f"{'server':22} {'p50 ms':>8} {'p99 ms':>8} {'rows/s 10k batch: best':>24} {'median':>10} "
        f"{'per server cpu-s':>17}"
    )
    for name, (p50, p99, (best, median, per_cpu)) in results.items():
        print(f"{name:22} {p50:8.2f} {p99:8.2f} {best:24,.0f} {median:10,.0f} {per_cpu:17,.0f}")
    if "mlflow models serve" in results:
        a, b = results["ours"], results["mlflow models serve"]
        print(
            f"\nratio mlflow/ours: p50 {b[0] / a[0]:.1f}x, p99 {b[1] / a[1]:.1f}x; "
            f"throughput ours/mlflow {a[2][1] / b[2][1]:.1f}x (medians)"
        )
    print("goals: p50 <= 2 ms, p99 <= 5 ms, >= 200,000 rows/s")

    if args.load_seconds > 0:
        port = free_port()
        ours = start(
            [
                sys.executable,
                "-m",
                "churn.serving.server",
                "--endpoint-dir",
                str(endpoint),
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            env,
        )
        try:
            wait_for_ping(f"http://127.0.0.1:{port}", ours, "our server", 120)
            result = load_test(port, args.clients, args.load_seconds)
        finally:
            stop_process_group(ours)
        print(
            f"\nload: {args.clients} clients x {args.load_seconds:.0f}s, workers={args.workers}: "
            f"{result['requests']} requests, "
            f"{result['errors']} errors, {result['rps']:.0f} req/s, "
            f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms"
        )
    if not args.skip_attack:
        attack(endpoint, env)


def attack(endpoint: Path, env: dict) -> None:
    from tests.test_server_resilience import BODY_TIMEOUT, PingWatch, refused, run_attacks

    port = free_port()
    server = start(
        [sys.executable, "-m", "churn.serving.server", "--endpoint-dir", str(endpoint), "--port", str(port)],
        {**env, "CHURN_BODY_TIMEOUT": str(BODY_TIMEOUT)},
    )
    try:
        wait_for_ping(f"http://127.0.0.1:{port}", server, "our server", 120)
        started = time.perf_counter()
        with PingWatch(f"http://127.0.0.1:{port}") as watch:
            answers = run_attacks(f"http://127.0.0.1:{port}", port)
        elapsed = time.perf_counter() - started
    finally:
        stop_process_group(server)
    print(f"\nhostile-input attack ({elapsed:.1f}s), each attack's answer:")
    for name, answer in answers.items():
        print(f"  {name:48} {' '.join(answer.split())[:100]}")
    samples = sorted(watch.samples)
    print(
        f"/ping during the attack: {len(samples)} polls, {len(watch.failures)} failed or over 2 s; "
        f"p50 {samples[len(samples) // 2] * 1000:.1f} ms, p99 {samples[int(len(samples) * 0.99)] * 1000:.1f} ms, "
        f"worst {samples[-1] * 1000:.1f} ms"
    )
    print(
        f"attacks not refused with a 4xx or a closed connection: "
        f"{sum(1 for n, a in answers.items() if not refused(a) and not n.startswith('a good'))}"
    )


if __name__ == "__main__":
    main()

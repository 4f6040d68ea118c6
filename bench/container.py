"""Our SageMaker image: size, build time, start to first /ping 200, one-row latency beside the local endpoint.

    .venv/bin/python bench/container.py [--base-image local/python:3.11-slim] [--requests 200]

Needs Docker (docker/ensure-docker.sh). Builds the image (a warm build when nothing changed),
trains a small bundle, starts ``docker run ... IMAGE serve`` exactly as tests/container does and
the local server process, and sends the same one-row CSV request to both. Every container and
process it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402

from churn import image  # noqa: E402
from churn.aws.packaging import build_model_tarball, extract_model_tarball, serving_containers  # noqa: E402
from churn.net import free_port  # noqa: E402
from tests.conftest import ServerProcess  # noqa: E402


def latency(url: str, body: bytes, n: int) -> dict:
    session = requests.Session()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = session.post(url + "/invocations", data=body, headers={"Content-Type": "text/csv"}, timeout=30)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (n - 1))], 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-image", default=os.environ.get("CHURN_BASE_IMAGE", "local/python:3.11-slim"))
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    started = time.perf_counter()
    reference = image.build(args.base_image, quiet=True, progress=lambda m: None)
    build_seconds = time.perf_counter() - started
    size = int(
        subprocess.run(
            ["docker", "image", "inspect", "--format", "{{.Size}}", reference],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )

    from churn.demo_data import generate_customers
    from churn.preprocessing import Preprocessor, split_train_test
    from churn.training import train_random_forest

    split = split_train_test(generate_customers(5000, seed=42).iloc[:4000], "churn", 0.2, 42)
    bundle = train_random_forest(
        split.train, Preprocessor.fit(split.train, "churn"), {"n_estimators": 100, "max_depth": 10}, 42
    )
    work = Path(tempfile.mkdtemp(prefix="bench-container-"))
    bundle.save(work / "bundle")
    built = build_model_tarball(work / "bundle", work / "model.tar.gz")
    model_dir = extract_model_tarball((work / "model.tar.gz").read_bytes(), work / "model")
    environment = serving_containers(built["info"], reference, "s3://b/model.tar.gz", built["bundle_sha256"])[0][
        "Environment"
    ]
    body = split.test.iloc[:1].drop(columns=["churn"]).to_csv(index=False).encode()

    port = free_port()
    command = ["docker", "run", "-d", "-p", f"127.0.0.1:{port}:8080", "-v", f"{model_dir}:/opt/ml/model:ro"]
    for key, value in environment.items():
        command += ["-e", f"{key}={value}"]
    (work / "endpoint").mkdir()
    (work / "endpoint" / "current.json").write_text(
        json.dumps({"version": "1", "sha256": built["bundle_sha256"], "bundle_dir": str(work / "bundle")})
    )
    container_id, server = None, None
    try:
        t0 = time.perf_counter()
        container_id = subprocess.run(
            command + [reference, "serve"], capture_output=True, text=True, check=True
        ).stdout.strip()
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.perf_counter() - t0 > 240:
                raise SystemExit("the container did not answer /ping within 240 s")
            time.sleep(0.05)
        ping_seconds = time.perf_counter() - t0
        server = ServerProcess(work / "endpoint")
        server.wait_ready()
        for url in (f"http://127.0.0.1:{port}", server.url):  # warm both
            latency(url, body, 20)
        result = {
            "image": reference,
            "image_size_mb": round(size / 1e6, 1),
            "build_seconds": round(build_seconds, 1),
            "start_to_first_ping_200_seconds": round(ping_seconds, 2),
            "one_row_container": latency(f"http://127.0.0.1:{port}", body, args.requests),
            "one_row_local_endpoint": latency(server.url, body, args.requests),
        }
    finally:
        if container_id:
            subprocess.run(["docker", "rm", "-f", container_id], capture_output=True)
        if server:
            server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Our image, built and run with Docker exactly as SageMaker runs it.

The image is built from docker/Dockerfile (``churn.image.build``; a rebuild with nothing changed
reuses every layer). Each container is started as SageMaker starts a model's container:
``docker run IMAGE serve`` with the model archive extracted at /opt/ml/model and the container
definition's Environment (``churn.aws.packaging.serving_containers``), port 8080 published on
127.0.0.1 only. Every container started here is stopped and removed (by id) in teardown.

Docker must run here: ``make test`` runs docker/ensure-docker.sh first (installs docker.io,
starts dockerd, builds the base image ``local/python:3.11-slim`` from Debian packages, since
Docker Hub is unreachable). When Docker cannot run, these tests fail and say why; only outside
CI (``CI`` unset) with no docker CLI at all are they skipped.

The one stand-in: the Autopilot candidate in the middle of the serial chain (Autopilot's images
cannot run here) is a tiny HTTP server on loopback answering with the bundle's own estimator in
Autopilot's output format, so the chain must answer exactly as the bundle alone.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests

from churn import image
from churn.aws.packaging import build_model_tarball, extract_model_tarball, serving_containers
from churn.net import free_port
from tests.conftest import ServerProcess

BASE_IMAGE = os.environ.get("CHURN_BASE_IMAGE", "local/python:3.11-slim")
# SageMaker's start-up health check: ContainerStartupHealthCheckTimeoutInSeconds, at least 60 s
# (botocore's model); each /ping must answer within 2 s (SageMaker's ping timeout).
STARTUP_BUDGET_SECONDS = 60.0
PING_TIMEOUT_SECONDS = 2.0


@pytest.fixture(scope="module")
def built_image() -> str:
    reason = image.docker_available()
    if reason:
        if not os.environ.get("CI") and shutil.which("docker") is None:
            pytest.skip(f"Docker is not installed here (and CI is unset): {reason}")
        pytest.fail(f"the container tests need Docker: {reason}", pytrace=False)
    inspect = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True, text=True)
    if inspect.returncode != 0 and BASE_IMAGE.startswith("local/"):
        pytest.fail(f"base image {BASE_IMAGE} is missing: run docker/ensure-docker.sh (make test does)", pytrace=False)
    try:
        return image.build(BASE_IMAGE, quiet=True)
    except image.ImageError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def registered(trained_bundle, tmp_path_factory):
    """The bundle as SageMaker gets it: packaged into model.tar.gz, then extracted (its sha256 recorded)."""
    bundle, split = trained_bundle
    root = tmp_path_factory.mktemp("registered")
    bundle.save(root / "bundle")
    built = build_model_tarball(root / "bundle", root / "model.tar.gz")
    model_dir = extract_model_tarball((root / "model.tar.gz").read_bytes(), root / "opt-ml-model")
    os.chmod(model_dir, 0o755)
    return {
        "bundle": bundle,
        "split": split,
        "model_dir": model_dir,
        "sha256": built["bundle_sha256"],
        "info": built["info"],
        "bundle_dir": root / "bundle",
    }


class Container:
    """``docker run -d -p 127.0.0.1:PORT:8080 -v MODEL:/opt/ml/model -e ... IMAGE serve``; stopped by id."""

    def __init__(self, reference: str, model_dir: Path, environment: dict):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = ["docker", "run", "-d", "-p", f"127.0.0.1:{self.port}:8080", "-v", f"{model_dir}:/opt/ml/model:ro"]
        for key, value in environment.items():
            command += ["-e", f"{key}={value}"]
        self.started = time.monotonic()
        run = subprocess.run(command + [reference, "serve"], capture_output=True, text=True)
        assert run.returncode == 0, f"docker run failed: {run.stderr}"
        self.id = run.stdout.strip()

    def state(self) -> dict:
        out = subprocess.run(
            ["docker", "inspect", "--format", "{{json .State}}", self.id], capture_output=True, text=True
        )
        return json.loads(out.stdout)

    def logs(self) -> str:
        return subprocess.run(["docker", "logs", self.id], capture_output=True, text=True).stderr

    def wait_ping(self, budget: float = STARTUP_BUDGET_SECONDS) -> float:
        """Seconds from `docker run` to the first 200 on /ping (fails past SageMaker's budget)."""
        while time.monotonic() - self.started < budget:
            if not self.state()["Running"]:
                pytest.fail(f"the container exited ({self.state()['ExitCode']}): {self.logs()[-2000:]}")
            try:
                if requests.get(self.url + "/ping", timeout=PING_TIMEOUT_SECONDS).status_code == 200:
                    return time.monotonic() - self.started
            except requests.RequestException:
                pass
            time.sleep(0.1)
        pytest.fail(f"/ping did not answer 200 within {budget:.0f}s: {self.logs()[-2000:]}")

    def wait_exit(self, timeout: float = STARTUP_BUDGET_SECONDS) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"] and state["Status"] in ("exited", "dead"):
                return int(state["ExitCode"])
            time.sleep(0.2)
        pytest.fail(f"the container was still running after {timeout:.0f}s: {self.logs()[-2000:]}")

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.id], capture_output=True, text=True)


@pytest.fixture
def containers(built_image):
    started = []

    def start(model_dir, environment) -> Container:
        container = Container(built_image, model_dir, environment)
        started.append(container)
        return container

    yield start
    for container in started:
        container.stop()


def _environment(registered, role_index: int = 0, autopilot: bool = False) -> dict:
    """The Environment our container definition carries (as the registry writes it)."""
    info = dict(registered["info"])
    if autopilot:
        info["autopilot"] = {"inference_containers": [{"Image": "candidate", "Environment": {}}]}
    chain = serving_containers(
        info, "churn-mlops:test", "s3://bucket/model.tar.gz", registered["sha256"], {"SAGEMAKER_REGION": "us-west-2"}
    )
    return chain[role_index]["Environment"]


@pytest.fixture(scope="module")
def local_endpoint(registered, tmp_path_factory):
    endpoint_dir = tmp_path_factory.mktemp("local-endpoint")
    (endpoint_dir / "current.json").write_text(
        json.dumps({"version": "1", "sha256": registered["sha256"], "bundle_dir": str(registered["bundle_dir"])})
    )
    server = ServerProcess(endpoint_dir)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def _post(url: str, body: bytes, content_type: str, accept: str = "", attributes: str = "") -> requests.Response:
    headers = {
        "Content-Type": content_type,
        **({"Accept": accept} if accept else {}),
        **({"X-Amzn-SageMaker-Custom-Attributes": attributes} if attributes else {}),
    }
    return requests.post(url + "/invocations", data=body, headers=headers, timeout=60)


def test_serve_answers_exactly_as_the_local_endpoint(containers, registered, local_endpoint):
    container = containers(registered["model_dir"], _environment(registered))
    container.wait_ping()
    assert (
        requests.get(container.url + "/ping", timeout=PING_TIMEOUT_SECONDS).headers["X-Model-Sha256"]
        == registered["sha256"]
    )
    rows = registered["split"].test.iloc[:40]
    requests_to_send = [
        (rows.to_csv(index=False).encode(), "text/csv", "", ""),  # no Accept: CSV
        (rows.to_csv(index=False).encode(), "text/csv", "text/csv", "probabilities=true"),
        (rows.to_json(orient="records").encode(), "application/json", "application/json", ""),
        (rows.to_json(orient="records").encode(), "application/json", "application/json", "probabilities=true"),
        (rows.to_json(orient="records").encode(), "application/json", "text/csv", ""),
    ]
    for body, content_type, accept, attributes in requests_to_send:
        ours = _post(container.url, body, content_type, accept, attributes)
        local = _post(local_endpoint.url, body, content_type, accept, attributes)
        assert ours.status_code == local.status_code == 200, ours.text
        assert ours.content == local.content and ours.headers["Content-Type"] == local.headers["Content-Type"]
    labels = _post(container.url, rows.to_csv(index=False).encode(), "text/csv").text.split()
    assert labels == [str(v) for v in registered["bundle"].predict(rows)]

    # bad input: a 4xx naming the problem, as the local endpoint answers it, and the container lives on
    for body, content_type, status in [
        (b"age\n", "text/csv", 400),
        (rows.drop(columns=["tenure_months"]).to_csv(index=False).encode(), "text/csv", 400),
        (b"{not json", "application/json", 400),
        (b"<xml/>", "application/xml", 415),
    ]:
        ours, local = _post(container.url, body, content_type), _post(local_endpoint.url, body, content_type)
        assert ours.status_code == status == local.status_code, ours.text
        assert ours.text == local.text
    assert requests.get(container.url + "/ping", timeout=PING_TIMEOUT_SECONDS).status_code == 200


def test_serve_refuses_a_bundle_that_is_not_the_registered_one(containers, registered, tmp_path):
    # a wrong hash, and none at all: a clear log line, a non-zero exit, never a 200 on /ping
    wrong = containers(registered["model_dir"], {**_environment(registered), "CHURN_BUNDLE_SHA256": "0" * 64})
    missing_env = {k: v for k, v in _environment(registered).items() if k != "CHURN_BUNDLE_SHA256"}
    missing = containers(registered["model_dir"], missing_env)
    tampered_dir = tmp_path / "tampered"
    shutil.copytree(registered["model_dir"], tampered_dir)
    with open(tampered_dir / "estimator.joblib", "ab") as handle:
        handle.write(b"\0")
    os.chmod(tampered_dir, 0o755)
    tampered = containers(tampered_dir, _environment(registered))
    for container, message in [
        (wrong, f"has SHA-256 {registered['sha256']}, but the registry recorded {'0' * 64}"),
        (missing, "CHURN_BUNDLE_SHA256 is not set"),
        (tampered, "refusing to serve a bundle that is not the registered one"),
    ]:
        assert container.wait_exit() != 0
        assert "refusing to start" in container.logs() and message in container.logs()


class Candidate:
    """Stand-in for the Autopilot candidate's container: the bundle's estimator, Autopilot's output format."""

    def __init__(self, estimator):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                X = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)
                proba = estimator.predict_proba(X)[:, list(estimator.classes_).index(1)].tolist()
                outer.seen.append(self.headers.get("Content-Type"))
                lines = [f"{int(p > 0.5)},\"[{1 - p!r}, {p!r}]\",\"['0', '1']\"" for p in proba]
                data = ("\n".join(lines) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.seen = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_automl_serial_chain_through_real_containers(containers, registered, local_endpoint):
    """encode container -> candidate -> respond container, as SageMaker chains them.

    Each response's Content-Type goes to the next container.
    """
    encode = containers(registered["model_dir"], _environment(registered, 0, autopilot=True))
    respond = containers(registered["model_dir"], _environment(registered, 2, autopilot=True))
    assert (
        _environment(registered, 0, True)["CHURN_SERVING_ROLE"],
        _environment(registered, 2, True)["CHURN_SERVING_ROLE"],
    ) == ("encode", "respond")
    encode.wait_ping()
    respond.wait_ping()
    candidate = Candidate(registered["bundle"].estimator)
    try:
        rows = registered["split"].test.iloc[:30]
        for body, content_type, accept, attributes in [
            (rows.to_csv(index=False).encode(), "text/csv", "text/csv", ""),
            (rows.to_json(orient="records").encode(), "application/json", "application/json", "probabilities=true"),
        ]:
            encoded = _post(encode.url, body, content_type, "", attributes)
            assert encoded.status_code == 200 and encoded.headers["Content-Type"] == "text/csv"
            np.testing.assert_array_equal(
                np.loadtxt(io.BytesIO(encoded.content), delimiter=",", ndmin=2),
                registered["bundle"].preprocessor.transform(rows)[0],
            )
            scored = _post(candidate.url, encoded.content, encoded.headers["Content-Type"])
            answer = _post(respond.url, scored.content, scored.headers["Content-Type"], accept, attributes)
            alone = _post(local_endpoint.url, body, content_type, accept, attributes)
            assert answer.status_code == 200, answer.text
            if accept == "text/csv":
                assert answer.text == alone.text
            else:
                got, want = answer.json(), alone.json()
                assert got["predictions"] == want["predictions"]
                np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=0, atol=1e-9)
        assert candidate.seen == ["text/csv", "text/csv"]
        bad = _post(encode.url, rows.drop(columns=["contract_type"]).to_csv(index=False).encode(), "text/csv")
        assert bad.status_code == 400 and "contract_type" in bad.text
        unreadable = _post(respond.url, b"1\n", "text/csv")
        assert unreadable.status_code == 500 and "output line 1 has 1 fields" in unreadable.text
    finally:
        candidate.stop()


# -- the tag and the image names (no Docker needed) -------------------------------------------
def test_the_tag_follows_the_lock_file_and_the_code(tmp_path):
    from churn.image import CODE, IMAGE_FILES, LOCK, REPO, content_tag

    for name in IMAGE_FILES + (LOCK,) + CODE:
        source, target = REPO / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)
    first = content_tag(tmp_path)
    assert first == content_tag(REPO)  # the same content, the same tag, wherever it lies
    (tmp_path / "churn" / "serving" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "churn" / "serving" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert content_tag(tmp_path) == first  # bytecode is not content
    with open(tmp_path / "churn" / "serving" / "container.py", "a") as handle:
        handle.write("\n# changed\n")
    code_changed = content_tag(tmp_path)
    assert code_changed != first and code_changed.split("-")[0] == first.split("-")[0]
    with open(tmp_path / LOCK, "a") as handle:
        handle.write("\n")
    assert content_tag(tmp_path).split("-")[0] != first.split("-")[0]
    shutil.rmtree(tmp_path / "docker")
    with pytest.raises(image.ImageError, match="holds no requirements.lock and docker/Dockerfile"):
        content_tag(tmp_path)


def test_image_names_resolve_to_this_codes_tag(monkeypatch):
    monkeypatch.delenv(image.TAG_ENV, raising=False)
    repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/churn-mlops"
    assert image.resolve_image_uri(f"{repo}:1.0.0", "eu-west-1") == f"{repo}:1.0.0"  # a tag: as given
    assert image.resolve_image_uri(f"{repo}@sha256:{'a' * 64}", "eu-west-1") == f"{repo}@sha256:{'a' * 64}"
    assert image.resolve_image_uri(repo, "eu-west-1") == f"{repo}:{image.content_tag()}"  # none: this code's
    assert image.resolve_image_uri("localhost:5000/churn", "eu-west-1").endswith(f"churn:{image.content_tag()}")
    monkeypatch.setenv(image.TAG_ENV, "built-tag")  # inside the image
    assert image.resolve_image_uri(repo, "eu-west-1") == f"{repo}:built-tag"
    assert image.ecr_repository("123456789012", "cn-north-1").endswith(".amazonaws.com.cn/churn-mlops")


def test_the_build_uses_the_machines_index_settings_but_not_its_local_files(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "https://pypi.example.org/simple")
    monkeypatch.setenv("UV_DEFAULT_INDEX", "file:///opt/pypi/simple")  # a local directory: not in the build
    monkeypatch.delenv("UV_INDEX_URL", raising=False)
    assert image.index_build_args() == {"PIP_INDEX_URL": "https://pypi.example.org/simple"}

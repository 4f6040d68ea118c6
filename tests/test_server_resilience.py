"""Hostile input against a real server process: it stays live and refuses with a 4xx.

While each attack runs, another thread polls ``/ping``; every poll must be answered 200
within PING_BOUND seconds (a liveness bound, generous on purpose: the server answers in
milliseconds; the worst latency is measured by ``bench/serving.py``). Every attack must be
answered with a 4xx or have its connection closed by the server, never a 5xx.

Slow clients: headers trickled a line a second (slowloris) are cut off by the header
deadline (``CHURN_HEADER_TIMEOUT``) while /ping stays answered; a kept-alive connection's
clock restarts with each request; an idle kept-alive connection is closed by uvicorn's
keep-alive timeout.

The watcher tests corrupt the endpoint's pointer and bundle in the ways a disk, an operator
or an attacker might, and check the server keeps serving, says what went wrong, and swaps
once a good version appears. The registry tests run the server against a real MLflow
sqlite store (``--registry-uri``): the hash it trusts is the registry's, not the pointer's.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from churn.demo_data import FEATURE_COLUMNS
from tests.conftest import ServerProcess, publish, write_pointer

PING_BOUND = 2.0  # seconds: each /ping during an attack must be answered within this
BODY_TIMEOUT = 3.0  # the server's body-read deadline in these tests (CHURN_BODY_TIMEOUT)
HEADER_TIMEOUT = 2.0  # the server's header deadline in these tests (CHURN_HEADER_TIMEOUT)
CUT_OFF_BOUND = 15.0  # seconds: a trickling connection must be closed within this (a liveness bound, not a timing)
FEATURES = FEATURE_COLUMNS  # the demo data's raw features, as the endpoint takes them
GOOD_ROW = dict(
    zip(FEATURES, [35, 12, 70.5, 840.0, "Month-to-month", "Electronic check", "DSL", "Yes", "No", "Yes", "No", "No"])
)


def wide_csv(columns: int) -> bytes:
    """A header of ``columns`` names, one of them repeated, and one data row."""
    names = FEATURES + [f"extra_{i}" for i in range(columns - len(FEATURES) - 1)] + ["extra_7"]
    return (",".join(names) + "\n" + ",".join(["1"] * len(names)) + "\n").encode()


def _json(payload) -> tuple[bytes, str]:
    return json.dumps(payload).encode(), "application/json"


def attacks() -> dict:
    """name -> (body, content type): each a request the server must refuse without stalling."""
    return {
        "json nested 100,000 deep": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        "json object nested 100,000 deep": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "application/json"),
        "huge integer (1,000 digits)": _json([{**GOOD_ROW, "age": 10**1000}]),
        "huge integer (5,000 digits)": (
            json.dumps([GOOD_ROW]).replace("35", "9" * 5000, 1).encode(),
            "application/json",
        ),
        "huge integer in CSV": (
            (
                ",".join(FEATURES) + "\n" + "9" * 5000 + ",12,70.5,840.0,Month-to-month,"
                "Electronic check,DSL,Yes,No,Yes,No,No\n"
            ).encode(),
            "text/csv",
        ),
        "non-scalar cell (list)": _json([{**GOOD_ROW, "age": [1, 2, 3]}]),
        "non-scalar cell (object)": _json([{**GOOD_ROW, "contract_type": {"a": 1}}]),
        "5,000 records with distinct keys": _json([{f"key_{i}": i} for i in range(5000)]),
        "dataframe_split 100,000 columns": _json(
            {"dataframe_split": {"columns": [f"c{i}" for i in range(100_000)], "data": [[1] * 100_000]}}
        ),
        "CSV header 20,000 columns with a duplicate": (wide_csv(20_000), "text/csv"),
        "CSV header 100,000 columns with a duplicate": (wide_csv(100_000), "text/csv"),
        "CSV cell of 1 MB": (
            (
                ",".join(FEATURES)
                + "\n35,12,70.5,840.0,"
                + "x" * 1_000_000
                + ",Electronic check,DSL,Yes,No,Yes,No,No\n"
            ).encode(),
            "text/csv",
        ),
    }


class PingWatch:
    """Polls /ping from its own thread; records every answer's status and latency."""

    def __init__(self, url: str):
        self.url, self.samples, self.failures = url + "/ping", [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                status = requests.get(self.url, timeout=PING_BOUND).status_code
            except requests.RequestException as error:
                status = repr(error)
            elapsed = time.perf_counter() - started
            self.samples.append(elapsed)
            if status != 200 or elapsed > PING_BOUND:
                self.failures.append((status, round(elapsed, 3)))
            self._stop.wait(0.02)

    def __enter__(self) -> PingWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def send_attack(url: str, body: bytes, content_type: str) -> str:
    """The server's answer: 'HTTP <status>' or 'closed' (it hung up on us)."""
    try:
        response = requests.post(url + "/invocations", data=body, headers={"Content-Type": content_type}, timeout=60)
    except requests.ConnectionError:
        return "closed"
    return f"HTTP {response.status_code}: {response.text[:200]}"


def send_huge_header(port: int, size: int = 10 * 1024 * 1024) -> str:
    """A request whose headers are ``size`` bytes, sent on a raw socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Padding: ")
            chunk = b"a" * 65536
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
            sock.sendall(b"\r\nContent-Length: 0\r\n\r\n")
        except OSError:  # the server closed the connection while we were still sending
            pass
        try:
            answer = sock.recv(200)
        except OSError:
            return "closed"
    return f"HTTP {answer.split(b' ')[1].decode()}" if answer.startswith(b"HTTP/1.1 ") else "closed"


def open_half_open(port: int, count: int = 50) -> list:
    """``count`` connections that start a request and never finish it (half headers or half a body)."""
    sockets = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        if i % 2:
            sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Len")
        else:
            sock.sendall(
                b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                b"Content-Length: 100000\r\n\r\nage,tenure"
            )
        sockets.append(sock)
    return sockets


def refused(answer: str) -> bool:
    return answer == "closed" or answer.startswith("HTTP 4")


def run_attacks(url: str, port: int) -> dict:
    """Every attack once (the body attacks, the 10 MB header, 50 half-open connections, 20 slowloris
    connections trickling a header line a second throughout): name -> answer."""
    with ThreadPoolExecutor(20) as pool:
        trickling = [pool.submit(slowloris, port) for _ in range(20)]
        answers = _run_attacks(url, port)
        cut_off = sorted({answer for answer, _ in (f.result() for f in trickling)})
    answers["20 slowloris connections"] = cut_off[0] if len(cut_off) == 1 else f"mixed: {' / '.join(cut_off)}"
    return answers


def _run_attacks(url: str, port: int) -> dict:
    answers = {name: send_attack(url, body, content_type) for name, (body, content_type) in attacks().items()}
    answers["HTTP headers of 10 MB"] = send_huge_header(port)
    sockets = open_half_open(port)
    try:
        # while the 50 connections hang, a real request and /ping still get through
        good = requests.post(
            url + "/invocations", data=json.dumps([GOOD_ROW]), headers={"Content-Type": "application/json"}, timeout=30
        )
        answers["a good request beside 50 half-open connections"] = f"HTTP {good.status_code}"
        time.sleep(BODY_TIMEOUT + 1)  # past the body deadline: the half bodies are answered 408
        sockets[0].settimeout(5)
        first = sockets[0].recv(200)
        answers["half-open body after the deadline"] = f"HTTP {first.split(b' ')[1].decode()}" if first else "closed"
    finally:
        for sock in sockets:
            sock.close()
    return answers


@pytest.fixture(scope="module")
def server(trained_bundle, tmp_path_factory):
    bundle, _ = trained_bundle
    endpoint_dir = tmp_path_factory.mktemp("resilience")
    publish(endpoint_dir, bundle, "1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHURN_BODY_TIMEOUT", str(BODY_TIMEOUT))
        patch.setenv("CHURN_HEADER_TIMEOUT", str(HEADER_TIMEOUT))
        process = ServerProcess(endpoint_dir)
    try:
        process.wait_ready()
        yield process, endpoint_dir
    finally:
        process.stop()


def test_hostile_input_is_refused_and_ping_stays_live(server):
    process, _ = server
    with PingWatch(process.url) as watch:
        answers = run_attacks(process.url, process.port)
    not_refused = {
        name: answer
        for name, answer in answers.items()
        if not refused(answer)
        and name not in ("a good request beside 50 half-open connections", "half-open body after the deadline")
    }
    assert not_refused == {}
    assert answers["a good request beside 50 half-open connections"] == "HTTP 200"
    assert answers["half-open body after the deadline"] in ("HTTP 408", "closed")
    assert watch.failures == [], f"/ping not answered within {PING_BOUND}s: {watch.failures[:5]}"
    assert len(watch.samples) > 20  # it really was polled throughout


def test_limits_are_named_in_the_refusal(server):
    process, _ = server
    cases = {
        "json nested 100,000 deep": "over the limit of 20 (CHURN_MAX_JSON_DEPTH)",
        "CSV header 100,000 columns with a duplicate": (
            "CSV header has 100000 columns: over the limit of 1000 (CHURN_MAX_COLUMNS)"
        ),
        "CSV header 20,000 columns with a duplicate": "CHURN_MAX_COLUMNS",
        "5,000 records with distinct keys": "more than 1000 distinct keys",
        "non-scalar cell (list)": "column 'age' row 1: '[1, 2, 3]' is not a single value",
        "non-scalar cell (object)": "column 'contract_type' row 1: \"{'a': 1}\" is not a single value",
        "huge integer (1,000 digits)": "JSON record 1 key 'age': the integer is too large",
        "CSV cell of 1 MB": "CHURN_MAX_CELL_BYTES",
    }
    bodies = attacks()
    for name, message in cases.items():
        answer = send_attack(process.url, *bodies[name])
        assert answer.startswith("HTTP 4") and message in answer, (name, answer)
    with socket.create_connection(("127.0.0.1", process.port), timeout=30) as sock:  # headers over the 64 KB cap
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 70_000)
        answer = sock.recv(1000).decode()
    assert answer.startswith("HTTP/1.1 431 ") and "over the 65536-byte limit (CHURN_MAX_HEADER_BYTES)" in answer, answer
    duplicate = (",".join(FEATURES + ["extra", "extra"]) + "\n" + ",".join(["1"] * 14) + "\n").encode()
    assert "CSV header repeats column(s): extra" in send_attack(process.url, duplicate, "text/csv")


def slowloris(port: int, first: bytes = b"GET /ping HTTP/1.1\r\nHost: x\r\n", budget: float = 60.0) -> tuple:
    """Send ``first``, then one more header line every second, never ending the header block
    (nothing at all when ``first`` is empty).

    Returns (what the server did: 'HTTP 408' / 'closed' / 'still open', seconds it took).
    """
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            if first:
                sock.sendall(first)
            while time.monotonic() - started < budget:
                sock.settimeout(1.0)
                try:
                    answer = sock.recv(200)
                except TimeoutError:
                    if first:
                        sock.sendall(b"X-Trickle: %d\r\n" % int(time.monotonic() - started))
                    continue
                status = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/1.1 ") else None
                return (f"HTTP {status}" if status else "closed"), time.monotonic() - started
        except OSError:
            return "closed", time.monotonic() - started
    return "still open", time.monotonic() - started


def test_slowloris_headers_are_cut_off_while_ping_stays_live(server):
    process, _ = server
    with PingWatch(process.url) as watch, ThreadPoolExecutor(40) as pool:
        trickling = [pool.submit(slowloris, process.port) for _ in range(30)]
        silent = [pool.submit(slowloris, process.port, b"") for _ in range(5)]  # connect, send nothing
        # a client that did finish its headers is not cut off by the header deadline: its body has the body deadline
        body_late = pool.submit(
            slowloris,
            process.port,
            b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\nage",
        )
        results = [f.result() for f in trickling]
        silent_results = [f.result() for f in silent]
        late = body_late.result()
    assert {answer for answer, _ in results} == {"HTTP 408"}, results
    assert all(seconds < CUT_OFF_BOUND for _, seconds in results), results  # cut off, not left to trickle on
    assert {answer for answer, _ in silent_results} == {"closed"}, silent_results
    # the body deadline (BODY_TIMEOUT, longer than the header deadline) answered it, not the header deadline
    assert late[0] == "HTTP 408" and late[1] > HEADER_TIMEOUT, late
    assert watch.failures == [], f"/ping not answered within {PING_BOUND}s: {watch.failures[:5]}"
    assert len(watch.samples) > 20


def test_keep_alive_requests_each_get_their_own_header_deadline(server):
    """One connection, a request every 0.6 x the header deadline for 3 deadlines: none is cut off
    (the clock restarts with each request); then, left idle, the keep-alive timeout closes it."""
    process, _ = server
    connection = http.client.HTTPConnection("127.0.0.1", process.port, timeout=30)
    connection.connect()
    sock = connection.sock
    try:
        statuses = []
        for _ in range(5):
            connection.request("GET", "/ping")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            time.sleep(HEADER_TIMEOUT * 0.6)
        assert statuses == [200] * 5 and connection.sock is sock  # the same connection throughout
        sock.settimeout(CUT_OFF_BOUND)
        assert sock.recv(100) == b""  # idle: uvicorn's keep-alive timeout (5 s) closed it
    finally:
        connection.close()


def test_a_request_beyond_the_queue_gets_503_with_retry_after(trained_bundle, tmp_path):
    """One scoring thread, no queue: while a slow request is scored, /ping answers and another
    request that needs a thread (over INLINE_BODY_BYTES) is turned away."""
    from churn.serving.app import INLINE_BODY_BYTES

    bundle, split = trained_bundle
    publish(tmp_path, bundle, "1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHURN_THREADS", "1")
        patch.setenv("CHURN_MAX_QUEUE", "0")
        process = ServerProcess(tmp_path)
    try:
        process.wait_ready()
        import pandas as pd

        # ~160k CSV rows: the thread is busy parsing (Arrow) and scoring, which leave the GIL to the event loop.
        # (A JSON body that large would hold the GIL while json.loads runs: on a loaded machine /ping
        # then waits for it, which is not what this test is about.)
        slow = pd.concat([split.test[FEATURES]] * 200).to_csv(index=False)
        second = json.dumps([GOOD_ROW] * 100)
        assert len(second) > INLINE_BODY_BYTES
        busy, pings, answers = None, [], []
        # the slow request may itself be the one turned away (when a probe holds the thread as its upload
        # ends), or finish before a probe lands: then the round is repeated, a bounded number of times
        for _ in range(5):
            slow_thread = threading.Thread(
                target=lambda: answers.append(send_attack(process.url, slow.encode(), "text/csv"))
            )
            slow_thread.start()
            deadline = time.monotonic() + 30
            while busy is None and slow_thread.is_alive() and time.monotonic() < deadline:
                response = requests.post(
                    process.url + "/invocations", data=second, headers={"Content-Type": "application/json"}, timeout=30
                )
                if response.status_code == 503:
                    busy = response
                    pings.append(requests.get(process.url + "/ping", timeout=PING_BOUND).status_code)
            slow_thread.join()
            if busy is not None and answers[-1].startswith("HTTP 200"):
                break
            busy, pings = None, []
        assert busy is not None, "no request was turned away while the only thread was busy"
        assert busy.headers["Retry-After"] == "1" and "busy" in busy.text
        assert pings == [200]  # answered while the only scoring thread was busy
        assert answers[-1].startswith("HTTP 200")
        assert requests.get(process.url + "/ping", timeout=5).status_code == 200
    finally:
        process.stop()


def _wait_for(url: str, condition, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        ping = requests.get(url + "/ping", timeout=5)
        status = ping.json() if ping.status_code == 200 else {}
        if condition(status):
            return status
        assert time.monotonic() < deadline, f"condition not met; /ping says {status}"
        time.sleep(0.1)


def test_watcher_survives_bad_pointers_and_bundles_and_swaps_to_a_good_one(trained_bundle, tmp_path):
    bundle, split = trained_bundle
    good = publish(tmp_path, bundle, "1")
    process = ServerProcess(tmp_path)
    try:
        process.wait_ready()

        def score():
            return requests.post(
                process.url + "/invocations",
                data=split.test[FEATURES].iloc[:3].to_csv(index=False),
                headers={"Content-Type": "text/csv"},
                timeout=30,
            )

        bad_dir = tmp_path / "bundles" / "v2"
        shutil.copytree(good["bundle_dir"], bad_dir)
        (bad_dir / "estimator.joblib").write_bytes(b"not a pickle")
        from churn.bundle import bundle_sha256

        corruptions = {
            "not JSON": ("{ half a pointer", "JSONDecodeError"),
            "a JSON list": ("[1, 2]", "names no bundle_dir"),
            "no sha256": ({"version": "2", "bundle_dir": good["bundle_dir"]}, "no bundle sha256 is recorded"),
            "tampered bundle": (
                {"version": "2", "sha256": good["sha256"], "bundle_dir": str(bad_dir)},
                "refusing to load",
            ),
            "unloadable bundle, matching hash": (
                {"version": "2", "sha256": bundle_sha256(bad_dir), "bundle_dir": str(bad_dir)},
                "does not load and score",
            ),
            "missing bundle": (
                {"version": "2", "sha256": good["sha256"], "bundle_dir": str(tmp_path / "nowhere")},
                "is missing",
            ),
        }
        for name, (pointer, message) in corruptions.items():
            write_pointer(tmp_path, pointer)
            status = _wait_for(process.url, lambda s, message=message: message in (s.get("last_swap_error") or ""))
            assert status["version"] == "1", name
            assert score().status_code == 200, name
        log = (tmp_path / "test-server.log").read_text()
        assert "new model not switched in, still serving 1" in log and "no bundle sha256 is recorded" in log
        publish(tmp_path, bundle, "3")
        status = _wait_for(process.url, lambda s: s.get("version") == "3")
        assert status["last_swap_error"] is None
        assert score().headers["X-Model-Version"] == "3"
    finally:
        process.stop()


def test_a_bundle_repaired_in_place_is_picked_up(trained_bundle, tmp_path):
    """The pointer is unchanged; its bundle was incomplete and then completed: the watcher retries."""
    bundle, _ = trained_bundle
    publish(tmp_path, bundle, "1")
    process = ServerProcess(tmp_path)
    try:
        process.wait_ready()
        target = tmp_path / "bundles" / "v2"
        sha = bundle.save(tmp_path / "staging")
        write_pointer(tmp_path, {"version": "2", "sha256": sha, "bundle_dir": str(target)})
        _wait_for(process.url, lambda s: "is missing" in (s.get("last_swap_error") or ""))
        (tmp_path / "staging").rename(target)
        assert _wait_for(process.url, lambda s: s.get("version") == "2", timeout=60)["last_swap_error"] is None
    finally:
        process.stop()


# -- the registry's hash, not the pointer's ---------------------------------------------------------------

MODEL = "churn-classifier"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real MLflow sqlite store with one registered model (the local stack's registry, as steps/register.py
    writes it)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    return uri, client


def register(client, bundle_dir, sha256=None, approval_status="Approved") -> str:
    tags = {"approval_status": approval_status, **({"bundle_sha256": sha256} if sha256 else {})}
    return str(client.create_model_version(MODEL, source=str(bundle_dir), tags=tags).version)


def deployed(endpoint_dir, bundle_dir, version: str, sha256: str) -> dict:
    """The pointer as the local deployer writes it: model, version, bundle directory (and a sha256 the server
    does not trust)."""
    record = {"model_name": MODEL, "version": str(version), "sha256": sha256, "bundle_dir": str(bundle_dir)}
    write_pointer(endpoint_dir, record)
    return record


def registry_server(endpoint_dir, uri: str) -> ServerProcess:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHURN_REGISTRY_URI", uri)
        return ServerProcess(endpoint_dir)


def refused_to_start(process: ServerProcess, endpoint_dir) -> str:
    """The log of a server process that must exit on its own (it refused to start)."""
    try:
        code = process.process.wait(120)
    finally:
        process.stop()
    assert code != 0
    return (endpoint_dir / "test-server.log").read_text()


def test_the_server_reads_the_approval_status_the_registry_rule_uses():
    from churn.model_registry import APPROVED
    from churn.serving import models

    assert models.APPROVED == APPROVED


def test_a_tampered_bundle_with_a_fixed_up_pointer_is_refused(trained_bundle, registry, tmp_path):
    import dataclasses

    from churn.bundle import bundle_sha256

    bundle, split = trained_bundle
    uri, client = registry
    v1_dir = tmp_path / "bundles" / "v1"
    v1 = register(client, v1_dir, bundle.save(v1_dir))
    deployed(tmp_path, v1_dir, v1, bundle_sha256(v1_dir))
    process = registry_server(tmp_path, uri)
    try:
        process.wait_ready(timeout=120)
        status = requests.get(process.url + "/ping", timeout=5).json()
        assert status["verified_against"] == "registry" and status["version"] == v1
        # v2 is registered; then its bytes are replaced by another model that loads and scores, and the pointer's
        # sha256 is "fixed up" to the new bytes: everything beside the bundle agrees, only the registry does not
        v2_dir = tmp_path / "bundles" / "v2"
        v2 = register(client, v2_dir, bundle.save(v2_dir))
        forged = dataclasses.replace(bundle, info={**bundle.info, "forged": True})
        forged.save(v2_dir)
        forged_sha = bundle_sha256(v2_dir)
        assert forged_sha != client.get_model_version(MODEL, v2).tags["bundle_sha256"]
        deployed(tmp_path, v2_dir, v2, forged_sha)
        status = _wait_for(process.url, lambda s: "but the registry recorded" in (s.get("last_swap_error") or ""))
        assert status["version"] == v1 and forged_sha in status["last_swap_error"]
        rows = split.test[FEATURES].iloc[:3].to_csv(index=False)
        answer = requests.post(
            process.url + "/invocations", data=rows, headers={"Content-Type": "text/csv"}, timeout=30
        )
        assert answer.status_code == 200 and answer.headers["X-Model-Version"] == v1
        # not in the registry, or registered without a hash: refused the same way
        deployed(tmp_path, v1_dir, "99", bundle_sha256(v1_dir))
        missing = _wait_for(process.url, lambda s: f"no version 99 of model {MODEL}" in str(s.get("last_swap_error")))
        assert missing["version"] == v1
        v3_dir = tmp_path / "bundles" / "v3"
        bundle.save(v3_dir)
        v3 = register(client, v3_dir)
        deployed(tmp_path, v3_dir, v3, bundle_sha256(v3_dir))
        assert (
            _wait_for(process.url, lambda s: "no bundle sha256 is recorded" in (s.get("last_swap_error") or ""))[
                "version"
            ]
            == v1
        )
        # the registered bytes, but a version the registry does not hold Approved (rejected, withdrawn, pending)
        v4 = register(client, v3_dir, bundle_sha256(v3_dir), approval_status="Rejected")
        deployed(tmp_path, v3_dir, v4, bundle_sha256(v3_dir))
        assert (
            _wait_for(process.url, lambda s: "is Rejected, not Approved" in (s.get("last_swap_error") or ""))["version"]
            == v1
        )
    finally:
        process.stop()
    # restarted on the forged bundle, the server refuses to start
    deployed(tmp_path, v2_dir, v2, forged_sha)
    log = refused_to_start(registry_server(tmp_path, uri), tmp_path)
    assert "refusing to start" in log and "but the registry recorded" in log


def test_an_unreachable_registry_fails_closed(trained_bundle, registry, tmp_path):
    """At a hot swap the verified model keeps serving and the error is reported, until the registry is back;
    at startup the server refuses to start."""
    from churn.bundle import bundle_sha256

    bundle, _ = trained_bundle
    uri, client = registry
    database = Path(uri.removeprefix("sqlite:///"))
    v1_dir, v2_dir = tmp_path / "bundles" / "a", tmp_path / "bundles" / "b"
    v1 = register(client, v1_dir, bundle.save(v1_dir))
    v2 = register(client, v2_dir, bundle.save(v2_dir))
    deployed(tmp_path, v1_dir, v1, bundle_sha256(v1_dir))
    process = registry_server(tmp_path, uri)
    moved = database.with_name("moved-away.db")
    try:
        process.wait_ready(timeout=120)
        database.rename(moved)
        deployed(tmp_path, v2_dir, v2, bundle_sha256(v2_dir))
        status = _wait_for(process.url, lambda s: "cannot be asked" in (s.get("last_swap_error") or ""))
        assert status["version"] == v1
        assert not database.exists()  # the server did not create an empty registry in its place
        moved.rename(database)
        status = _wait_for(process.url, lambda s: s.get("version") == v2, timeout=120)  # retried with backoff
        assert status["last_swap_error"] is None
    finally:
        if moved.exists():
            moved.rename(database)
        process.stop()
    database.rename(moved)
    try:
        log = refused_to_start(registry_server(tmp_path, uri), tmp_path)
    finally:
        moved.rename(database)
    assert "refusing to start" in log and "cannot be asked" in log

"""The SageMaker hosting contract against a real server process on 127.0.0.1."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from churn.demo_data import FEATURE_COLUMNS
from tests.conftest import ServerProcess, publish

FEATURES = FEATURE_COLUMNS  # the demo data's raw features, as the endpoint takes them


@pytest.fixture(scope="module")
def endpoint(trained_bundle, tmp_path_factory):
    bundle, split = trained_bundle
    endpoint_dir = tmp_path_factory.mktemp("endpoint")
    publish(endpoint_dir, bundle, "1")
    server = ServerProcess(endpoint_dir, max_body_bytes=2_000_000)
    try:
        server.wait_ready()
        yield server, bundle, split, endpoint_dir
    finally:
        server.stop()


def post(server, body, content_type="text/csv", **kwargs):
    return requests.post(
        server.url + "/invocations",
        data=body,
        headers={"Content-Type": content_type, **kwargs.pop("headers", {})},
        timeout=30,
        **kwargs,
    )


def test_ping_names_the_served_version(endpoint):
    server, *_ = endpoint
    response = requests.get(server.url + "/ping", timeout=5)
    assert response.status_code == 200 and response.headers["X-Model-Version"] == "1"


def test_csv_with_ids_metadata_extra_columns_any_order(endpoint):
    server, bundle, split, _ = endpoint
    rows = split.test.iloc[:50]
    shuffled = rows[["customer_id", "event_time", *reversed(FEATURES), "churn"]].assign(extra="x")
    response = post(server, shuffled.to_csv(index=False))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.text.splitlines() == [str(v) for v in bundle.predict(rows)]


def test_whole_test_set_matches_the_bundle_to_1e9(endpoint):
    server, bundle, split, _ = endpoint
    response = post(
        server,
        split.test[FEATURES].to_csv(index=False),
        params={"probabilities": "true"},
        headers={"Accept": "application/json"},
    )
    body = response.json()
    expected, _ = bundle.predict_proba(split.test)
    assert np.allclose(body["probabilities"], expected, atol=1e-9, rtol=0)
    assert body["predictions"] == bundle.label(expected).tolist()


def test_large_batches_read_the_header_as_small_ones_do(endpoint):
    from churn.serving.protocol import LARGE_CSV_BYTES

    server, bundle, split, _ = endpoint
    rows = pd.concat([split.test[FEATURES]] * 3, ignore_index=True)
    body = rows.to_csv(index=False)
    spaced = ", ".join(f" {name} " for name in FEATURES) + body[body.index("\n") :]
    assert len(spaced.encode()) > LARGE_CSV_BYTES  # the Arrow path
    response = post(server, spaced)
    assert response.status_code == 200, response.text
    assert response.text.splitlines() == [str(v) for v in bundle.predict(rows)]
    spans = 'age,"tenure\nmonths",' + body[body.index(",", body.index("monthly")) + 1 :]
    refused = post(server, spans)
    assert refused.status_code == 400 and "quoted header cell spans lines" in refused.text


def test_json_records_and_dataframe_split(endpoint):
    server, bundle, split, _ = endpoint
    rows = split.test.iloc[:5][FEATURES]
    expected = bundle.predict(rows).tolist()
    records = json.loads(rows.to_json(orient="records"))
    as_split = {"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}
    for payload in (records, as_split, {"dataframe_records": records}):
        response = post(server, json.dumps(payload), "application/json", headers={"Accept": "application/json"})
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == expected
    # CSV answer with probabilities via SageMaker CustomAttributes
    response = post(
        server,
        json.dumps(records),
        "application/json",
        headers={"X-Amzn-SageMaker-Custom-Attributes": "probabilities=true"},
    )
    labels = [int(line.split(",")[0]) for line in response.text.splitlines()]
    assert labels == expected and all(0 <= float(line.split(",")[1]) <= 1 for line in response.text.splitlines())


def test_unseen_categories_are_mapped_and_reported(endpoint):
    server, *_ = endpoint
    body = ",".join(FEATURES) + "\n35,12,70.5,840.0,Weekly,Electronic check,DSL,Yes,No,Yes,No,No\n"
    response = post(server, body)
    assert response.status_code == 200 and response.text.strip() in ("0", "1")
    assert response.headers["X-Unseen-Categories"] == "contract_type=Weekly"


@pytest.mark.parametrize(
    "body, content_type, status, message",
    [
        ("", "text/csv", 400, "empty request body"),
        (",".join(FEATURES) + "\n", "text/csv", 400, "header row but no data rows"),
        ("age,tenure_months\n1,2\n", "text/csv", 400, "missing required column(s): monthly_charges, total_charges"),
        (
            ",".join(FEATURES) + "\n35,twelve,70.5,840,Two year,Mailed check,DSL,Yes,No,Yes,No,No\n",
            "text/csv",
            400,
            "column 'tenure_months' row 1: 'twelve' is not a number",
        ),
        (",".join(FEATURES) + "\n1,2,3\n", "text/csv", 400, "CSV row 1 has 3 fields, the header has 12"),
        ('{"dataframe_split": {"columns": ["a"]', "application/json", 400, "malformed JSON"),
        ("age\n1\n", "application/xml", 415, "unsupported content type"),
        ("x" * 2_100_000, "text/csv", 413, "over the 2000000-byte limit"),
    ],
)
def test_bad_input_gets_a_4xx_that_names_the_problem(endpoint, body, content_type, status, message):
    server, *_ = endpoint
    response = post(server, body, content_type)
    assert response.status_code == status
    assert message in response.text
    assert requests.get(server.url + "/ping", timeout=5).status_code == 200


def _malformed_payloads(rng: random.Random, n: int):
    header = ",".join(FEATURES)
    good = "35,12,70.5,840.0,Month-to-month,Electronic check,DSL,Yes,No,Yes,No,No"
    pieces = ["", ",", "\n", '"', "\x00", "nan", "-1e309", "ÿ", "\r\n", "{}", "[]", "null", "9" * 400, "'", ";"]
    for _ in range(n):
        kind = rng.randrange(6)
        if kind == 0:  # random bytes
            yield (
                bytes(rng.randrange(256) for _ in range(rng.randrange(200))),
                rng.choice(["text/csv", "application/json"]),
            )
        elif kind == 1:  # header with mangled fields
            fields = good.split(",")
            for _ in range(rng.randrange(1, 4)):
                fields[rng.randrange(len(fields))] = rng.choice(pieces)
            yield f"{header}\n{','.join(fields)}\n".encode(), "text/csv"
        elif kind == 2:  # truncated CSV
            text = f"{header}\n{good}\n"
            yield text[: rng.randrange(len(text))].encode(), "text/csv"
        elif kind == 3:  # JSON of the wrong shape
            yield (
                json.dumps(
                    rng.choice(
                        [
                            {"dataframe_split": {"columns": FEATURES, "data": [[1]]}},
                            [1, 2],
                            "x",
                            {"a": [1]},
                            [{"age": rng.choice(pieces)}],
                            {"dataframe_split": 5},
                            [None],
                        ]
                    )
                ).encode(),
                "application/json",
            )
        elif kind == 4:  # truncated JSON
            text = json.dumps([dict(zip(FEATURES, good.split(",")))])
            yield text[: rng.randrange(len(text))].encode(), "application/json"
        else:  # odd content types
            yield (
                good.encode(),
                rng.choice(["", "text/plain", "multipart/form-data", "text/csv; charset=latin-1", "*/*"]),
            )


def test_fuzz_malformed_payloads_never_get_a_5xx(endpoint):
    server, *_ = endpoint
    rng = random.Random(20261123)
    statuses = {}
    with requests.Session() as session:
        for body, content_type in _malformed_payloads(rng, 2000):
            response = session.post(
                server.url + "/invocations", data=body, headers={"Content-Type": content_type}, timeout=30
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (body[:200], content_type, response.status_code, response.text)
    assert requests.get(server.url + "/ping", timeout=5).status_code == 200
    assert sum(v for k, v in statuses.items() if 400 <= k < 500) > 1000  # most of them really were refused


def test_hot_swap_serves_the_new_version_and_refuses_a_tampered_one(endpoint, trained_bundle):
    server, bundle, split, endpoint_dir = endpoint
    publish(endpoint_dir, bundle, "2")
    deadline = time.monotonic() + 20
    while requests.get(server.url + "/ping", timeout=5).headers.get("X-Model-Version") != "2":
        assert time.monotonic() < deadline, "new version was not switched in"
        time.sleep(0.1)
    # a pointer whose bundle does not match the recorded sha256 is not switched in
    pointer = json.loads((endpoint_dir / "current.json").read_text())
    (endpoint_dir / "current.json").write_text(json.dumps({**pointer, "version": "3", "sha256": "0" * 64}))
    deadline = time.monotonic() + 20
    while "X-Last-Load-Error" not in (ping := requests.get(server.url + "/ping", timeout=5)).headers:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert ping.headers["X-Model-Version"] == "2" and "sha256" in ping.headers["X-Last-Load-Error"]
    assert post(server, split.test[FEATURES].iloc[:3].to_csv(index=False)).status_code == 200


# -- the SageMaker container's entry point (``serve``), as a real process on 127.0.0.1 -----------------------


class ContainerProcess:
    """``python -m churn.serving.container serve`` with the Environment SageMaker would give it (stopped by pid)."""

    def __init__(self, model_dir, sha256: str, role: str, **environment: str):
        import os
        import subprocess
        import sys

        from tests.conftest import REPO, free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "CHURN_MODEL_DIR": str(model_dir),
            "CHURN_BUNDLE_SHA256": sha256,
            "CHURN_SERVING_ROLE": role,
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            **environment,
        }
        self.log = open(Path(model_dir).parent / f"container-{role}.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "churn.serving.container", "serve"],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        from tests.processes import wait_for_ping

        wait_for_ping(self.url, self.process, "the container's serve", timeout)

    def stop(self) -> None:
        from tests.processes import stop_process_group

        stop_process_group(self.process)
        self.log.close()


CONTAINER_HEADER_TIMEOUT = 2.0


@pytest.fixture(scope="module", params=["predict", "encode", "respond"])
def container(request, trained_bundle, tmp_path_factory):
    bundle, _ = trained_bundle
    model_dir = tmp_path_factory.mktemp(f"container-{request.param}") / "model"
    sha = bundle.save(model_dir)
    process = ContainerProcess(
        model_dir,
        sha,
        request.param,
        CHURN_MAX_BODY_BYTES="2000000",
        CHURN_HEADER_TIMEOUT=str(CONTAINER_HEADER_TIMEOUT),
        CHURN_BODY_TIMEOUT="3",
    )
    try:
        process.wait_ready()
        yield process, request.param
    finally:
        process.stop()


def test_the_container_answers_malformed_input_with_a_4xx(container):
    """Every client-facing role (predict, encode) refuses malformed and hostile input with a 4xx, as the local
    endpoint does. The respond role reads the AutoML candidate's answer, not the client's input: an answer it
    cannot read is a 500 that says why (never a bare traceback)."""
    from tests.test_server_resilience import attacks, send_huge_header

    process, role = container
    rng = random.Random(20261202)
    payloads = list(_malformed_payloads(rng, 300)) + list(attacks().values())
    answers = []
    with requests.Session() as session:
        for body, content_type in payloads:
            response = session.post(
                process.url + "/invocations", data=body, headers={"Content-Type": content_type}, timeout=60
            )
            answers.append((response.status_code, response.text[:200], body[:100], content_type))
    if role == "respond":
        unexplained = [a for a in answers if a[0] >= 500 and "the AutoML model's answer could not be read" not in a[1]]
        assert unexplained == []
    else:
        assert [a for a in answers if a[0] >= 500] == []
        assert sum(400 <= a[0] < 500 for a in answers) > len(answers) * 0.8  # most of them really were refused
    assert send_huge_header(process.port).startswith(("HTTP 4", "closed"))
    assert requests.get(process.url + "/ping", timeout=5).status_code == 200


def test_the_container_cuts_off_trickled_headers_and_slow_bodies(container):
    from tests.test_server_resilience import slowloris

    process, _ = container
    answer, seconds = slowloris(process.port)
    assert answer == "HTTP 408" and seconds < 15  # the header deadline (2 s here), not the client's 60 s of trickling
    answer, _ = slowloris(
        process.port,
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\nage",
    )
    assert answer == "HTTP 408"  # the body deadline
    assert requests.get(process.url + "/ping", timeout=5).status_code == 200

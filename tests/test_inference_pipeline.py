"""Our container's roles around another model's containers (churn.serving.inference_pipeline).

Each role's request handling (``churn.serving.container.handle``, what our image's ``serve``
runs per request) is called in-process here; tests/container runs the same chain through real
containers. The candidate in the middle is the bundle's own estimator answering
in Autopilot's output format, so the chain must answer exactly as the bundle alone does.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from churn.aws.packaging import serving_containers
from churn.bundle import BundleError
from churn.serving import container, protocol
from churn.serving import inference_pipeline as pipeline


def _call(monkeypatch, role: str, model_dir, body: bytes, content_type: str, accept: str):
    """One request through one container of the given role, as its Environment sets the role.

    JSON requests ask for probabilities (CustomAttributes ``probabilities=true``)."""
    monkeypatch.setenv(pipeline.ROLE_ENV, role)
    role = container.role_from_env()
    model = container.load(role, str(model_dir))
    return container.handle(role, model, body, content_type, accept, probabilities=protocol.wants_json(accept))


def _candidate(estimator, body: bytes, accept: str):
    """The bundle's estimator answering as an Autopilot container (predicted_label,probabilities,labels)."""
    X = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)
    proba = estimator.predict_proba(X)[:, list(estimator.classes_).index(1)].tolist()
    if "application/json" in accept:
        records = [
            {"predicted_label": str(int(p > 0.5)), "probabilities": [1 - p, p], "labels": ["0", "1"]} for p in proba
        ]
        return json.dumps({"predictions": records}).encode(), "application/json"
    lines = [f"{int(p > 0.5)},\"[{1 - p!r}, {p!r}]\",\"['0', '1']\"" for p in proba]
    return ("\n".join(lines) + "\n").encode(), "text/csv"


@pytest.fixture(scope="module")
def saved_bundle(trained_bundle, tmp_path_factory):
    bundle, split = trained_bundle
    directory = tmp_path_factory.mktemp("bundle") / "bundle"
    bundle.save(directory)
    return bundle, split, directory


@pytest.mark.parametrize("content_type,accept", [("text/csv", "text/csv"), ("application/json", "application/json")])
def test_the_chain_answers_exactly_as_the_bundle_alone(monkeypatch, saved_bundle, content_type, accept):
    bundle, split, directory = saved_bundle
    rows = split.test.iloc[:50]
    request = (
        rows.to_csv(index=False).encode() if content_type == "text/csv" else rows.to_json(orient="records").encode()
    )

    alone = _call(monkeypatch, "predict", directory, request, content_type, accept)
    encoded, encoded_type = _call(monkeypatch, "encode", directory, request, content_type, accept)
    assert encoded_type == "text/csv"  # whatever the client accepts: the candidate reads CSV
    np.testing.assert_array_equal(
        np.loadtxt(io.BytesIO(encoded), delimiter=",", ndmin=2), bundle.preprocessor.transform(rows)[0]
    )
    answer, answer_type = _candidate(bundle.estimator, encoded, accept)
    chained = _call(monkeypatch, "respond", directory, answer, answer_type, accept)
    if accept == "text/csv":
        assert chained == alone
    else:
        assert chained[1] == alone[1] == "application/json"
        got, want = json.loads(chained[0]), json.loads(alone[0])
        assert got["predictions"] == want["predictions"]
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=0, atol=1e-9)


def test_encode_refuses_bad_input_naming_the_column(monkeypatch, saved_bundle):
    _, split, directory = saved_bundle
    rows = split.test.iloc[:5].drop(columns=["contract_type"])
    with pytest.raises(protocol.RequestError) as missing:
        _call(monkeypatch, "encode", directory, rows.to_csv(index=False).encode(), "text/csv", "text/csv")
    assert missing.value.status == 400 and "contract_type" in missing.value.message
    with pytest.raises(protocol.RequestError) as unsupported:
        _call(monkeypatch, "encode", directory, b"<xml/>", "application/xml", "text/csv")
    assert unsupported.value.status == 415


def test_encode_and_respond_do_not_load_the_estimator(monkeypatch, saved_bundle, tmp_path):
    import shutil

    _, split, directory = saved_bundle
    light = tmp_path / "light"
    light.mkdir()
    shutil.copy(directory / "bundle.json", light / "bundle.json")  # no estimator.joblib at all
    encoded, _ = _call(
        monkeypatch, "encode", light, split.test.iloc[:3].to_csv(index=False).encode(), "text/csv", "text/csv"
    )
    assert len(encoded.decode().splitlines()) == 3


@pytest.mark.parametrize(
    "body,content_type,problem",
    [
        (b"1\n", "text/csv", "output line 1 has 1 fields"),
        (b"1,\"[0.2, 0.8]\",\"['0', '2']\"\n", "text/csv", "do not hold class 1"),
        (
            b'{"predictions": [{"predicted_label": "1"}]}',
            "application/json",
            "prediction 1 has no probabilities or labels",
        ),
        (b'{"predicted_label": "1"}', "application/jsonlines", "prediction 1 has no probabilities or labels"),
        (b'{"predictions": 3}', "application/json", "no list of prediction records"),
    ],
)
def test_respond_names_what_is_wrong_with_the_candidates_answer(monkeypatch, saved_bundle, body, content_type, problem):
    *_, directory = saved_bundle
    with pytest.raises(protocol.RequestError) as error:
        _call(monkeypatch, "respond", directory, body, content_type, "text/csv")
    assert error.value.status == 500 and problem in error.value.message


def test_an_unknown_role_is_refused(monkeypatch, saved_bundle):
    *_, directory = saved_bundle
    monkeypatch.setenv(pipeline.ROLE_ENV, "transform")
    with pytest.raises(
        container.RefusedToStart, match="CHURN_SERVING_ROLE='transform': expected one of predict, encode, respond"
    ):
        container.role_from_env()


def test_serving_containers_wrap_an_autopilot_candidate_in_our_two_roles():
    sha = "ab" * 32
    assert serving_containers({}, "sk:1", "s3://b/m.tar.gz", sha) == [
        {"Image": "sk:1", "ModelDataUrl": "s3://b/m.tar.gz", "Environment": {"CHURN_BUNDLE_SHA256": sha}}
    ]
    candidate = [
        {"Image": "fe"},
        {
            "Image": "algo",
            "ModelDataUrl": "s3://b/algo.tar.gz",
            "Environment": {"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probabilities,labels"},
        },
    ]
    chain = serving_containers(
        {"autopilot": {"inference_containers": candidate}},
        "sk:1",
        "s3://b/m.tar.gz",
        sha,
        {"SAGEMAKER_REGION": "us-west-2"},
    )
    assert [c["Image"] for c in chain] == ["sk:1", "fe", "algo", "sk:1"]
    assert [c.get("Environment", {}).get(pipeline.ROLE_ENV) for c in chain] == ["encode", None, None, "respond"]
    assert (
        chain[0]["Environment"]["SAGEMAKER_REGION"] == "us-west-2" and "SAGEMAKER_REGION" not in chain[2]["Environment"]
    )
    assert chain[0]["Environment"]["CHURN_BUNDLE_SHA256"] == chain[3]["Environment"]["CHURN_BUNDLE_SHA256"] == sha
    assert "CHURN_BUNDLE_SHA256" not in chain[1].get("Environment", {})
    assert chain[2]["ModelDataUrl"] == "s3://b/algo.tar.gz" and "ModelDataUrl" not in chain[1]
    with pytest.raises(BundleError, match="SageMaker allows 15"):
        serving_containers({"autopilot": {"inference_containers": [{"Image": "x"}] * 14}}, "sk:1", "s3://b/m", sha)
    with pytest.raises(BundleError, match="names no Image"):
        serving_containers(
            {"autopilot": {"inference_containers": [{"ModelDataUrl": "s3://b/x"}]}}, "sk:1", "s3://b/m", sha
        )
    with pytest.raises(BundleError, match="sha256 is needed"):
        serving_containers({}, "sk:1", "s3://b/m", "")


def test_batch_inference_gives_a_remote_model_one_large_chunk(trained_bundle):
    from churn.batch import score_in_chunks
    from churn.bundle import ModelBundle

    bundle, split = trained_bundle
    calls = []

    class Remote:  # each call would be a job (as Autopilot's transform handle): wants big chunks
        batch_rows = 10_000
        classes_ = bundle.estimator.classes_

        def predict_proba(self, X):
            calls.append(len(X))
            return bundle.estimator.predict_proba(X)

    frame = pd.concat([split.test] * 3, ignore_index=True)
    remote = ModelBundle(Remote(), bundle.preprocessor, {})
    scored = pd.concat(score_in_chunks(remote, frame, 100, "m", "1", "r"))
    assert calls == [len(frame)]
    assert (scored["prediction"].to_numpy() == bundle.predict(frame)).all()
    assert [len(c) for c in score_in_chunks(bundle, frame.iloc[:250], 100, "m", "1", "r")] == [100, 100, 50]

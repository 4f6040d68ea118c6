"""In-process additions to moto's SageMaker for the Autopilot engine.

AutoML V2 jobs that finish, batch transforms that score.

Pinned to moto 5.2.5, like ``moto_extensions``: the handlers patch moto's SageMaker response
class and read and change moto's backend objects (``AutoMLJob``, ``FakeTransformJob``,
``Model``, S3 keys), whose shapes change between versions.

moto 5.2.5 keeps every AutoML V2 job InProgress with a stub best candidate, has no
ListCandidatesForAutoMLJob and marks a transform job Completed at once without writing
anything. Here, reached over real HTTP through moto's server:

- ``CreateAutoMLJobV2`` records the request (``job_requests()``). What the job then does is
  scripted by the test with ``script_next_job``: after ``polls`` DescribeAutoMLJobV2 calls
  (secondary status Starting -> AnalyzingData -> FeatureEngineering -> ModelTuning ...) it
  ends ``Completed`` or ``Failed`` (with the FailureReason given). A job with no script
  stays InProgress (ModelTuning) until it is stopped: the timeout case.
- A Completed job "trains" a stand-in for Autopilot's ensemble: a seeded scikit-learn
  logistic regression fitted on the CSV objects under the job's S3 input prefix (header
  row, target = TargetAttributeName; so anything else under that prefix breaks it, as it
  would Autopilot). It is stored as the candidate's model artifact in moto's S3, and the
  best candidate has the ENSEMBLING shape: one inference container that declares
  SAGEMAKER_INFERENCE_SUPPORTED. ``candidate_model(job)`` returns the fitted estimator.
- ``ListCandidatesForAutoMLJob``: the completed job's candidates (best first).
- Batch transforms run in ``moto_extensions`` (any model, through its containers): a model
  of the candidate's image is scored by the stand-in below, so an Autopilot transform
  writes ``<output path>/<input name>.out``, one line per row with the container's
  SAGEMAKER_INFERENCE_OUTPUT keys, formatted as Autopilot's containers do
  (``1,"[0.2, 0.8]","['0', '1']"``). Wrong column counts fail the job with a ClientError.
  ``transform_requests()`` returns the requests.
- The candidate's container at an endpoint: ``candidate_container`` answers one real-time
  request (header-less encoded CSV in; its keys out, as CSV or, for ``Accept:
  application/json``, ``{"predictions": [...]}``). ``install`` registers it with
  ``moto_extensions.CONTAINER_EMULATORS`` for the candidate's image, so an endpoint whose
  model chains our containers around it answers over HTTP. It is a stand-in (Autopilot's
  images cannot run here); everything else in the chain is our real code.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import moto

PINNED_MOTO = "5.2.5"
if moto.__version__ != PINNED_MOTO:
    raise RuntimeError(
        f"tests/cloud/moto_automl.py is written against moto {PINNED_MOTO}, found {moto.__version__}; "
        "re-check the patched handlers before changing the pin"
    )

import numpy as np  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.core.responses import ActionResult  # noqa: E402
from moto.s3.models import s3_backends  # noqa: E402
from moto.sagemaker.exceptions import ResourceNotFound  # noqa: E402
from moto.sagemaker.responses import SageMakerResponse  # noqa: E402

ACCOUNT = DEFAULT_ACCOUNT_ID
SECONDARY = ("Starting", "AnalyzingData", "FeatureEngineering", "ModelTuning", "GeneratingExplainabilityReport")
SUPPORTED_KEYS = "predicted_label,probability,probabilities,labels"
BEST = "WeightedEnsemble-L2-FULL-t1"
IMAGE = "autogluon-inference"  # the best candidate's (emulated) inference image


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.scripts: list[dict] = []
            self.jobs: dict[str, dict] = {}
            self.models: dict[str, Any] = {}


STATE = _State()


# -- test controls ----------------------------------------------------------------------
def reset() -> None:
    STATE.reset()


def script_next_job(
    outcome: str = "Completed", polls: int = 3, failure_reason: str | None = None, candidates: int = 3
) -> None:
    """The next CreateAutoMLJobV2 ends ``outcome`` (Completed | Failed) after ``polls`` DescribeAutoMLJobV2 calls."""
    if outcome not in ("Completed", "Failed"):
        raise ValueError("outcome is Completed or Failed (an unscripted job stays InProgress)")
    with STATE.lock:
        STATE.scripts.append(
            {
                "outcome": outcome,
                "polls": int(polls),
                "candidates": int(candidates),
                "failure_reason": failure_reason or "ClientError: injected failure",
            }
        )


def job_requests() -> list[dict]:
    """Every CreateAutoMLJobV2 request so far, in order (as sent)."""
    with STATE.lock:
        return [dict(job["request"]) for job in STATE.jobs.values()]


def job_status(name: str, region: str = "us-west-2") -> str:
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][region].auto_ml_jobs[name].auto_ml_job_status


def candidate_model(job_name: str) -> Any:
    """The estimator the emulator fitted for a completed job (what its transforms score with)."""
    with STATE.lock:
        return STATE.models[STATE.jobs[job_name]["model_data_url"]]


def transform_requests() -> list[dict]:
    """Every CreateTransformJob request so far, in order, with ``Output`` (the .out URI) once it ran."""
    from tests.cloud import moto_extensions

    return moto_extensions.transform_requests()


# -- S3 in moto ---------------------------------------------------------------------------
def _split(uri: str) -> tuple:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _objects(prefix_uri: str) -> dict[str, bytes]:
    bucket, prefix = _split(prefix_uri)
    store = s3_backends[ACCOUNT]["aws"].get_bucket(bucket)
    return {name: key.value for name, key in sorted(store.keys.items()) if name.startswith(prefix) and key is not None}


def _put(uri: str, data: bytes) -> None:
    bucket, key = _split(uri)
    s3_backends[ACCOUNT]["aws"].put_object(bucket, key, data)


def _get(uri: str) -> bytes:
    bucket, key = _split(uri)
    found = s3_backends[ACCOUNT]["aws"].get_object(bucket, key)
    if found is None:
        raise KeyError(uri)
    return found.value


# -- AutoML V2 ----------------------------------------------------------------------------
def _create_auto_ml_job_v2(self: SageMakerResponse) -> Any:
    result = _ORIGINALS["create_auto_ml_job_v2"](self)
    name = self._get_param("AutoMLJobName")
    job = self.sagemaker_backend.auto_ml_jobs[name]
    job.auto_ml_job_status, job.auto_ml_job_secondary_status = "InProgress", "Starting"
    with STATE.lock:
        script = STATE.scripts.pop(0) if STATE.scripts else None
        STATE.jobs[name] = {"request": json.loads(self.body), "script": script, "describes": 0, "model_data_url": None}
    return result


def _describe_auto_ml_job_v2(self: SageMakerResponse) -> Any:
    name = self._get_param("AutoMLJobName")
    job = self.sagemaker_backend.auto_ml_jobs.get(name)
    with STATE.lock:
        tracked = STATE.jobs.get(name)
        if job is not None and tracked is not None and job.auto_ml_job_status == "InProgress":
            tracked["describes"] += 1
            script = tracked["script"]
            if script is None or tracked["describes"] < script["polls"]:
                job.auto_ml_job_secondary_status = SECONDARY[min(tracked["describes"], len(SECONDARY) - 1)]
            elif script["outcome"] == "Failed":
                job.auto_ml_job_status, job.auto_ml_job_secondary_status = "Failed", "Failed"
                job.failure_reason = script["failure_reason"]
                job.best_candidate = None
                job.end_time = datetime.now(UTC)
            else:
                _complete(job, tracked, self.region)
    return _ORIGINALS["describe_auto_ml_job_v2"](self)


def _fit_stand_in(job: Any) -> tuple:
    """A seeded logistic regression on the job's input objects (CSV with header; target named by the job)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config = job.auto_ml_problem_type_config["TabularJobConfig"]
    source = job.auto_ml_job_input_data_config[0]["DataSource"]["S3DataSource"]["S3Uri"]
    frames = [pd.read_csv(io.BytesIO(data)) for data in _objects(source).values()]
    frame = pd.concat(frames, ignore_index=True)
    target = config["TargetAttributeName"]
    X, y = frame.drop(columns=[target]).to_numpy(dtype=float), frame[target].to_numpy(dtype=int)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)).fit(X, y)
    return model, float(model.score(X, y))


def _complete(job: Any, tracked: dict, region: str) -> None:
    import joblib

    model, score = _fit_stand_in(job)
    output = job.output_data_config["S3OutputPath"].rstrip("/")
    url = f"{output}/{job.auto_ml_job_name}/sagemaker-automl-candidates/{BEST}/model.joblib"
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    _put(url, buffer.getvalue())
    STATE.models[url] = model
    tracked["model_data_url"] = url
    objective = (job.auto_ml_job_objective or {}).get("MetricName", "Accuracy")
    now = datetime.now(UTC)
    job.best_candidate = {
        "CandidateName": BEST,
        "FinalAutoMLJobObjectiveMetric": {
            "Type": "Maximize",
            "MetricName": objective,
            "Value": round(score, 6),
            "StandardMetricName": objective,
        },
        "ObjectiveStatus": "Succeeded",
        "CandidateSteps": [
            {
                "CandidateStepType": "AWS::SageMaker::TrainingJob",
                "CandidateStepName": f"{job.auto_ml_job_name}-t1",
                "CandidateStepArn": f"arn:aws:sagemaker:{region}:{ACCOUNT}:training-job/{job.auto_ml_job_name}-t1",
            }
        ],
        "CandidateStatus": "Completed",
        "InferenceContainers": [
            {
                "Image": f"{ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{IMAGE}:1.1-cpu-py311",
                "ModelDataUrl": url,
                "Environment": {
                    "SAGEMAKER_INFERENCE_SUPPORTED": SUPPORTED_KEYS,
                    "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label",
                    "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
                    "MODEL_NAME": BEST,
                },
            }
        ],
        "CreationTime": now,
        "EndTime": now,
        "LastModifiedTime": now,
    }
    job.auto_ml_job_status, job.auto_ml_job_secondary_status = "Completed", "Completed"
    job.end_time = job.last_modified_time = now
    tracked["candidates"] = tracked["script"]["candidates"]


def _list_candidates_for_auto_ml_job(self: SageMakerResponse) -> ActionResult:
    name = self._get_param("AutoMLJobName")
    job = self.sagemaker_backend.auto_ml_jobs.get(name)
    if job is None:
        raise ResourceNotFound(f"Could not find AutoML job with name {name}.")
    with STATE.lock:
        count = STATE.jobs.get(name, {}).get("candidates", 0)
    if job.auto_ml_job_status != "Completed" or not job.best_candidate:
        return ActionResult({"Candidates": []})
    others = [
        {
            **job.best_candidate,
            "CandidateName": f"{name}-candidate-{i}",
            "FinalAutoMLJobObjectiveMetric": {
                **job.best_candidate["FinalAutoMLJobObjectiveMetric"],
                "Value": job.best_candidate["FinalAutoMLJobObjectiveMetric"]["Value"] - 0.01 * i,
            },
        }
        for i in range(1, count)
    ]
    return ActionResult({"Candidates": [job.best_candidate, *others][:count]})


class _ClientError(Exception):
    pass


def _values(keys: list[str], p: float) -> dict[str, Any]:
    label = "1" if p > 0.5 else "0"
    values = {
        "predicted_label": label,
        "probability": float(max(p, 1 - p)),
        "probabilities": [float(1 - p), float(p)],
        "labels": ["0", "1"],
    }
    return {k: values[k] for k in keys}


def _format(keys: list[str], proba: np.ndarray) -> str:
    """CSV lines as Autopilot's classification containers write them for ``keys``."""
    quoted = {
        "probabilities": lambda v: f'"[{v[0]!r}, {v[1]!r}]"',
        "labels": lambda v: "\"['0', '1']\"",
        "probability": repr,
        "predicted_label": str,
    }
    return "".join(",".join(quoted[k](v) for k, v in _values(keys, p).items()) + "\n" for p in proba)


def _format_json(keys: list[str], proba: np.ndarray) -> str:
    """JSON as Autopilot's containers answer ``Accept: application/json``."""
    return json.dumps({"predictions": [_values(keys, p) for p in proba]})


def _estimator(url: str) -> Any:
    import joblib

    with STATE.lock:
        if url not in STATE.models:
            STATE.models[url] = joblib.load(io.BytesIO(_get(url)))
        return STATE.models[url]


def _score(estimator: Any, text: str, where: str) -> np.ndarray:
    """P(class 1) for header-less numeric CSV rows, or a _ClientError naming what is wrong."""
    try:
        X = np.loadtxt(io.StringIO(text), delimiter=",", ndmin=2)
    except ValueError as error:
        raise _ClientError(f"{where} is not numeric CSV without a header: {error}") from None
    if X.shape[1] != estimator.n_features_in_:
        raise _ClientError(f"{where} has {X.shape[1]} columns; the model expects {estimator.n_features_in_}")
    return estimator.predict_proba(X)[:, list(estimator.classes_).index(1)]


# -- the candidate's inference container, emulated (moto_extensions.CONTAINER_EMULATORS) -----
def candidate_container(container: dict[str, Any], body: bytes, content_type: str, accept: str) -> dict:
    """One real-time request to the best candidate's container: encoded CSV rows in, its keys out."""
    import base64

    if content_type != "text/csv":  # exactly: whether Autopilot's container takes a charset is not documented
        return {"status": 415, "message": f"Content type {content_type} is not supported; use text/csv"}
    keys = (container.get("Environment") or {}).get("SAGEMAKER_INFERENCE_OUTPUT", "predicted_label").split(",")
    try:
        proba = _score(_estimator(container["ModelDataUrl"]), body.decode("utf-8"), "the request")
    except KeyError:
        return {"status": 500, "message": f"model artifact {container.get('ModelDataUrl')} not found"}
    except _ClientError as error:
        return {"status": 400, "message": str(error)}
    if "application/json" in (accept or ""):
        return {
            "status": 200,
            "body": base64.b64encode(_format_json(keys, proba).encode()).decode(),
            "content_type": "application/json",
        }
    return {"status": 200, "body": base64.b64encode(_format(keys, proba).encode()).decode(), "content_type": "text/csv"}


# -- install --------------------------------------------------------------------------------
_PATCHES: dict[str, Callable] = {
    "create_auto_ml_job_v2": _create_auto_ml_job_v2,
    "describe_auto_ml_job_v2": _describe_auto_ml_job_v2,
    "list_candidates_for_auto_ml_job": _list_candidates_for_auto_ml_job,
}
_ORIGINALS: dict[str, Callable | None] = {}


def install() -> None:
    from tests.cloud import moto_extensions

    moto_extensions.CONTAINER_EMULATORS[IMAGE] = candidate_container
    for name, handler in _PATCHES.items():
        if name not in _ORIGINALS:
            _ORIGINALS[name] = getattr(SageMakerResponse, name, None)
            setattr(SageMakerResponse, name, handler)


def uninstall() -> None:
    from tests.cloud import moto_extensions

    moto_extensions.CONTAINER_EMULATORS.pop(IMAGE, None)
    for name, original in list(_ORIGINALS.items()):
        if original is None:
            delattr(SageMakerResponse, name)
        else:
            setattr(SageMakerResponse, name, original)
        del _ORIGINALS[name]
    STATE.reset()

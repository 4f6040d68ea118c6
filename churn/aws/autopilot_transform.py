"""From Autopilot's best candidate to scores: its containers, its SageMaker model, the batch-transform handle.

The job side (``churn.aws.autopilot_job``: the AutoML V2 job, its candidates and the engine
that trains) hands this module the best candidate. Here:

- ``inference_containers`` asks the candidate's containers for ``predicted_label,probabilities,labels``
  (as the SageMaker SDK does with ``inference_response_keys``);
- ``create_model`` makes a SageMaker model of them under a unique timestamp name
  (``classification-model-automl-<epoch seconds>-<4 hex>``) and writes ``model_info.json``;
- ``AutopilotModel`` is the bundle's estimator: a small picklable handle (model name, region,
  S3 location, ``classes_ = [0, 1]``). Its ``predict_proba(matrix)`` runs a batch transform
  (``CreateTransformJob`` on the rows as header-less CSV, bounded polling, the ``.out`` file
  read back from S3, where it stays as the saved predictions) and returns the probability of
  class 1 from the ``probabilities``/``labels`` the containers return. So the evaluate step's
  metrics (accuracy, precision, recall, F1, ROC-AUC) are computed from the transform output on
  the test set, as the spec's EvaluateModel does.

Online serving: the bundle keeps ``info["autopilot"]["inference_containers"]``. The
SageMaker registry registers, and the deployer deploys, a serial inference pipeline around
them (``churn.aws.packaging.serving_containers``): our container (our image, ``serve``) encodes the
raw request exactly as training did, the candidate's containers score it, our container
formats the answer in our contract (``churn.serving.inference_pipeline``). So the AutoML
endpoint takes the same raw CSV/JSON as the rf endpoint and answers the same way.

Every ``predict_proba`` call on the handle is one transform job (minutes on AWS, instance
start-up included): right for evaluation and batch inference, which score many rows at once
(``batch_rows`` asks batch inference for one chunk), never for a single request. The wait is
bounded by ``CHURN_AUTOPILOT_TRANSFORM_TIMEOUT_SEC`` (default 3600).

The error, the polling and the naming helpers here are shared with the job module.

Length: about 360 lines, of which about 110 are docstrings; the code is the candidate's containers, its
model and the handle's batch transform (start, wait, read), each a short function.

Length: about 100 of its lines are docstrings; the rest is one subject (scoring with Autopilot's
best candidate).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from churn.automl import AutoMLError, AutoMLSettings
from churn.aws import s3
from churn.aws.athena import Polling
from churn.aws.clients import AwsError, aws_errors, client, explain
from churn.serving.inference_pipeline import CANDIDATE_KEYS, CandidateOutputError, rows_csv
from churn.serving.inference_pipeline import positive_probabilities as _candidate_csv

if TYPE_CHECKING:  # the job module imports this one
    from churn.aws.autopilot_job import AutopilotConfig

MODEL_NAME_PREFIX = "classification-model-automl"
# What the inference containers are asked to return (SAGEMAKER_INFERENCE_OUTPUT).
INFERENCE_KEYS = CANDIDATE_KEYS
TERMINAL = ("Completed", "Failed", "Stopped")
HEARTBEAT_SECONDS = 60.0
ENV_TRANSFORM_TIMEOUT = "CHURN_AUTOPILOT_TRANSFORM_TIMEOUT_SEC"


class AutopilotError(AutoMLError, AwsError):
    """An Autopilot job, model or batch transform that did not give a result; the message says which and why."""


def _print(message: str) -> None:
    print(message, flush=True)


def utc_stamp() -> str:
    """The UTC time as ``yymmddHHMMSS``, for job and transform names."""
    return time.strftime("%y%m%d%H%M%S", time.gmtime())


def console_url(region: str, kind: str, name: str) -> str:
    """The SageMaker console page of ``name`` (``kind``: ``automl-jobs``, ``transform-jobs``, ...)."""
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{kind}/{name}"


def resource_tags(**values: str) -> list[dict[str, str]]:
    """``managed-by: churn-mlops`` plus ``values``, as SageMaker's Tags (values cut to 256 characters)."""
    return [
        {"Key": "managed-by", "Value": "churn-mlops"},
        *({"Key": k, "Value": str(v)[:256]} for k, v in values.items()),
    ]


# -- the candidate's containers and their output ---------------------------------------


def positive_probabilities(text: str, keys: Sequence[str] = INFERENCE_KEYS) -> np.ndarray:
    """P(class 1) per line of a transform output holding ``keys`` (the serving code's parser).

    Args:
        text: the transform's ``.out`` file, one CSV line per row.
        keys: the columns each line holds, in order.

    Returns:
        One probability per line.

    Raises:
        AutopilotError: a line is not what the candidate's containers return.
    """
    try:
        return _candidate_csv(text, keys)
    except CandidateOutputError as error:
        raise AutopilotError(f"transform {error}") from None


def inference_containers(
    candidate_containers: Sequence[Mapping[str, Any]], keys: Sequence[str] = INFERENCE_KEYS
) -> list[dict[str, Any]]:
    """The best candidate's containers, asked to return ``keys`` (the SDK's ``inference_response_keys`` logic).

    Each container that declares SAGEMAKER_INFERENCE_SUPPORTED gets SAGEMAKER_INFERENCE_OUTPUT
    (what it emits) and, after another such container, SAGEMAKER_INFERENCE_INPUT. The last
    container must support every key: probabilities are what the evaluation needs.

    Args:
        candidate_containers: ``BestCandidate.InferenceContainers`` as DescribeAutoMLJobV2 returns them.
        keys: what the last container must return.

    Returns:
        Copies of the containers with their Environment set.

    Raises:
        AutopilotError: there is no container, or the last one cannot return every key.
    """
    containers = [{k: (dict(v) if isinstance(v, Mapping) else v) for k, v in c.items()} for c in candidate_containers]
    if not containers:
        raise AutopilotError("the best candidate has no inference containers")
    supported_last = (containers[-1].get("Environment") or {}).get("SAGEMAKER_INFERENCE_SUPPORTED", "")
    missing = [k for k in keys if k not in supported_last.split(",")]
    if missing:
        raise AutopilotError(
            f"the best candidate's last inference container cannot return {', '.join(missing)} "
            f"(it supports {supported_last or 'only its default output'}); probabilities are needed "
            "to evaluate it"
        )
    previous = None
    for container in containers:
        environment = container.setdefault("Environment", {})
        supported = environment.get("SAGEMAKER_INFERENCE_SUPPORTED", "")
        if not supported:
            previous = None
            continue
        emitted = ",".join(k for k in keys if k in supported.split(",")) or None
        if previous:
            environment["SAGEMAKER_INFERENCE_INPUT"] = previous
        if emitted:
            environment["SAGEMAKER_INFERENCE_OUTPUT"] = emitted
        previous = emitted
    return containers


def create_model(
    job: str,
    job_arn: str,
    candidate: dict,
    settings: AutoMLSettings,
    locations: Mapping[str, str],
    config: AutopilotConfig,
    progress: Callable[[str], None] = _print,
) -> dict[str, Any]:
    """A SageMaker model from the best candidate (unique timestamp name) and model_info.json.

    Args:
        job: the Autopilot job's name.
        job_arn: its ARN.
        candidate: the job's ``BestCandidate``.
        settings: the AutoML settings the job ran with.
        locations: the job's S3 locations (``train_uri``, ``meta_prefix``, ``output_prefix``, ``model_info_uri``).
        config: where the engine runs.
        progress: where progress lines go.

    Returns:
        The model's info (name, ARN, the containers, the S3 locations), as written to model_info.json.

    Raises:
        AutopilotError: the containers cannot give probabilities, or CreateModel or the S3 write failed.
    """
    sm = client("sagemaker", config.region, config.profile)
    containers = inference_containers(candidate["InferenceContainers"])
    name = f"{config.model_name_prefix}-{int(time.time())}-{uuid.uuid4().hex[:4]}"
    progress(
        f"Creating SageMaker model {name} from candidate {candidate.get('CandidateName')} "
        f"({len(containers)} container(s))"
    )
    with aws_errors(f"creating SageMaker model '{name}' from Autopilot job '{job}'", AutopilotError):
        model_arn = sm.create_model(
            ModelName=name,
            ExecutionRoleArn=config.role_arn,
            Containers=containers,
            Tags=resource_tags(**{"churn:automl-job": job}),
        )["ModelArn"]
    objective = candidate.get("FinalAutoMLJobObjectiveMetric") or {}
    model_info = {
        "model_name": name,
        "model_arn": model_arn,
        "region": config.region,
        "auto_ml_job_name": job,
        "auto_ml_job_arn": job_arn,
        "best_candidate_name": candidate.get("CandidateName"),
        "objective_metric": {
            "name": objective.get("MetricName", settings.objective),
            "value": objective.get("Value"),
            "type": objective.get("Type"),
        },
        "mode": settings.mode,
        "problem_type": settings.problem_type,
        "target_attribute_name": settings.target,
        "inference_containers": [
            {"Image": c.get("Image"), "ModelDataUrl": c.get("ModelDataUrl"), "Environment": c.get("Environment", {})}
            for c in containers
        ],
        "inference_response_keys": list(INFERENCE_KEYS),
        "input_content_type": "text/csv (no header; encoded features in feature order, see meta/)",
        "train_data_uri": locations["train_uri"],
        "preprocessing_uri": locations["meta_prefix"],
        "automl_output_uri": locations["output_prefix"],
        "model_info_uri": locations["model_info_uri"],
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        s3.upload_bytes(
            json.dumps(model_info, indent=2, default=str).encode(),
            locations["model_info_uri"],
            config.region,
            config.profile,
            "application/json",
        )
    except AwsError as error:
        raise AutopilotError(f"model {name} was created but writing model_info.json failed: {error}") from None
    progress(f"Model {name}: {locations['model_info_uri']}")
    return model_info


# -- waiting ---------------------------------------------------------------------------


def wait_for_status(
    describe: Callable[[], dict],
    status_of: Callable[[dict], tuple[str, str]],
    polling: Polling,
    what: str,
    progress: Callable[[str], None],
) -> dict | None:
    """Poll ``describe`` until a terminal status, printing a line on each change and a heartbeat each minute.

    Args:
        describe: one Describe* call.
        status_of: (status, detail) of what ``describe`` returned.
        polling: the waits between calls and the overall timeout.
        what: the name progress lines start with.
        progress: where progress lines go.

    Returns:
        The last description, or None when ``polling.timeout`` ran out first.
    """
    started, last, last_line = time.monotonic(), None, 0.0
    for wait in polling.waits():
        described = describe()
        status, detail = status_of(described)
        elapsed = time.monotonic() - started
        if (status, detail) != last or elapsed - last_line >= HEARTBEAT_SECONDS:
            progress(
                f"{what}: {status}{f' / {detail}' if detail else ''} ({elapsed:.0f}s, at most {polling.timeout:.0f}s)"
            )
            last, last_line = (status, detail), elapsed
        if status in TERMINAL:
            return described
        time.sleep(wait)
    return None


def stop_after_timeout(call: Callable[[], Any], what: str) -> str:
    """Run the Stop* ``call`` for ``what``; what happened, for the timeout's message (never raises)."""
    try:
        call()
        return "it was stopped"
    except Exception as error:  # noqa: BLE001 - the timeout is the error to report
        return f"stopping it failed too ({explain(error, f'stopping {what}')}); stop it in the console"


# -- the model handle ------------------------------------------------------------------


class AutopilotModel:
    """A picklable handle on the SageMaker model Autopilot's best candidate became.

    ``predict_proba(matrix)`` scores the encoded rows with a batch transform and returns
    an ``(n, 2)`` array for ``classes_`` ``[0, 1]``. Nothing AWS-side is held: clients are
    made on each call (from the environment, a profile or a role).
    """

    # each call is a transform job: batch inference hands it chunks this large (SageMaker
    # splits the input into <= 6 MB requests itself)
    batch_rows = 1_000_000
    # every prediction is a SageMaker job: nothing may score it just to describe it (the MLflow model's example)
    scores_remotely = True

    def __init__(
        self,
        model_name: str,
        region: str,
        bucket: str,
        prefix: str,
        job_name: str,
        n_features: int,
        profile: str | None = None,
        instance_type: str = "ml.m5.large",
        instance_count: int = 1,
        poll_initial_seconds: float = 30.0,
        poll_max_seconds: float = 120.0,
        timeout_seconds: float = 3600.0,
        keys: Sequence[str] = INFERENCE_KEYS,
    ):
        self.model_name, self.region, self.bucket, self.prefix = model_name, region, bucket, prefix
        self.job_name, self.n_features, self.profile = job_name, int(n_features), profile
        self.instance_type, self.instance_count = instance_type, int(instance_count)
        self.poll_initial_seconds, self.poll_max_seconds = float(poll_initial_seconds), float(poll_max_seconds)
        self.timeout_seconds, self.keys = float(timeout_seconds), tuple(keys)
        self.classes_ = np.array([0, 1])
        self.last_transform: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["last_transform"] = None  # what was scored last is not part of the model
        return state

    def __repr__(self) -> str:
        return f"AutopilotModel({self.model_name!r}, region={self.region!r})"

    def _uri(self, *parts: str) -> str:
        return s3.join(f"s3://{self.bucket}", self.prefix, "automl", self.job_name, *parts)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(np.int64)

    def predict_proba(self, X: np.ndarray, progress: Callable[[str], None] = _print) -> np.ndarray:
        """Batch-transform the rows (CSV, no header): one transform job, its output kept in S3.

        Args:
            X: the encoded rows, ``n_features`` columns in feature order.
            progress: where progress lines go.

        Returns:
            An ``(n, 2)`` array: P(class 0), P(class 1) per row.

        Raises:
            AutopilotError: the rows have the wrong shape, or the transform failed, timed out or
                returned a different number of predictions.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise AutopilotError(
                f"{self.model_name} takes rows of {self.n_features} encoded features, got shape {X.shape}"
            )
        if len(X) == 0:
            return np.zeros((0, 2))
        sm = client("sagemaker", self.region, self.profile)
        name = f"{MODEL_NAME_PREFIX}-tf-{utc_stamp()}-{uuid.uuid4().hex[:4]}"
        input_prefix = self._uri("transform", name, "input") + "/"
        output_prefix = self._uri("transform", name, "predictions") + "/"
        s3.upload_bytes(rows_csv(X), input_prefix + "rows.csv", self.region, self.profile, "text/csv")
        progress(
            f"Batch transform {name}: {len(X)} rows with model {self.model_name} "
            f"({self.instance_type} x{self.instance_count})"
        )
        self._start_transform(sm, name, input_prefix, output_prefix)
        self._wait_for_transform(sm, name, progress)
        output_uri, proba = self._read_transform(name, output_prefix, len(X))
        self.last_transform = {
            "transform_job_name": name,
            "input_uri": input_prefix + "rows.csv",
            "predictions_uri": output_uri,
            "rows": int(len(X)),
        }
        progress(f"Batch transform {name}: {len(X)} predictions saved at {output_uri}")
        return np.column_stack([1.0 - proba, proba])

    def _start_transform(self, sm, name: str, input_prefix: str, output_prefix: str) -> None:
        with aws_errors(f"starting batch transform '{name}' with model '{self.model_name}'", AutopilotError):
            sm.create_transform_job(
                TransformJobName=name,
                ModelName=self.model_name,
                BatchStrategy="MultiRecord",
                MaxPayloadInMB=6,
                TransformInput={
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_prefix}},
                    "ContentType": "text/csv",
                    "SplitType": "Line",
                    "CompressionType": "None",
                },
                TransformOutput={"S3OutputPath": output_prefix, "Accept": "text/csv", "AssembleWith": "Line"},
                TransformResources={"InstanceType": self.instance_type, "InstanceCount": self.instance_count},
                Tags=resource_tags(**{"churn:model-name": self.model_name, "churn:automl-job": self.job_name}),
            )

    def _wait_for_transform(self, sm, name: str, progress: Callable[[str], None]) -> None:
        polling = Polling(
            initial=self.poll_initial_seconds, factor=1.5, maximum=self.poll_max_seconds, timeout=self.timeout_seconds
        )

        def describe() -> dict:
            with aws_errors(f"describing batch transform '{name}'", AutopilotError):
                return sm.describe_transform_job(TransformJobName=name)

        final = wait_for_status(
            describe, lambda d: (d["TransformJobStatus"], ""), polling, f"Batch transform {name}", progress
        )
        console = console_url(self.region, "transform-jobs", name)
        if final is None:
            stopped = stop_after_timeout(
                lambda: sm.stop_transform_job(TransformJobName=name), f"batch transform '{name}'"
            )
            raise AutopilotError(
                f"batch transform '{name}' (model {self.model_name}) did not finish within "
                f"{self.timeout_seconds:.0f}s; {stopped}. Raise {ENV_TRANSFORM_TIMEOUT} "
                f"or see {console}"
            )
        if final["TransformJobStatus"] != "Completed":
            raise AutopilotError(
                f"batch transform '{name}' (model {self.model_name}) {final['TransformJobStatus']}: "
                f"{final.get('FailureReason') or 'no reason given'}; see {console}"
            )

    def _read_transform(self, name: str, output_prefix: str, rows: int) -> tuple[str, np.ndarray]:
        """The one ``.out`` file's URI and the P(class 1) it holds, one per row."""
        outputs = [k for k in s3.list_keys(output_prefix, self.region, self.profile) if k.endswith(".out")]
        if len(outputs) != 1:
            raise AutopilotError(
                f"batch transform '{name}' left {len(outputs)} .out files under {output_prefix}, expected 1"
            )
        output_uri = f"s3://{self.bucket}/{outputs[0]}"
        proba = positive_probabilities(s3.read_bytes(output_uri, self.region, self.profile).decode("utf-8"), self.keys)
        if len(proba) != rows:
            raise AutopilotError(
                f"batch transform '{name}' returned {len(proba)} predictions for {rows} rows ({output_uri})"
            )
        return output_uri, proba

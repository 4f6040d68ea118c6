"""SageMaker Autopilot (AutoML V2) as an AutoML engine: ``AutopilotEngine`` (name ``sagemaker_autopilot``).

The training step asks ``churn.automl.resolve_engine`` for the engine the active stack
names (label ``automl_engine: sagemaker_autopilot``); this one runs the search as a
SageMaker AutoML V2 job and returns the same ``ModelBundle`` type as the local engine, so
evaluate, gate, register and deploy are unchanged.

What one ``train`` call does (spec, automl_training_pipeline.md, steps 3 and 4):

1. Writes the training rows to S3 and the preprocessing artifacts next to them, *outside*
   the Autopilot input prefix, so Autopilot never reads them as data::

       s3://<bucket>/<prefix>/automl/<job>/data/train/train.csv   Autopilot's input (S3Prefix)
       s3://<bucket>/<prefix>/automl/<job>/meta/preprocessor.json  medians, label classes, feature order
       s3://<bucket>/<prefix>/automl/<job>/meta/metadata.json      feature names, target, row counts
       s3://<bucket>/<prefix>/automl/<job>/output/                 Autopilot's artifacts (OutputDataConfig)
       s3://<bucket>/<prefix>/automl/<job>/model/model_info.json   the created model (spec, CreateModel)
       s3://<bucket>/<prefix>/automl/<job>/transform/<transform job>/{input,predictions}/  batch transforms

   The rows are the *preprocessed* ones, as the spec's PreprocessData writes them: missing
   values filled, categories label-encoded, identifier/metadata columns dropped, one column
   per ``preprocessor.feature_order`` plus the target, with a header. That is exactly the
   matrix the bundle hands its estimator (``ModelBundle.predict_proba`` ->
   ``preprocessor.transform`` -> ``estimator.predict_proba(matrix)``), so what Autopilot
   trained on and what the batch transform scores are the same encoding by construction,
   and the same preprocessing code serves every engine. (Raw categories would let
   Autopilot encode them itself, but the handle would then have to decode the matrix back,
   a second encoding path to keep in step; the spec trains on encoded rows.)
2. Starts ``CreateAutoMLJobV2`` with a TabularJobConfig from the settings: Mode (the spec's
   ENSEMBLING), ProblemType, TargetAttributeName, CompletionCriteria
   (MaxAutoMLJobRuntimeInSeconds = ``autopilot_max_runtime_sec``, MaxRuntimePerTrainingJobInSeconds,
   MaxCandidates) and AutoMLJobObjective = ``objective_metric_name``.
3. Polls ``DescribeAutoMLJobV2`` with backoff, printing a line when the (secondary) status
   changes and a heartbeat every minute. The wait is bounded by ``autopilot_max_runtime_sec`` plus a
   grace period (Autopilot finishes explainability and reports after the search); past it
   the job is stopped (``StopAutoMLJob``) and an ``AutopilotError`` says so. A Failed or
   Stopped job raises an ``AutopilotError`` naming the job and its FailureReason.
4. Creates a SageMaker model from ``BestCandidate.InferenceContainers`` under a unique
   timestamp name (``classification-model-automl-<epoch seconds>-<4 hex>``), asking the
   containers for ``predicted_label,probabilities,labels`` (as the SageMaker SDK does with
   ``inference_response_keys``), and writes ``model_info.json``.

The bundle's estimator is an ``AutopilotModel``: a small picklable handle (model name,
region, S3 location, ``classes_ = [0, 1]``). Its ``predict_proba(matrix)`` runs a batch
transform (``CreateTransformJob`` on the rows as header-less CSV, bounded polling, the
``.out`` file read back from S3, where it stays as the saved predictions) and returns the
probability of class 1 from the ``probabilities``/``labels`` the containers return. So the
evaluate step's metrics (accuracy, precision, recall, F1, ROC-AUC) are computed from the
transform output on the test set, as the spec's EvaluateModel does.

Online serving: the bundle keeps ``info["autopilot"]["inference_containers"]``. The
SageMaker registry registers, and the deployer deploys, a serial inference pipeline around
them (``churn.aws.packaging.serving_containers``): our container (our image, ``serve``) encodes the
raw request exactly as training did, the candidate's containers score it, our container
formats the answer in our contract (``churn.serving.inference_pipeline``). So the AutoML
endpoint takes the same raw CSV/JSON as the rf endpoint and answers the same way.

Limits, honestly:
- Every ``predict_proba`` call on the handle is one transform job (minutes on AWS, instance
  start-up included): right for evaluation and batch inference, which score many rows at
  once (``batch_rows`` asks batch inference for one chunk), never for a single request.
- The emulator tests (tests/cloud/test_autopilot.py) prove the requests, the S3 layout,
  the polling/timeout/failure paths, the transform plumbing and the serving chain over
  HTTP; moto trains nothing and runs no images, so the candidate there is a small
  stand-in that ``tests/cloud/moto_automl.py`` fits and answers for.

AWS settings come from the active stack's SageMaker endpoint deployer (region, role, bucket,
prefix, profile, polling); these environment variables override the waits:
``CHURN_AUTOPILOT_TIMEOUT_GRACE_SEC`` (default 1800), ``CHURN_AUTOPILOT_TRANSFORM_TIMEOUT_SEC``
(default 3600), ``CHURN_AUTOPILOT_TRANSFORM_INSTANCE_TYPE`` (default: the deployer's
instance type when batch transform offers it, else ml.m5.large).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from churn.automl import AutoMLError, AutoMLSettings
from churn.aws import s3
from churn.aws.athena import Polling
from churn.aws.clients import AwsError, aws_errors, client, explain
from churn.bundle import ModelBundle
from churn.preprocessing import Preprocessor
from churn.serving.inference_pipeline import CANDIDATE_KEYS, CandidateOutputError, rows_csv
from churn.serving.inference_pipeline import positive_probabilities as _candidate_csv

ENGINE_NAME = "sagemaker_autopilot"
DEPLOYER_FLAVOR = "churn_sagemaker_endpoint"
MODEL_NAME_PREFIX = "classification-model-automl"
# What the inference containers are asked to return (SAGEMAKER_INFERENCE_OUTPUT).
INFERENCE_KEYS = CANDIDATE_KEYS
TERMINAL = ("Completed", "Failed", "Stopped")
HEARTBEAT_SECONDS = 60.0
ENV_GRACE = "CHURN_AUTOPILOT_TIMEOUT_GRACE_SEC"
ENV_TRANSFORM_TIMEOUT = "CHURN_AUTOPILOT_TRANSFORM_TIMEOUT_SEC"
ENV_TRANSFORM_INSTANCE = "CHURN_AUTOPILOT_TRANSFORM_INSTANCE_TYPE"


class AutopilotError(AutoMLError, AwsError):
    """An Autopilot job, model or batch transform that did not give a result; the message says which and why."""


def _print(message: str) -> None:
    print(message, flush=True)


def _stamp() -> str:
    return time.strftime("%y%m%d%H%M%S", time.gmtime())


def _console(region: str, kind: str, name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/{kind}/{name}"


def _tags(**values: str) -> List[Dict[str, str]]:
    return [{"Key": "managed-by", "Value": "churn-mlops"}] + [{"Key": k, "Value": str(v)[:256]} for k, v in values.items()]


def _botocore_enum(shape: str) -> List[str]:
    import botocore.session

    return list(botocore.session.get_session().get_service_model("sagemaker").shape_for(shape).enum)


# -- configuration --------------------------------------------------------------------

@dataclass
class AutopilotConfig:
    """Where and how the engine runs: AWS location, the execution role, waits."""

    region: str
    role_arn: str
    bucket: str
    prefix: str = "mlops/classification_model"
    profile: Optional[str] = None
    transform_instance_type: str = "ml.m5.large"
    transform_instance_count: int = 1
    poll_initial_seconds: float = 30.0
    poll_max_seconds: float = 120.0
    timeout_grace_seconds: float = 1800.0
    transform_timeout_seconds: float = 3600.0
    model_name_prefix: str = MODEL_NAME_PREFIX

    @classmethod
    def from_active_stack(cls) -> "AutopilotConfig":
        """Settings from the active stack's SageMaker endpoint deployer (+ the environment overrides)."""
        from zenml.client import Client

        stack = Client().active_stack
        deployer = stack.model_deployer
        if deployer is None or deployer.flavor != DEPLOYER_FLAVOR:
            raise AutopilotError(
                f"the {ENGINE_NAME} AutoML engine runs on the SageMaker stack: the active stack '{stack.name}' has "
                f"model deployer flavor {getattr(deployer, 'flavor', None)!r}, not {DEPLOYER_FLAVOR!r} (it supplies "
                "region, execution role, bucket and prefix); set up the stack with "
                "`python run.py stack setup sagemaker --config FILE`")
        d = deployer.config
        offered = _botocore_enum("TransformInstanceType")
        instance = os.environ.get(ENV_TRANSFORM_INSTANCE) or "ml.m5.large"
        if instance not in offered:
            raise AutopilotError(f"{ENV_TRANSFORM_INSTANCE}={instance} is not a batch transform instance type")
        return cls(region=d.region, role_arn=d.role_arn, bucket=d.bucket, prefix=d.prefix, profile=d.aws_profile,
                   transform_instance_type=instance, poll_initial_seconds=d.poll_initial_seconds,
                   poll_max_seconds=d.poll_max_seconds,
                   timeout_grace_seconds=float(os.environ.get(ENV_GRACE, 1800.0)),
                   transform_timeout_seconds=float(os.environ.get(ENV_TRANSFORM_TIMEOUT, 3600.0)))

    def uri(self, *parts: str) -> str:
        return s3.join(f"s3://{self.bucket}", self.prefix, "automl", *parts)


# -- transform output -----------------------------------------------------------------

def positive_probabilities(text: str, keys: Sequence[str] = INFERENCE_KEYS) -> np.ndarray:
    """P(class 1) per line of a transform output holding ``keys`` (the serving code's parser)."""
    try:
        return _candidate_csv(text, keys)
    except CandidateOutputError as error:
        raise AutopilotError(f"transform {error}") from None


def inference_containers(candidate_containers: Sequence[Mapping[str, Any]],
                         keys: Sequence[str] = INFERENCE_KEYS) -> List[Dict[str, Any]]:
    """The best candidate's containers, asked to return ``keys`` (the SDK's ``inference_response_keys`` logic).

    Each container that declares SAGEMAKER_INFERENCE_SUPPORTED gets SAGEMAKER_INFERENCE_OUTPUT
    (what it emits) and, after another such container, SAGEMAKER_INFERENCE_INPUT. The last
    container must support every key: probabilities are what the evaluation needs.
    """
    containers = [{k: (dict(v) if isinstance(v, Mapping) else v) for k, v in c.items()} for c in candidate_containers]
    if not containers:
        raise AutopilotError("the best candidate has no inference containers")
    supported_last = (containers[-1].get("Environment") or {}).get("SAGEMAKER_INFERENCE_SUPPORTED", "")
    missing = [k for k in keys if k not in supported_last.split(",")]
    if missing:
        raise AutopilotError(f"the best candidate's last inference container cannot return {', '.join(missing)} "
                             f"(it supports {supported_last or 'only its default output'}); probabilities are needed "
                             "to evaluate it")
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


# -- waiting ---------------------------------------------------------------------------

def _wait(describe: Callable[[], dict], status_of: Callable[[dict], Tuple[str, str]], polling: Polling,
          what: str, progress: Callable[[str], None]) -> Optional[dict]:
    """Poll ``describe`` until a terminal status; None when ``polling.timeout`` ran out."""
    started, last, last_line = time.monotonic(), None, 0.0
    for wait in polling.waits():
        described = describe()
        status, detail = status_of(described)
        elapsed = time.monotonic() - started
        if (status, detail) != last or elapsed - last_line >= HEARTBEAT_SECONDS:
            progress(f"{what}: {status}{f' / {detail}' if detail else ''} "
                     f"({elapsed:.0f}s, at most {polling.timeout:.0f}s)")
            last, last_line = (status, detail), elapsed
        if status in TERMINAL:
            return described
        time.sleep(wait)
    return None


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

    def __init__(self, model_name: str, region: str, bucket: str, prefix: str, job_name: str, n_features: int,
                 profile: Optional[str] = None, instance_type: str = "ml.m5.large", instance_count: int = 1,
                 poll_initial_seconds: float = 30.0, poll_max_seconds: float = 120.0,
                 timeout_seconds: float = 3600.0, keys: Sequence[str] = INFERENCE_KEYS):
        self.model_name, self.region, self.bucket, self.prefix = model_name, region, bucket, prefix
        self.job_name, self.n_features, self.profile = job_name, int(n_features), profile
        self.instance_type, self.instance_count = instance_type, int(instance_count)
        self.poll_initial_seconds, self.poll_max_seconds = float(poll_initial_seconds), float(poll_max_seconds)
        self.timeout_seconds, self.keys = float(timeout_seconds), tuple(keys)
        self.classes_ = np.array([0, 1])
        self.last_transform: Optional[Dict[str, Any]] = None

    def __getstate__(self) -> Dict[str, Any]:
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
        """Batch-transform the rows (CSV, no header); P(class 0), P(class 1) per row."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise AutopilotError(f"{self.model_name} takes rows of {self.n_features} encoded features, got shape {X.shape}")
        if len(X) == 0:
            return np.zeros((0, 2))
        sm = client("sagemaker", self.region, self.profile)
        name = f"{MODEL_NAME_PREFIX}-tf-{_stamp()}-{uuid.uuid4().hex[:4]}"
        input_prefix, output_prefix = self._uri("transform", name, "input") + "/", self._uri("transform", name, "predictions") + "/"
        s3.upload_bytes(rows_csv(X), input_prefix + "rows.csv", self.region, self.profile, "text/csv")
        progress(f"Batch transform {name}: {len(X)} rows with model {self.model_name} "
                 f"({self.instance_type} x{self.instance_count})")
        with aws_errors(f"starting batch transform '{name}' with model '{self.model_name}'", AutopilotError):
            sm.create_transform_job(
                TransformJobName=name, ModelName=self.model_name, BatchStrategy="MultiRecord", MaxPayloadInMB=6,
                TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_prefix}},
                                "ContentType": "text/csv", "SplitType": "Line", "CompressionType": "None"},
                TransformOutput={"S3OutputPath": output_prefix, "Accept": "text/csv", "AssembleWith": "Line"},
                TransformResources={"InstanceType": self.instance_type, "InstanceCount": self.instance_count},
                Tags=_tags(**{"churn:model-name": self.model_name, "churn:automl-job": self.job_name}))
        polling = Polling(initial=self.poll_initial_seconds, factor=1.5, maximum=self.poll_max_seconds,
                          timeout=self.timeout_seconds)

        def describe() -> dict:
            with aws_errors(f"describing batch transform '{name}'", AutopilotError):
                return sm.describe_transform_job(TransformJobName=name)

        final = _wait(describe, lambda d: (d["TransformJobStatus"], ""), polling, f"Batch transform {name}", progress)
        if final is None:
            stopped = _stop(lambda: sm.stop_transform_job(TransformJobName=name), f"batch transform '{name}'")
            raise AutopilotError(f"batch transform '{name}' (model {self.model_name}) did not finish within "
                                 f"{self.timeout_seconds:.0f}s; {stopped}. Raise {ENV_TRANSFORM_TIMEOUT} or see "
                                 f"{_console(self.region, 'transform-jobs', name)}")
        if final["TransformJobStatus"] != "Completed":
            raise AutopilotError(f"batch transform '{name}' (model {self.model_name}) {final['TransformJobStatus']}: "
                                 f"{final.get('FailureReason') or 'no reason given'}; see "
                                 f"{_console(self.region, 'transform-jobs', name)}")
        outputs = [k for k in s3.list_keys(output_prefix, self.region, self.profile) if k.endswith(".out")]
        if len(outputs) != 1:
            raise AutopilotError(f"batch transform '{name}' left {len(outputs)} .out files under {output_prefix}, expected 1")
        output_uri = f"s3://{self.bucket}/{outputs[0]}"
        proba = positive_probabilities(s3.read_bytes(output_uri, self.region, self.profile).decode("utf-8"), self.keys)
        if len(proba) != len(X):
            raise AutopilotError(f"batch transform '{name}' returned {len(proba)} predictions for {len(X)} rows ({output_uri})")
        self.last_transform = {"transform_job_name": name, "input_uri": input_prefix + "rows.csv",
                               "predictions_uri": output_uri, "rows": int(len(X))}
        progress(f"Batch transform {name}: {len(X)} predictions saved at {output_uri}")
        return np.column_stack([1.0 - proba, proba])


def _stop(call: Callable[[], Any], what: str) -> str:
    try:
        call()
        return "it was stopped"
    except Exception as error:  # noqa: BLE001 - the timeout is the error to report
        return f"stopping it failed too ({explain(error, f'stopping {what}')}); stop it in the console"


# -- the engine ------------------------------------------------------------------------

class AutopilotEngine:
    """The cloud engine: a SageMaker AutoML V2 job; the best candidate becomes a SageMaker model."""

    name = ENGINE_NAME

    def __init__(self, config: Optional[AutopilotConfig] = None, progress: Callable[[str], None] = _print):
        self._config = config
        self.progress = progress

    @property
    def config(self) -> AutopilotConfig:
        if self._config is None:
            self._config = AutopilotConfig.from_active_stack()
        return self._config

    def train(self, train_frame: pd.DataFrame, preprocessor: Preprocessor, settings: AutoMLSettings) -> ModelBundle:
        started = time.perf_counter()
        config = self.config
        self._check(settings, preprocessor, train_frame)
        job = f"automl-{_stamp()}-{uuid.uuid4().hex[:4]}"
        X, _ = preprocessor.transform(train_frame)
        y = train_frame[preprocessor.target].to_numpy(dtype=int)
        locations = self._upload(job, X, y, preprocessor, settings, config)
        request = self.job_request(job, settings, preprocessor.target, locations, config)
        self.progress(f"Starting Autopilot job {job} ({settings.mode}, {settings.problem_type}, objective "
                      f"{settings.objective}, at most {int(settings.autopilot_max_runtime_sec)}s: autopilot_max_runtime_sec) on {locations['train_uri']}")
        sm = client("sagemaker", config.region, config.profile)
        with aws_errors(f"starting Autopilot job '{job}'", AutopilotError):
            arn = sm.create_auto_ml_job_v2(**request)["AutoMLJobArn"]
        described = self._wait_for_job(job, settings, config)
        candidate = described.get("BestCandidate") or {}
        if not candidate.get("InferenceContainers"):
            raise AutopilotError(f"Autopilot job '{job}' completed without a best candidate with inference containers; "
                                 f"see {_console(config.region, 'automl-jobs', job)}")
        candidates = self._count_candidates(job, config)
        model_info = self._create_model(job, arn, described, candidate, settings, locations, config)
        handle = AutopilotModel(model_info["model_name"], config.region, config.bucket, config.prefix, job,
                                n_features=len(preprocessor.feature_order), profile=config.profile,
                                instance_type=config.transform_instance_type,
                                instance_count=config.transform_instance_count,
                                poll_initial_seconds=config.poll_initial_seconds,
                                poll_max_seconds=config.poll_max_seconds,
                                timeout_seconds=config.transform_timeout_seconds)
        seconds = time.perf_counter() - started
        objective = candidate.get("FinalAutoMLJobObjectiveMetric") or {}
        score = objective.get("Value")
        family = candidate.get("CandidateName", "best_candidate")
        info = {
            "model_type": "automl",
            "automl_engine": self.name,
            "automl": {
                "objective": settings.objective, "mode": settings.mode, "best_family": family,
                "best_config": {"candidate": family, "job": job, "model": model_info["model_name"]},
                "best_cv_score": None if score is None else round(float(score), 6),
                "best_score_metric": objective.get("MetricName"),
                "trials": candidates, "families": {"autopilot": {"trials": candidates}},
                "ensemble_members": [{"family": family, "weight": 1.0}], "ensemble_cv_score": None,
                "settings": settings.to_dict(), "total_seconds": round(seconds, 3),
                "job_name": job, "job_arn": arn, "job_status": described.get("AutoMLJobStatus"),
            },
            "autopilot": model_info,
            "hyperparameters": {"best_family": family, "best_candidate": family, "automl_job": job},
            # the handle needs nothing beyond the bundle's libraries; serving the Autopilot model
            # itself is SageMaker's containers' business (see the module docstring)
            "serving_requirements": {},
            "random_state": settings.seed,
            "train_rows": int(len(train_frame)),
            "train_seconds": round(seconds, 3),
        }
        self.progress(f"Autopilot job {job}: best candidate {family} ({objective.get('MetricName', settings.objective)} "
                      f"{score}), {candidates} candidate(s); model {model_info['model_name']}")
        return ModelBundle(estimator=handle, preprocessor=preprocessor, info=info)

    # -- pieces ------------------------------------------------------------------------
    @staticmethod
    def _check(settings: AutoMLSettings, preprocessor: Preprocessor, train_frame: pd.DataFrame) -> None:
        if settings.target != preprocessor.target:
            raise AutopilotError(f"settings target {settings.target!r} differs from the preprocessor's {preprocessor.target!r}")
        metrics = _botocore_enum("AutoMLMetricEnum")
        if settings.objective not in metrics:
            raise AutopilotError(f"objective_metric_name {settings.objective!r} is not an Autopilot metric "
                                 f"({', '.join(m for m in metrics if m in ('Accuracy', 'AUC', 'BalancedAccuracy', 'F1', 'Precision', 'Recall'))} "
                                 "for binary classification)")
        y = train_frame[preprocessor.target]
        if set(pd.unique(y.astype(int))) != {0, 1}:
            raise AutopilotError(f"target '{preprocessor.target}' needs both classes 0 and 1 to train a binary classifier")

    def _upload(self, job: str, X: np.ndarray, y: np.ndarray, preprocessor: Preprocessor, settings: AutoMLSettings,
                config: AutopilotConfig) -> Dict[str, str]:
        """Training rows under data/train/ (Autopilot's input prefix); preprocessing artifacts under meta/."""
        train_prefix = config.uri(job, "data", "train") + "/"
        meta_prefix = config.uri(job, "meta") + "/"
        header = [*preprocessor.feature_order, preprocessor.target]
        train_uri = s3.upload_bytes(rows_csv(np.column_stack([X, y]), header), train_prefix + "train.csv",
                                    config.region, config.profile, "text/csv")
        metadata = {"feature_names": preprocessor.feature_order, "target_column": preprocessor.target,
                    "categorical_columns": sorted(preprocessor.classes), "label_encoders": preprocessor.classes,
                    "numeric_medians": preprocessor.medians, "train_rows": int(len(y)),
                    "positive_rate": round(float(np.mean(y)), 6), "auto_ml_job_name": job,
                    "train_data_uri": train_uri, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        for name, document in (("preprocessor.json", preprocessor.to_dict()), ("metadata.json", metadata)):
            s3.upload_bytes(json.dumps(document, indent=2, sort_keys=True).encode(), meta_prefix + name,
                            config.region, config.profile, "application/json")
        return {"train_prefix": train_prefix, "train_uri": train_uri, "meta_prefix": meta_prefix,
                "output_prefix": config.uri(job, "output") + "/", "model_info_uri": config.uri(job, "model", "model_info.json")}

    @staticmethod
    def job_request(job: str, settings: AutoMLSettings, target: str, locations: Mapping[str, str],
                    config: AutopilotConfig) -> Dict[str, Any]:
        """The CreateAutoMLJobV2 request for ``settings`` (the spec's keys -> Autopilot's fields)."""
        criteria: Dict[str, int] = {"MaxAutoMLJobRuntimeInSeconds": int(settings.autopilot_max_runtime_sec)}
        if settings.max_runtime_per_candidate_sec is not None:
            criteria["MaxRuntimePerTrainingJobInSeconds"] = int(settings.max_runtime_per_candidate_sec)
        if settings.max_candidates is not None:
            criteria["MaxCandidates"] = int(settings.max_candidates)
        return {
            "AutoMLJobName": job,
            "AutoMLJobInputDataConfig": [{
                "ChannelType": "training", "ContentType": "text/csv;header=present", "CompressionType": "None",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": locations["train_prefix"]}}}],
            "OutputDataConfig": {"S3OutputPath": locations["output_prefix"]},
            "AutoMLProblemTypeConfig": {"TabularJobConfig": {
                "Mode": settings.mode, "ProblemType": settings.problem_type, "TargetAttributeName": target,
                "CompletionCriteria": criteria}},
            "AutoMLJobObjective": {"MetricName": settings.objective},
            "RoleArn": config.role_arn,
            "Tags": _tags(**{"churn:engine": ENGINE_NAME}),
        }

    def _wait_for_job(self, job: str, settings: AutoMLSettings, config: AutopilotConfig) -> dict:
        sm = client("sagemaker", config.region, config.profile)
        timeout = float(settings.autopilot_max_runtime_sec) + config.timeout_grace_seconds
        polling = Polling(initial=config.poll_initial_seconds, factor=1.5, maximum=config.poll_max_seconds, timeout=timeout)

        def describe() -> dict:
            with aws_errors(f"describing Autopilot job '{job}'", AutopilotError):
                return sm.describe_auto_ml_job_v2(AutoMLJobName=job)

        final = _wait(describe, lambda d: (d["AutoMLJobStatus"], d.get("AutoMLJobSecondaryStatus", "")), polling,
                      f"Autopilot job {job}", self.progress)
        console = _console(config.region, "automl-jobs", job)
        if final is None:
            stopped = _stop(lambda: sm.stop_auto_ml_job(AutoMLJobName=job), f"Autopilot job '{job}'")
            raise AutopilotError(
                f"Autopilot job '{job}' did not finish within {timeout:.0f}s (autopilot_max_runtime_sec "
                f"{int(settings.autopilot_max_runtime_sec)} + {config.timeout_grace_seconds:.0f}s grace); {stopped}. Raise "
                f"autopilot_max_runtime_sec (or {ENV_GRACE}), or look at the job: {console}")
        status = final["AutoMLJobStatus"]
        if status != "Completed":
            partial = [p.get("PartialFailureMessage") for p in final.get("PartialFailureReasons") or []
                       if p.get("PartialFailureMessage")]
            raise AutopilotError(
                f"Autopilot job '{job}' {status}: {final.get('FailureReason') or 'no FailureReason given'}"
                + (f" (partial failures: {'; '.join(partial)})" if partial else "") + f"; see {console}")
        return final

    def _count_candidates(self, job: str, config: AutopilotConfig, limit: int = 20) -> int:
        """How many candidates the job trained (ListCandidatesForAutoMLJob, at most ``limit`` pages)."""
        sm = client("sagemaker", config.region, config.profile)
        count, token = 0, None
        with aws_errors(f"listing candidates of Autopilot job '{job}'", AutopilotError):
            for _ in range(limit):
                page = sm.list_candidates_for_auto_ml_job(AutoMLJobName=job, MaxResults=100,
                                                          **({"NextToken": token} if token else {}))
                count += len(page.get("Candidates", []))
                token = page.get("NextToken")
                if not token:
                    break
        return count

    def _create_model(self, job: str, job_arn: str, described: dict, candidate: dict, settings: AutoMLSettings,
                      locations: Mapping[str, str], config: AutopilotConfig) -> Dict[str, Any]:
        """A SageMaker model from the best candidate (unique timestamp name) and model_info.json."""
        sm = client("sagemaker", config.region, config.profile)
        containers = inference_containers(candidate["InferenceContainers"])
        name = f"{config.model_name_prefix}-{int(time.time())}-{uuid.uuid4().hex[:4]}"
        self.progress(f"Creating SageMaker model {name} from candidate {candidate.get('CandidateName')} "
                      f"({len(containers)} container(s))")
        with aws_errors(f"creating SageMaker model '{name}' from Autopilot job '{job}'", AutopilotError):
            model_arn = sm.create_model(ModelName=name, ExecutionRoleArn=config.role_arn, Containers=containers,
                                        Tags=_tags(**{"churn:automl-job": job}))["ModelArn"]
        objective = candidate.get("FinalAutoMLJobObjectiveMetric") or {}
        model_info = {
            "model_name": name, "model_arn": model_arn, "region": config.region,
            "auto_ml_job_name": job, "auto_ml_job_arn": job_arn,
            "best_candidate_name": candidate.get("CandidateName"),
            "objective_metric": {"name": objective.get("MetricName", settings.objective), "value": objective.get("Value"),
                                 "type": objective.get("Type")},
            "mode": settings.mode, "problem_type": settings.problem_type, "target_attribute_name": settings.target,
            "inference_containers": [{"Image": c.get("Image"), "ModelDataUrl": c.get("ModelDataUrl"),
                                      "Environment": c.get("Environment", {})} for c in containers],
            "inference_response_keys": list(INFERENCE_KEYS),
            "input_content_type": "text/csv (no header; encoded features in feature order, see meta/)",
            "train_data_uri": locations["train_uri"], "preprocessing_uri": locations["meta_prefix"],
            "automl_output_uri": locations["output_prefix"], "model_info_uri": locations["model_info_uri"],
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            s3.upload_bytes(json.dumps(model_info, indent=2, default=str).encode(), locations["model_info_uri"],
                            config.region, config.profile, "application/json")
        except AwsError as error:
            raise AutopilotError(f"model {name} was created but writing model_info.json failed: {error}") from None
        self.progress(f"Model {name}: {locations['model_info_uri']}")
        return model_info

"""SageMaker Autopilot (AutoML V2) as an AutoML engine: ``AutopilotEngine`` (name ``sagemaker_autopilot``).

The training step asks ``churn.automl.resolve_engine`` for the engine the active stack
names (label ``automl_engine: sagemaker_autopilot``); this one runs the search as a
SageMaker AutoML V2 job and returns the same ``ModelBundle`` type as the local engine, so
evaluate, gate, register and deploy are unchanged. This module is the job; what the best
candidate becomes (its containers, its SageMaker model, the batch-transform handle that is
the bundle's estimator, the serving chain) is ``churn.aws.autopilot_transform``.

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
4. Creates a SageMaker model from ``BestCandidate.InferenceContainers``
   (``churn.aws.autopilot_transform.create_model``) and returns the bundle whose estimator is
   an ``AutopilotModel`` on it.

The emulator tests (tests/cloud/test_autopilot.py) prove the requests, the S3 layout, the
polling/timeout/failure paths, the transform plumbing and the serving chain over HTTP; moto
trains nothing and runs no images, so the candidate there is a small stand-in that
``tests/cloud/moto_automl.py`` fits and answers for.

AWS settings come from the active stack's SageMaker endpoint deployer (region, role, bucket,
prefix, profile, polling); these environment variables override the waits:
``CHURN_AUTOPILOT_TIMEOUT_GRACE_SEC`` (default 1800), ``CHURN_AUTOPILOT_TRANSFORM_TIMEOUT_SEC``
(default 3600), ``CHURN_AUTOPILOT_TRANSFORM_INSTANCE_TYPE`` (default ml.m5.large; it must be a
batch transform instance type).

Length: about 360 lines, of which about 100 are docstrings (the S3 layout, the spec's steps, Args/Returns);
the code is one job's lifecycle (config, upload, request, wait, candidates, the bundle), which reads best whole.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churn.automl import AutoMLSettings
from churn.aws import s3
from churn.aws.athena import Polling
from churn.aws.autopilot_transform import (
    ENV_TRANSFORM_TIMEOUT,
    MODEL_NAME_PREFIX,
    AutopilotError,
    AutopilotModel,
    console_url,
    create_model,
    resource_tags,
    stop_after_timeout,
    utc_stamp,
    wait_for_status,
)
from churn.aws.clients import aws_errors, client
from churn.bundle import ModelBundle
from churn.preprocessing import Preprocessor
from churn.serving.inference_pipeline import rows_csv

ENGINE_NAME = "sagemaker_autopilot"
DEPLOYER_FLAVOR = "churn_sagemaker_endpoint"
ENV_GRACE = "CHURN_AUTOPILOT_TIMEOUT_GRACE_SEC"
ENV_TRANSFORM_INSTANCE = "CHURN_AUTOPILOT_TRANSFORM_INSTANCE_TYPE"

# Autopilot objective metrics for binary classification (what a wrong objective is told to choose from).
BINARY_METRICS = ("Accuracy", "AUC", "BalancedAccuracy", "F1", "Precision", "Recall")


def _print(message: str) -> None:
    print(message, flush=True)


def _botocore_enum(shape: str) -> list[str]:
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
    profile: str | None = None
    transform_instance_type: str = "ml.m5.large"
    transform_instance_count: int = 1
    poll_initial_seconds: float = 30.0
    poll_max_seconds: float = 120.0
    timeout_grace_seconds: float = 1800.0
    transform_timeout_seconds: float = 3600.0
    model_name_prefix: str = MODEL_NAME_PREFIX

    @classmethod
    def from_active_stack(cls) -> AutopilotConfig:
        """Settings from the active stack's SageMaker endpoint deployer (+ the environment overrides).

        Returns:
            The deployer's region, role, bucket, prefix, profile and polling, with the waits and the
            transform instance type from the environment.

        Raises:
            AutopilotError: the active stack has no SageMaker endpoint deployer, or
                ``CHURN_AUTOPILOT_TRANSFORM_INSTANCE_TYPE`` is not a batch transform instance type.
        """
        from zenml.client import Client

        stack = Client().active_stack
        deployer = stack.model_deployer
        if deployer is None or deployer.flavor != DEPLOYER_FLAVOR:
            raise AutopilotError(
                f"the {ENGINE_NAME} AutoML engine runs on the SageMaker stack: the active stack '{stack.name}' has "
                f"model deployer flavor {getattr(deployer, 'flavor', None)!r}, not {DEPLOYER_FLAVOR!r} (it supplies "
                "region, execution role, bucket and prefix); set up the stack with "
                "`python run.py stack setup sagemaker --config FILE`"
            )
        d = deployer.config
        offered = _botocore_enum("TransformInstanceType")
        instance = os.environ.get(ENV_TRANSFORM_INSTANCE) or "ml.m5.large"
        if instance not in offered:
            raise AutopilotError(f"{ENV_TRANSFORM_INSTANCE}={instance} is not a batch transform instance type")
        return cls(
            region=d.region,
            role_arn=d.role_arn,
            bucket=d.bucket,
            prefix=d.prefix,
            profile=d.aws_profile,
            transform_instance_type=instance,
            poll_initial_seconds=d.poll_initial_seconds,
            poll_max_seconds=d.poll_max_seconds,
            timeout_grace_seconds=float(os.environ.get(ENV_GRACE, 1800.0)),
            transform_timeout_seconds=float(os.environ.get(ENV_TRANSFORM_TIMEOUT, 3600.0)),
        )

    def uri(self, *parts: str) -> str:
        """``s3://<bucket>/<prefix>/automl/<parts...>``."""
        return s3.join(f"s3://{self.bucket}", self.prefix, "automl", *parts)


# -- the engine ------------------------------------------------------------------------


class AutopilotEngine:
    """The cloud engine: a SageMaker AutoML V2 job; the best candidate becomes a SageMaker model."""

    name = ENGINE_NAME

    def __init__(self, config: AutopilotConfig | None = None, progress: Callable[[str], None] = _print):
        self._config = config
        self.progress = progress

    @property
    def config(self) -> AutopilotConfig:
        if self._config is None:
            self._config = AutopilotConfig.from_active_stack()
        return self._config

    def train(self, train_frame: pd.DataFrame, preprocessor: Preprocessor, settings: AutoMLSettings) -> ModelBundle:
        """Run one Autopilot job on the encoded training rows; its best candidate becomes the bundle's estimator.

        Args:
            train_frame: the training rows (features and target).
            preprocessor: the fitted preprocessor; the job trains on its encoding.
            settings: the AutoML settings (mode, objective, runtime limits, target).

        Returns:
            A bundle whose estimator is an ``AutopilotModel`` on the best candidate's SageMaker model.

        Raises:
            AutopilotError: bad settings or target, or the job failed, timed out or gave no usable candidate.
        """
        started = time.perf_counter()
        config = self.config
        self._check(settings, preprocessor, train_frame)
        job = f"automl-{utc_stamp()}-{uuid.uuid4().hex[:4]}"
        X, _ = preprocessor.transform(train_frame)
        y = train_frame[preprocessor.target].to_numpy(dtype=int)
        locations = self._upload(job, X, y, preprocessor, settings, config)
        arn = self._start_job(job, settings, preprocessor.target, locations, config)
        described = self._wait_for_job(job, settings, config)
        candidate = described.get("BestCandidate") or {}
        if not candidate.get("InferenceContainers"):
            raise AutopilotError(
                f"Autopilot job '{job}' completed without a best candidate with inference containers; "
                f"see {console_url(config.region, 'automl-jobs', job)}"
            )
        candidates = self._count_candidates(job, config)
        model_info = create_model(job, arn, candidate, settings, locations, config, self.progress)
        handle = AutopilotModel(
            model_info["model_name"],
            config.region,
            config.bucket,
            config.prefix,
            job,
            n_features=len(preprocessor.feature_order),
            profile=config.profile,
            instance_type=config.transform_instance_type,
            instance_count=config.transform_instance_count,
            poll_initial_seconds=config.poll_initial_seconds,
            poll_max_seconds=config.poll_max_seconds,
            timeout_seconds=config.transform_timeout_seconds,
        )
        info = self._bundle_info(
            job, arn, described, candidates, model_info, settings, len(train_frame), time.perf_counter() - started
        )
        objective = candidate.get("FinalAutoMLJobObjectiveMetric") or {}
        self.progress(
            f"Autopilot job {job}: best candidate {info['automl']['best_family']} "
            f"({objective.get('MetricName', settings.objective)} {objective.get('Value')}), "
            f"{candidates} candidate(s); model {model_info['model_name']}"
        )
        return ModelBundle(estimator=handle, preprocessor=preprocessor, info=info)

    def _bundle_info(
        self,
        job: str,
        arn: str,
        described: dict,
        candidates: int,
        model_info: dict[str, Any],
        settings: AutoMLSettings,
        train_rows: int,
        seconds: float,
    ) -> dict[str, Any]:
        """The bundle's ``info``: the same keys as the local engine's, plus ``autopilot`` (the model's info)."""
        candidate = described.get("BestCandidate") or {}
        objective = candidate.get("FinalAutoMLJobObjectiveMetric") or {}
        score = objective.get("Value")
        family = candidate.get("CandidateName", "best_candidate")
        return {
            "model_type": "automl",
            "automl_engine": self.name,
            "automl": {
                "objective": settings.objective,
                "mode": settings.mode,
                "best_family": family,
                "best_config": {"candidate": family, "job": job, "model": model_info["model_name"]},
                "best_cv_score": None if score is None else round(float(score), 6),
                "best_score_metric": objective.get("MetricName"),
                "trials": candidates,
                "families": {"autopilot": {"trials": candidates}},
                "ensemble_members": [{"name": family, "family": "autopilot", "weight": 1.0}],  # one candidate
                "ensemble_cv_score": None,
                "settings": settings.to_dict(),
                "total_seconds": round(seconds, 3),
                "job_name": job,
                "job_arn": arn,
                "job_status": described.get("AutoMLJobStatus"),
            },
            "autopilot": model_info,
            "hyperparameters": {"best_family": family, "best_candidate": family, "automl_job": job},
            # the handle needs nothing beyond the bundle's libraries; serving the Autopilot model
            # itself is SageMaker's containers' business (see churn.aws.autopilot_transform)
            "serving_requirements": {},
            "random_state": settings.seed,
            "train_rows": int(train_rows),
            "train_seconds": round(seconds, 3),
        }

    def _start_job(
        self, job: str, settings: AutoMLSettings, target: str, locations: Mapping[str, str], config: AutopilotConfig
    ) -> str:
        """CreateAutoMLJobV2; the job's ARN."""
        request = self.job_request(job, settings, target, locations, config)
        self.progress(
            f"Starting Autopilot job {job} ({settings.mode}, {settings.problem_type}, objective "
            f"{settings.objective}, at most {int(settings.autopilot_max_runtime_sec)}s: "
            f"autopilot_max_runtime_sec) on {locations['train_uri']}"
        )
        sm = client("sagemaker", config.region, config.profile)
        with aws_errors(f"starting Autopilot job '{job}'", AutopilotError):
            return sm.create_auto_ml_job_v2(**request)["AutoMLJobArn"]

    # -- pieces ------------------------------------------------------------------------
    @staticmethod
    def _check(settings: AutoMLSettings, preprocessor: Preprocessor, train_frame: pd.DataFrame) -> None:
        if settings.target != preprocessor.target:
            raise AutopilotError(
                f"settings target {settings.target!r} differs from the preprocessor's {preprocessor.target!r}"
            )
        metrics = _botocore_enum("AutoMLMetricEnum")
        if settings.objective not in metrics:
            raise AutopilotError(
                f"objective_metric_name {settings.objective!r} is not an Autopilot metric "
                f"({', '.join(m for m in metrics if m in BINARY_METRICS)} "
                "for binary classification)"
            )
        y = train_frame[preprocessor.target]
        if set(pd.unique(y.astype(int))) != {0, 1}:
            raise AutopilotError(
                f"target '{preprocessor.target}' needs both classes 0 and 1 to train a binary classifier"
            )

    def _upload(
        self,
        job: str,
        X: np.ndarray,
        y: np.ndarray,
        preprocessor: Preprocessor,
        settings: AutoMLSettings,
        config: AutopilotConfig,
    ) -> dict[str, str]:
        """Training rows under data/train/ (Autopilot's input prefix); preprocessing artifacts under meta/."""
        train_prefix = config.uri(job, "data", "train") + "/"
        meta_prefix = config.uri(job, "meta") + "/"
        header = [*preprocessor.feature_order, preprocessor.target]
        train_uri = s3.upload_bytes(
            rows_csv(np.column_stack([X, y]), header),
            train_prefix + "train.csv",
            config.region,
            config.profile,
            "text/csv",
        )
        metadata = {
            "feature_names": preprocessor.feature_order,
            "target_column": preprocessor.target,
            "categorical_columns": sorted(preprocessor.classes),
            "label_encoders": preprocessor.classes,
            "numeric_medians": preprocessor.medians,
            "train_rows": int(len(y)),
            "positive_rate": round(float(np.mean(y)), 6),
            "auto_ml_job_name": job,
            "train_data_uri": train_uri,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        for name, document in (("preprocessor.json", preprocessor.to_dict()), ("metadata.json", metadata)):
            s3.upload_bytes(
                json.dumps(document, indent=2, sort_keys=True).encode(),
                meta_prefix + name,
                config.region,
                config.profile,
                "application/json",
            )
        return {
            "train_prefix": train_prefix,
            "train_uri": train_uri,
            "meta_prefix": meta_prefix,
            "output_prefix": config.uri(job, "output") + "/",
            "model_info_uri": config.uri(job, "model", "model_info.json"),
        }

    @staticmethod
    def job_request(
        job: str, settings: AutoMLSettings, target: str, locations: Mapping[str, str], config: AutopilotConfig
    ) -> dict[str, Any]:
        """The CreateAutoMLJobV2 request for ``settings`` (the spec's keys -> Autopilot's fields).

        Args:
            job: the job's name.
            settings: the AutoML settings (mode, problem type, objective, completion criteria).
            target: the target column.
            locations: the job's S3 locations (``train_prefix``, ``output_prefix``).
            config: where the engine runs (the execution role).

        Returns:
            The request's keyword arguments.
        """
        criteria: dict[str, int] = {"MaxAutoMLJobRuntimeInSeconds": int(settings.autopilot_max_runtime_sec)}
        if settings.max_runtime_per_candidate_sec is not None:
            criteria["MaxRuntimePerTrainingJobInSeconds"] = int(settings.max_runtime_per_candidate_sec)
        if settings.max_candidates is not None:
            criteria["MaxCandidates"] = int(settings.max_candidates)
        return {
            "AutoMLJobName": job,
            "AutoMLJobInputDataConfig": [
                {
                    "ChannelType": "training",
                    "ContentType": "text/csv;header=present",
                    "CompressionType": "None",
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": locations["train_prefix"]}},
                }
            ],
            "OutputDataConfig": {"S3OutputPath": locations["output_prefix"]},
            "AutoMLProblemTypeConfig": {
                "TabularJobConfig": {
                    "Mode": settings.mode,
                    "ProblemType": settings.problem_type,
                    "TargetAttributeName": target,
                    "CompletionCriteria": criteria,
                }
            },
            "AutoMLJobObjective": {"MetricName": settings.objective},
            "RoleArn": config.role_arn,
            "Tags": resource_tags(**{"churn:engine": ENGINE_NAME}),
        }

    def _wait_for_job(self, job: str, settings: AutoMLSettings, config: AutopilotConfig) -> dict:
        sm = client("sagemaker", config.region, config.profile)
        timeout = float(settings.autopilot_max_runtime_sec) + config.timeout_grace_seconds
        polling = Polling(
            initial=config.poll_initial_seconds, factor=1.5, maximum=config.poll_max_seconds, timeout=timeout
        )

        def describe() -> dict:
            with aws_errors(f"describing Autopilot job '{job}'", AutopilotError):
                return sm.describe_auto_ml_job_v2(AutoMLJobName=job)

        final = wait_for_status(
            describe,
            lambda d: (d["AutoMLJobStatus"], d.get("AutoMLJobSecondaryStatus", "")),
            polling,
            f"Autopilot job {job}",
            self.progress,
        )
        console = console_url(config.region, "automl-jobs", job)
        if final is None:
            stopped = stop_after_timeout(lambda: sm.stop_auto_ml_job(AutoMLJobName=job), f"Autopilot job '{job}'")
            raise AutopilotError(
                f"Autopilot job '{job}' did not finish within {timeout:.0f}s (autopilot_max_runtime_sec "
                f"{int(settings.autopilot_max_runtime_sec)} + {config.timeout_grace_seconds:.0f}s grace); "
                f"{stopped}. Raise "
                f"autopilot_max_runtime_sec (or {ENV_GRACE}), or look at the job: {console}"
            )
        status = final["AutoMLJobStatus"]
        if status != "Completed":
            partial = [
                p.get("PartialFailureMessage")
                for p in final.get("PartialFailureReasons") or []
                if p.get("PartialFailureMessage")
            ]
            raise AutopilotError(
                f"Autopilot job '{job}' {status}: {final.get('FailureReason') or 'no FailureReason given'}"
                + (f" (partial failures: {'; '.join(partial)})" if partial else "")
                + f"; see {console}"
            )
        return final

    def _count_candidates(self, job: str, config: AutopilotConfig, limit: int = 20) -> int:
        """How many candidates the job trained (ListCandidatesForAutoMLJob, at most ``limit`` pages)."""
        sm = client("sagemaker", config.region, config.profile)
        count, token = 0, None
        with aws_errors(f"listing candidates of Autopilot job '{job}'", AutopilotError):
            for _ in range(limit):
                page = sm.list_candidates_for_auto_ml_job(
                    AutoMLJobName=job, MaxResults=100, **({"NextToken": token} if token else {})
                )
                count += len(page.get("Candidates", []))
                token = page.get("NextToken")
                if not token:
                    break
        return count

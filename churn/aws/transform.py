"""Batch inference at scale on SageMaker: one Batch Transform job with the serving image.

What an endpoint would run (the registered model package's containers: our image, or the
serial chain of an Autopilot bundle) becomes a SageMaker model for the job, created from the
model package when it is Approved (``churn.aws.endpoint.model_layout``, as for an endpoint); the features
go to S3 as CSV objects of ``chunk_rows`` rows, each with its header row (one object is one
request: SplitType None, so every request is a complete CSV as the endpoint contract
wants); the job scores them on ``instance_count`` instances and answers each with the
serving code's JSON (``{"predictions": [...], "probabilities": [...]}``). The answers are
joined back to the customer ids in input order (SageMaker keeps one ``.out`` per input
object) and streamed to the output with ``churn.batch.write_chunks``: the same columns,
written atomically, as the in-process path.

Layout: ``s3://<bucket>/<prefix>/batch/<job>/{input,output}/``; both are removed when the
job ends, whether it succeeded or not (they hold customer data), and so is the job's model.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from churn.aws import s3
from churn.aws.athena import Polling
from churn.aws.clients import AwsError, aws_errors, client, explain
from churn.aws.endpoint import SageMakerEndpoints, model_layout, tag_list
from churn.batch import write_chunks
from churn.schema import ID_COLUMN, NON_FEATURE_COLUMNS

# JSON with probabilities: a transform job sends no query string or CustomAttributes, so it asks in Accept
ACCEPT = "application/json; probabilities=true"
# what one transform request may carry: the serving container's body limit (churn.serving.server.DEFAULT_MAX_BODY,
# 50 MB), which is below SageMaker's own MaxPayloadInMB ceiling of 100
MAX_PAYLOAD_MB = 50


class TransformError(AwsError):
    """A batch transform that did not give a complete result; the message says which job and why."""


def _print(message: str) -> None:
    print(message, flush=True)


def job_name(model_package_group: str) -> str:
    """``<group>-batch-<utc stamp>-<rand>``: unique, within SageMaker's 63 characters and name pattern.

    The suffix takes 24 characters, so a group name of up to 39 characters is kept whole, which is
    what the execution role's ``{{ModelPackageGroup}}-batch-*`` grant matches.
    """
    stamp = time.strftime("%y%m%d%H%M%S", time.gmtime())
    return f"{model_package_group[:39].rstrip('-')}-batch-{stamp}-{uuid.uuid4().hex[:4]}"


def check_instance_type(instance_type: str) -> None:
    import botocore.session

    offered = botocore.session.get_session().get_service_model("sagemaker").shape_for("TransformInstanceType").enum
    if instance_type not in offered:
        raise TransformError(
            f"instance_type {instance_type!r} is not a Batch Transform instance type "
            "(configs/batch.yaml); use e.g. ml.m5.xlarge"
        )


def _feature_columns(features: pd.DataFrame, target: str | None) -> list[str]:
    dropped = set(NON_FEATURE_COLUMNS) | ({target} if target else set())
    return [c for c in features.columns if c not in dropped]


def upload_inputs(
    features: pd.DataFrame, columns: list[str], prefix: str, chunk_rows: int, region: str, profile: str | None
) -> list[dict[str, Any]]:
    """One CSV object (header row + ``chunk_rows`` rows) per chunk; returns [{key, start, rows, bytes}]."""
    parts = []
    for number, start in enumerate(range(0, len(features), chunk_rows)):
        chunk = features.iloc[start : start + chunk_rows]
        body = chunk[columns].to_csv(index=False).encode()
        name = f"part-{number:05d}.csv"
        s3.upload_bytes(body, prefix + name, region, profile, "text/csv")
        parts.append({"name": name, "start": start, "rows": len(chunk), "bytes": len(body)})
    return parts


def parse_answer(text: str, rows: int, where: str) -> tuple:
    """(labels, probabilities) from one JSON answer of the serving code, checked against the row count."""
    try:
        document = json.loads(text)
        labels = np.asarray(document["predictions"], dtype=np.int64)
        proba = np.asarray(document["probabilities"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as error:
        raise TransformError(
            f"{where} is not the serving code's JSON answer with predictions and probabilities "
            f"({type(error).__name__}: {error}); first bytes: {text[:200]!r}"
        ) from None
    if len(labels) != rows or len(proba) != rows:
        raise TransformError(f"{where} holds {len(labels)} predictions and {len(proba)} probabilities for {rows} rows")
    return labels, proba


class BatchTransform:
    """Runs a batch through a SageMaker Batch Transform job with the serving containers of a registered model."""

    def __init__(
        self, endpoints: SageMakerEndpoints, polling: Polling | None = None, progress: Callable[[str], None] = _print
    ):
        self.endpoints = endpoints
        self.settings = endpoints.settings
        self.polling = polling or Polling(initial=30.0, factor=1.5, maximum=120.0, timeout=6 * 3600.0)
        self.progress = progress

    @property
    def _sm(self):
        return client("sagemaker", self.settings.region, self.settings.profile)

    def console_url(self, name: str) -> str:
        region = self.settings.region
        return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/transform-jobs/{name}"

    def run(
        self,
        features: pd.DataFrame,
        target: str | None,
        model_version: dict[str, Any],
        location: str,
        output_format: str,
        chunk_rows: int,
        run_id: str,
        instance_type: str,
        instance_count: int,
    ) -> dict[str, Any]:
        s = self.settings
        check_instance_type(instance_type)
        if features.empty:
            raise TransformError("no records to score")
        model_name, version = model_version["model_name"], str(model_version["version"])
        artifact = self.endpoints.serving_artifact(
            "batch",
            model_name,
            version,
            model_version.get("bundle_uri") or model_version["model_source_uri"],
            model_version["bundle_sha256"],
        )
        name = job_name(model_name)
        root = s3.join(f"s3://{s.bucket}", s.prefix, "batch", name)
        input_prefix, output_prefix = root + "/input/", root + "/output/"
        columns = _feature_columns(features, target)
        parts = upload_inputs(features, columns, input_prefix, chunk_rows, s.region, s.profile)
        largest = max(p["bytes"] for p in parts)
        if largest > MAX_PAYLOAD_MB * 1024 * 1024:
            s3.delete_prefix(root + "/", s.region, s.profile)
            raise TransformError(
                f"a chunk of {chunk_rows} rows is {largest / 2**20:.0f} MB as CSV, above SageMaker's "
                f"{MAX_PAYLOAD_MB} MB per transform request; lower chunk_rows in configs/batch.yaml"
            )
        tags = tag_list(
            {
                "managed-by": "churn-mlops",
                "churn:model-name": model_name,
                "churn:model-version": version,
                "churn:run-id": run_id,
                "churn:model-package-arn": artifact["model_package_arn"],
            }
        )
        with aws_errors(f"creating SageMaker model '{name}' for the batch transform", TransformError):
            self._sm.create_model(ModelName=name, ExecutionRoleArn=s.role_arn, Tags=tags, **model_layout(artifact))
        try:
            self.progress(
                f"Batch transform {name}: {len(features):,} customers in {len(parts)} request(s) of at most "
                f"{chunk_rows:,} rows with {model_name} v{version} ({instance_type} x{instance_count})"
            )
            with aws_errors(f"starting batch transform '{name}'", TransformError):
                self._sm.create_transform_job(
                    TransformJobName=name,
                    ModelName=name,
                    BatchStrategy="SingleRecord",
                    MaxPayloadInMB=min(MAX_PAYLOAD_MB, max(1, math.ceil(largest / 2**20))),
                    ModelClientConfig={"InvocationsTimeoutInSeconds": 3600, "InvocationsMaxRetries": 1},
                    TransformInput={
                        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_prefix}},
                        "ContentType": "text/csv",
                        "SplitType": "None",
                        "CompressionType": "None",
                    },
                    TransformOutput={"S3OutputPath": output_prefix, "Accept": ACCEPT, "AssembleWith": "None"},
                    TransformResources={"InstanceType": instance_type, "InstanceCount": int(instance_count)},
                    Tags=tags,
                )
            self._wait(name)
            counts = write_chunks(
                self._results(features, parts, output_prefix, model_name, version, run_id),
                location,
                output_format,
                region=s.region,
                profile=s.profile,
            )
        finally:
            self._delete_model(name)
            self._delete_prefix(root + "/")
        self.progress(f"Batch transform {name}: {counts['rows']:,} predictions written to {location}")
        return {
            "rows": counts["rows"],
            "location": location,
            "scored_by": f"SageMaker Batch Transform {name}",
            "transform_job_name": name,
            "instance_type": instance_type,
            "instance_count": int(instance_count),
            "positive_rate": counts["positives"] / counts["rows"] if counts["rows"] else 0.0,
        }

    def _wait(self, name: str) -> None:
        started, status = time.monotonic(), "InProgress"
        described: dict[str, Any] = {}
        for wait in self.polling.waits():
            with aws_errors(f"describing batch transform '{name}'", TransformError):
                described = self._sm.describe_transform_job(TransformJobName=name)
            status = described["TransformJobStatus"]
            if status == "Completed":
                self.progress(f"Batch transform {name} completed in {time.monotonic() - started:.0f}s")
                return
            if status in ("Failed", "Stopped"):
                raise TransformError(
                    f"batch transform '{name}' {status}: {described.get('FailureReason') or 'no reason given'}; "
                    f"nothing was written. See {self.console_url(name)}"
                )
            time.sleep(wait)
        try:
            self._sm.stop_transform_job(TransformJobName=name)
            stopped = "it was stopped"
        except Exception as error:  # noqa: BLE001 - the timeout is the error to report
            stopped = f"stopping it failed too ({explain(error, 'StopTransformJob')})"
        raise TransformError(
            f"batch transform '{name}' was still {status} after {self.polling.timeout:.0f}s; {stopped}; "
            f"nothing was written. See {self.console_url(name)}"
        )

    def _results(
        self,
        features: pd.DataFrame,
        parts: list[dict[str, Any]],
        output_prefix: str,
        model_name: str,
        version: str,
        run_id: str,
    ) -> Iterator[pd.DataFrame]:
        """The job's answers, one input object at a time, joined to the customer ids in input order."""
        s = self.settings
        for part in parts:
            uri = output_prefix + part["name"] + ".out"
            labels, proba = parse_answer(s3.read_bytes(uri, s.region, s.profile).decode("utf-8"), part["rows"], uri)
            ids = features[ID_COLUMN].iloc[part["start"] : part["start"] + part["rows"]].to_numpy()
            yield pd.DataFrame(
                {
                    ID_COLUMN: ids,
                    "prediction": labels,
                    "probability": proba,
                    "model_name": model_name,
                    "model_version": version,
                    "run_id": run_id,
                }
            )

    def _delete_prefix(self, uri: str) -> None:
        try:
            s3.delete_prefix(uri, self.settings.region, self.settings.profile)
        except AwsError as error:  # the job's outcome is what to report
            self.progress(f"warning: {error}; the batch's input and output copies are still under {uri}")

    def _delete_model(self, name: str) -> None:
        try:
            self._sm.delete_model(ModelName=name)
        except Exception as error:  # noqa: BLE001 - the job's outcome is what to report
            self.progress(f"warning: {explain(error, f'deleting the batch model {name}')}; delete it in the console")

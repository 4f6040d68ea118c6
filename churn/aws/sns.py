"""Failure notifications through SNS (email subscribers get subject + body).

Subjects follow SNS's rules: at most 100 characters, printable ASCII, no line breaks.
Subject and body are redacted (``churn.redaction``) before they are cut to SNS's limits, so
no credential-shaped string is sent, whole or in part.
When the step runs as a SageMaker job, the body names its CloudWatch log group/stream.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from churn.aws.clients import aws_errors, client
from churn.redaction import redact

MAX_SUBJECT = 100
MAX_MESSAGE_BYTES = 256 * 1024 - 1024
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
PROCESSING_JOB_CONFIG = Path("/opt/ml/config/processingjobconfig.json")


def sns_subject(text: str) -> str:
    """``text`` made valid as an SNS subject (printable ASCII, one line, <= 100 characters)."""
    flat = _NOT_PRINTABLE.sub("?", " ".join(redact(text).split()))
    if len(flat) > MAX_SUBJECT:
        flat = flat[: MAX_SUBJECT - 3].rstrip() + "..."
    return flat or "Pipeline notification"


def cloudwatch_log_location(region: str) -> str | None:
    """Where this process's logs are in CloudWatch, when it runs as a SageMaker job; else None."""
    job, group = None, None
    if os.environ.get("TRAINING_JOB_NAME"):
        job, group = os.environ["TRAINING_JOB_NAME"], "/aws/sagemaker/TrainingJobs"
    elif PROCESSING_JOB_CONFIG.is_file():
        try:
            job = json.loads(PROCESSING_JOB_CONFIG.read_text()).get("ProcessingJobName")
        except (OSError, ValueError):
            job = None
        group = "/aws/sagemaker/ProcessingJobs"
    if not job:
        return None
    console = (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/"
        f"log-group/{group.replace('/', '$252F')}$3FlogStreamNameFilter$3D{job}"
    )
    return (
        f"CloudWatch log group {group}, streams {job}/* ({console}); "
        f"`aws logs tail {group} --log-stream-name-prefix {job}`"
    )


def publish(topic_arn: str, subject: str, message: str, region: str, profile: str | None = None) -> str:
    """Publish a (redacted) message; returns the SNS MessageId."""
    body = redact(message)
    encoded = body.encode("utf-8")
    if len(encoded) > MAX_MESSAGE_BYTES:
        body = encoded[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore") + "\n[truncated]"
    with aws_errors(f"publishing to SNS topic {topic_arn}"):
        response = client("sns", region, profile).publish(
            TopicArn=topic_arn, Subject=sns_subject(subject), Message=body
        )
    return response["MessageId"]

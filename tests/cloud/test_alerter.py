"""SNS alerter flavor against the emulator: the message arrives (read through an SQS subscription)."""

from __future__ import annotations

import logging

from stacks.contracts import FailureAlertParams
from tests.cloud.conftest import boto

ACCESS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"  # AWS's documented example credentials
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"


def _message(params: FailureAlertParams) -> str:
    """What steps/alert.py sends."""
    return (
        f"{params.subject}\nPipeline: {params.pipeline}\nStep: {params.step}\n"
        f"Run: {params.run_name} ({params.run_id})\n"
        f"Error: {params.error}\nLogs: {params.logs}"
    )


def test_failure_alert_arrives_with_subject_body_and_no_credentials(aws, sns_inbox, sagemaker_stack, monkeypatch):
    _, read = sns_inbox
    alerter = sagemaker_stack.alerter
    params = FailureAlertParams(
        pipeline="churn_rf_training",
        step="deploy",
        run_id="0f7c",
        run_name="churn_rf_training-2026_01_01",
        error=f"DeploymentError: update failed (client had key {ACCESS_KEY} and secret {SECRET_KEY})",
        logs="zenml pipeline runs logs 0f7c",
    )
    monkeypatch.setenv("TRAINING_JOB_NAME", "churn-rf-training-deploy-abc123")  # as inside a SageMaker job
    assert alerter.post(_message(params), params)

    [received] = read()
    assert received["Subject"] == "[Pipeline Failed] churn_rf_training.deploy"
    body = received["Message"]
    assert "Pipeline: churn_rf_training\nStep: deploy\n" in body and "DeploymentError: update failed" in body
    assert "Logs: zenml pipeline runs logs 0f7c" in body
    assert (
        "CloudWatch logs: CloudWatch log group /aws/sagemaker/TrainingJobs, streams churn-rf-training-deploy-abc123/*"
        in body
    )
    assert ACCESS_KEY not in str(received) and SECRET_KEY not in str(received) and "[REDACTED" in body

    long = FailureAlertParams(pipeline="p" * 90, step="step_with_a_long_name", error="x")
    assert alerter.post(_message(long), long)
    [received] = read()
    assert len(received["Subject"]) <= 100 and received["Subject"].startswith("[Pipeline Failed] ppp")


def test_a_failed_publish_is_logged_not_raised(aws, sns_inbox, sagemaker_stack, caplog):
    topic, _ = sns_inbox
    boto("sns").delete_topic(TopicArn=topic)
    params = FailureAlertParams(pipeline="churn_rf_training", step="source_features", error=f"boom {ACCESS_KEY}")
    with caplog.at_level(logging.ERROR):
        assert sagemaker_stack.alerter.post(_message(params), params) is False
    assert "could not send the alert to SNS: publishing to SNS topic" in caplog.text
    assert "NotFound" in caplog.text and ACCESS_KEY not in caplog.text and "Traceback" not in caplog.text

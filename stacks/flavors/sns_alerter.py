"""SNS alerter flavor (ZenML ships none): failure notifications by email through an SNS topic.

Subject ``FailureAlertParams.subject`` (``[Pipeline Failed] <pipeline>.<step>``, at most
100 characters); body: pipeline, step, error, run id/name, where the logs are (the
CloudWatch log stream when the step ran as a SageMaker job). Subject and body are
redacted, so no credential-looking string is ever sent or logged. A failure to publish
is logged and reported as ``False``; it never hides the step's own error.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import model_validator
from zenml.alerter.base_alerter import BaseAlerter, BaseAlerterConfig, BaseAlerterFlavor, BaseAlerterStepParameters

from churn.aws.clients import AwsError
from churn.aws.settings import component_check
from churn.aws.sns import cloudwatch_log_location, publish
from churn.redaction import redact
from stacks.contracts import FailureAlertParams

FLAVOR = "churn_sns"
log = logging.getLogger(__name__)


class SNSAlerterConfig(BaseAlerterConfig):
    """``sns_topic_arn``: the topic email subscribers listen on (spec key of the same name)."""

    region: str
    sns_topic_arn: str
    aws_profile: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, values: Any) -> Any:
        return component_check(values)


class SNSAlerter(BaseAlerter):
    @property
    def config(self) -> SNSAlerterConfig:
        return self._config  # type: ignore[return-value]

    def compose(self, message: str, params: BaseAlerterStepParameters | None = None) -> tuple[str, str]:
        """(subject, body) for a message; failure alerts get the structured subject and log location."""
        if isinstance(params, FailureAlertParams):
            subject = params.subject
            body = (
                message
                if params.error in message
                else (
                    f"Pipeline: {params.pipeline}\nStep: {params.step}\nRun: {params.run_name} ({params.run_id})\n"
                    f"Error: {params.error}\nLogs: {params.logs}\n\n{message}"
                )
            )
        else:
            subject = message.strip().splitlines()[0] if message.strip() else "Pipeline notification"
            body = message
        cloudwatch = cloudwatch_log_location(self.config.region)
        if cloudwatch:
            body += f"\nCloudWatch logs: {cloudwatch}"
        return subject, body

    def post(self, message: str, params: BaseAlerterStepParameters | None = None) -> bool:
        subject, body = self.compose(message, params)
        try:
            message_id = publish(self.config.sns_topic_arn, subject, body, self.config.region, self.config.aws_profile)
        except AwsError as error:
            log.error("could not send the alert to SNS: %s; the alert was: %s", error, redact(body))
            return False
        log.info("alert sent to %s (message %s)", self.config.sns_topic_arn, message_id)
        return True

    def ask(self, question: str, params: BaseAlerterStepParameters | None = None) -> bool:
        """SNS is one-way: the question is sent, and the answer is always "no"."""
        self.post(question, params)
        return False


class SNSAlerterFlavor(BaseAlerterFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[SNSAlerterConfig]:
        return SNSAlerterConfig

    @property
    def implementation_class(self) -> type[SNSAlerter]:
        return SNSAlerter

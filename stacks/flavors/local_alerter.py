"""Local alerter flavor: every alert goes to the log and to a JSON-lines outbox file.

Everything written (message and structured fields) is redacted first (``churn.redaction``).
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

from zenml.alerter.base_alerter import BaseAlerter, BaseAlerterConfig, BaseAlerterFlavor, BaseAlerterStepParameters
from zenml.config.global_config import GlobalConfiguration

from churn.redaction import redact
from stacks.contracts import FailureAlertParams

FLAVOR = "churn_local_outbox"
log = logging.getLogger(__name__)


class LocalAlerterConfig(BaseAlerterConfig):
    """``outbox``: JSON-lines file the alerts are appended to (default: in ZenML's local stores)."""

    outbox: str | None = None

    @property
    def is_local(self) -> bool:
        return True


class LocalAlerter(BaseAlerter):
    @property
    def config(self) -> LocalAlerterConfig:
        return self._config  # type: ignore[return-value]

    @property
    def outbox_path(self) -> str:
        return self.config.outbox or os.path.join(GlobalConfiguration().local_stores_path, "alerts", "outbox.jsonl")

    def post(self, message: str, params: BaseAlerterStepParameters | None = None) -> bool:
        message = redact(message)
        entry = {"time": datetime.now(UTC).isoformat(), "message": message}
        if isinstance(params, FailureAlertParams):
            entry.update(
                {
                    k: redact(v) if isinstance(v, str) else v
                    for k, v in {"subject": params.subject, **params.model_dump()}.items()
                }
            )
        log.error("ALERT: %s", message)
        os.makedirs(os.path.dirname(self.outbox_path), exist_ok=True)
        with open(self.outbox_path, "a", encoding="utf-8") as outbox:
            outbox.write(json.dumps(entry) + "\n")
        return True


class LocalAlerterFlavor(BaseAlerterFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[LocalAlerterConfig]:
        return LocalAlerterConfig

    @property
    def implementation_class(self) -> type[LocalAlerter]:
        return LocalAlerter

"""Every name that reaches a path, a SQL identifier or a file name, checked once here.

The patterns are SageMaker's (botocore's ``sagemaker`` service-2.json: FeatureGroupName,
FeatureName, EndpointName, EntityName for model package groups) and, for schedules,
the local scheduler's file-name rule (a subset of EventBridge Scheduler's ``Name``). A
name that passes can hold no '/', '.', quote or space, so it is safe as one path
component and inside a double-quoted SQL identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class InvalidName(ValueError):
    """A name that breaks its naming rule; the message names the kind, the value and the rule."""


@dataclass(frozen=True)
class NameRule:
    kind: str
    pattern: str
    max_length: int
    description: str

    def check(self, value: object) -> str:
        if not isinstance(value, str) or not re.fullmatch(self.pattern, value) or len(value) > self.max_length:
            raise InvalidName(
                f"{self.kind} {value!r} is not a valid name: {self.description} "
                f"(at most {self.max_length} characters, pattern {self.pattern})"
            )
        return value


FEATURE_GROUP = NameRule(
    "feature group",
    r"[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}",
    64,
    "letters and digits, single words joined by '-' or '_', starting and ending with a letter or digit",
)
FEATURE = NameRule(
    "column",
    r"[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}",
    64,
    "letters and digits, joined by '-' or '_', starting and ending with a letter or digit",
)
ENDPOINT = NameRule(
    "endpoint",
    r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
    63,
    "letters, digits and '-', starting and ending with a letter or digit",
)
MODEL_PACKAGE_GROUP = NameRule(
    "model package group",
    r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
    63,
    "letters, digits and '-', starting and ending with a letter or digit",
)
SCHEDULE = NameRule(
    "schedule", r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}", 64, "letters, digits, '-' or '_', starting with a letter or digit"
)


def feature_group(value: object) -> str:
    return FEATURE_GROUP.check(value)


def feature(value: object) -> str:
    return FEATURE.check(value)


def endpoint(value: object) -> str:
    return ENDPOINT.check(value)


def model_package_group(value: object) -> str:
    return MODEL_PACKAGE_GROUP.check(value)


def schedule(value: object) -> str:
    return SCHEDULE.check(value)


def quote_identifier(name: str) -> str:
    """A double-quoted SQL identifier (DuckDB, Athena/Presto), embedded quotes doubled."""
    return '"' + str(name).replace('"', '""') + '"'

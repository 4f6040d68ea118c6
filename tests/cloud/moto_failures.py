"""Errors the emulator answers with that botocore does not retry (expired credentials, ...).

``sagemaker_call_failing(action, message, endpoint=None)`` is a context manager: inside it every call of the
SageMaker ``action`` (``"DescribeEndpoint"``, ``"DescribeEndpointConfig"`` or ``"ListTags"``; or only the calls
about ``endpoint``'s resources) is answered with ``ExpiredTokenException`` (a 400 that botocore's standard retry mode
does not retry); after it, the action answers as before. It wraps whatever handler moto's ``SageMakerResponse`` has
for the action (our extensions' one included); the moto server runs in this process.
``describe_endpoint_failing(message, endpoint=None)`` is that for DescribeEndpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.sagemaker.responses import SageMakerResponse

# action -> (its handler on SageMakerResponse, whether a call is about an endpoint's resources, given its name)
_ACTIONS: dict[str, tuple[str, Callable[[SageMakerResponse, str], bool]]] = {
    "DescribeEndpoint": ("describe_endpoint", lambda r, name: r._get_param("EndpointName") == name),
    # the configs we create are named <endpoint name>-v<version>-<stamp>-<hex> (churn.aws.endpoint.unique_name)
    "DescribeEndpointConfig": (
        "describe_endpoint_config",
        lambda r, name: r._get_param("EndpointConfigName", "").startswith(f"{name}-v"),
    ),
    "ListTags": (
        "list_tags",
        lambda r, name: r._get_param("ResourceArn", "").rpartition(":endpoint-config/")[2].startswith(f"{name}-v"),
    ),
}


@contextmanager
def sagemaker_call_failing(
    action: str, message: str = "The security token included in the request is expired", endpoint: str | None = None
) -> Iterator[None]:
    """Every call of ``action`` (about any endpoint, or about ``endpoint``'s resources only: for ListTags, its
    endpoint configs' tags) fails with ExpiredTokenException carrying ``message``, while inside; the others are
    answered as before."""
    if action not in _ACTIONS:
        raise ValueError(f"no failure injection for SageMaker action {action!r}; known: {', '.join(_ACTIONS)}")
    handler, about = _ACTIONS[action]
    original = getattr(SageMakerResponse, handler)

    def failing(self: SageMakerResponse) -> Any:
        if endpoint is not None and not about(self, endpoint):
            return original(self)
        raise JsonRESTError("ExpiredTokenException", message)

    setattr(SageMakerResponse, handler, failing)
    try:
        yield
    finally:
        setattr(SageMakerResponse, handler, original)


def describe_endpoint_failing(
    message: str = "The security token included in the request is expired", endpoint: str | None = None
) -> Any:
    """``sagemaker_call_failing("DescribeEndpoint", message, endpoint)``."""
    return sagemaker_call_failing("DescribeEndpoint", message, endpoint)

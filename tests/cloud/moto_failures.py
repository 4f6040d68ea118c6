"""Errors the emulator answers with that botocore does not retry (expired credentials, ...).

``describe_endpoint_failing(message, endpoint=None)`` is a context manager: inside it every DescribeEndpoint
(or only that of ``endpoint``) is answered with ``ExpiredTokenException`` (a 400 that botocore's standard retry
mode does not retry); after it, DescribeEndpoint answers as before. It wraps whatever handler moto's
``SageMakerResponse.describe_endpoint`` is (our extensions' one included); the moto server runs in this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.sagemaker.responses import SageMakerResponse


@contextmanager
def describe_endpoint_failing(
    message: str = "The security token included in the request is expired", endpoint: str | None = None
) -> Iterator[None]:
    """Every DescribeEndpoint (of any endpoint, or of ``endpoint`` only) fails with ExpiredTokenException carrying
    ``message``, while inside; the others are answered as before."""
    original = SageMakerResponse.describe_endpoint

    def failing(self: SageMakerResponse) -> Any:
        if endpoint is not None and self._get_param("EndpointName") != endpoint:
            return original(self)
        raise JsonRESTError("ExpiredTokenException", message)

    SageMakerResponse.describe_endpoint = failing  # type: ignore[method-assign]
    try:
        yield
    finally:
        SageMakerResponse.describe_endpoint = original  # type: ignore[method-assign]

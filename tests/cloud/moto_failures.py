"""Errors the emulator answers with that botocore does not retry (expired credentials, ...).

``call_failing(action, message, when)`` is a context manager: inside it every call of the SageMaker ``action``
(moto's handler name, e.g. ``"describe_endpoint_config"``) for which ``when(response)`` holds is answered with
``ExpiredTokenException`` (a 400 that botocore's standard retry mode does not retry); the others, and every call
after it, are answered as before. It wraps whatever handler moto's ``SageMakerResponse`` has (our extensions'
ones included); the moto server runs in this process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.sagemaker.responses import SageMakerResponse


@contextmanager
def call_failing(
    action: str,
    message: str = "The security token included in the request is expired",
    when: Callable[[SageMakerResponse], bool] = lambda response: True,
) -> Iterator[None]:
    """Calls of ``action`` that ``when`` selects fail with ExpiredTokenException carrying ``message``, while inside."""
    original = getattr(SageMakerResponse, action)

    def failing(self: SageMakerResponse) -> Any:
        if not when(self):
            return original(self)
        raise JsonRESTError("ExpiredTokenException", message)

    setattr(SageMakerResponse, action, failing)
    try:
        yield
    finally:
        setattr(SageMakerResponse, action, original)

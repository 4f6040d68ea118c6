"""boto3 clients for our AWS backends: credentials, retries, errors, redaction.

Credentials come only from the environment, a named profile or an attached role
(boto3's default chain); nothing here reads them from a config file. botocore honours
``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``), which is how tests point every
client at the AWS emulator.

Retries are botocore's own ``standard`` mode (jittered exponential backoff for throttling and
transient errors, a retry quota, at most ``AWS_MAX_ATTEMPTS`` calls in total), for every boto3
client in the process: ours, ZenML's and the SageMaker SDK's. ``use_standard_retries`` sets it as
the process default through botocore's environment variables, unless the user set them; run.py
calls it first, ``client`` calls it too (for any other process that uses this module), and the
image declares the same two variables (docker/Dockerfile), for the endpoint and the ZenML steps.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import threading
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from churn.redaction import redact  # noqa: F401 - one redaction for every backend; kept importable here

# botocore's standard mode retries these (and more); here they only name the error in ``explain``
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "TransactionInProgressException",
    }
)


RETRY_MODE = "standard"
MAX_ATTEMPTS = 8  # calls in total, the first included (botocore's standard default is 3)


def use_standard_retries(environ: MutableMapping[str, str] | None = None) -> None:
    """Make botocore's standard retry mode the default of every boto3 client the process creates.

    Sets ``AWS_RETRY_MODE`` and ``AWS_MAX_ATTEMPTS`` unless they are set already (the user's
    choice wins). botocore reads them each time a client is made, so clients made afterwards by
    any library (ZenML, the SageMaker SDK, s3fs) get them, and child processes inherit them.

    Args:
        environ: The environment to change (default ``os.environ``).
    """
    environ = os.environ if environ is None else environ
    environ.setdefault("AWS_RETRY_MODE", RETRY_MODE)
    environ.setdefault("AWS_MAX_ATTEMPTS", str(MAX_ATTEMPTS))


# -- who is calling: the pipeline's execution role, or an operator at a workstation -----
_ROLE: contextvars.ContextVar[str] = contextvars.ContextVar("churn_aws_role", default="execution")


@contextlib.contextmanager
def acting_as(role: str) -> Iterator[None]:
    """Label the AWS calls made inside as ``role``'s (``execution`` or ``operator``).

    The label says which policy document in ``stacks/iam`` must allow them; the IAM test
    checks every recorded call against that document.
    """
    token = _ROLE.set(role)
    try:
        yield
    finally:
        _ROLE.reset(token)


def current_role() -> str:
    return _ROLE.get()


@dataclass(frozen=True)
class ApiCall:
    """One AWS API call our code made (for the IAM check and for debugging)."""

    role: str
    service: str  # botocore service name, e.g. "sagemaker-featurestore-runtime"
    signing_name: str  # IAM prefix as signed, e.g. "sagemaker"
    operation: str  # e.g. "PutRecord"
    params: dict[str, Any]
    region: str


_observers: list[Callable[[ApiCall], None]] = []


def add_call_observer(observer: Callable[[ApiCall], None]) -> Callable[[], None]:
    """Call ``observer`` before every AWS API call our clients make; returns a remover."""
    _observers.append(observer)
    return lambda: _observers.remove(observer) if observer in _observers else None


def _observe(region: str) -> Callable[..., None]:
    """A ``before-parameter-build`` handler: sees each API call once (not per retry), with its parameters."""

    def handler(model: Any = None, params: Any = None, **kwargs: Any) -> None:
        if not _observers or model is None:
            return
        service_model = model.service_model
        call = ApiCall(
            role=current_role(),
            service=service_model.service_name,
            signing_name=service_model.signing_name or service_model.endpoint_prefix,
            operation=model.name,
            region=region,
            params={k: v for k, v in (params or {}).items() if k not in ("Body", "Record")},
        )
        for observer in list(_observers):
            observer(call)

    return handler


# -- client factory ------------------------------------------------------------------
_lock = threading.Lock()
_sessions: dict[tuple[str | None, str], Any] = {}
_clients: dict[tuple[str, str, str | None, str], Any] = {}


def _session(region: str, profile: str | None):
    import boto3

    key = (profile, region)
    if key not in _sessions:
        try:
            _sessions[key] = boto3.session.Session(profile_name=profile, region_name=region)
        except Exception as error:  # botocore.exceptions.ProfileNotFound and friends
            raise AwsError(f"cannot use AWS profile {profile!r}: {error}") from None
    return _sessions[key]


def client(service: str, region: str, profile: str | None = None) -> Any:
    """A cached boto3 client with botocore's standard retries and our call observers attached."""
    from botocore.config import Config

    if not region:
        raise AwsError("no AWS region configured: set 'region' in the stack config (e.g. us-west-2)")
    use_standard_retries()
    key = (service, region, profile, os.environ.get("AWS_ENDPOINT_URL", ""))
    with _lock:
        if key not in _clients:
            config = Config(
                user_agent_extra="churn-mlops", connect_timeout=10, read_timeout=90, max_pool_connections=32
            )
            made = _session(region, profile).client(service, config=config)
            made.meta.events.register("before-parameter-build", _observe(region))
            _clients[key] = made
        return _clients[key]


def reset_clients() -> None:
    """Forget cached sessions and clients (after credentials or endpoints changed)."""
    with _lock:
        _clients.clear()
        _sessions.clear()


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def account_from_arn(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) < 6 or not re.fullmatch(r"\d{12}", parts[4]):
        raise AwsError(f"{arn!r} is not an ARN with an account id")
    return parts[4]


# -- errors --------------------------------------------------------------------------
class AwsError(RuntimeError):
    """An AWS call that failed, explained in one line (credentials never included)."""


_ACCESS_DENIED = "the credentials/role lack this permission; compare with stacks/iam/execution_role_policy.json"
_HINTS = {
    "AccessDenied": _ACCESS_DENIED,
    "AccessDeniedException": _ACCESS_DENIED,
    "UnrecognizedClientException": "the AWS credentials are not valid for this account/region",
    "InvalidClientTokenId": "the AWS access key is not valid",
    "ExpiredToken": "the AWS session credentials expired; refresh them (aws sso login / new role session)",
    "ExpiredTokenException": "the AWS session credentials expired; refresh them (aws sso login / new role session)",
    "NoSuchBucket": "the S3 bucket does not exist in this account/region; check 'bucket' in the stack config",
}


def explain(error: BaseException, doing: str) -> AwsError:
    """Turn a botocore exception into an AwsError naming what we were doing and why it failed."""
    from botocore import exceptions as bx

    if isinstance(error, bx.NoCredentialsError):
        return AwsError(
            f"{doing}: no AWS credentials found; set AWS_PROFILE, run `aws configure`/`aws sso login`, "
            "or run where a role is attached (credentials never go into config files)"
        )
    if isinstance(error, bx.EndpointConnectionError):
        return AwsError(f"{doing}: cannot reach AWS ({redact(str(error))}); check the network and 'region'")
    if isinstance(error, bx.ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code", "Unknown")
        message = redact(details.get("Message", "") or str(error))
        hint = _HINTS.get(code)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in THROTTLING_CODES:
            attempts = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            hint = f"still throttled after {attempts} attempts with backoff"
        return AwsError(
            f"{doing}: {code}{f' (HTTP {status})' if status else ''}: {message}" + (f" -- {hint}" if hint else "")
        )
    if isinstance(error, bx.BotoCoreError):
        return AwsError(f"{doing}: {redact(str(error))}")
    return AwsError(f"{doing}: {type(error).__name__}: {redact(str(error))}")


def error_code(error: BaseException) -> str | None:
    response = getattr(error, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


@contextlib.contextmanager
def aws_errors(doing: str, error_class: type = AwsError) -> Iterator[None]:
    """Re-raise botocore errors inside as one-line ``error_class`` errors about ``doing``."""
    from botocore import exceptions as bx

    try:
        yield
    except (bx.BotoCoreError, bx.ClientError) as error:
        raise error_class(str(explain(error, doing))) from None

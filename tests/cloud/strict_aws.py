"""A strict emulator: every request is checked against botocore's service model before moto sees it.

moto accepts almost anything, and botocore's client-side validation checks only required
members, types and minimums, so a request real AWS refuses (``ml.t3.medium`` where the model's
enum allows only ``ml.t2`` burstables, a name longer than its ``max``, a name off its
``pattern``) passes every emulator test. ``StrictApp`` is WSGI middleware in front of the
emulator that:

1. finds the service and operation of each request (the SigV4 credential scope names the
   signing service; moto's own router, built from the same models, finds the operation for every
   protocol: JSON via ``X-Amz-Target``, query via ``Action``, rest-json/rest-xml via method,
   path and query string);
2. parses its parameters with moto's protocol parsers (``moto.core.parse``);
3. validates them against botocore's model (``botocore/data/<service>/<version>/service-2.json``):
   required members, enums, patterns (full match, as AWS does; ``\\p{..}`` classes through the
   ``regex`` package), string/blob length, list/map item counts, numeric ranges, unions, through
   nested structures, lists and maps; for S3 also the bucket naming rules and key/metadata sizes
   that AWS documents but the model does not carry;
4. on a violation answers as AWS does (HTTP 400, ``ValidationException`` for JSON services,
   ``ValidationError`` for query services, an S3 XML error for S3) and records it, so a test
   fixture can fail the test even when the caller swallowed the error (``take_violations``).

A request to a service this module does not know, or one it cannot route to an operation, is
recorded too: the emulator only vouches for what it checked.
"""

from __future__ import annotations

import functools
import io
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import botocore.session
import regex

# SigV4 signing name -> the botocore services that sign with it (tried in order).
SERVICES_BY_SIGNING_NAME: dict[str, tuple[str, ...]] = {
    "sagemaker": ("sagemaker", "sagemaker-featurestore-runtime", "sagemaker-runtime"),
    "athena": ("athena",),
    "glue": ("glue",),
    "application-autoscaling": ("application-autoscaling",),
    "events": ("events",),
    "scheduler": ("scheduler",),
    "sns": ("sns",),
    "sqs": ("sqs",),
    "sts": ("sts",),
    "iam": ("iam",),
    "s3": ("s3",),
    "logs": ("logs",),
    "ecr": ("ecr",),
    "monitoring": ("cloudwatch",),
}
_JAVA_SUPPLEMENTARY = r"\uD800\uDC00-\uDBFF\uDFFF"  # Java's UTF-16 spelling of U+10000..U+10FFFF
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
S3_BUCKET_RULES = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html"
S3_KEY_RULES = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html"
S3_METADATA_RULES = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html"


@dataclass(frozen=True)
class Violation:
    service: str
    operation: str
    path: str
    rule: str
    value: Any = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f" = {_short(self.value)}"
        return f"{self.service} {self.operation}: {self.path or '<request>'}{shown}: {self.rule}"


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


# -- the model checks -------------------------------------------------------------------
@functools.cache
def service_model(name: str):
    """botocore's own service model (no moto extras)."""
    return botocore.session.get_session().get_service_model(name)


@functools.cache
def _pattern(text: str):
    return regex.compile(text.replace(_JAVA_SUPPLEMENTARY, r"\U00010000-\U0010FFFF"))


def validate(shape: Any, value: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """(field path, rule, value) for every constraint of ``shape`` that ``value`` breaks."""
    found: list[tuple[str, str, Any]] = []
    _check(shape, value, path, found)
    return found


def _check(shape: Any, value: Any, path: str, found: list) -> None:
    meta, kind = shape.metadata, shape.type_name
    if kind == "structure":
        if not isinstance(value, dict) or shape.is_document_type:
            return
        for name in shape.required_members:
            if value.get(name) is None:
                found.append((_join(path, name), "required member missing", None))
        given = [name for name in shape.members if value.get(name) is not None]
        if meta.get("union") and len(given) != 1:
            found.append((path, f"union {shape.name} must set exactly one member, got {given or 'none'}", None))
        for name in given:
            _check(shape.members[name], value[name], _join(path, name), found)
    elif kind == "list":
        if not isinstance(value, list):
            return
        _count(meta, len(value), path, "items", found)
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}[{index}]", found)
    elif kind == "map":
        if not isinstance(value, dict):
            return
        _count(meta, len(value), path, "entries", found)
        for key, item in value.items():
            _check(shape.key, key, f"{path}<key {key!r}>", found)
            _check(shape.value, item, f"{path}[{key!r}]", found)
    elif kind == "string":
        if not isinstance(value, str):
            return
        if shape.enum and value not in shape.enum:
            found.append((path, _enum_rule(shape, value), value))
        _count(meta, len(value), path, "characters", found)
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            found.append((path, f"pattern {shape.name}: must match {meta['pattern']}", value))
    elif kind == "blob":
        if isinstance(value, (bytes, str)):
            _count(meta, len(value.encode() if isinstance(value, str) else value), path, "bytes", found)
    elif kind in ("integer", "long", "float", "double", "short", "byte"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "min" in meta and value < meta["min"]:
                found.append((path, f"range {shape.name}: must be >= {meta['min']}", value))
            if "max" in meta and value > meta["max"]:
                found.append((path, f"range {shape.name}: must be <= {meta['max']}", value))


def _enum_rule(shape: Any, value: str) -> str:
    values = sorted(shape.enum)
    if len(values) <= 20:
        return f"enum {shape.name}: must be one of {values}"
    near = [v for v in values if v[:4] == value[:4]] or [v for v in values if v[:1] == value[:1]]
    return f"enum {shape.name}: not one of its {len(values)} values (those like it: {near[:20] or values[:20]})"


def _count(meta: dict, size: int, path: str, unit: str, found: list) -> None:
    if "min" in meta and size < meta["min"]:
        found.append((path, f"length: at least {meta['min']} {unit}, got {size}", None))
    if "max" in meta and size > meta["max"]:
        found.append((path, f"length: at most {meta['max']} {unit}, got {size}", None))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def s3_rules(operation: str, params: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """S3's documented limits that its model does not carry."""
    found: list[tuple[str, str, Any]] = []
    bucket, key = params.get("Bucket"), params.get("Key")
    if operation == "CreateBucket" and bucket is not None:
        if not _S3_BUCKET.match(bucket) or ".." in bucket or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket):
            found.append(
                (
                    "Bucket",
                    f"bucket naming rules: 3-63 of a-z 0-9 . -, starting and ending with a letter "
                    f"or digit ({S3_BUCKET_RULES})",
                    bucket,
                )
            )
    if isinstance(key, str) and len(key.encode()) > 1024:
        found.append(
            ("Key", f"object key: at most 1024 bytes of UTF-8, got {len(key.encode())} ({S3_KEY_RULES})", None)
        )
    metadata = params.get("Metadata") or {}
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in metadata.items())
    if size > 2048:
        found.append(("Metadata", f"user metadata: at most 2 KB, got {size} bytes ({S3_METADATA_RULES})", None))
    return found


# -- finding and parsing the request ------------------------------------------------------
def _signing_name(environ: dict[str, Any]) -> str | None:
    match = re.search(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/aws4_request", environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else None


def _read_body(environ: dict[str, Any]) -> bytes:
    length = environ.get("CONTENT_LENGTH")
    stream = environ["wsgi.input"]
    if length:
        data = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        data = stream.read()
    else:
        data = b""
    environ["wsgi.input"] = io.BytesIO(data)
    return data


def identify(environ: dict[str, Any], body: bytes) -> tuple[str, str | None, dict[str, Any], str]:
    """(service, operation, parsed params, protocol) of a request; operation None: not routable."""
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.request import Request, determine_request_protocol
    from moto.core.routing import get_service_router
    from moto.core.utils import get_service_model as moto_model

    signing = _signing_name(environ) or ""
    for service in SERVICES_BY_SIGNING_NAME.get(signing, ()):
        request = Request({**environ, "wsgi.input": io.BytesIO(body)})
        try:
            operation, uri_params = get_service_router(service).match(request)
            protocol = determine_request_protocol(moto_model(service), request.content_type)
        except Exception:  # not this service (werkzeug NotFound, an unsupported protocol)
            continue
        parser = PROTOCOL_PARSERS[protocol](operation)
        params = parser.parse(
            {
                "method": request.method,
                "values": request.values,
                "headers": request.headers,
                "body": body,
                "url_path": request.path,
                "url_params": uri_params,
            }
        )
        return service, operation.name, _plain(params), protocol
    return signing or "<unsigned>", None, {}, ""


def _plain(value: Any) -> Any:
    """moto's parsed params as plain dicts/lists, its 'absent' sentinel dropped."""
    from moto.core.parse import UNDEFINED

    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items() if v is not UNDEFINED and v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value if v is not UNDEFINED]
    return value


def check_request(service: str, operation: str, params: dict[str, Any]) -> list[Violation]:
    """Every violation of ``params`` against ``service``'s model for ``operation``."""
    shape = service_model(service).operation_model(operation).input_shape
    found = validate(shape, params) if shape is not None else []
    if service == "s3":
        found += s3_rules(operation, params)
    return [Violation(service, operation, path, rule, value) for path, rule, value in found]


# -- recording and the WSGI layer ------------------------------------------------------------
_LOCK = threading.Lock()
_VIOLATIONS: list[Violation] = []
_SEEN: dict[tuple[str, str], int] = {}


def take_violations() -> list[Violation]:
    """The violations recorded since the last call (and forget them)."""
    with _LOCK:
        taken = list(_VIOLATIONS)
        _VIOLATIONS.clear()
        return taken


def operations_seen() -> dict[tuple[str, str], int]:
    """(service, operation) -> how many requests were checked, over the session."""
    with _LOCK:
        return dict(_SEEN)


def _record(violations: Iterable[Violation], service: str, operation: str) -> None:
    with _LOCK:
        _SEEN[(service, operation)] = _SEEN.get((service, operation), 0) + 1
        _VIOLATIONS.extend(violations)


def aws_message(violations: list[Violation]) -> str:
    """AWS's wording: "N validation error(s) detected: Value 'v' at 'path' failed to satisfy constraint: ..."."""
    parts = [f"Value {_short(v.value)} at '{v.path}' failed to satisfy constraint: {v.rule}" for v in violations]
    noun = "error" if len(parts) == 1 else "errors"
    return f"{len(parts)} validation {noun} detected: " + "; ".join(parts)


def _refuse(start_response: Callable, service: str, protocol: str, violations: list[Violation]):
    message = aws_message(violations)
    if protocol == "json":
        body = json.dumps({"__type": "ValidationException", "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1")]
    elif protocol == "rest-json":
        body = json.dumps({"message": message}).encode()
        headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ValidationException")]
    elif service == "s3":
        code = (
            "InvalidBucketName"
            if violations[0].path == "Bucket"
            else ("KeyTooLongError" if violations[0].path == "Key" else "InvalidArgument")
        )
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            f"<Message>{escape(message)}</Message></Error>"
        ).encode()
        headers = [("Content-Type", "application/xml")]
    else:  # query
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>{escape(message)}"
            f"</Message></Error><RequestId>strict-emulator</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    start_response("400 Bad Request", [*headers, ("Content-Length", str(len(body)))])
    return [body]


class StrictApp:
    """WSGI middleware: validate, then pass on (or refuse as AWS would)."""

    def __init__(self, inner: Callable) -> None:
        self.inner = inner

    def __call__(self, environ: dict[str, Any], start_response: Callable):
        if environ.get("PATH_INFO", "").startswith("/moto-api") or "HTTP_AUTHORIZATION" not in environ:
            return self.inner(environ, start_response)  # the emulator's own control API, unsigned test fetches
        body = _read_body(environ)
        try:
            service, operation, params, protocol = identify(environ, body)
        except Exception as error:  # moto's parser refused the request: say so, let moto answer it
            violation = Violation(
                _signing_name(environ) or "<unsigned>",
                environ.get("PATH_INFO", ""),
                "",
                f"the strict emulator could not parse the request: {error!r}",
            )
            _record([violation], violation.service, "<unparsed>")
            return self.inner(environ, start_response)
        if operation is None:
            violations = [
                Violation(
                    service,
                    environ.get("REQUEST_METHOD", "") + " " + environ.get("PATH_INFO", ""),
                    "",
                    "the strict emulator does not know this service/operation (add it to SERVICES_BY_SIGNING_NAME)",
                )
            ]
            _record(violations, service, "<unknown>")
            return self.inner(environ, start_response)
        try:
            violations = check_request(service, operation, params)
        except Exception as error:  # a bug here must not pass silently either
            violations = [Violation(service, operation, "", f"the strict emulator failed to check it: {error!r}")]
        _record(violations, service, operation)
        if violations:
            return _refuse(start_response, service, protocol, violations)
        return self.inner(environ, start_response)

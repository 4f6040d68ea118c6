"""The HTTP server: SageMaker's hosting contract over a model bundle.

    GET  /ping          200 when a model is loaded (headers name its version; the JSON body
                        also gives the last failed swap, if any)
    POST /invocations   see ``protocol``; 4xx with a plain message for bad input

Hostile input cannot stall it: bodies, columns, rows, keys, nesting and cells are capped
(``protocol.Limits``); parsing and scoring run in a small thread pool (``--threads``) with a
bounded queue (``--max-queue``; beyond it a 503 with Retry-After), so the event loop keeps
answering /ping; a body that does not arrive within ``--body-timeout`` seconds gets a 408;
HTTP headers are capped (``--max-header-bytes``, h11) and must arrive within
``--header-timeout`` seconds of the connection (or of a kept-alive request's first byte),
else a 408 and the connection is closed; idle keep-alive connections close after 5 s.

The served model is named by ``<endpoint_dir>/current.json`` (written by the model
deployer: model name, version, bundle directory). A watcher thread loads a new bundle
when that file changes: it reads the bundle's files once, checks the SHA-256 of those
bytes against the expected hash, loads from the same bytes, and swaps the model in only
once it has scored a row; requests in flight keep the model they started with. A bundle
that fails, or any error in the watcher, is reported (log, /ping ``last_swap_error``) and
the old model keeps serving; the watcher keeps running and retries with backoff.

Where the expected hash comes from (reported by /ping as ``verified_against``):

- ``--registry-uri URI`` (``CHURN_REGISTRY_URI``; the local model deployer always passes
  its stack's MLflow tracking URI): the ``bundle_sha256`` tag of the MLflow model version
  the pointer names, looked up by the server itself. A hash written beside the bundle is
  not trusted: whoever can rewrite the bundle can rewrite the pointer too. A version the
  registry does not have, has without a hash, or does not hold ``Approved`` (withdrawn,
  rejected, pending) is refused when it is loaded; a registry that cannot be
  asked fails closed (at startup the server refuses to start; at a hot swap the verified
  model keeps serving and the error is reported, and the swap is retried).
- otherwise the pointer's own ``sha256``: for a pointer written by a trusted launcher in a
  private directory (the SageMaker container, after checking the bundle against the
  registry's hash in its environment) and for tests.

Run: ``python -m churn.serving.server --endpoint-dir DIR --port N [--workers W] [--registry-uri URI]``.

Length (about 630 lines): the ASGI app, the hot-swap watcher, the registry hash lookup and the
header-deadline protocol share the served model's state and one process; splitting it into an app
module and a daemon module is the next step.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import h11
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from churn.bundle import BundleError, ModelBundle, load_verified, require_recorded_sha256
from churn.serving import protocol

log = logging.getLogger("churn.serving")
POINTER_FILE = "current.json"
SERVER_LOCK = "server.lock"  # held by the live server process (churn.processes)
DEFAULT_MAX_BODY = 50 * 1024 * 1024
DEFAULT_THREADS = 2  # requests parsed/scored at once (off the event loop)
DEFAULT_MAX_QUEUE = 64  # requests waiting for a thread; beyond: 503 + Retry-After
DEFAULT_BODY_TIMEOUT = 30.0  # seconds to receive a request body
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds to receive a request's headers
HEADER_TIMEOUT_ENV = "CHURN_HEADER_TIMEOUT"
REGISTRY_ENV = "CHURN_REGISTRY_URI"
REGISTRY_SHA_TAG = "bundle_sha256"  # the MLflow model version tags our register step writes (steps/register.py)
APPROVAL_TAG, APPROVED = "approval_status", "Approved"  # churn.model_registry's (not imported: it imports ZenML)
INLINE_BODY_BYTES = 8 * 1024  # a body this small is scored on the event loop: bounded by the
# linear, capped parse to a few ms, and a thread hop would cost more


@dataclass(frozen=True)
class LoadedModel:
    bundle: ModelBundle
    record: dict
    sha256: str  # the hash the bundle was verified against

    @property
    def version(self) -> str:
        return str(self.record.get("version", ""))


class RegistryError(BundleError):
    """The model registry has no usable record of the version, or could not be asked."""


class RegistryHashes:
    """The SHA-256 the MLflow model registry recorded for a model version (its ``bundle_sha256`` tag).

    MLflow is imported on the first lookup (seconds), not when the server module is. A
    ``sqlite:///`` store that does not exist is reported as unreachable, not created.
    """

    def __init__(self, tracking_uri: str):
        self.tracking_uri = tracking_uri
        self._client = None
        # an HTTP tracking server that is down answers within seconds, not after minutes of retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")

    def __str__(self) -> str:  # it goes into logs and /ping: a password in the URI is masked
        from churn.redaction import redact

        return f"the model registry at {redact(self.tracking_uri)}"

    def expected_sha256(self, record: dict) -> str:
        """The registry's hash of the bundle of the version ``record`` names (raises RegistryError)."""
        name, version = record.get("model_name"), str(record.get("version") or "")
        if not name or not version:
            raise RegistryError(
                "the endpoint's pointer names no model_name and version to look up in the model registry"
            )
        where = f"the record of {name} version {version} in {self}"
        tags = self._version_tags(str(name), version, where)
        try:
            expected = require_recorded_sha256(tags.get(REGISTRY_SHA_TAG), where)
        except BundleError as error:
            raise RegistryError(str(error)) from None
        if tags.get(APPROVAL_TAG) != APPROVED:  # withdrawn, rejected or still pending: not to be served
            raise RegistryError(
                f"{where} is {tags.get(APPROVAL_TAG) or 'without an approval status'}, "
                f"not {APPROVED}: only approved versions are served"
            )
        return expected

    def _version_tags(self, name: str, version: str, where: str) -> dict:
        if self.tracking_uri.startswith("sqlite:///"):
            database = self.tracking_uri[len("sqlite:///") :].split("?", 1)[0]
            if database and database != ":memory:" and not Path(database).is_file():
                raise RegistryError(
                    f"{self} cannot be asked: {database} does not exist; refusing to load an unverified bundle"
                )
        try:
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient

            if self._client is None:
                self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            return dict(self._client.get_model_version(name, version).tags or {})
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise RegistryError(
                    f"{self} has no version {version} of model {name}: refusing to load a bundle that is not registered"
                ) from None
            raise RegistryError(f"{self} cannot be asked for {name} version {version}: {error}") from None
        except Exception as error:  # noqa: BLE001 - a store that cannot be read is a registry that cannot be asked
            raise RegistryError(
                f"{self} cannot be asked for {name} version {version}: {type(error).__name__}: {error}"
            ) from None


def load_model(record: dict, registry: RegistryHashes | None = None) -> LoadedModel:
    """Load and smoke-test the bundle a pointer record names (raises BundleError).

    The expected hash is the registry's when ``registry`` is given (the pointer names the
    model and version), else the pointer's ``sha256``. No hash, no load; the bundle is
    loaded from the bytes that were hashed.
    """
    if not isinstance(record, dict) or not record.get("bundle_dir"):
        raise BundleError("the endpoint's pointer names no bundle_dir")
    if registry is not None:
        expected, source = registry.expected_sha256(record), str(registry)
    else:
        expected, source = record.get("sha256"), "the endpoint's pointer (the registry's hash)"
    # fails closed: no sha256, a malformed one, or other bytes than the registry's -> BundleError;
    # the bundle is built from exactly the bytes that were hashed
    try:
        bundle = load_verified(record["bundle_dir"], expected, source)
        probe = {name: [None] for name in bundle.feature_order}
        bundle.predict_proba(probe)  # all-missing row: exercises imputation and the estimator
    except BundleError:
        raise
    except Exception as error:  # a registered bundle that does not load or score is not served
        raise BundleError(
            f"bundle {record['bundle_dir']} does not load and score: {type(error).__name__}: {error}"
        ) from None
    return LoadedModel(bundle, record, require_recorded_sha256(expected))


class ModelHolder:
    """The current model of one endpoint, swapped atomically when the pointer changes.

    ``last_error`` (with ``last_error_at``) is the last failed swap; it is cleared by the
    next successful one. A failed pointer is retried with backoff (up to a minute), so a
    bundle repaired in place is picked up too.
    """

    def __init__(
        self,
        endpoint_dir: Path,
        poll_seconds: float = 0.2,
        max_retry_seconds: float = 60.0,
        registry: RegistryHashes | None = None,
    ):
        self.pointer = Path(endpoint_dir) / POINTER_FILE
        self.registry = registry
        self.poll_seconds = poll_seconds
        self.max_retry_seconds = max_retry_seconds
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self._seen: tuple | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._stop = threading.Event()

    def refresh(self) -> None:
        try:
            stat = self.pointer.stat()
        except FileNotFoundError:
            return
        key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if key == self._seen and (not self._failures or time.monotonic() < self._retry_at):
            return
        if key != self._seen:
            self._failures = 0
        self._seen = key
        try:
            record = json.loads(self.pointer.read_text())
            model = load_model(record, self.registry)
        except Exception as error:  # noqa: BLE001 - any failure is reported; the old model keeps serving
            self._failed(error)
            return
        self.current, self.last_error, self.last_error_at, self._failures = model, None, None, 0
        log.info(
            "serving model version %s (%s, verified against %s)",
            model.version,
            model.sha256[:12],
            self.registry or "the pointer",
        )

    def _failed(self, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        self._failures += 1
        self._retry_at = time.monotonic() + min(self.max_retry_seconds, 2.0**self._failures)
        if message != self.last_error:
            log.error(
                "new model not switched in, still serving %s: %s",
                self.current.version if self.current else "nothing",
                message,
            )
        self.last_error, self.last_error_at = message, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as error:  # noqa: BLE001 - the watcher outlives any one failure
                self._failed(error)

    def start(self) -> None:
        try:
            self.refresh()
        except Exception as error:  # noqa: BLE001 - e.g. an unreadable pointer: reported, and the watcher retries
            self._failed(error)
        threading.Thread(target=self.watch, name="model-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict:
        model = self.current
        return {
            "version": model.version if model else None,
            "sha256": model.sha256 if model else None,
            "verified_against": "registry" if self.registry else "pointer",
            "last_swap_error": self.last_error,
            "last_swap_error_at": self.last_error_at,
        }


def _model_headers(model: LoadedModel) -> dict:
    return {"X-Model-Version": model.version, "X-Model-Sha256": model.sha256}


class Busy(Exception):
    """More requests waiting for a scoring thread than the queue holds."""


class Scorer:
    """Runs parse + predict + format in a few worker threads, never on the event loop."""

    def __init__(self, threads: int, max_queue: int):
        self.limiter = anyio.CapacityLimiter(threads)
        self.max_queue = max_queue
        self.pending = 0

    async def run(self, function, *args, inline: bool = False):
        if inline:
            return function(*args)
        if self.pending >= self.limiter.total_tokens + self.max_queue:
            raise Busy()
        self.pending += 1
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)
        finally:
            self.pending -= 1


def _score(
    bundle: ModelBundle, body: bytes, content_type: str, accept: str, wants_proba: bool, limits: protocol.Limits
):
    columns = protocol.parse_request(body, content_type, limits)
    prediction = protocol.predict(bundle, columns)
    content, media_type = protocol.format_response(prediction, accept, wants_proba)
    return content, media_type, prediction.unseen


async def read_body(request: Request, max_body_bytes: int, body_timeout: float) -> bytes:
    """The request body, or RequestError: 413 over ``max_body_bytes``, 408 when not in within ``body_timeout`` s."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_body_bytes:
        raise protocol.RequestError(413, f"request body of {length} bytes is over the {max_body_bytes}-byte limit")
    body = bytearray()
    try:
        async with asyncio.timeout(body_timeout):
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > max_body_bytes:
                    raise protocol.RequestError(413, f"request body is over the {max_body_bytes}-byte limit")
    except TimeoutError:
        raise protocol.RequestError(408, f"request body not received within {body_timeout:g} s") from None
    return bytes(body)


def create_app(
    endpoint_dir: str | os.PathLike,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    limits: protocol.Limits | None = None,
    threads: int = DEFAULT_THREADS,
    max_queue: int = DEFAULT_MAX_QUEUE,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    registry_uri: str | None = None,
) -> Starlette:
    holder = ModelHolder(Path(endpoint_dir), registry=RegistryHashes(registry_uri) if registry_uri else None)
    limits = limits or protocol.Limits()
    scorer = Scorer(threads, max_queue)

    async def ping(request: Request) -> Response:
        model = holder.current
        if model is None:
            return PlainTextResponse(f"no model loaded: {holder.last_error or 'nothing deployed yet'}\n", 503)
        headers = _model_headers(model)
        if holder.last_error:
            headers["X-Last-Load-Error"] = holder.last_error[:500].encode("ascii", "replace").decode()
        return JSONResponse(holder.status(), headers=headers)

    async def invocations(request: Request) -> Response:
        model = holder.current
        if model is None:
            return PlainTextResponse("no model loaded\n", 503)
        wants_proba = protocol.probabilities_requested(
            request.query_params.get("probabilities"),
            request.headers.get("x-amzn-sagemaker-custom-attributes"),
            request.headers.get("accept"),
        )
        try:
            body = await read_body(request, max_body_bytes, body_timeout)
            content, media_type, unseen = await scorer.run(
                _score,
                model.bundle,
                body,
                request.headers.get("content-type", ""),
                request.headers.get("accept", ""),
                wants_proba,
                limits,
                inline=len(body) <= INLINE_BODY_BYTES,
            )
        except protocol.RequestError as error:
            headers = _model_headers(model)
            if error.status in (408, 413):
                headers["Connection"] = "close"  # the rest of that body is not read
            return PlainTextResponse(error.message + "\n", error.status, headers=headers)
        except Busy:
            return PlainTextResponse(
                f"busy: {scorer.pending} requests in progress or queued, try again\n",
                503,
                headers={"Retry-After": "1", **_model_headers(model)},
            )
        headers = _model_headers(model)
        if unseen:
            headers["X-Unseen-Categories"] = protocol.unseen_header(unseen)
        return Response(content, media_type=media_type, headers=headers)

    async def info(request: Request) -> Response:
        model = holder.current
        return JSONResponse(
            {
                "model": model.record if model else None,
                "last_error": holder.last_error,
                "last_error_at": holder.last_error_at,
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        holder.start()
        yield
        holder.stop()

    app = Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
            Route("/info", info, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.holder = holder
    return app


def app_from_env() -> Starlette:
    """Factory for uvicorn workers: CHURN_ENDPOINT_DIR, CHURN_MAX_BODY_BYTES, CHURN_THREADS,
    CHURN_MAX_QUEUE, CHURN_BODY_TIMEOUT, CHURN_REGISTRY_URI and the ``protocol.Limits`` variables."""
    env = os.environ
    return create_app(
        env["CHURN_ENDPOINT_DIR"],
        int(env.get("CHURN_MAX_BODY_BYTES", DEFAULT_MAX_BODY)),
        limits=protocol.Limits.from_env(env),
        threads=int(env.get("CHURN_THREADS", DEFAULT_THREADS)),
        max_queue=int(env.get("CHURN_MAX_QUEUE", DEFAULT_MAX_QUEUE)),
        body_timeout=float(env.get("CHURN_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)),
        registry_uri=env.get(REGISTRY_ENV) or None,
    )


_REFUSAL = (
    b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
)


class HeaderLimitsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers (h11 itself waits forever),
    and a 431 naming the header-size limit (h11's cap answers a bare 400).

    The clock starts when the connection is made, or, on a kept-alive connection, when the
    next request's first byte arrives (the idle time before it is uvicorn's
    ``timeout_keep_alive``), and stops once the header block is complete (the body has its
    own deadline, ``--body-timeout``). On expiry, a client that sent part of a request gets
    a 408, one that sent nothing is hung up on. Trickling bytes does not extend it.
    The deadline is ``CHURN_HEADER_TIMEOUT`` seconds (uvicorn's ``http`` option takes this
    class; its workers inherit the environment).
    """

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT)
        self.max_header_bytes = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self.header_timer: asyncio.TimerHandle | None = None
        self.header_bytes = False  # has the current request sent a byte (before its header block was complete)?
        self.protocol_error: h11.RemoteProtocolError | None = None
        next_event = self.conn.next_event

        def next_event_remembering_errors():  # uvicorn drops h11's error (and its status hint) for a fixed 400
            try:
                return next_event()
            except h11.RemoteProtocolError as error:
                self.protocol_error = error
                raise

        self.conn.next_event = next_event_remembering_errors  # type: ignore[method-assign]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self.header_bytes = self.header_bytes or bool(data)
            self._arm_header_timer()  # a request starts: its headers are due (no-op when the clock runs)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the header block is in (or the connection is done)
            self._cancel_header_timer()

    def connection_lost(self, exc) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if getattr(self.protocol_error, "error_status_hint", 400) == 431:  # h11's header-size cap
            self._refuse(
                431, f"request headers are over the {self.max_header_bytes}-byte limit (CHURN_MAX_HEADER_BYTES)"
            )
        else:
            super().send_400_response(msg)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.header_bytes = False  # the next request's clock starts with its first byte

    def _arm_header_timer(self) -> None:
        if self.header_timer is None and self.header_timeout > 0:
            self.header_timer = self.loop.call_later(self.header_timeout, self._header_timeout_expired)

    def _cancel_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _header_timeout_expired(self) -> None:
        self.header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self.header_bytes:
            self._refuse(408, f"request headers not received within {self.header_timeout:g} s")
        else:  # nothing was asked: hang up
            self._unset_keepalive_if_required()
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        body = (message + "\n").encode()
        self.transport.write(_REFUSAL % (status, STATUS_PHRASES[status], len(body), body))
        self._cancel_header_timer()
        self._unset_keepalive_if_required()
        self.transport.close()


def uvicorn_options(max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> dict:
    """Connection-level defences: h11 (its header-size cap; httptools has none) with a header
    deadline (:class:`HeaderLimitsH11Protocol`, ``CHURN_HEADER_TIMEOUT``), idle keep-alive
    connections closed after 5 s, and at most 1,000 connections at once (beyond: 503)."""
    return {
        "http": HeaderLimitsH11Protocol,
        "h11_max_incomplete_event_size": max_header_bytes,
        "timeout_keep_alive": 5,
        "limit_concurrency": 1000,
        "backlog": 2048,
    }


def main(argv: list | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    env = os.environ.get  # every option can also come from the environment (the container's way)
    parser.add_argument("--max-body-bytes", type=int, default=int(env("CHURN_MAX_BODY_BYTES", DEFAULT_MAX_BODY)))
    parser.add_argument(
        "--max-header-bytes", type=int, default=int(env("CHURN_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES))
    )
    parser.add_argument(
        "--threads", type=int, default=int(env("CHURN_THREADS", DEFAULT_THREADS)), help="requests scored at once"
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=int(env("CHURN_MAX_QUEUE", DEFAULT_MAX_QUEUE)),
        help="requests waiting for a thread; beyond: 503",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=float(env("CHURN_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)),
        help="seconds to receive a request body; then 408",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=float(env(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT),
        help="seconds to receive a request's headers; then 408 and the connection is closed",
    )
    parser.add_argument(
        "--registry-uri",
        default=env(REGISTRY_ENV) or None,
        help="MLflow tracking URI: verify each bundle against the registry's bundle_sha256 tag of "
        "the model version the pointer names (without it: the pointer's sha256); a URI with a "
        f"password is better given in {REGISTRY_ENV} (argv is visible to every user)",
    )
    args = parser.parse_args(argv)
    if args.header_timeout <= 0:
        raise SystemExit(
            f"refusing to start: --header-timeout must be a positive number of seconds, got {args.header_timeout:g}"
        )
    try:
        protocol.Limits.from_env()
    except ValueError as error:
        raise SystemExit(f"refusing to start: {error}") from None
    from churn.processes import hold_lock  # one server per endpoint; the held lock is its liveness

    if hold_lock(Path(args.endpoint_dir) / SERVER_LOCK, {"host": args.host, "port": args.port}) is None:
        raise SystemExit(f"refusing to start: another server holds {Path(args.endpoint_dir) / SERVER_LOCK}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.registry_uri:
        log.warning(
            "no --registry-uri: bundles are verified against the sha256 in %s (a pointer written by a "
            "trusted launcher)",
            Path(args.endpoint_dir) / POINTER_FILE,
        )
    pointer = Path(args.endpoint_dir) / POINTER_FILE
    if pointer.is_file():  # refuse to start on a bundle that is not the registered one (or an unreachable registry)
        try:
            registry = RegistryHashes(args.registry_uri) if args.registry_uri else None
            load_model(json.loads(pointer.read_text()), registry)
        except (OSError, ValueError, BundleError) as error:
            raise SystemExit(f"refusing to start: {error}") from None
    os.environ.update(
        {
            "CHURN_ENDPOINT_DIR": str(Path(args.endpoint_dir).resolve()),
            "CHURN_MAX_BODY_BYTES": str(args.max_body_bytes),
            "CHURN_THREADS": str(args.threads),
            "CHURN_MAX_QUEUE": str(args.max_queue),
            "CHURN_BODY_TIMEOUT": str(args.body_timeout),
            HEADER_TIMEOUT_ENV: str(args.header_timeout),
        }
    )
    if args.registry_uri:
        os.environ[REGISTRY_ENV] = args.registry_uri
    else:
        os.environ.pop(REGISTRY_ENV, None)
    uvicorn.run(
        "churn.serving.server:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        **uvicorn_options(args.max_header_bytes),
    )


if __name__ == "__main__":
    main()

"""The HTTP server: SageMaker's hosting contract over a model bundle.

    GET  /ping          200 when a model is loaded (headers name its version; the JSON body
                        also gives the last failed swap, if any)
    POST /invocations   see ``protocol``; 4xx with a plain message for bad input

Hostile input cannot stall it: bodies, columns, rows, keys, nesting and cells are capped
(``protocol.Limits``); parsing and scoring run in a small thread pool (``--threads``) with a
bounded queue (``--max-queue``; beyond it a 503 with Retry-After), so the event loop keeps
answering /ping; a body that does not arrive within ``--body-timeout`` seconds gets a 408;
HTTP headers are capped (``--max-header-bytes``, h11) and idle connections close.

The served model is named by ``<endpoint_dir>/current.json`` (written by the model
deployer from the registry's record: version and sha256). A watcher thread loads a new
bundle when that file changes: it reads the bundle's files once, checks the SHA-256 of
those bytes against the record (a record without one is refused), loads from the same
bytes, and swaps the model in only once it has scored a row; requests in flight keep the
model they started with. A bundle that fails, or any error in the watcher, is reported
(log, /ping) and the old model keeps serving; the watcher keeps running and retries.

Run: ``python -m churn.serving.server --endpoint-dir DIR --port N [--workers W]``.
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
from typing import Optional

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import anyio
import anyio.to_thread

from churn.bundle import BundleError, ModelBundle, load_verified
from churn.serving import protocol

log = logging.getLogger("churn.serving")
POINTER_FILE = "current.json"
SERVER_LOCK = "server.lock"  # held by the live server process (churn.processes)
DEFAULT_MAX_BODY = 50 * 1024 * 1024
DEFAULT_THREADS = 2          # requests parsed/scored at once (off the event loop)
DEFAULT_MAX_QUEUE = 64       # requests waiting for a thread; beyond: 503 + Retry-After
DEFAULT_BODY_TIMEOUT = 30.0  # seconds to receive a request body
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
INLINE_BODY_BYTES = 8 * 1024  # a body this small is scored on the event loop: bounded by the
                              # linear, capped parse to a few ms, and a thread hop would cost more


@dataclass(frozen=True)
class LoadedModel:
    bundle: ModelBundle
    record: dict

    @property
    def version(self) -> str:
        return str(self.record.get("version", ""))


def load_model(record: dict) -> LoadedModel:
    """Load and smoke-test the bundle a pointer record names (raises BundleError).

    The record is the deployer's copy of the registry's: ``sha256`` is required (no hash,
    no load), and the bundle is loaded from the bytes that were hashed.
    """
    if not isinstance(record, dict) or not record.get("bundle_dir"):
        raise BundleError("the endpoint's pointer names no bundle_dir")
    # fails closed: no sha256, a malformed one, or other bytes than the registry's -> BundleError;
    # the bundle is built from exactly the bytes that were hashed
    try:
        bundle = load_verified(record["bundle_dir"], record.get("sha256"), "the endpoint's pointer (the registry's hash)")
        probe = {name: [None] for name in bundle.feature_order}
        bundle.predict_proba(probe)  # all-missing row: exercises imputation and the estimator
    except BundleError:
        raise
    except Exception as error:  # a registered bundle that does not load or score is not served
        raise BundleError(f"bundle {record['bundle_dir']} does not load and score: {type(error).__name__}: {error}") from None
    return LoadedModel(bundle, record)


class ModelHolder:
    """The current model of one endpoint, swapped atomically when the pointer changes.

    ``last_error`` (with ``last_error_at``) is the last failed swap; it is cleared by the
    next successful one. A failed pointer is retried with backoff (up to a minute), so a
    bundle repaired in place is picked up too.
    """

    def __init__(self, endpoint_dir: Path, poll_seconds: float = 0.2, max_retry_seconds: float = 60.0):
        self.pointer = Path(endpoint_dir) / POINTER_FILE
        self.poll_seconds = poll_seconds
        self.max_retry_seconds = max_retry_seconds
        self.current: Optional[LoadedModel] = None
        self.last_error: Optional[str] = None
        self.last_error_at: Optional[str] = None
        self._seen: Optional[tuple] = None
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
            model = load_model(record)
        except Exception as error:  # noqa: BLE001 - any failure is reported; the old model keeps serving
            self._failed(error)
            return
        self.current, self.last_error, self.last_error_at, self._failures = model, None, None, 0
        log.info("serving model version %s (%s)", model.version, str(record.get("sha256", ""))[:12])

    def _failed(self, error: BaseException) -> None:
        message = f"{type(error).__name__}: {error}"
        self._failures += 1
        self._retry_at = time.monotonic() + min(self.max_retry_seconds, 2.0 ** self._failures)
        if message != self.last_error:
            log.error("new model not switched in, still serving %s: %s",
                      self.current.version if self.current else "nothing", message)
        self.last_error, self.last_error_at = message, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as error:  # noqa: BLE001 - the watcher outlives any one failure
                self._failed(error)

    def start(self) -> None:
        self.refresh()
        threading.Thread(target=self.watch, name="model-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def status(self) -> dict:
        model = self.current
        return {"version": model.version if model else None,
                "sha256": str(model.record.get("sha256", "")) if model else None,
                "last_swap_error": self.last_error, "last_swap_error_at": self.last_error_at}


def _model_headers(model: LoadedModel) -> dict:
    return {"X-Model-Version": model.version, "X-Model-Sha256": str(model.record.get("sha256", ""))}


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


def _score(bundle: ModelBundle, body: bytes, content_type: str, accept: str, wants_proba: bool,
           limits: protocol.Limits):
    columns = protocol.parse_request(body, content_type, limits)
    prediction = protocol.predict(bundle, columns)
    content, media_type = protocol.format_response(prediction, accept, wants_proba)
    return content, media_type, prediction.unseen


def create_app(endpoint_dir: str | os.PathLike, max_body_bytes: int = DEFAULT_MAX_BODY,
               limits: Optional[protocol.Limits] = None, threads: int = DEFAULT_THREADS,
               max_queue: int = DEFAULT_MAX_QUEUE, body_timeout: float = DEFAULT_BODY_TIMEOUT) -> Starlette:
    holder = ModelHolder(Path(endpoint_dir))
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

    async def read_body(request: Request) -> bytes:
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
            body = await read_body(request)
            content, media_type, unseen = await scorer.run(
                _score, model.bundle, body, request.headers.get("content-type", ""),
                request.headers.get("accept", ""), wants_proba, limits, inline=len(body) <= INLINE_BODY_BYTES)
        except protocol.RequestError as error:
            headers = _model_headers(model)
            if error.status in (408, 413):
                headers["Connection"] = "close"  # the rest of that body is not read
            return PlainTextResponse(error.message + "\n", error.status, headers=headers)
        except Busy:
            return PlainTextResponse(f"busy: {scorer.pending} requests in progress or queued, try again\n", 503,
                                     headers={"Retry-After": "1", **_model_headers(model)})
        headers = _model_headers(model)
        if unseen:
            headers["X-Unseen-Categories"] = protocol.unseen_header(unseen)
        return Response(content, media_type=media_type, headers=headers)

    async def info(request: Request) -> Response:
        model = holder.current
        return JSONResponse({"model": model.record if model else None, "last_error": holder.last_error,
                             "last_error_at": holder.last_error_at})

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
    CHURN_MAX_QUEUE, CHURN_BODY_TIMEOUT and the ``protocol.Limits`` variables."""
    env = os.environ
    return create_app(env["CHURN_ENDPOINT_DIR"], int(env.get("CHURN_MAX_BODY_BYTES", DEFAULT_MAX_BODY)),
                      limits=protocol.Limits.from_env(env), threads=int(env.get("CHURN_THREADS", DEFAULT_THREADS)),
                      max_queue=int(env.get("CHURN_MAX_QUEUE", DEFAULT_MAX_QUEUE)),
                      body_timeout=float(env.get("CHURN_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)))


def uvicorn_options(max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES) -> dict:
    """Connection-level defences: h11 (its header-size cap; httptools has none), idle
    keep-alive connections closed after 5 s, and at most 1,000 connections at once."""
    return {"http": "h11", "h11_max_incomplete_event_size": max_header_bytes, "timeout_keep_alive": 5,
            "limit_concurrency": 1000, "backlog": 2048}


def main(argv: Optional[list] = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    env = os.environ.get  # every option can also come from the environment (the container's way)
    parser.add_argument("--max-body-bytes", type=int, default=int(env("CHURN_MAX_BODY_BYTES", DEFAULT_MAX_BODY)))
    parser.add_argument("--max-header-bytes", type=int, default=int(env("CHURN_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES)))
    parser.add_argument("--threads", type=int, default=int(env("CHURN_THREADS", DEFAULT_THREADS)),
                        help="requests scored at once")
    parser.add_argument("--max-queue", type=int, default=int(env("CHURN_MAX_QUEUE", DEFAULT_MAX_QUEUE)),
                        help="requests waiting for a thread; beyond: 503")
    parser.add_argument("--body-timeout", type=float, default=float(env("CHURN_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)),
                        help="seconds to receive a request body; then 408")
    args = parser.parse_args(argv)
    try:
        protocol.Limits.from_env()
    except ValueError as error:
        raise SystemExit(f"refusing to start: {error}")
    from churn.processes import hold_lock  # one server per endpoint; the held lock is its liveness

    if hold_lock(Path(args.endpoint_dir) / SERVER_LOCK, {"host": args.host, "port": args.port}) is None:
        raise SystemExit(f"refusing to start: another server holds {Path(args.endpoint_dir) / SERVER_LOCK}")
    pointer = Path(args.endpoint_dir) / POINTER_FILE
    if pointer.is_file():  # refuse to start on a bundle that is not the registered one
        try:
            load_model(json.loads(pointer.read_text()))
        except (OSError, ValueError, BundleError) as error:
            raise SystemExit(f"refusing to start: {error}")
    os.environ.update({"CHURN_ENDPOINT_DIR": str(Path(args.endpoint_dir).resolve()),
                       "CHURN_MAX_BODY_BYTES": str(args.max_body_bytes), "CHURN_THREADS": str(args.threads),
                       "CHURN_MAX_QUEUE": str(args.max_queue), "CHURN_BODY_TIMEOUT": str(args.body_timeout)})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "churn.serving.server:app_from_env", factory=True, host=args.host, port=args.port,
        workers=args.workers, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
        **uvicorn_options(args.max_header_bytes),
    )


if __name__ == "__main__":
    main()

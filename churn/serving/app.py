"""The HTTP app: SageMaker's hosting contract over the served model (``churn.serving.models``).

    GET  /ping          200 when a model is loaded (headers name its version; the JSON body
                        also gives the last failed swap, if any)
    POST /invocations   see ``protocol``; 4xx with a plain message for bad input
    GET  /info          the pointer record of the served model and the last failed swap

Hostile input cannot stall it: bodies, columns, rows, keys, nesting and cells are capped
(``protocol.Limits``); parsing and scoring run in a small thread pool (``threads``) with a
bounded queue (``max_queue``; beyond it a 503 with Retry-After), so the event loop keeps
answering /ping; a body that does not arrive within ``body_timeout`` seconds gets a 408.
Connection-level defences (header size and deadline, keep-alive, connection cap) are the
daemon's (``churn.serving.server``).

``app_from_env`` is the factory uvicorn's workers call; it reads the settings the daemon
put in the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from churn import fast_forest
from churn.bundle import ModelBundle
from churn.serving import protocol
from churn.serving.models import LoadedModel, ModelHolder, RegistryHashes

DEFAULT_MAX_BODY = 50 * 1024 * 1024
DEFAULT_THREADS = 2  # requests parsed/scored at once (off the event loop)
DEFAULT_MAX_QUEUE = 64  # requests waiting for a thread; beyond: 503 + Retry-After
DEFAULT_BODY_TIMEOUT = 30.0  # seconds to receive a request body
REGISTRY_ENV = "CHURN_REGISTRY_URI"
INLINE_BODY_BYTES = 8 * 1024  # a body this small is scored on the event loop: bounded by the
# linear, capped parse to a few ms, and a thread hop would cost more


def _model_headers(model: LoadedModel) -> dict:
    return {"X-Model-Version": model.version, "X-Model-Sha256": model.sha256}


class Busy(Exception):
    """More requests waiting for a scoring thread than the queue holds."""


class Scorer:
    """Runs parse + predict + format in a few worker threads, never on the event loop.

    ``threads`` requests are scored at once. A request scored alone (nothing else in flight or
    queued in this worker) splits its rows over the CPUs this worker's share allows (its CPUs
    divided by ``workers``, default ``CHURN_WORKERS``, else 1), so a big request on an idle
    endpoint uses the idle CPUs; side by side, each request scores on one thread. A fixed
    ``row_threads`` (default ``CHURN_ROW_THREADS``) replaces that rule. So a worker scores on about
    ``max(threads, its share)`` CPUs (a request that started alone keeps its split while others
    arrive: one thread more, for the rest of that request), a multi-worker container ``workers`` times that.
    """

    def __init__(self, threads: int, max_queue: int, row_threads: int | None = None, workers: int | None = None):
        self.limiter = anyio.CapacityLimiter(threads)
        self.max_queue = max_queue
        self.pending = 0
        fixed = row_threads or int(os.environ.get("CHURN_ROW_THREADS") or 0)
        self.row_threads = max(1, fixed) if fixed else None  # None: the rule above
        workers = max(1, workers or int(os.environ.get("CHURN_WORKERS") or 1))
        self.alone_row_threads = max(1, fast_forest.cpus() // workers)

    async def run(self, function, *args, inline: bool = False):
        if inline:
            return function(*args)
        if self.pending >= self.limiter.total_tokens + self.max_queue:
            raise Busy()
        self.pending += 1
        try:
            return await anyio.to_thread.run_sync(self._capped, function, *args, limiter=self.limiter)
        finally:
            self.pending -= 1

    def _capped(self, function, *args):
        threads = self.row_threads or (self.alone_row_threads if self.pending <= 1 else 1)
        with fast_forest.row_threads(threads):
            return function(*args)


def _score(
    bundle: ModelBundle, body: bytes, content_type: str, accept: str, wants_proba: bool, limits: protocol.Limits
):
    prediction = protocol.predict_body(bundle, body, content_type, limits)
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

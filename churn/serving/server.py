"""The HTTP server: SageMaker's hosting contract over a model bundle.

    GET  /ping          200 when a model is loaded (headers name its version)
    POST /invocations   see ``protocol``; 4xx with a plain message for bad input

The served model is named by ``<endpoint_dir>/current.json`` (written by the model
deployer). A watcher thread loads a new bundle when that file changes, checks its
SHA-256 against the registry's record, and swaps it in only once it has loaded and
scored a row; requests in flight keep the model they started with. A bundle that
fails to load is not switched in: the old one keeps serving.

Run: ``python -m churn.serving.server --endpoint-dir DIR --port N [--workers W]``.
"""

from __future__ import annotations

import argparse
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

from churn.bundle import BundleError, ModelBundle
from churn.serving import protocol

log = logging.getLogger("churn.serving")
POINTER_FILE = "current.json"
SERVER_LOCK = "server.lock"  # held by the live server process (churn.processes)
DEFAULT_MAX_BODY = 50 * 1024 * 1024


@dataclass(frozen=True)
class LoadedModel:
    bundle: ModelBundle
    record: dict

    @property
    def version(self) -> str:
        return str(self.record.get("version", ""))


def load_model(record: dict) -> LoadedModel:
    """Load and smoke-test the bundle a pointer record names (raises BundleError)."""
    bundle = ModelBundle.load(record["bundle_dir"], expected_sha256=record.get("sha256"))
    probe = {name: [None] for name in bundle.feature_order}
    bundle.predict_proba(probe)  # all-missing row: exercises imputation and the estimator
    return LoadedModel(bundle, record)


class ModelHolder:
    """The current model of one endpoint, swapped atomically when the pointer changes."""

    def __init__(self, endpoint_dir: Path, poll_seconds: float = 0.2):
        self.pointer = Path(endpoint_dir) / POINTER_FILE
        self.poll_seconds = poll_seconds
        self.current: Optional[LoadedModel] = None
        self.last_error: Optional[str] = None
        self._seen: Optional[tuple] = None
        self._stop = threading.Event()

    def refresh(self) -> None:
        try:
            stat = self.pointer.stat()
        except FileNotFoundError:
            return
        key = (stat.st_mtime_ns, stat.st_size)
        if key == self._seen:
            return
        self._seen = key
        try:
            record = json.loads(self.pointer.read_text())
            model = load_model(record)
        except (OSError, ValueError, KeyError, BundleError) as error:
            self.last_error = f"{type(error).__name__}: {error}"
            log.error("new model not switched in, still serving %s: %s",
                      self.current.version if self.current else "nothing", self.last_error)
            return
        self.current, self.last_error = model, None
        log.info("serving model version %s (%s)", model.version, record.get("sha256", "")[:12])

    def watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def start(self) -> None:
        self.refresh()
        threading.Thread(target=self.watch, name="model-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def _model_headers(model: LoadedModel) -> dict:
    return {"X-Model-Version": model.version, "X-Model-Sha256": str(model.record.get("sha256", ""))}


def create_app(endpoint_dir: str | os.PathLike, max_body_bytes: int = DEFAULT_MAX_BODY) -> Starlette:
    holder = ModelHolder(Path(endpoint_dir))

    async def ping(request: Request) -> Response:
        model = holder.current
        if model is None:
            return PlainTextResponse(f"no model loaded: {holder.last_error or 'nothing deployed yet'}\n", 503)
        headers = _model_headers(model)
        if holder.last_error:
            headers["X-Last-Load-Error"] = holder.last_error[:500].encode("ascii", "replace").decode()
        return Response(status_code=200, headers=headers)

    async def invocations(request: Request) -> Response:
        model = holder.current
        if model is None:
            return PlainTextResponse("no model loaded\n", 503)
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            return PlainTextResponse(f"request body of {length} bytes is over the {max_body_bytes}-byte limit\n", 413)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > max_body_bytes:
                return PlainTextResponse(f"request body is over the {max_body_bytes}-byte limit\n", 413)
        try:
            columns = protocol.parse_request(bytes(body), request.headers.get("content-type", ""))
            prediction = protocol.predict(model.bundle, columns)
        except protocol.RequestError as error:
            return PlainTextResponse(error.message + "\n", error.status, headers=_model_headers(model))
        wants_proba = protocol.probabilities_requested(
            request.query_params.get("probabilities"),
            request.headers.get("x-amzn-sagemaker-custom-attributes"),
        )
        content, media_type = protocol.format_response(prediction, request.headers.get("accept", ""), wants_proba)
        headers = _model_headers(model)
        if prediction.unseen:
            headers["X-Unseen-Categories"] = protocol.unseen_header(prediction.unseen)
        return Response(content, media_type=media_type, headers=headers)

    async def info(request: Request) -> Response:
        model = holder.current
        return JSONResponse({"model": model.record if model else None, "last_error": holder.last_error})

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
    """Factory for uvicorn workers: CHURN_ENDPOINT_DIR and CHURN_MAX_BODY_BYTES."""
    return create_app(os.environ["CHURN_ENDPOINT_DIR"], int(os.environ.get("CHURN_MAX_BODY_BYTES", DEFAULT_MAX_BODY)))


def main(argv: Optional[list] = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY)
    args = parser.parse_args(argv)
    from churn.processes import hold_lock  # one server per endpoint; the held lock is its liveness

    if hold_lock(Path(args.endpoint_dir) / SERVER_LOCK, {"host": args.host, "port": args.port}) is None:
        raise SystemExit(f"refusing to start: another server holds {Path(args.endpoint_dir) / SERVER_LOCK}")
    pointer = Path(args.endpoint_dir) / POINTER_FILE
    if pointer.is_file():  # refuse to start on a bundle that is not the registered one
        try:
            load_model(json.loads(pointer.read_text()))
        except (OSError, ValueError, KeyError, BundleError) as error:
            raise SystemExit(f"refusing to start: {error}")
    os.environ["CHURN_ENDPOINT_DIR"] = str(Path(args.endpoint_dir).resolve())
    os.environ["CHURN_MAX_BODY_BYTES"] = str(args.max_body_bytes)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        "churn.serving.server:app_from_env", factory=True, host=args.host, port=args.port,
        workers=args.workers, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()

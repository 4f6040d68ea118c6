"""``serve``: our image's SageMaker entry point (bring-your-own-container contract).

SageMaker starts the container as ``docker run IMAGE serve`` with the model archive
extracted to ``/opt/ml/model`` and expects ``GET /ping`` and ``POST /invocations`` on port
8080 (``SAGEMAKER_BIND_TO_PORT`` in a serial inference pipeline). The container's
Environment (set by ``churn.aws.packaging.serving_containers``) says what to serve:

- ``CHURN_BUNDLE_SHA256``: the SHA-256 the registry recorded for the bundle (set at
  registration in the model package's container Environment, which SageMaker holds apart
  from the archive in S3; the deployer uses the package's containers when the package
  holds the bundle it deploys). Before loading anything the bundle in the model directory
  is hashed (``churn.bundle.bundle_sha256``) and compared; when the variable is missing or
  the hash differs, ``serve`` logs why and exits non-zero, so the endpoint fails its health
  check instead of serving an unverified model.
- ``CHURN_SERVING_ROLE`` (``churn.serving.inference_pipeline``): ``predict`` (default) is the
  local endpoint's own server (``churn.serving.server``: same parsing, prediction, formatting,
  limits and errors); ``encode`` and ``respond`` are the two ends of the serial pipeline
  around an Autopilot candidate (:func:`handle`).

Other variables: ``CHURN_MODEL_DIR`` (default /opt/ml/model), ``CHURN_SERVING_HOST`` (default
127.0.0.1; the image sets 0.0.0.0, its own network namespace that SageMaker publishes),
``SAGEMAKER_MODEL_SERVER_WORKERS`` (default 1), ``CHURN_MODEL_VERSION`` (reported by /ping),
and the server's request defences, in every role: ``CHURN_MAX_BODY_BYTES``,
``CHURN_MAX_HEADER_BYTES``, ``CHURN_HEADER_TIMEOUT``, ``CHURN_BODY_TIMEOUT``, ``CHURN_THREADS``,
``CHURN_MAX_QUEUE`` and the ``protocol.Limits`` variables (a value that is not a number refuses to start).
Probabilities are returned as the local endpoint returns them: when asked with
``CustomAttributes: probabilities=true`` (or ``?probabilities=true``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from churn.bundle import BundleError, bundle_sha256
from churn.preprocessing import InputError
from churn.serving import inference_pipeline as pipeline
from churn.serving import protocol

log = logging.getLogger("churn.serving.container")
MODEL_DIR = "/opt/ml/model"
SHA_ENV = "CHURN_BUNDLE_SHA256"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
DEFAULT_PORT = 8080


class RefusedToStart(RuntimeError):
    """The container cannot serve (the message is logged before it exits non-zero)."""


def role_from_env(environ=os.environ) -> str:
    role = environ.get(pipeline.ROLE_ENV, pipeline.PREDICT).strip().lower() or pipeline.PREDICT
    if role not in pipeline.ROLES:
        raise RefusedToStart(f"{pipeline.ROLE_ENV}={role!r}: expected one of {', '.join(pipeline.ROLES)}")
    return role


def verify_bundle(model_dir: str | os.PathLike, expected: str | None) -> str:
    """The bundle's SHA-256 when it is the one the registry recorded; else RefusedToStart."""
    if not expected or not expected.strip():
        raise RefusedToStart(
            f"{SHA_ENV} is not set: the registry's SHA-256 of the bundle is needed to verify "
            f"{model_dir} before loading it (register or deploy the model with churn-mlops)"
        )
    try:
        actual = bundle_sha256(model_dir)
    except OSError as error:
        raise RefusedToStart(f"{model_dir} holds no readable model bundle: {error}") from None
    if actual != expected.strip().lower():
        raise RefusedToStart(
            f"the bundle in {model_dir} has SHA-256 {actual}, but the registry recorded "
            f"{expected.strip()}: refusing to serve a bundle that is not the registered one"
        )
    return actual


def load(role: str, model_dir: str | os.PathLike) -> Any:
    """What a role serves with: the bundle (predict) or its preprocessing only (encode, respond)."""
    if role == pipeline.PREDICT:
        from churn.bundle import ModelBundle

        return ModelBundle.load(model_dir)
    return pipeline.load_preprocessing(model_dir)


def handle(
    role: str,
    model: Any,
    body: bytes,
    content_type: str,
    accept: str,
    probabilities: bool = False,
    limits: protocol.Limits | None = None,
) -> tuple[bytes, str]:
    """One request through one container of ``role``: (body, content type); refusals raise RequestError.

    ``encode`` answers header-less encoded CSV whatever is accepted (the candidate reads it);
    malformed client input is a 4xx, as in the predict role. ``respond`` reads the candidate's
    answer (not the client's input) and formats ours as a single container does; an answer it
    cannot read is the model's fault: a 500 that says why.
    """
    limits = limits or protocol.DEFAULT_LIMITS
    if role == pipeline.ENCODE:
        columns = protocol.parse_request(body, content_type, limits)
        try:
            return pipeline.encode(model, columns), "text/csv"
        except InputError as error:
            raise protocol.RequestError(400, str(error)) from None
        except OverflowError as error:  # a number no float holds
            raise protocol.RequestError(400, f"a value is out of range: {error}") from None
    if role == pipeline.RESPOND:
        try:
            proba = pipeline.candidate_probabilities(body, content_type)
        # CandidateOutputError and UnicodeDecodeError are ValueErrors; so is an integer JSON cannot convert
        except (ValueError, TypeError, KeyError, RecursionError) as error:
            raise protocol.RequestError(
                500, f"the AutoML model's answer could not be read: {type(error).__name__}: {error}"
            ) from None
        from churn.bundle import ModelBundle

        prediction = protocol.Prediction(labels=ModelBundle.label(proba), proba=proba)
        return protocol.format_response(prediction, accept, probabilities)
    return protocol.format_response(protocol.predict_body(model, body, content_type, limits), accept, probabilities)


def role_app(role: str, model: Any, max_body_bytes: int, environ=os.environ):
    """The encode/respond container's HTTP app (the predict role is ``churn.serving.app``'s).

    The server's request defences apply: ``protocol.Limits`` from the environment, the body
    deadline (``CHURN_BODY_TIMEOUT``), a bounded scoring pool (``CHURN_THREADS``,
    ``CHURN_MAX_QUEUE``; beyond it a 503 with Retry-After).
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from churn.serving import app

    limits = protocol.Limits.from_env(environ)
    body_timeout = float(environ.get("CHURN_BODY_TIMEOUT") or app.DEFAULT_BODY_TIMEOUT)
    scorer = app.Scorer(
        int(environ.get("CHURN_THREADS") or app.DEFAULT_THREADS),
        int(environ.get("CHURN_MAX_QUEUE") or app.DEFAULT_MAX_QUEUE),
    )

    async def ping(request: Request) -> Response:
        return Response(status_code=200, headers={"X-Serving-Role": role})

    async def invocations(request: Request) -> Response:
        wants = protocol.probabilities_requested(
            request.query_params.get("probabilities"),
            request.headers.get("x-amzn-sagemaker-custom-attributes"),
            request.headers.get("accept"),
        )
        try:
            body = await app.read_body(request, max_body_bytes, body_timeout)
            content, media_type = await scorer.run(
                handle,
                role,
                model,
                body,
                request.headers.get("content-type", ""),
                request.headers.get("accept", ""),
                wants,
                limits,
            )
        except protocol.RequestError as error:
            headers = {"Connection": "close"} if error.status in (408, 413) else {}  # the rest of that body is unread
            return PlainTextResponse(error.message + "\n", error.status, headers=headers)
        except app.Busy:
            return PlainTextResponse(
                f"busy: {scorer.pending} requests in progress or queued, try again\n", 503, headers={"Retry-After": "1"}
            )
        # exactly this Content-Type (no charset added): the next container of the pipeline reads it
        return Response(content, headers={"Content-Type": media_type})

    return Starlette(
        routes=[Route("/ping", ping, methods=["GET"]), Route("/invocations", invocations, methods=["POST"])]
    )


def serve(environ=os.environ) -> None:
    """Verify the bundle, then serve it until stopped (raises RefusedToStart)."""
    import uvicorn

    from churn.serving import app, models, server

    model_dir = environ.get("CHURN_MODEL_DIR", MODEL_DIR)
    role = role_from_env(environ)
    sha256 = verify_bundle(model_dir, environ.get(SHA_ENV))
    host = environ.get("CHURN_SERVING_HOST", "127.0.0.1")
    port = int(environ.get(PORT_ENV) or DEFAULT_PORT)
    workers = max(1, int(environ.get("SAGEMAKER_MODEL_SERVER_WORKERS") or 1))
    max_body = int(environ.get("CHURN_MAX_BODY_BYTES") or app.DEFAULT_MAX_BODY)
    max_header = int(environ.get("CHURN_MAX_HEADER_BYTES") or server.DEFAULT_MAX_HEADER_BYTES)
    try:
        header_timeout = float(environ.get(server.HEADER_TIMEOUT_ENV) or server.DEFAULT_HEADER_TIMEOUT)
        body_timeout = float(environ.get("CHURN_BODY_TIMEOUT") or app.DEFAULT_BODY_TIMEOUT)
        protocol.Limits.from_env(environ)
    except ValueError as error:
        raise RefusedToStart(f"a serving limit in the environment is not a number: {error}") from None
    if header_timeout <= 0 or body_timeout <= 0:
        raise RefusedToStart(f"{server.HEADER_TIMEOUT_ENV} and CHURN_BODY_TIMEOUT must be positive seconds")
    os.environ[server.HEADER_TIMEOUT_ENV] = str(header_timeout)  # read by the server's h11 protocol, in every worker
    # the server's connection-level defences (h11 header cap and deadline, keep-alive timeout, connection cap) here too
    options = dict(
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
        **server.uvicorn_options(max_header),
    )
    if role == pipeline.PREDICT:
        # the local endpoint's server, pointed at the verified bundle (it checks the hash again on load)
        endpoint_dir = Path(tempfile.mkdtemp(prefix="churn-endpoint-"))
        record = {
            "bundle_dir": str(Path(model_dir).resolve()),
            "sha256": sha256,
            "version": environ.get("CHURN_MODEL_VERSION", ""),
        }
        try:
            models.load_model(record)
        except (BundleError, OSError, ValueError) as error:
            raise RefusedToStart(f"the bundle in {model_dir} does not load: {error}") from None
        (endpoint_dir / models.POINTER_FILE).write_text(json.dumps(record))
        os.environ["CHURN_ENDPOINT_DIR"] = str(endpoint_dir)
        os.environ["CHURN_MAX_BODY_BYTES"] = str(max_body)
        os.environ["CHURN_WORKERS"] = str(workers)  # each worker's share of the CPUs (app.Scorer)
        os.environ.pop(app.REGISTRY_ENV, None)  # the registry's hash came in CHURN_BUNDLE_SHA256, checked above
        log.info("serving bundle %s from %s on %s:%d (%d worker(s))", sha256[:12], model_dir, host, port, workers)
        uvicorn.run("churn.serving.app:app_from_env", factory=True, workers=workers, **options)
        return
    try:
        model = load(role, model_dir)
    except (BundleError, OSError, ValueError) as error:
        raise RefusedToStart(f"the bundle in {model_dir} does not load: {error}") from None
    log.info("serving role %s of bundle %s from %s on %s:%d", role, sha256[:12], model_dir, host, port)
    uvicorn.run(role_app(role, model, max_body, environ), **options)


def main(argv: list | None = None) -> None:
    parser = argparse.ArgumentParser(description="churn-mlops container entry point (SageMaker: `serve`)")
    parser.add_argument("command", choices=["serve"])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        serve()
    except RefusedToStart as error:
        log.error("refusing to start: %s", error)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

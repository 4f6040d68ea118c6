"""The server process: command line, start-up checks, uvicorn and its connection-level defences.

Run: ``python -m churn.serving.server --endpoint-dir DIR --port N [--workers W] [--registry-uri URI]``
(every option can also come from the environment, the container's way: ``CHURN_*``).

Start-up: the options are checked, the endpoint's lock is taken (one server per endpoint; the
held lock is its liveness, ``churn.processes``), the bundle the pointer names is loaded and
verified (a bundle that is not the registered one, or a registry that cannot be asked, and the
server refuses to start), then uvicorn runs the app (``churn.serving.app``) in ``--workers``
processes, which get their settings through the environment. uvicorn handles SIGINT/SIGTERM:
in-flight requests get ``timeout_graceful_shutdown`` (5 s) to finish.

Connections: HTTP headers are capped (``--max-header-bytes``, h11) and must arrive within
``--header-timeout`` seconds of the connection (or of a kept-alive request's first byte),
else a 408 and the connection is closed (``HeaderLimitsH11Protocol``); idle keep-alive
connections close after 5 s; at most 1,000 connections at once.

The app, the served model and their constants are re-exported here for the callers that name
them by this module (the local model deployer, the container, uvicorn's factory string).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from pathlib import Path

import h11
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol

from churn.bundle import BundleError
from churn.serving import protocol
from churn.serving.app import (  # noqa: F401 - re-exported: callers name them by this module
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_QUEUE,
    DEFAULT_THREADS,
    INLINE_BODY_BYTES,
    REGISTRY_ENV,
    Busy,
    Scorer,
    app_from_env,
    create_app,
    read_body,
)
from churn.serving.models import (  # noqa: F401 - re-exported: callers name them by this module
    APPROVED,
    POINTER_FILE,
    SERVER_LOCK,
    LoadedModel,
    ModelHolder,
    RegistryError,
    RegistryHashes,
    load_model,
)

log = logging.getLogger("churn.serving")
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds to receive a request's headers
HEADER_TIMEOUT_ENV = "CHURN_HEADER_TIMEOUT"


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
            "CHURN_WORKERS": str(args.workers),  # each worker's share of the CPUs (app.Scorer)
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
        "churn.serving.app:app_from_env",
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

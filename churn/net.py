"""The one free-port helper, for servers the product and the tests start on loopback."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now on ``host``, for a server started next.

    Another process may take it before that server binds; callers that start a server on it
    report the bind failure (the port is named in its log).

    Args:
        host: The address the server will bind (loopback by default).

    Returns:
        The port number.
    """
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]

"""The local endpoint (``churn.serving.server`` as a daemon on 127.0.0.1) as a ZenML service.

Its status is the server's own health: the process holding the endpoint's ``server.lock`` (the
liveness ``stacks.flavors.local_deployer`` uses) and ``GET /ping``, whose ``X-Model-Version``
header names the version served. Its logs are the server's log file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import ClassVar

import requests
from zenml.enums import ServiceState
from zenml.models.v2.misc.service import ServiceType

from churn.processes import holder_pid
from churn.serving.models import POINTER_FILE, SERVER_LOCK
from stacks.flavors.local_deployer import FLAVOR
from stacks.services.endpoint import EndpointService, EndpointServiceConfig, endpoint_service_type

LOG_FILE = "server.log"


class LocalEndpointServiceConfig(EndpointServiceConfig):
    """A local deployment; ``endpoint_dir`` is the endpoint's directory (pointer, state, bundles, log)."""

    endpoint_dir: str


class LocalEndpointService(EndpointService):
    """A local endpoint server, checked by its pid and ``/ping``."""

    SERVICE_TYPE: ClassVar[ServiceType] = endpoint_service_type(
        FLAVOR, "churn-local-endpoint", "churn inference server (churn.serving.server) on 127.0.0.1"
    )
    config: LocalEndpointServiceConfig

    @property
    def healthcheck_url(self) -> str | None:
        return f"{self.status.url.rstrip('/')}/ping" if self.status.url else None

    def check_status(self) -> tuple[ServiceState, str]:
        """The server's state: inactive (no process), pending (not answering yet), active or error (/ping).

        Returns:
            (state, message); the message names the version served when it is not this record's.
        """
        directory = Path(self.config.endpoint_dir)
        self.status.clear_error()
        self.status.served_version = ""
        if not (directory / POINTER_FILE).is_file():
            self.status.exists, self.status.url = False, None
            return ServiceState.INACTIVE, f"endpoint '{self.config.endpoint_name}' was deleted ({directory} is gone)"
        pid = holder_pid(directory / SERVER_LOCK)
        if pid is None:
            self.status.url = None
            return ServiceState.INACTIVE, "the endpoint server is not running"
        try:
            url = json.loads((directory / "state.json").read_text())["url"]
        except (OSError, ValueError, KeyError):
            return ServiceState.PENDING_STARTUP, f"server pid {pid} is starting (no state.json yet)"
        self.status.url = url
        try:
            response = requests.get(url + "/ping", timeout=5)
        except requests.RequestException as error:
            return ServiceState.PENDING_STARTUP, f"server pid {pid} does not answer {url}/ping yet: {error}"
        if response.status_code != 200:
            return ServiceState.ERROR, f"{url}/ping answered HTTP {response.status_code}: {response.text.strip()}"
        served = response.headers.get("X-Model-Version", "")
        self.status.served_version = served
        if served != str(self.config.model_version):
            return ServiceState.ACTIVE, f"serving version {served}, not version {self.config.model_version}"
        return ServiceState.ACTIVE, ""

    def get_logs(self, follow: bool = False, tail: int | None = None) -> Generator[str, bool, None]:
        """The server's log lines (``server.log`` in the endpoint's directory).

        Args:
            follow: keep yielding lines as they are written.
            tail: only the last ``tail`` lines (then new ones, when following).

        Yields:
            One log line at a time, without its newline.
        """
        path = Path(self.config.endpoint_dir) / LOG_FILE
        if not path.is_file():
            return
        with open(path, errors="replace") as handle:
            if tail:
                yield from (line.rstrip("\n") for line in handle.readlines()[-tail:])
            else:
                for line in handle:
                    yield line.rstrip("\n")
            while follow:
                line = handle.readline()
                if line:
                    if (yield line.rstrip("\n")):
                        return
                else:
                    time.sleep(0.5)
                    if not os.path.exists(path):
                        return

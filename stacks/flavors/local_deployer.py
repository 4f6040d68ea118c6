"""Local model deployer flavor: our inference server as a daemon on 127.0.0.1.

Each endpoint is a directory under ``root``: ``bundles/<version>/`` (copied from the
registry's path, or fetched when the registry gives a URI: ``mlflow-artifacts:/``, ``runs:/``,
``models:/``, ``s3://``; hash-checked either way), ``current.json`` (what to serve; the server hot-swaps on change),
``state.json`` (pid, port, url) and ``server.log``. Re-deploying swaps the model
in the running server: the URL stays the same and no request is dropped. A bundle
that fails to load, or a server that does not report the new version in time, is
not switched in: the previous model keeps serving and the deploy fails. Each deployment is
recorded, under the lock, as a ZenML service (``stacks.services.local_endpoint``), which ZenML's
``model-deployer models`` commands list, check (pid + ``/ping``), stop, start and delete.

Concurrency: a per-endpoint lock (``deploy.lock``, filelock) covers the whole deploy,
rollback and stop, so two runs deploying one endpoint take turns. A deploy never
replaces a newer version of the same registered model (the later-registered model
wins, whichever run finishes first). Rollback is compare-and-swap: the previous
pointer is put back only if the pointer is still the one this deploy wrote. Pointer
and state files are written under unique temporary names and renamed into place. One
server per endpoint: the server holds ``server.lock`` while it lives (the liveness we
check before using or signalling its pid), and a second server for the directory exits.

Why one module of about 300 lines: deploy, rollback, stop and the server's start share one lock,
one directory layout and one compare-and-swap rule; split apart, each part would have to restate
the others' invariants. The server itself is ``churn.serving.server``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import requests
from filelock import FileLock
from zenml.client import Client
from zenml.config.global_config import GlobalConfiguration
from zenml.model_deployers.base_model_deployer import BaseModelDeployerConfig, BaseModelDeployerFlavor

from churn import names
from churn.bundle import BUNDLE_FILE, BundleError
from churn.files import atomic_write_json
from churn.net import free_port
from churn.processes import holder_pid, pid_alive
from churn.serving.models import POINTER_FILE, SERVER_LOCK, load_model
from stacks.contracts import DeploymentError, EndpointDeployer, split_allow_older

FLAVOR = "churn_local_endpoint"
REPO_ROOT = Path(__file__).resolve().parents[2]


class LocalEndpointDeployerConfig(BaseModelDeployerConfig):
    """``root``: where endpoints live; ``host``/``port``: bind address (port 0 = a free one)."""

    root: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    workers: int = 1
    start_timeout: float = 60.0
    keep_versions: int = 3

    @property
    def is_local(self) -> bool:
        return True


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _newer(served: dict | None, model_name: str, version: str) -> bool:
    """True if ``served`` is a later registered version of the same model than ``version``."""
    if not served or served.get("model_name") != model_name:
        return False
    current = str(served.get("version", ""))
    return current.isdigit() and str(version).isdigit() and int(current) > int(version)


def _log_tail(path: str) -> str:
    try:
        lines = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1] if lines else "no log output"


def _stage_bundle(uri: str, staging: Path, sha256: str) -> None:
    """Put the bundle at ``uri`` in ``staging``: a local path is copied, any other URI is fetched
    (``churn.batch.fetch_bundle``: ``mlflow-artifacts:/``, ``runs:/``, ``models:/``, ``s3://``) and hash-checked."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        shutil.copytree(Path(parsed.path if parsed.scheme else uri), staging)
        return
    from churn.batch import fetch_bundle

    download = staging.with_name(staging.name + "-download")
    try:
        tracker = Client().active_stack.experiment_tracker
        if hasattr(tracker, "configure_mlflow"):
            tracker.configure_mlflow()  # MLflow URIs resolve against the stack's tracking server
        fetch_bundle(uri, download, sha256)
        found = sorted(p.parent for p in download.rglob(BUNDLE_FILE))
        if len(found) != 1:
            raise BundleError(f"{uri} holds {len(found)} model bundles, not one")
        os.replace(found[0], staging)
    except (BundleError, OSError) as error:
        raise DeploymentError(f"could not fetch the bundle at {uri}: {error}") from None
    except Exception as error:  # noqa: BLE001 - MLflow's and fsspec's errors, named for the user
        raise DeploymentError(f"could not fetch the bundle at {uri}: {type(error).__name__}: {error}") from None
    finally:
        shutil.rmtree(download, ignore_errors=True)


class LocalEndpointDeployer(EndpointDeployer):
    """Serves model bundles through ``churn.serving.server`` daemons on this machine."""

    NAME: ClassVar[str] = "Churn local endpoint"
    FLAVOR: ClassVar[type[BaseModelDeployerFlavor]]

    @property
    def config(self) -> LocalEndpointDeployerConfig:
        return self._config  # type: ignore[return-value]

    @property
    def root(self) -> Path:
        return Path(
            self.config.root or os.path.join(GlobalConfiguration().local_stores_path, "endpoints", str(self.id))
        )

    def _dir(self, endpoint_name: str) -> Path:
        return self.root / names.endpoint(endpoint_name)

    def _lock(self, endpoint_name: str) -> FileLock:
        directory = self._dir(endpoint_name)
        directory.mkdir(parents=True, exist_ok=True)
        return FileLock(str(directory / "deploy.lock"), timeout=max(600.0, 3 * self.config.start_timeout))

    def _server_pid(self, endpoint_name: str) -> int | None:
        """The pid of the live server of this endpoint (it holds server.lock), or None."""
        return holder_pid(self._dir(endpoint_name) / SERVER_LOCK)

    def _state(self, endpoint_name: str) -> dict:
        path = self._dir(endpoint_name) / "state.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    # -- ZenML services (stacks.services.local_endpoint) --
    @property
    def service_class(self) -> type[Any]:
        from stacks.services.local_endpoint import LocalEndpointService

        return LocalEndpointService

    def service_config(self, entry: Any) -> Any:
        from stacks.services.local_endpoint import LocalEndpointServiceConfig

        return LocalEndpointServiceConfig(
            **self.service_fields(entry), endpoint_dir=str(self._dir(entry["endpoint_name"]))
        )

    # -- the deployer contract (stacks.contracts.EndpointDeployer) --
    def deploy_bundle(
        self,
        endpoint_name: str,
        model_name: str,
        version: str,
        bundle_uri: str,
        sha256: str,
        metadata: dict[str, Any] | None = None,
        settings: Any = None,
        *,
        allow_older: bool = False,
    ) -> dict[str, Any]:
        """Serve ``bundle_uri`` (registered as ``model_name`` ``version``) at ``endpoint_name``.

        ``settings`` (DeploySettings: instance type, autoscaling) do not apply to one local process.
        """
        with self._lock(endpoint_name):
            metadata, allow_older = split_allow_older(metadata, allow_older)
            deployed = self._deploy_locked(
                endpoint_name, model_name, str(version), bundle_uri, sha256, metadata, allow_older
            )
            self.record_deployment(deployed)  # under the lock: the record follows the order deployments happen
            return deployed

    def _deploy_locked(
        self,
        endpoint_name: str,
        model_name: str,
        version: str,
        bundle_uri: str,
        sha256: str,
        metadata: dict[str, Any],
        allow_older: bool,
    ) -> dict[str, Any]:
        directory = self._dir(endpoint_name)
        pointer = directory / POINTER_FILE
        served = _read_json(pointer)
        # allow_older: the registry's model to serve is older (a promotion, a rejection): a rollback, on purpose
        if _newer(served, model_name, version) and not allow_older:
            print(
                f"Endpoint '{endpoint_name}' already serves {model_name} v{served['version']}, registered after "
                f"v{version}: not replacing it with the older version"
            )
            state = self._ensure_server(endpoint_name)
            self._wait_for_version(state, str(served["version"]), str(served.get("sha256")))
            return {
                "endpoint_name": endpoint_name,
                "url": state["url"],
                "invocations_url": state["url"] + "/invocations",
                "pid": state["pid"],
                "model_name": model_name,
                "version": str(served["version"]),
                "sha256": served.get("sha256"),
                "bundle_uri": served.get("bundle_uri", ""),
                "deployed_at": served.get("deployed_at", ""),
                "superseded": str(version),
            }
        (directory / "bundles").mkdir(parents=True, exist_ok=True)
        bundle_dir = directory / "bundles" / f"v{version}-{sha256[:12]}"
        if not bundle_dir.exists():
            staging = directory / "bundles" / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                _stage_bundle(bundle_uri, staging, sha256)
                os.replace(staging, bundle_dir)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        record = {
            "endpoint_name": endpoint_name,
            "model_name": model_name,
            "version": str(version),
            "sha256": sha256,
            "bundle_uri": bundle_uri,
            "bundle_dir": str(bundle_dir),
            "deployed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **metadata,
        }
        try:
            load_model(record, prepare=False)  # the server's check (sha256, load, score a row), uncompiled
        except (BundleError, OSError, ValueError) as error:
            raise DeploymentError(
                f"model {model_name} v{version} failed its health check and was not deployed: {error}"
            ) from None
        print(f"Deploying {model_name} v{version} to endpoint '{endpoint_name}' (waiting for /ping to report it)")
        atomic_write_json(pointer, record)
        try:
            state = self._ensure_server(endpoint_name)
            self._wait_for_version(state, str(version), sha256)
        except DeploymentError:
            # compare-and-swap: put the previous pointer back only if the pointer is still ours
            if served is not None and _read_json(pointer) == record:
                atomic_write_json(pointer, served)
            raise
        self._prune(directory, keep={bundle_dir.name})
        return {
            "endpoint_name": endpoint_name,
            "url": state["url"],
            "invocations_url": state["url"] + "/invocations",
            "pid": state["pid"],
            "model_name": model_name,
            "version": str(version),
            "sha256": sha256,
            "bundle_uri": bundle_uri,
            "deployed_at": record["deployed_at"],
        }

    def endpoint_url(self, endpoint_name: str) -> str | None:
        return self._state(endpoint_name).get("url") if self._server_pid(endpoint_name) else None

    def invoke(
        self,
        endpoint_name: str,
        body: bytes,
        content_type: str = "text/csv",
        accept: str = "text/csv",
        probabilities: bool = False,
    ) -> requests.Response:
        url = self.endpoint_url(endpoint_name)
        if url is None:
            raise DeploymentError(f"endpoint '{endpoint_name}' is not running; run the training pipeline to deploy it")
        headers = {"Content-Type": content_type, "Accept": accept}
        if probabilities:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = "probabilities=true"
        return requests.post(url + "/invocations", data=body, headers=headers, timeout=60)

    def list_endpoints(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        out = []
        for directory in sorted(p for p in self.root.iterdir() if (p / POINTER_FILE).is_file()):
            state, record = self._state(directory.name), json.loads((directory / POINTER_FILE).read_text())
            pid = self._server_pid(directory.name)
            out.append(
                {
                    "endpoint_name": directory.name,
                    "running": pid is not None,
                    "url": state.get("url"),
                    "pid": pid,
                    **record,
                }
            )
        return out

    def stop_endpoint(self, endpoint_name: str, timeout: float = 10.0) -> bool:
        """Stop the endpoint's server process (by the pid of the lock's live holder); True if one was running."""
        with self._lock(endpoint_name):
            pid = self._server_pid(endpoint_name)
            if pid is None:
                return False
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self._server_pid(endpoint_name) == pid and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._server_pid(endpoint_name) == pid:
                os.killpg(pid, signal.SIGKILL)
            while pid_alive(pid) and time.monotonic() < deadline + timeout:
                time.sleep(0.05)
            return True

    def start_endpoint(self, endpoint_name: str) -> dict[str, Any]:
        """Start the endpoint's server again (if it is not running) with the model its pointer names.

        Raises:
            DeploymentError: nothing was ever deployed there, or the server did not serve that version.
        """
        with self._lock(endpoint_name):
            served = _read_json(self._dir(endpoint_name) / POINTER_FILE)
            if not served:
                raise DeploymentError(f"nothing is deployed at endpoint '{endpoint_name}'; run the training pipeline")
            state = self._ensure_server(endpoint_name)
            self._wait_for_version(state, str(served["version"]), str(served.get("sha256")))
        return {**served, "url": state["url"], "invocations_url": state["url"] + "/invocations", "pid": state["pid"]}

    def remove_endpoint(self, endpoint_name: str) -> bool:
        """Stop the endpoint's server and delete its directory; True if a server was running."""
        stopped = self.stop_endpoint(endpoint_name)
        shutil.rmtree(self._dir(endpoint_name), ignore_errors=True)
        return stopped

    # -- process management -----------------------------------------------------------
    def _ensure_server(self, endpoint_name: str) -> dict:
        directory = self._dir(endpoint_name)
        state = self._state(endpoint_name)
        pid = self._server_pid(endpoint_name)
        if pid is not None and state.get("url"):
            return {**state, "pid": pid}
        port = state.get("port") or self.config.port or free_port(self.config.host)
        # the server checks each bundle against the registry's hash itself, not the pointer's (churn.serving.server)
        tracker = Client().active_stack.experiment_tracker
        if not hasattr(tracker, "get_tracking_uri"):
            raise DeploymentError(
                "the local endpoint verifies bundles against the MLflow model registry; the active "
                "stack has no MLflow experiment tracker naming it (python run.py stack setup local)"
            )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        env["CHURN_REGISTRY_URI"] = tracker.get_tracking_uri()  # in the environment: argv is visible to every user
        with open(directory / "server.log", "ab") as log_file:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "churn.serving.server",
                    "--endpoint-dir",
                    str(directory),
                    "--host",
                    self.config.host,
                    "--port",
                    str(port),
                    "--workers",
                    str(self.config.workers),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(REPO_ROOT),
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.config.start_timeout
        while self._server_pid(endpoint_name) != process.pid:  # started once it holds the endpoint's server lock
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                raise DeploymentError(
                    f"the endpoint server for '{endpoint_name}' did not start: "
                    f"{_log_tail(str(directory / 'server.log'))}"
                )
            time.sleep(0.05)
        state = {
            "pid": process.pid,
            "host": self.config.host,
            "port": port,
            "url": f"http://{self.config.host}:{port}",
            "log": str(directory / "server.log"),
        }
        atomic_write_json(directory / "state.json", state)
        return state

    def _wait_for_version(self, state: dict, version: str, sha256: str) -> None:
        url, deadline, last = state["url"], time.monotonic() + self.config.start_timeout, "no answer"
        while time.monotonic() < deadline:
            if holder_pid(Path(state["log"]).parent / SERVER_LOCK) != state["pid"]:
                raise DeploymentError(f"the endpoint server at {url} exited: {_log_tail(state['log'])}")
            try:
                response = requests.get(url + "/ping", timeout=2)
                if (
                    response.status_code == 200
                    and response.headers.get("X-Model-Version") == version
                    and response.headers.get("X-Model-Sha256") == sha256
                ):
                    if response.json().get("verified_against") != "registry":
                        raise DeploymentError(
                            f"the endpoint server at {url} (pid {state['pid']}) does not verify "
                            "bundles against the model registry (started by an older version): "
                            "stop it (`python run.py cleanup`) and deploy again"
                        )
                    return
                last = f"HTTP {response.status_code}, serving version {response.headers.get('X-Model-Version')!r}"
                if response.headers.get("X-Last-Load-Error"):
                    last += f", load error: {response.headers['X-Last-Load-Error']}"
            except requests.RequestException as error:
                last = str(error)
            time.sleep(0.1)
        raise DeploymentError(
            f"endpoint at {url} did not serve version {version} within "
            f"{self.config.start_timeout:.0f}s ({last}); the previous model keeps serving"
        )

    def _prune(self, directory: Path, keep: set) -> None:
        bundles = sorted(
            (p for p in (directory / "bundles").iterdir() if not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in bundles[self.config.keep_versions :]:
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)


class LocalEndpointDeployerFlavor(BaseModelDeployerFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[LocalEndpointDeployerConfig]:
        return LocalEndpointDeployerConfig

    @property
    def implementation_class(self) -> type[LocalEndpointDeployer]:
        return LocalEndpointDeployer

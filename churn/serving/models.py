"""The served model: a bundle verified against the registry's hash, and its hot swap.

The served model is named by ``<endpoint_dir>/current.json`` (written by the model
deployer: model name, version, bundle directory). A watcher thread loads a new bundle
when that file changes: it reads the bundle's files once, checks the SHA-256 of those
bytes against the expected hash, loads from the same bytes, and swaps the model in only
once it has scored a row; requests in flight keep the model they started with. A bundle
that fails, or any error in the watcher, is reported (log, /ping ``last_swap_error``) and
the old model keeps serving; the watcher keeps running and retries with backoff.

Where the expected hash comes from (reported by /ping as ``verified_against``):

- a registry (``RegistryHashes``; the server's ``--registry-uri`` / ``CHURN_REGISTRY_URI``; the
  local model deployer always passes its stack's MLflow tracking URI): the ``bundle_sha256`` tag
  of the MLflow model version the pointer names, looked up by the server itself. A hash written
  beside the bundle is not trusted: whoever can rewrite the bundle can rewrite the pointer too. A
  version the registry does not have, has without a hash, or does not hold ``Approved``
  (withdrawn, rejected, pending) is refused when it is loaded; a registry that cannot be asked
  fails closed (at startup the server refuses to start; at a hot swap the verified model keeps
  serving and the error is reported, and the swap is retried).
- otherwise the pointer's own ``sha256``: for a pointer written by a trusted launcher in a
  private directory (the SageMaker container, after checking the bundle against the
  registry's hash in its environment) and for tests.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from churn.bundle import BundleError, ModelBundle, load_verified, require_recorded_sha256

log = logging.getLogger("churn.serving")
POINTER_FILE = "current.json"
SERVER_LOCK = "server.lock"  # held by the live server process (churn.processes)
REGISTRY_SHA_TAG = "bundle_sha256"  # the MLflow model version tags our register step writes (steps/register.py)
APPROVAL_TAG, APPROVED = "approval_status", "Approved"  # churn.model_registry's (not imported: it imports ZenML)


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


def load_model(record: dict, registry: RegistryHashes | None = None, *, prepare: bool = True) -> LoadedModel:
    """Load and smoke-test the bundle a pointer record names (raises BundleError).

    The expected hash is the registry's when ``registry`` is given (the pointer names the
    model and version), else the pointer's ``sha256``. No hash, no load; the bundle is
    loaded from the bytes that were hashed. ``prepare`` compiles its forest for serving (a
    check that serves nothing, like the deployer's, passes False).
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
        if prepare:
            bundle.prepare()
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

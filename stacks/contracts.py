"""The backend-neutral contracts every stack flavor implements.

Steps, pipelines and the CLI use only what is declared here; they never import a flavor
(``stacks/flavors/``) or ask for a flavor's name (``tests/test_architecture.py`` checks the
imports). Each flavor is the implementation of one of these for one backend:

- :class:`ChurnFeatureStore`: the feature store (local parquet/DuckDB, SageMaker Feature Store).
  ``describe`` answers with a neutral :class:`FeatureGroupInfo`, not a backend's document.
- :class:`EndpointDeployer`: the model deployer (local daemon, SageMaker endpoint): endpoints
  by name, invocation, batch scoring and cleanup; each endpoint is also a ZenML service
  (``stacks/services/``), so ZenML's ``model-deployer models`` commands work on it.
- :class:`FailureAlertParams`: the structured payload of a failure alert, which every alerter
  (local outbox, SNS) understands.
- the errors: :class:`DeploymentError` (every deployer raises it, and nothing else, for a
  deployment, invocation or batch that did not happen), ``FeatureStoreError`` (a missing group,
  a failed or short read) and ``IngestError`` (a bad record or a schema that does not match the
  group's). All three are raised by the plain code in ``churn/`` too, which cannot import this
  module, so they are defined there and re-exported here: one class each.
- the component names every stack shares: :data:`EXPERIMENT_TRACKER` (steps bind MLflow by
  this name) and :data:`AUTOML_ENGINE_LABEL` (the stack label that picks the AutoML engine).

Why one module of over 300 lines: it is the one place a flavor author reads to implement a
backend, so every contract stays together; most of its lines are the Args/Returns/Raises
docstrings that define the behaviour every flavor must keep.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import pandas as pd
from zenml.alerter.base_alerter import BaseAlerterStepParameters
from zenml.feature_stores.base_feature_store import BaseFeatureStore
from zenml.model_deployers.base_model_deployer import BaseModelDeployer

from churn.config import DEPLOY_KEYS, DeploySettings
from churn.deployment_error import DeploymentError
from churn.feature_query import FeatureQuery
from churn.ingest import IngestError
from churn.offline_store import FeatureStoreError
from churn.redaction import redact
from churn.schema import EVENT_TIME, ID_COLUMN

__all__ = [
    "AUTOML_ENGINE_LABEL",
    "EXPERIMENT_TRACKER",
    "ChurnFeatureStore",
    "CleanupRequest",
    "DeploymentError",
    "EndpointDeployer",
    "FailureAlertParams",
    "FeatureGroupInfo",
    "FeatureStoreError",
    "IngestError",
    "runs_remotely",
]

# -- component names shared by every stack ----------------------------------------------------
# the MLflow tracker's component name on every stack; steps bind it with @step(experiment_tracker=...)
EXPERIMENT_TRACKER = "mlflow_tracker"
# the stack label naming the AutoML engine (absent: the local, in-process default)
AUTOML_ENGINE_LABEL = "automl_engine"


def runs_remotely(stack: Any) -> bool:
    """Whether a stack's orchestrator runs the steps somewhere other than this process's machine.

    Args:
        stack: a ZenML ``Stack`` (e.g. ``Client().active_stack``).

    Returns:
        True when the orchestrator's configuration says it is remote (e.g. SageMaker), so a run
        returns before its steps have finished; False for ZenML's local orchestrator.
    """
    return bool(stack.orchestrator.config.is_remote)


# -- errors -------------------------------------------------------------------------------------
# -- the alert payload ---------------------------------------------------------------------------
class FailureAlertParams(BaseAlerterStepParameters):
    """Structured fields of a failure alert (the failure hook fills them, each alerter formats them).

    Attributes:
        pipeline: the pipeline's name.
        step: the failed step's name.
        error: ``<ExceptionType>: <message>``, already redacted and truncated.
        run_id: the ZenML pipeline run's id.
        run_name: the ZenML pipeline run's name.
        logs: where the step's logs are.
    """

    pipeline: str
    step: str
    error: str
    run_id: str = ""
    run_name: str = ""
    logs: str = ""

    @property
    def subject(self) -> str:
        """``[Pipeline Failed] <pipeline>.<step>``, redacted, then cut to 100 characters (SNS's limit)."""
        return redact(f"[Pipeline Failed] {self.pipeline}.{self.step}")[:100]


# -- the feature store ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureGroupInfo:
    """What a feature group holds, the same on every backend.

    Attributes:
        name: the feature group's name.
        features: feature name -> type (``Integral``, ``Fractional`` or ``String``), in column order.
        record_identifier: the column that identifies a record (``customer_id``).
        event_time: the column holding each record's event time.
        target_column: the label column named when the group was created (None if unknown).
        created_at: when the group was created (ISO 8601 text, None if unknown).
        offline_store_uri: where the offline store's records are (a path or ``s3://`` URI).
    """

    name: str
    features: dict[str, str]
    record_identifier: str = ID_COLUMN
    event_time: str = EVENT_TIME
    target_column: str | None = None
    created_at: str | None = None
    offline_store_uri: str | None = None

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> FeatureGroupInfo:
        """Read the definition document both plain stores return (SageMaker's field names).

        Args:
            definition: ``churn.offline_store.LocalOfflineStore.describe`` /
                ``churn.aws.feature_store.FeatureGroupClient.describe`` output.

        Returns:
            The neutral description.
        """
        return cls(
            name=definition["FeatureGroupName"],
            features=dict(definition["FeatureDefinitions"]),
            record_identifier=definition.get("RecordIdentifierFeatureName", ID_COLUMN),
            event_time=definition.get("EventTimeFeatureName", EVENT_TIME),
            target_column=definition.get("TargetColumn"),
            created_at=definition.get("CreationTime") or None,
            offline_store_uri=(definition.get("OfflineStoreConfig") or {}).get("S3Uri"),
        )


class FeatureGroupStore(Protocol):
    """The plain-logic store a feature-store flavor wraps (``churn.offline_store``, ``churn.aws.feature_store``)."""

    def describe(self, group: str) -> dict[str, Any] | None: ...

    def ingest(self, group: str, frame: pd.DataFrame, target: str) -> dict[str, Any]: ...


class ChurnFeatureStore(BaseFeatureStore):
    """The feature store our steps and CLI use: ``describe``, ``record_count``, ``ingest``, ``read``.

    A flavor provides :attr:`store` (its plain-logic store), :meth:`record_count`, :meth:`read`
    and ZenML's ``get_online_features``; ``describe``, ``ingest`` and ZenML's
    ``get_historical_features`` are answered here, once, from those.
    """

    @property
    @abstractmethod
    def store(self) -> FeatureGroupStore:
        """The plain-logic store this flavor wraps."""

    def describe(self, feature_group: str) -> FeatureGroupInfo | None:
        """The feature group's features and where it lives.

        Args:
            feature_group: the feature group's name.

        Returns:
            Its description, or None when the group does not exist.

        Raises:
            FeatureStoreError: the backend could not be asked.
        """
        definition = self.store.describe(feature_group)
        return None if definition is None else FeatureGroupInfo.from_definition(definition)

    @abstractmethod
    def record_count(self, feature_group: str) -> int:
        """Distinct customers (record identifiers) in the offline store.

        Args:
            feature_group: the feature group's name.

        Returns:
            How many distinct customers it holds; 0 when the group does not exist or is empty.

        Raises:
            FeatureStoreError: the backend could not count them.
        """

    def ingest(self, feature_group: str, frame: pd.DataFrame, target: str) -> dict[str, Any]:
        """Validate every record, create the group if missing (its schema from ``frame``), then write them.

        Args:
            feature_group: the feature group's name.
            frame: one row per customer: ``customer_id``, features and the target column.
            target: the binary 0/1 target column of ``frame``.

        Returns:
            ``{"feature_group", "records", "created", "feature_definitions", ...}`` (each backend adds where it wrote).

        Raises:
            IngestError: a record or the schema is invalid; nothing was written.
            FeatureStoreError: the backend refused the write.
        """
        return self.store.ingest(feature_group, frame, target)

    @abstractmethod
    def read(self, query: FeatureQuery) -> tuple[pd.DataFrame, str]:
        """The latest non-deleted record per customer in the query's range (optionally as of a time).

        Args:
            query: feature group, customer id range and optional ``as_of``.

        Returns:
            (the records, the SQL that selected them).

        Raises:
            FeatureStoreError: the group does not exist, or the read found no (or too few) records.
        """

    def get_historical_features(self, entity_df: Any, features: list[str], full_feature_names: bool = False) -> Any:
        """ZenML's generic API, answered by :meth:`read`.

        Args:
            entity_df: a :class:`~churn.feature_query.FeatureQuery` or its keyword arguments as a dict.
            features: the columns wanted (``customer_id`` is always kept); empty: every column.
            full_feature_names: unused (column names are never prefixed here).

        Returns:
            The records, as a pandas DataFrame.
        """
        query = entity_df if isinstance(entity_df, FeatureQuery) else FeatureQuery(**entity_df)
        frame, _ = self.read(query)
        return frame[[c for c in frame.columns if c in set(features) | {ID_COLUMN}]] if features else frame

    @staticmethod
    def online_feature_refs(features: Sequence[str]) -> tuple[str, list[str]]:
        """Split ``feature_group:column`` references (ZenML's ``get_online_features``) into (group, columns).

        Args:
            features: ``feature_group:column`` references, all to one feature group.

        Returns:
            (the feature group, the columns other than ``customer_id``).

        Raises:
            ValueError: a reference is not ``group:column``, or they name several groups.
        """
        refs = [f.split(":", 1) for f in features]
        groups = {ref[0] for ref in refs}
        if len(groups) != 1 or any(len(ref) != 2 for ref in refs):
            raise ValueError("features must be 'feature_group:column' references to one feature group")
        return groups.pop(), [ref[1] for ref in refs if ref[1] != ID_COLUMN]


# -- the model deployer ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CleanupRequest:
    """What ``python run.py cleanup`` asks a deployer to remove.

    Attributes:
        endpoint_names: the pipelines' endpoints (a deployer may remove every endpoint it manages instead).
        model_package_groups: the pipelines' registry groups (removed only with ``include_registry``).
        include_registry: also delete the registered models and their groups.
        include_s3: also delete the stack's stored artifacts (its bucket prefix).
        yes: do not ask before removing.
    """

    endpoint_names: Sequence[str] = ()
    model_package_groups: Sequence[str] = ()
    include_registry: bool = False
    include_s3: bool = False
    yes: bool = False


def split_allow_older(metadata: Mapping[str, Any] | None, allow_older: bool) -> tuple[dict[str, Any], bool]:
    """The deployment's metadata without ``allow_older``, and whether an older version may replace a newer one.

    ``metadata["allow_older"]`` is read for one release only, for callers that still pass it there; it is
    never recorded (not in the local pointer, not as a SageMaker tag).

    Args:
        metadata: ``deploy_bundle``'s metadata.
        allow_older: ``deploy_bundle``'s keyword.

    Returns:
        (metadata to record, allow_older).
    """
    recorded = dict(metadata or {})
    legacy = bool(recorded.pop("allow_older", False))
    return recorded, allow_older or legacy


class EndpointDeployer(BaseModelDeployer):
    """The model deployer our deploy step, batch step, ``predict``, ``endpoints`` and ``cleanup`` use.

    Endpoints are managed by name (the abstract endpoint methods each flavor implements), and each
    endpoint is also a ZenML service (``stacks/services/``): :meth:`deploy_bundle` records it, and
    ZenML's service API (``zenml model-deployer models list/describe/logs/start/stop/delete``) is
    answered here, once, through the endpoint methods. How an endpoint is served is the pipeline's
    ``churn.config.DeploySettings`` (instance type, autoscaling: the spec's deploy keys), passed to
    :meth:`deploy_bundle`. Each deployer names the settings it applies (``HONOURED_SETTINGS``);
    :meth:`unused_settings` lists the others, which the deploy step reports by name (the same
    pipeline config serves every stack).
    """

    HONOURED_SETTINGS: ClassVar[tuple[str, ...]] = ()  # the DeploySettings keys this deployer applies

    @abstractmethod
    def deploy_bundle(
        self,
        endpoint_name: str,
        model_name: str,
        version: str,
        bundle_uri: str,
        sha256: str,
        metadata: dict[str, Any] | None = None,
        settings: DeploySettings | None = None,
        *,
        allow_older: bool = False,
    ) -> dict[str, Any]:
        """Serve a registered bundle at ``endpoint_name``; on failure the previous model keeps serving.

        Args:
            endpoint_name: the endpoint (created if missing, else switched to this model).
            model_name: the registered model's name.
            version: the registered version.
            bundle_uri: where the registry keeps the bundle.
            sha256: the bundle's registered SHA-256 (checked before it is served).
            metadata: extra lineage recorded with the deployment (e.g. ``mlflow_run_id``).
            settings: how to serve it (None: the defaults); see :meth:`unused_settings`.
            allow_older: serve it even if the endpoint serves a version registered after it (a rollback on
                purpose: a promotion, a rejection). Not recorded with the deployment.

        Returns:
            ``{"endpoint_name", "url", "invocations_url", "model_name", "version", ...}``.

        Raises:
            DeploymentError: the model was not deployed.
        """

    def unused_settings(self) -> list[str]:
        """The deploy settings this deployer does not apply.

        Returns:
            The ``churn.config.DEPLOY_KEYS`` that have no effect on this stack.
        """
        return [key for key in DEPLOY_KEYS if key not in self.HONOURED_SETTINGS]

    @abstractmethod
    def endpoint_url(self, endpoint_name: str) -> str | None:
        """Where the endpoint answers.

        Args:
            endpoint_name: the endpoint.

        Returns:
            Its URL, or None when it is not running.
        """

    @abstractmethod
    def invoke(
        self,
        endpoint_name: str,
        body: bytes,
        content_type: str = "text/csv",
        accept: str = "text/csv",
        probabilities: bool = False,
    ) -> Any:
        """Send one request to the endpoint.

        Args:
            endpoint_name: the endpoint.
            body: the request body (CSV with a header row of raw features, or JSON).
            content_type: the body's media type.
            accept: the answer's media type (``text/csv`` or ``application/json``).
            probabilities: also ask for the churn probability per row.

        Returns:
            The answer: it has ``status_code``, ``text`` and ``headers``.

        Raises:
            DeploymentError: the endpoint is not running or could not be reached.
        """

    @abstractmethod
    def list_endpoints(self) -> list[dict[str, Any]]:
        """The endpoints this deployer manages.

        Returns:
            One dict per endpoint: ``endpoint_name``, ``running``, ``url``, ``model_name``, ``version``, ...
        """

    @abstractmethod
    def stop_endpoint(self, endpoint_name: str) -> bool:
        """Stop serving (the SageMaker deployer cannot pause an endpoint: it deletes it).

        Args:
            endpoint_name: the endpoint.

        Returns:
            True if something was running.
        """

    @abstractmethod
    def remove_endpoint(self, endpoint_name: str) -> Any:
        """Stop and remove an endpoint on the backend (:meth:`delete_endpoint` also drops its ZenML records).

        Args:
            endpoint_name: the endpoint.

        Returns:
            What was removed (each deployer says it its own way).
        """

    def batch_predict(
        self,
        features: Any,
        bundle: Any,
        model_version: dict[str, Any],
        location: str,
        output_format: str,
        chunk_rows: int,
        run_id: str,
        *,
        instance_type: str | None = None,
        instance_count: int = 1,
    ) -> dict[str, Any]:
        """Score ``features`` with ``bundle`` and write ``churn.batch.OUTPUT_COLUMNS`` to ``location``, atomically.

        This default scores in the step's process, in chunks streamed to the output; a deployer
        whose platform has a batch service overrides it (SageMaker: Batch Transform).

        Args:
            features: the records to score (raw features and ``customer_id``).
            bundle: the ``churn.bundle.ModelBundle`` to score with.
            model_version: the registry's ``model_name``, ``version``, ``bundle_uri`` (where the bundle is;
                ``churn.model_registry.version_bundle_uri``), ``model_source_uri``, ``bundle_sha256``.
            location: the output path or ``s3://`` URI (it appears only when complete).
            output_format: ``parquet`` or ``csv``.
            chunk_rows: rows per chunk (per request on a batch service).
            run_id: the pipeline run, written beside each prediction.
            instance_type: the batch service's instance type (unused in process).
            instance_count: the batch service's instance count (unused in process).

        Returns:
            ``{"rows", "location", "positive_rate", "scored_by", ...}``.

        Raises:
            DeploymentError: a batch service's job failed; nothing was written.
        """
        from churn.batch import score_to

        return score_to(
            bundle,
            features,
            location,
            output_format,
            chunk_rows,
            model_version["model_name"],
            str(model_version["version"]),
            run_id,
        )

    def cleanup(
        self, request: CleanupRequest, echo: Callable[[str], None], confirm: Callable[[str], bool]
    ) -> list[str]:
        """Remove what this stack's deployments left (``python run.py cleanup``).

        This default removes every endpoint this deployer manages, after asking (unless
        ``request.yes``); a deployer whose platform keeps more (SageMaker: endpoint configs,
        models, autoscaling, schedules, registry groups, S3) overrides it.

        Args:
            request: what to remove.
            echo: prints one line to the user.
            confirm: asks the user a yes/no question.

        Returns:
            The endpoints removed.

        Raises:
            DeploymentError: the request asks for what this stack does not have (registry groups, S3).
        """
        if request.include_registry or request.include_s3:
            raise DeploymentError("--include-registry / --include-s3 apply to the SageMaker stack only")
        names = [e["endpoint_name"] for e in self.list_endpoints()]
        if not names:
            echo("No endpoints to remove.")
            return []
        if not request.yes and not confirm(f"Remove endpoint(s) {', '.join(names)}?"):
            return []
        for name in names:
            self.delete_endpoint(name)
            echo(f"Removed endpoint {name}")
        return names

    # -- ZenML's service-based deployer API: each endpoint is a ZenML service --------------
    # A flavor names its service class (``stacks/services/``), builds a record's config from an endpoint
    # entry (``service_config``) and, where its platform can, restarts a stopped endpoint (``start_endpoint``).
    CAN_PAUSE: ClassVar[bool] = True  # False: the platform cannot pause an endpoint (stop would delete it)

    @property
    @abstractmethod
    def service_class(self) -> type[Any]:
        """The ``stacks.services.endpoint.EndpointService`` subclass of this backend."""

    @abstractmethod
    def service_config(self, entry: Mapping[str, Any]) -> Any:
        """The service config recording one deployment.

        Args:
            entry: ``endpoint_name``, ``model_name``, ``version``, ``sha256`` and what else the backend
                reported (a :meth:`deploy_bundle` result or a :meth:`list_endpoints` entry).

        Returns:
            The backend's ``EndpointServiceConfig``.
        """

    def service_fields(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """The fields every backend's service config has, from an endpoint entry (see :meth:`service_config`).

        Args:
            entry: a :meth:`deploy_bundle` result or a :meth:`list_endpoints` entry.

        Returns:
            Keyword arguments of ``stacks.services.endpoint.EndpointServiceConfig``.
        """
        name = entry["endpoint_name"]
        return {
            "name": name,
            "service_name": name,
            "endpoint_name": name,
            "deployer_id": str(self.id),
            "model_name": entry["model_name"],
            "model_version": str(entry["version"]),
            "sha256": str(entry.get("sha256") or entry.get("bundle_sha256") or ""),
            "bundle_uri": str(entry.get("bundle_uri") or ""),
            "deployed_at": str(entry.get("deployed_at") or ""),
            "pipeline_name": entry.get("pipeline_name", ""),
            "pipeline_step_name": entry.get("pipeline_step_name", ""),
            "run_name": entry.get("run_name", ""),
        }

    def start_endpoint(self, endpoint_name: str) -> dict[str, Any]:
        """Serve a stopped endpoint again, with the model it served.

        Args:
            endpoint_name: the endpoint.

        Returns:
            What :meth:`deploy_bundle` returns.

        Raises:
            DeploymentError: it cannot be started (this default: the platform cannot pause endpoints).
        """
        raise DeploymentError(
            f"endpoint '{endpoint_name}' cannot be started or stopped on this stack; "
            "deploying it again (the training pipeline) serves it"
        )

    def record_deployment(self, deployed: Mapping[str, Any]) -> Any:
        """Create or update the endpoint's ZenML service record after a deployment (the deployers call it).

        A record that cannot be written does not undo the deployment: it is reported, and the next
        listing (:meth:`endpoint_services`) records the endpoint from the backend.

        Args:
            deployed: the :meth:`deploy_bundle` result.

        Returns:
            The endpoint's service, or None when the store could not be written.
        """
        from zenml.enums import ServiceState

        from stacks.services.endpoint import EndpointServiceStatus, replace_record, step_lineage

        try:
            lineage = step_lineage()
            config = self.service_config({**deployed, **lineage})
            found = EndpointServiceStatus(
                state=ServiceState.ACTIVE,
                url=str(deployed["invocations_url"]).removesuffix("/invocations"),
                served_version=str(deployed["version"]),
            )
            return replace_record(self.service_class, config, found, lineage)
        except Exception as error:  # noqa: BLE001 - the endpoint serves; its record is rebuilt on the next listing
            print(
                f"warning: endpoint '{deployed['endpoint_name']}' serves, but its ZenML service record was not "
                f"written ({type(error).__name__}: {error}); `python run.py endpoints` records it"
            )
            return None

    def endpoint_services(self, endpoint_name: str | None = None) -> list[Any]:
        """This deployer's endpoints as ZenML services, checked now (what ``python run.py endpoints`` lists).

        The records are first brought in line with the backend (:meth:`list_endpoints`): an endpoint without a
        record gets one, a record whose endpoint is gone is dropped. ``zenml model-deployer models list`` reads
        the same.

        Args:
            endpoint_name: only this endpoint.

        Returns:
            One service per endpoint (``.entry()`` for a flat dict).
        """
        return self.find_model_server(service_name=endpoint_name)  # a listing: reconciled first

    def _reconcile(self) -> None:
        from stacks.services.endpoint import reconcile

        try:
            entries = self.list_endpoints()
        except DeploymentError as error:  # the listing itself failed (throttled, expired credentials)
            print(f"warning: endpoints not listed, ZenML's records kept as they are: {error}")
            return
        reconcile(self.service_class, str(self.id), entries, self.service_config)

    def find_model_server(  # type: ignore[override]
        self,
        config: dict[str, Any] | None = None,
        running: bool | None = None,
        service_uuid: Any = None,
        pipeline_name: str | None = None,
        pipeline_step_name: str | None = None,
        service_name: str | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
        service_type: Any = None,
        type: str | None = None,
        flavor: str | None = None,
        pipeline_run_id: str | None = None,
    ) -> list[Any]:
        """ZenML's query, scoped to this deployer's endpoints and checked now (each status is its backend's).

        ``model_name`` and ``model_version`` are the registered model's (the record's config), not a ZenML
        Model's. A listing (no ``service_uuid`` or ``config``) first brings the records in line with the
        backend (see :meth:`endpoint_services`).

        Returns:
            The matching services, newest first.
        """
        own = self.service_class.SERVICE_TYPE
        if (service_type and service_type != own) or (type and type != own.type) or (flavor and flavor != own.flavor):
            return []
        if service_uuid is None and config is None:
            self._reconcile()
        found = super().find_model_server(
            config=config,
            running=running,
            service_uuid=service_uuid,
            pipeline_name=pipeline_name,
            pipeline_step_name=pipeline_step_name,
            service_name=service_name,
            service_type=own,
            pipeline_run_id=pipeline_run_id,
        )
        return [
            s
            for s in found
            if getattr(s.config, "deployer_id", None) == str(self.id)
            and (not model_name or s.config.model_name == model_name)
            and (not model_version or str(s.config.model_version) == str(model_version))
        ]

    @staticmethod
    def get_model_server_info(service) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
        """What ``zenml model-deployer models describe`` shows of an endpoint (the service's ``server_info``)."""
        return service.server_info()

    def perform_deploy_model(self, id, config, timeout=0):  # type: ignore[no-untyped-def]
        """ZenML's ``deploy_model``: :meth:`deploy_bundle` with the config's endpoint, model, version and bundle.

        Returns:
            The endpoint's service (the record ZenML created for it, now checked).
        """
        self.deploy_bundle(
            config.endpoint_name, config.model_name, str(config.model_version), config.bundle_uri, config.sha256
        )
        for service in self.find_model_server(service_name=config.endpoint_name):
            if service.config.identity() == config.identity():
                return service
        raise DeploymentError(f"endpoint '{config.endpoint_name}' serves, but its service record was not written")

    def perform_stop_model(self, service, timeout=0, force=False):  # type: ignore[no-untyped-def]
        """``zenml model-deployer models stop``: :meth:`stop_endpoint` (refused where endpoints cannot pause)."""
        from zenml.enums import ServiceState

        if not self.CAN_PAUSE:
            raise DeploymentError(
                f"endpoint '{service.config.endpoint_name}' cannot be paused on this platform; "
                f"`zenml model-deployer models delete {service.uuid}` removes it (and its cost)"
            )
        self.stop_endpoint(service.config.endpoint_name)
        service.admin_state = ServiceState.INACTIVE
        service.update_status()
        return service

    def perform_start_model(self, service, timeout=0):  # type: ignore[no-untyped-def]
        """``zenml model-deployer models start``: :meth:`start_endpoint` with the model it served."""
        from zenml.enums import ServiceState

        self.start_endpoint(service.config.endpoint_name)
        service.admin_state = ServiceState.ACTIVE
        service.update_status()
        return service

    def perform_delete_model(self, service, timeout=0, force=False):  # type: ignore[no-untyped-def]
        """``zenml model-deployer models delete``: :meth:`remove_endpoint`; ZenML then deletes this record."""
        self.remove_endpoint(service.config.endpoint_name)
        self._forget_records(service.config.endpoint_name, keep=service.uuid)

    def delete_endpoint(self, endpoint_name: str) -> Any:
        """Stop and remove an endpoint, and its ZenML service records.

        Args:
            endpoint_name: the endpoint.

        Returns:
            What :meth:`remove_endpoint` removed.
        """
        removed = self.remove_endpoint(endpoint_name)
        self._forget_records(endpoint_name)
        return removed

    def _forget_records(self, endpoint_name: str, keep: Any = None) -> None:
        """Delete a removed endpoint's records; a store error is reported, not raised (the endpoint is gone
        already, and the next listing drops its stale records)."""
        from stacks.services.endpoint import forget, list_records

        try:
            forget([r.id for r in list_records(self.service_class, str(self.id), endpoint_name) if r.id != keep])
        except Exception as error:  # noqa: BLE001 - bookkeeping only: cleanup goes on to the next endpoint
            print(
                f"warning: endpoint '{endpoint_name}' was removed, but its ZenML service records were not deleted "
                f"({type(error).__name__}: {error}); the next `python run.py endpoints` drops them"
            )

"""What every endpoint service shares: its config, its status and its record in the ZenML store.

An endpoint (local daemon, SageMaker endpoint) is one ZenML service, stored with
``Client().zen_store`` like ZenML's own deployers' services, so ``zenml model-deployer models
list/describe/logs/start/stop/delete`` and ``python run.py endpoints`` read the same records.
A record describes one deployment: the endpoint and the registered model name, version and
bundle hash it serves. A new version gets a new record (ZenML's continuous-deployment rule);
re-deploying the same version keeps the record. The backend is the truth: each service's
``check_status`` asks it (the local server's ``/ping``, SageMaker's DescribeEndpoint).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from uuid import UUID

from pydantic import Field
from zenml.client import Client
from zenml.enums import ServiceState
from zenml.exceptions import EntityExistsError
from zenml.models import ServiceRequest
from zenml.models.v2.misc.service import ServiceType
from zenml.services.service import BaseDeploymentService, ServiceConfig
from zenml.services.service_status import ServiceStatus

SERVICE_KIND = "model-serving"  # ZenML's service type for model servers (MLflow's, Seldon's, ...)


def endpoint_service_type(flavor: str, name: str, description: str) -> ServiceType:
    """The ZenML service type of one backend's endpoints (a model server of the deployer's flavor).

    Args:
        flavor: the model deployer flavor.
        name: the service type's name.
        description: what serves.

    Returns:
        The ``ServiceType`` a service class declares as ``SERVICE_TYPE``.
    """
    return ServiceType(type=SERVICE_KIND, flavor=flavor, name=name, description=description)


class EndpointServiceConfig(ServiceConfig):
    """One deployment: which endpoint serves which registered model version.

    Attributes:
        endpoint_name: the endpoint (also the service's ``name`` and ``service_name``).
        deployer_id: the model deployer component that manages the endpoint.
        sha256: the served bundle's registered SHA-256.
        bundle_uri: where the registry keeps the bundle.
        deployed_at: when it was deployed (ISO 8601, UTC).
        run_name: the pipeline run that deployed it ('' outside a pipeline).
    """

    endpoint_name: str
    deployer_id: str
    sha256: str = ""
    bundle_uri: str = ""
    deployed_at: str = ""
    run_name: str = ""

    def identity(self) -> tuple[str, str, str]:
        """(model name, version, bundle hash): two records with the same identity describe one deployment."""
        return (self.model_name, str(self.model_version), self.sha256)


class EndpointServiceStatus(ServiceStatus):
    """The last status check's findings, beside ZenML's state.

    Attributes:
        url: where the endpoint answers (None when it does not).
        served_version: the model version the backend reported serving ('' when unknown).
        exists: False once the backend has no such endpoint (deleted outside ZenML).
    """

    url: str | None = None
    served_version: str = ""
    exists: bool = True


class EndpointService(BaseDeploymentService):
    """An endpoint as a ZenML deployment service; each backend says how to check it and where its logs are."""

    SERVICE_TYPE: ClassVar[Any]
    config: EndpointServiceConfig
    status: EndpointServiceStatus = Field(default_factory=EndpointServiceStatus)

    @property
    def prediction_url(self) -> str | None:
        """Where predictions are asked (``/invocations``), or None when it does not answer."""
        return f"{self.status.url.rstrip('/')}/invocations" if self.status.url else None

    @property
    def healthcheck_url(self) -> str | None:
        """Where its health is asked, or None when it does not answer."""
        return None

    def server_info(self) -> dict[str, str | None]:
        """What ``zenml model-deployer models describe`` shows (ZenML adds uuid, status, type, pipeline).

        Returns:
            Property name -> value.
        """
        return {
            "ENDPOINT_NAME": self.config.endpoint_name,
            "MODEL_NAME": self.config.model_name,
            "MODEL_VERSION": str(self.config.model_version),
            "SERVED_VERSION": self.status.served_version or None,
            "BUNDLE_SHA256": self.config.sha256,
            "BUNDLE_URI": self.config.bundle_uri,
            "DEPLOYED_AT": self.config.deployed_at,
            "PIPELINE_RUN": self.config.run_name or None,
            "PREDICTION_URL": self.prediction_url,
            "HEALTH_CHECK_URL": self.healthcheck_url,
        }

    def entry(self) -> dict[str, Any]:
        """The endpoint as ``python run.py endpoints`` lists it (from this record and its last check).

        Returns:
            ``endpoint_name``, ``running``, ``state``, ``message``, ``url``, ``model_name``, ``version``, ``uuid``.
        """
        return {
            "endpoint_name": self.config.endpoint_name,
            "running": self.status.state == ServiceState.ACTIVE,
            "state": self.status.state.value,
            "message": self.status.last_error,
            "url": self.prediction_url,
            "model_name": self.config.model_name,
            "version": str(self.config.model_version),
            "uuid": str(self.uuid),
        }


def step_lineage() -> dict[str, Any]:
    """The pipeline, step, run and ZenML model version deploying, when called inside a step (else nothing).

    Returns:
        ``pipeline_name``, ``pipeline_step_name``, ``run_name`` (config fields) and ``pipeline_run_id``,
        ``model_version_id`` (record links).
    """
    try:
        from zenml import get_step_context

        context = get_step_context()
    except RuntimeError:
        return {}
    run = context.pipeline_run
    return {
        "pipeline_name": run.pipeline.name if run.pipeline else "",
        "pipeline_step_name": context.step_name,
        "run_name": run.name,
        "pipeline_run_id": run.id,
        "model_version_id": context.model_version.id if context.model_version else None,
    }


def list_records(service_class: type[EndpointService], deployer_id: str, endpoint_name: str | None = None) -> list:
    """The store's records of a deployer's endpoints (not checked), newest first.

    Args:
        service_class: the backend's service class (its SERVICE_TYPE scopes the query).
        deployer_id: the model deployer whose endpoints they are.
        endpoint_name: only this endpoint's records.

    Returns:
        The ``ServiceResponse`` objects.
    """
    client, records, page = Client(), [], 1
    while True:
        found = client.list_services(
            sort_by="desc:created",
            page=page,
            size=100,
            type=service_class.SERVICE_TYPE.type,
            flavor=service_class.SERVICE_TYPE.flavor,
            service_name=endpoint_name,
            hydrate=True,
        )
        records += [r for r in found.items if (r.config or {}).get("deployer_id") == deployer_id]
        if page >= found.total_pages:
            return records
        page += 1


def forget(ids: list[UUID]) -> None:
    """Delete these records from the store (one already gone, e.g. by a concurrent listing, is fine)."""
    client = Client()
    for service_id in ids:
        with contextlib.suppress(KeyError):
            client.zen_store.delete_service(service_id)


def replace_record(
    service_class: type[EndpointService],
    config: EndpointServiceConfig,
    status: EndpointServiceStatus,
    links: Mapping[str, Any] | None = None,
) -> EndpointService:
    """Make ``config``'s deployment the endpoint's one record: keep the newest record of the same deployment
    (updating its status) or create one, and delete the endpoint's other records.

    Args:
        service_class: the backend's service class.
        config: the deployment.
        status: what the deployment found (state, url, served version).
        links: ``pipeline_run_id`` / ``model_version_id`` to link a new record to.

    Returns:
        The endpoint's service.
    """
    client = Client()
    records = list_records(service_class, config.deployer_id, config.endpoint_name)
    same = [r for r in records if identity_of(r) == config.identity()]
    source = f"{service_class.__module__}.{service_class.__qualname__}"
    state = {"admin_state": ServiceState.ACTIVE, "status": status.model_dump(mode="json")}
    if same:
        response = client.update_service(id=same[0].id, service_source=source, **state)
    else:
        links = dict(links or {})
        request = ServiceRequest(
            name=config.service_name,
            service_type=service_class.SERVICE_TYPE,
            service_source=source,
            config=config.model_dump(mode="json"),
            project=client.active_project.id,
            pipeline_run_id=links.get("pipeline_run_id"),
            model_version_id=links.get("model_version_id"),
            **state,
        )
        try:
            response = client.zen_store.create_service(request)
        except EntityExistsError:  # a concurrent listing recorded this very deployment first
            return replace_record(service_class, config, status, links)
    forget([r.id for r in records if r.id != response.id])
    return service_class.from_model(response)  # type: ignore[return-value]


def identity_of(record: Any) -> tuple[str, str, str]:
    """The (model name, version, bundle hash) a stored record describes."""
    fields = EndpointServiceConfig.model_fields
    return EndpointServiceConfig.model_validate(
        {k: v for k, v in (record.config or {}).items() if k in fields and k != "type"}
    ).identity()


def reconcile(
    service_class: type[EndpointService],
    deployer_id: str,
    entries: list[Mapping[str, Any]],
    config_of: Callable[[Mapping[str, Any]], EndpointServiceConfig],
) -> None:
    """Bring a deployer's records in line with its backend's endpoints (the backend is the truth).

    A record whose endpoint is gone is deleted; an endpoint without a record of what it serves gets one
    (e.g. deployed before endpoints were recorded, or when the store could not be written).

    Args:
        service_class: the backend's service class.
        deployer_id: the model deployer.
        entries: the backend's endpoints (``list_endpoints``: ``endpoint_name``, ``model_name``, ``version``, ...).
        config_of: builds a record's config from an entry.
    """
    backend = {e["endpoint_name"]: e for e in entries}
    newest: dict[str, Any] = {}
    stale = []
    for record in list_records(service_class, deployer_id):  # newest first
        name = (record.config or {}).get("endpoint_name")
        if name in backend:
            newest.setdefault(name, record)
        else:
            stale.append(record.id)
    forget(stale)
    for name, entry in backend.items():
        if str(entry.get("version", "?")) == "?":
            continue  # the backend does not say what it serves: nothing to record
        config = config_of(entry)
        if name not in newest or identity_of(newest[name]) != config.identity():
            replace_record(
                service_class,
                config,
                EndpointServiceStatus(url=(entry.get("url") or "").removesuffix("/invocations") or None),
            )

"""In-process additions to moto's server mode for what our AWS code needs and moto lacks.

Pinned to moto 5.2.5 (requirements.lock): these handlers patch moto's SageMaker response
class and read moto's backend objects, whose shapes change between versions, so a
different moto version refuses to load here (re-check each handler when bumping moto).

Added or fixed, all reached over real HTTP through a WSGI layer in front of moto's app:
- SageMaker ``UpdateEndpoint`` (missing): switches the endpoint config; the endpoint is
  ``Updating`` for one DescribeEndpoint, then ``InService`` (or ``Failed``, when a test
  asked for it with ``fail_next_endpoint_change``). As on AWS: a Failed endpoint cannot be
  updated; an update that changes the instance type of a variant registered with
  Application Auto Scaling is refused; ``RetainAllVariantProperties`` keeps the instance
  count. ``CreateEndpoint`` gets the same one-poll ``Creating`` state.
- ``DeleteModelPackage`` / ``DeleteModelPackageGroup`` (missing).
- ``DeleteFeatureGroup`` (missing): the group and its records go.
- ``DescribeFeatureGroup`` on a missing group: ResourceNotFound (moto answers HTTP 500);
  ``CreateFeatureGroup`` keeps the Description (moto drops it).
- ``UpdateModelPackage``: changes only the fields passed (moto wipes the others).
- Application Auto Scaling ``DeregisterScalableTarget`` also deletes the target's policies, as on AWS.
- Feature Store runtime ``PutRecord`` / ``GetRecord`` / ``DeleteRecord`` (missing): records
  are checked against the group's feature definitions (a String event time must have one of
  the two documented formats, seconds or milliseconds) and kept in memory; ``offline_records``
  returns them as the offline store's Glue table would hold them.
- SageMaker runtime ``InvokeEndpoint`` (canned in moto): each of the endpoint's containers that
  is ours runs as SageMaker runs our image: a process of its own started with ``serve``
  (``churn.serving.container``), the model.tar.gz read from moto's S3 and extracted as its
  model directory (``CHURN_MODEL_DIR``, /opt/ml/model in the image), the container's
  Environment, and a port of its own (``SAGEMAKER_BIND_TO_PORT``) on 127.0.0.1. It is started
  on the first request and waited for on ``/ping``; requests go to ``/invocations`` over HTTP
  with the Content-Type, Accept and CustomAttributes SageMaker passes. The processes are
  stopped (by pid) on reset and when the server stops. A model of several containers runs
  them in series, as an inference pipeline does; images that are not ours run through a
  stand-in registered in ``CONTAINER_EMULATORS`` (moto_automl registers Autopilot's).
  tests/container runs the same ``serve`` in the real image with Docker.
- Batch transform (moto completes jobs at once, writing nothing): ``CreateTransformJob`` is
  InProgress for one DescribeTransformJob, then each input object is split as the request
  says and sent through the model's containers (``run_chain``, the same path as
  InvokeEndpoint), the answers assembled into ``<output>/<object>.out``; ``StopTransformJob``
  is added; ``transform_requests()`` returns the requests.
- Fault injection: ``inject_throttling("sagemaker:CreateModel", times=2)`` answers the next
  calls with the service's throttling error (``s3:PUT`` style keys for S3).
- Athena runs no SQL in moto: ``queue_athena_result`` queues a result through moto's
  ``/moto-api/static/athena/query-results``, formatted as Athena returns it.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

import moto

PINNED_MOTO = "5.2.5"
if moto.__version__ != PINNED_MOTO:
    raise RuntimeError(
        f"tests/cloud/moto_extensions.py is written against moto {PINNED_MOTO}, found {moto.__version__}; "
        "re-check the patched handlers before changing the pin"
    )

from moto.applicationautoscaling.models import applicationautoscaling_backends  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # noqa: E402
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app  # noqa: E402
from moto.s3.models import s3_backends  # noqa: E402
from moto.sagemaker.exceptions import ResourceNotFound, ValidationError  # noqa: E402
from moto.sagemaker.models import sagemaker_backends  # noqa: E402
from moto.sagemaker.responses import SageMakerResponse  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

ACCOUNT = DEFAULT_ACCOUNT_ID
QUERY_PROTOCOL = {"sns", "sqs", "sts", "iam", "cloudformation"}
EVENT_TIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z$")


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.records: dict[tuple[str, str], list[dict]] = defaultdict(list)
            self.faults: dict[str, int] = {}
            self.faults_served: dict[str, int] = defaultdict(int)
            self.endpoint_failures: dict[str, str] = {}
            self.pending: dict[str, list] = {}
            for serving in getattr(self, "serving", {}).values():
                serving.stop()
            self.serving: dict[tuple, ServingContainer] = {}
            for directory in getattr(self, "models", {}).values():
                shutil.rmtree(directory, ignore_errors=True)
            self.models: dict[str, str] = {}
            self.invocations: list[dict] = []
            self.execution_modes: dict[str, str | None] = {}
            self.transforms: dict[str, dict] = {}


STATE = _State()


# -- test controls ----------------------------------------------------------------------
def execution_mode(model_name: str) -> str | None:
    """The InferenceExecutionConfig Mode a model was created with (None: not given)."""
    with STATE.lock:
        return STATE.execution_modes.get(model_name)


def invocations() -> list[dict]:
    """Every InvokeEndpoint so far: endpoint, model, containers (in the model), ran (how many ran), status."""
    with STATE.lock:
        return [dict(i) for i in STATE.invocations]


def inject_throttling(key: str, times: int = 1) -> None:
    """Answer the next ``times`` calls of ``key`` ("<service>:<Operation>", S3: "s3:<METHOD>") with throttling."""
    with STATE.lock:
        STATE.faults[key] = STATE.faults.get(key, 0) + times


def faults_served() -> dict[str, int]:
    with STATE.lock:
        return dict(STATE.faults_served)


def faults_pending() -> dict[str, int]:
    with STATE.lock:
        return {k: v for k, v in STATE.faults.items() if v}


def fail_next_endpoint_change(
    endpoint_name: str, reason: str = "injected: the primary container did not pass the ping health check"
) -> None:
    """The next CreateEndpoint/UpdateEndpoint of ``endpoint_name`` ends Failed with ``reason``."""
    with STATE.lock:
        STATE.endpoint_failures[endpoint_name] = reason


def offline_records(group: str, region: str = "us-west-2"):
    """The group's records as its offline store table holds them (typed columns + metadata)."""
    import pandas as pd

    backend = sagemaker_backends[ACCOUNT][region]
    feature_group = _feature_group(backend, region, group)
    kinds = {d["FeatureName"]: d["FeatureType"] for d in feature_group.feature_definitions}
    with STATE.lock:
        rows = [dict(r) for r in STATE.records[(region, group.lower())]]
    frame = pd.DataFrame(rows, columns=[*kinds, "write_time", "api_invocation_time", "is_deleted"])
    for name, kind in kinds.items():
        if kind == "Integral":
            frame[name] = pd.to_numeric(frame[name]).astype("Int64")
        elif kind == "Fractional":
            frame[name] = pd.to_numeric(frame[name]).astype("float64")
    frame["is_deleted"] = frame["is_deleted"].astype(bool)
    return frame


def forget_feature_group(group: str, region: str = "us-west-2") -> None:
    """What DeleteFeatureGroup does (moto 5.2.5 refuses it as not implemented): the group and its records go."""
    backend = sagemaker_backends[ACCOUNT][region]
    del backend.feature_groups[_feature_group(backend, region, group).arn]
    with STATE.lock:
        STATE.records.pop((region, group.lower()), None)


def offline_table(group: str, region: str = "us-west-2") -> tuple[str, str]:
    """(Glue database, table) of the group's offline store, as DescribeFeatureGroup reports them."""
    backend = sagemaker_backends[ACCOUNT][region]
    catalog = _feature_group(backend, region, group).offline_store_config["DataCatalogConfig"]
    return catalog["Database"], catalog["TableName"]


def athena_rows(frame) -> dict:
    """A DataFrame as an Athena SELECT result (header row, VarCharValue text, NULL = no value)."""
    import pandas as pd

    types = {"b": "boolean", "i": "bigint", "u": "bigint", "f": "double"}

    def text(value: Any) -> dict:
        if value is None or value is pd.NA or (isinstance(value, float) and value != value):
            return {}
        if isinstance(value, (bool,)) or type(value).__name__ == "bool_":
            return {"VarCharValue": "true" if value else "false"}
        return {"VarCharValue": str(value)}

    header = {"Data": [{"VarCharValue": str(c)} for c in frame.columns]}
    rows = [header] + [{"Data": [text(v) for v in row]} for row in frame.itertuples(index=False, name=None)]
    column_info = [
        {
            "CatalogName": "hive",
            "SchemaName": "",
            "TableName": "",
            "Name": str(c),
            "Label": str(c),
            "Type": types.get(getattr(frame[c].dtype, "kind", "O"), "varchar"),
            "Precision": 0,
            "Scale": 0,
            "Nullable": "UNKNOWN",
            "CaseSensitive": True,
        }
        for c in frame.columns
    ]
    return {"rows": rows, "column_info": column_info}


def queue_athena_result(endpoint_url: str, frame, region: str = "us-west-2") -> None:
    """Queue ``frame`` as the result of the next Athena query (moto runs no SQL)."""
    import requests

    payload = {"account_id": ACCOUNT, "region": region, "results": [athena_rows(frame)]}
    response = requests.post(f"{endpoint_url}/moto-api/static/athena/query-results", json=payload, timeout=30)
    response.raise_for_status()


def run_offline_query(sql: str, group: str, region: str = "us-west-2"):
    """Run ``sql`` (written for the group's Glue table) with DuckDB over the records put so far."""
    import duckdb

    database, table = offline_table(group, region)
    records = offline_records(group, region)
    with duckdb.connect(":memory:") as connection:
        connection.execute(f'CREATE SCHEMA "{database}"')
        connection.register("records_view", records)
        connection.execute(f'CREATE TABLE "{database}"."{table}" AS SELECT * FROM records_view')
        return connection.execute(sql).df()


def queue_latest_records(endpoint_url: str, query: Any, region: str = "us-west-2") -> str:
    """Answer the next Athena query with what THE feature query returns over the records put so far.

    Builds the SQL exactly as ``churn.feature_query.latest_records_sql`` does for the group's
    Glue table, runs it with DuckDB, queues the result; returns the SQL (to compare with
    what our code sent).
    """
    from churn.feature_query import latest_records_sql
    from churn.schema import STORE_METADATA_COLUMNS

    group = _feature_group(sagemaker_backends[ACCOUNT][region], region, query.feature_group)
    database, table = offline_table(query.feature_group, region)
    columns = [d["FeatureName"] for d in group.feature_definitions] + list(STORE_METADATA_COLUMNS)
    sql = latest_records_sql(query, f'"{database}"."{table}"', columns)
    queue_athena_result(endpoint_url, run_offline_query(sql, query.feature_group, region), region)
    return sql


def athena_queries(region: str = "us-west-2") -> list[str]:
    """The SQL of every Athena query started so far, in order."""
    from moto.athena.models import athena_backends

    executions = athena_backends[ACCOUNT][region].executions.values()
    return [e.query for e in sorted(executions, key=lambda e: e.start_time)]


# -- SageMaker handlers patched onto moto's response class ------------------------------
def _feature_group(backend: Any, region: str, name: str) -> Any:
    arn = f"arn:aws:sagemaker:{region}:{backend.account_id}:feature-group/{name.lower()}"
    group = backend.feature_groups.get(arn)
    if group is None:
        raise ResourceNotFound(
            message=f"Resource Not Found: Amazon SageMaker can't find a FeatureGroup with name {name}"
        )
    return group


def _describe_feature_group(self: SageMakerResponse) -> ActionResult:
    group = _feature_group(self.sagemaker_backend, self.region, self._get_param("FeatureGroupName"))
    described = group.describe()
    if getattr(group, "description", None):
        described["Description"] = group.description
    return ActionResult(described)


def _create_feature_group(self: SageMakerResponse) -> Any:
    result = _ORIGINALS["create_feature_group"](self)
    group = _feature_group(self.sagemaker_backend, self.region, self._get_param("FeatureGroupName"))
    group.description = self._get_param("Description")  # moto drops it
    return result


def _schedule(endpoint: Any, transitional: str) -> None:
    with STATE.lock:
        reason = STATE.endpoint_failures.pop(endpoint.endpoint_name, None)
        STATE.pending[endpoint.endpoint_name] = ["Failed" if reason else "InService", reason, 1]
    endpoint.endpoint_status = transitional
    endpoint.failure_reason = None


def _create_model(self: SageMakerResponse) -> Any:
    """moto drops InferenceExecutionConfig: kept here (``execution_mode``) and checked when invoked."""
    result = _ORIGINALS["create_model"](self)
    mode = (self._get_param("InferenceExecutionConfig") or {}).get("Mode")
    with STATE.lock:
        STATE.execution_modes[self._get_param("ModelName")] = mode
    return result


def _create_endpoint(self: SageMakerResponse) -> Any:
    result = _ORIGINALS["create_endpoint"](self)
    _schedule(self.sagemaker_backend.endpoints[self._get_param("EndpointName")], "Creating")
    return result


def _update_endpoint(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    name, config_name = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        raise ValidationError(
            message=f'Could not find endpoint "arn:aws:sagemaker:{self.region}:{backend.account_id}:endpoint/{name}".'
        )
    if endpoint.endpoint_status == "Failed":
        raise ValidationError(message=f'Cannot update failed endpoint "{endpoint.arn}"; delete it and create it again.')
    if endpoint.endpoint_status != "InService":
        raise ValidationError(message=f'Cannot update in-progress endpoint "{endpoint.arn}".')
    config = backend.describe_endpoint_config(config_name)
    old_types = _variant_types(backend, endpoint.endpoint_config_name)
    scaling = applicationautoscaling_backends[backend.account_id][self.region]
    for variant in config["ProductionVariants"]:
        resource = f"endpoint/{name}/variant/{variant['VariantName']}"
        changed = old_types.get(variant["VariantName"]) not in (None, variant.get("InstanceType"))
        if changed and scaling._scalable_target_exists(resource, "sagemaker:variant:DesiredInstanceCount"):
            raise ValidationError(
                message=(
                    f"The variant {variant['VariantName']} of endpoint {name} "
                    f"is registered with Application Auto Scaling; "
                    "deregister it before changing its instance type."
                )
            )
    retained = {v["VariantName"]: v for v in endpoint.production_variants}
    endpoint.endpoint_config_name = config_name
    endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
    if self._get_param("RetainAllVariantProperties"):
        for variant in endpoint.production_variants:
            for key in ("CurrentInstanceCount", "DesiredInstanceCount", "CurrentWeight", "DesiredWeight"):
                if key in retained.get(variant["VariantName"], {}):
                    variant[key] = retained[variant["VariantName"]][key]
    endpoint.last_modified_time = datetime.now(UTC)
    _schedule(endpoint, "Updating")
    return ActionResult({"EndpointArn": endpoint.arn})


def _variant_types(backend: Any, config_name: str) -> dict[str, str]:
    config = backend.endpoint_configs.get(config_name)
    return {v["VariantName"]: v.get("InstanceType") for v in (config.production_variants if config else [])}


def _describe_endpoint(self: SageMakerResponse) -> Any:
    name = self._get_param("EndpointName")
    endpoint = self.sagemaker_backend.endpoints.get(name)
    with STATE.lock:
        pending = STATE.pending.get(name)
        if endpoint is not None and pending is not None:
            if pending[2] > 0:
                pending[2] -= 1
            else:
                endpoint.endpoint_status, endpoint.failure_reason = pending[0], pending[1]
                del STATE.pending[name]
    return _ORIGINALS["describe_endpoint"](self)


def _delete_endpoint(self: SageMakerResponse) -> Any:
    with STATE.lock:
        STATE.pending.pop(self._get_param("EndpointName"), None)
    return _ORIGINALS["delete_endpoint"](self)


def model_package(backend: Any, name: str) -> Any:
    """The model package ``name`` (ARN, or ``group/version``) of a SageMaker backend; ValidationException if none."""
    arn = backend.model_package_name_mapping.get(name, name)
    package = backend.model_packages.get(arn)
    if package is None:
        raise ValidationError(message=f"Model package {name} does not exist.")
    return package


def _update_model_package(self: SageMakerResponse) -> ActionResult:
    package = model_package(self.sagemaker_backend, self._get_param("ModelPackageArn"))
    if self._get_param("ModelApprovalStatus"):
        package.set_model_approval_status(self._get_param("ModelApprovalStatus"))
    if self._get_param("ApprovalDescription") is not None:
        package.approval_description = self._get_param("ApprovalDescription")
    if self._get_param("CustomerMetadataProperties"):
        package.customer_metadata_properties = {
            **(package.customer_metadata_properties or {}),
            **self._get_param("CustomerMetadataProperties"),
        }
    if self._get_param("CustomerMetadataPropertiesToRemove") and package.customer_metadata_properties:
        package.remove_customer_metadata_property(self._get_param("CustomerMetadataPropertiesToRemove"))
    if self._get_param("AdditionalInferenceSpecificationsToAdd"):
        package.add_additional_inference_specifications(self._get_param("AdditionalInferenceSpecificationsToAdd"))
    package.modifications_done()
    return ActionResult({"ModelPackageArn": package.arn})


def _delete_model_package(self: SageMakerResponse) -> EmptyResult:
    backend = self.sagemaker_backend
    package = model_package(backend, self._get_param("ModelPackageName"))
    backend.model_packages.pop(package.arn, None)
    for key, value in list(backend.model_package_name_mapping.items()):
        if value == package.arn:
            del backend.model_package_name_mapping[key]
    return EmptyResult()


def _delete_model_package_group(self: SageMakerResponse) -> EmptyResult:
    backend = self.sagemaker_backend
    name = self._get_param("ModelPackageGroupName")
    if name not in backend.model_package_groups:
        raise ValidationError(message=f"ModelPackageGroup {name} does not exist.")
    if any(p.model_package_group_name == name for p in backend.model_packages.values()):
        raise ValidationError(message=f"Model Package Group {name} still has model packages; delete them first.")
    del backend.model_package_groups[name]
    return EmptyResult()


_PATCHES: dict[str, Callable] = {
    "describe_feature_group": _describe_feature_group,
    "create_feature_group": _create_feature_group,
    "create_endpoint": _create_endpoint,
    "create_model": _create_model,
    "update_endpoint": _update_endpoint,
    "describe_endpoint": _describe_endpoint,
    "delete_endpoint": _delete_endpoint,
    "update_model_package": _update_model_package,
    "delete_model_package": _delete_model_package,
    "delete_model_package_group": _delete_model_package_group,
}
_ORIGINALS: dict[str, Callable] = {}


def _deregister_scalable_target(self: Any, namespace: str, r_id: str, dimension: str) -> None:
    """As on AWS, deregistering a scalable target also deletes its scaling policies (moto keeps them)."""
    _ORIGINAL_DEREGISTER[0](self, namespace, r_id, dimension)
    for key, policy in list(self.policies.items()):
        if (policy.service_namespace, policy.resource_id, policy.scalable_dimension) == (namespace, r_id, dimension):
            del self.policies[key]


_ORIGINAL_DEREGISTER: list[Callable] = []


def install() -> None:
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend

    from tests.cloud import moto_model_package_models  # CreateModel from a model package

    moto_model_package_models.install()

    if not _ORIGINAL_DEREGISTER:
        _ORIGINAL_DEREGISTER.append(ApplicationAutoscalingBackend.deregister_scalable_target)
        ApplicationAutoscalingBackend.deregister_scalable_target = _deregister_scalable_target
    for name, handler in _PATCHES.items():
        if name not in _ORIGINALS:
            _ORIGINALS[name] = getattr(SageMakerResponse, name, None)  # type: ignore[assignment]
            setattr(SageMakerResponse, name, handler)


def uninstall() -> None:
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend

    from tests.cloud import moto_model_package_models

    moto_model_package_models.uninstall()

    if _ORIGINAL_DEREGISTER:
        ApplicationAutoscalingBackend.deregister_scalable_target = _ORIGINAL_DEREGISTER.pop()
    for name, original in list(_ORIGINALS.items()):
        if original is None:
            delattr(SageMakerResponse, name)
        else:
            setattr(SageMakerResponse, name, original)
        del _ORIGINALS[name]


# -- the WSGI layer in front of moto ----------------------------------------------------
def _json_response(start_response: Callable, status: int, body: Any, headers: dict[str, str] | None = None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 424: "Failed Dependency", 503: "Slow Down"}.get(
        status, "Error"
    )
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *(headers or {}).items()],
    )
    return [data]


def _rest_json_error(start_response: Callable, status: int, code: str, message: str, **extra: Any):
    return _json_response(start_response, status, {"message": message, **extra}, {"x-amzn-ErrorType": code})


def _body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(data)
    return data


def _scope(environ: dict[str, Any]) -> tuple[str, str]:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    match = re.search(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/aws4_request", auth)
    return (match.group(2), match.group(1)) if match else ("", "us-east-1")


def _operation(environ: dict[str, Any], service: str, path: str, method: str) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.split(".")[-1]
    if service == "sagemaker" and path.startswith("/FeatureGroup/"):
        return {"PUT": "PutRecord", "GET": "GetRecord", "DELETE": "DeleteRecord"}.get(method, method)
    if service == "sagemaker" and path.endswith("/invocations"):
        return "InvokeEndpoint"
    if service in QUERY_PROTOCOL and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return parse_qs(_body(environ).decode()).get("Action", [""])[0]
    return method


def _throttle(start_response: Callable, service: str, path: str):
    if service == "s3":
        data = (
            b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
            b"<Message>Please reduce your request rate.</Message></Error>"
        )
        start_response("503 Slow Down", [("Content-Type", "application/xml"), ("Content-Length", str(len(data)))])
        return [data]
    if service in QUERY_PROTOCOL:
        data = (
            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
            b"</Error><RequestId>throttled</RequestId></ErrorResponse>"
        )
        start_response("400 Bad Request", [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))])
        return [data]
    if path.startswith("/FeatureGroup/") or path.endswith("/invocations"):
        return _rest_json_error(start_response, 400, "ThrottlingException", "Rate exceeded")
    return _json_response(start_response, 400, {"__type": "ThrottlingException", "message": "Rate exceeded"})


class ExtensionsApp:
    """WSGI app in front of moto's: our handlers first, everything else to moto."""

    def __init__(self, inner: Callable) -> None:
        self.inner = inner

    def __call__(self, environ: dict[str, Any], start_response: Callable):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path.startswith("/moto-api"):
            if path.startswith("/moto-api/reset") and method == "POST":
                STATE.reset()
            return self.inner(environ, start_response)
        service, region = _scope(environ)
        operation = _operation(environ, service, path, method)
        key = f"{service}:{operation}"
        with STATE.lock:
            if STATE.faults.get(key, 0) > 0:
                STATE.faults[key] -= 1
                STATE.faults_served[key] += 1
                return _throttle(start_response, service, path)
        if service == "sagemaker" and path.startswith("/FeatureGroup/"):
            return self._feature_store(environ, start_response, region, unquote(path[len("/FeatureGroup/") :]), method)
        match = re.match(r"^/endpoints/([^/]+)/invocations$", path)
        if service == "sagemaker" and match:
            return self._invoke(environ, start_response, region, unquote(match.group(1)))
        return self.inner(environ, start_response)

    # -- feature store runtime ------------------------------------------------------
    def _feature_store(self, environ, start_response, region: str, group: str, method: str):
        backend = sagemaker_backends[ACCOUNT][region]
        try:
            feature_group = _feature_group(backend, region, group)
        except ResourceNotFound as error:
            return _rest_json_error(start_response, 404, "ResourceNotFound", str(error.message))
        kinds = {d["FeatureName"]: d["FeatureType"] for d in feature_group.feature_definitions}
        record_id, event_time = feature_group.record_identifier_feature_name, feature_group.event_time_feature_name
        key = (region, group.lower())
        if method == "PUT":
            body = json.loads(_body(environ) or b"{}")
            record = {item["FeatureName"]: item["ValueAsString"] for item in body.get("Record", [])}
            unknown = sorted(set(record) - set(kinds))
            if unknown:
                return _rest_json_error(
                    start_response,
                    400,
                    "ValidationError",
                    f"The feature(s) {', '.join(unknown)} are not defined in feature group {group}",
                )
            for required in (record_id, event_time):
                if required not in record:
                    return _rest_json_error(start_response, 400, "ValidationError", f"Record is missing {required}")
            for name, value in record.items():
                try:
                    {"Integral": int, "Fractional": float}.get(kinds[name], str)(value)
                except ValueError:
                    return _rest_json_error(
                        start_response, 400, "ValidationError", f"Value {value!r} of {name} is not {kinds[name]}"
                    )
            if kinds[event_time] == "String" and not EVENT_TIME_TEXT.match(record[event_time]):
                # CreateFeatureGroup's documented EventTime formats; PutRecord refuses any other
                return _rest_json_error(
                    start_response,
                    400,
                    "ValidationError",
                    f"EventTime {record[event_time]!r} is not yyyy-MM-dd'T'HH:mm:ssZ or yyyy-MM-dd'T'HH:mm:ss.SSSZ",
                )
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            with STATE.lock:
                STATE.records[key].append(
                    {**record, "write_time": now, "api_invocation_time": now, "is_deleted": False}
                )
            return _json_response(start_response, 200, b"")
        params = parse_qs(environ.get("QUERY_STRING", ""))
        wanted = params.get("RecordIdentifierValueAsString", [""])[0]
        with STATE.lock:
            matching = [r for r in STATE.records[key] if r.get(record_id) == wanted]
            if method == "DELETE":
                now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
                STATE.records[key].append(
                    {
                        record_id: wanted,
                        event_time: params.get("EventTime", [now])[0],
                        "write_time": now,
                        "api_invocation_time": now,
                        "is_deleted": True,
                    }
                )
                return _json_response(start_response, 200, b"")
        latest = max(matching, key=lambda r: (r.get(event_time, ""), r["write_time"]), default=None)
        if latest is None or latest["is_deleted"]:
            return _rest_json_error(start_response, 404, "ResourceNotFound", f"Record {wanted} not found in {group}")
        names = params.get("FeatureName") or list(kinds)
        return _json_response(
            start_response,
            200,
            {"Record": [{"FeatureName": n, "ValueAsString": latest[n]} for n in names if n in latest and n in kinds]},
        )

    # -- the serving containers, emulated ----------------------------------------------
    def _invoke(self, environ, start_response, region: str, name: str):
        """Run the endpoint's model: one container, or several in series (an inference pipeline).

        As SageMaker does: the request's Content-Type goes to the first container, each
        container's response Content-Type to the next; the client's Accept reaches the last
        container only (without one: ours get no Accept and answer CSV; a stand-in gets its
        SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else JSON, as AWS's toolkit does); the client's
        CustomAttributes reach our containers; a container's error stops the request with a
        ModelError naming the container. A model created with InferenceExecutionConfig Mode
        Direct is refused (it needs TargetContainerHostname, which we never send).
        """
        backend = sagemaker_backends[ACCOUNT][region]
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            return _rest_json_error(
                start_response, 400, "ValidationError", f"Endpoint {name} of account {ACCOUNT} not found."
            )
        if endpoint.endpoint_status != "InService":
            return _rest_json_error(
                start_response, 400, "ValidationError", f"Endpoint {name} is {endpoint.endpoint_status}, not InService."
            )
        config = backend.endpoint_configs[endpoint.endpoint_config_name]
        model = backend._models[config.production_variants[0]["ModelName"]]
        containers = model.containers or [model.primary_container]
        with STATE.lock:
            mode = STATE.execution_modes.get(model.model_name) or "Serial"  # SageMaker's default
        if len(containers) > 1 and mode != "Serial":  # Direct: one container per request, named by the caller
            return _rest_json_error(
                start_response,
                400,
                "ValidationError",
                f"Model {model.model_name} has {len(containers)} containers in mode {mode}: "
                "invoke needs TargetContainerHostname",
            )
        result, index = run_chain(
            containers,
            _body(environ),
            environ.get("CONTENT_TYPE", "text/csv"),
            environ.get("HTTP_ACCEPT", ""),
            environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES", ""),
        )
        with STATE.lock:
            STATE.invocations.append(
                {
                    "endpoint": name,
                    "model": model.model_name,
                    "containers": len(containers),
                    "ran": index + 1,
                    "model_data_url": containers[0].get("ModelDataUrl"),
                    "status": result["status"],
                }
            )
        if result["status"] != 200:
            kind = "client" if 400 <= result["status"] < 500 else "server"
            source = "primary" if len(containers) == 1 else f"container-{index + 1}"
            return _rest_json_error(
                start_response,
                424,
                "ModelError",
                f'Received {kind} error ({result["status"]}) from {source} with message "{result["message"]}"',
                OriginalStatusCode=result["status"],
                OriginalMessage=result["message"],
                LogStreamArn=f"arn:aws:logs:{region}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/{name}",
            )
        body, content_type = base64.b64decode(result["body"]), result["content_type"]
        start_response(
            "200 OK",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("x-Amzn-Invoked-Production-Variant", config.production_variants[0]["VariantName"]),
            ],
        )
        return [body]

    @staticmethod
    def _run(
        container: dict[str, Any], body: bytes, content_type: str, accept: str, custom_attributes: str = ""
    ) -> dict:
        if _is_ours(container):
            return ExtensionsApp._serving(container).invoke(body, content_type, accept, custom_attributes)
        image = container.get("Image", "")
        handler = next((h for key, h in CONTAINER_EMULATORS.items() if key in image), None)
        return handler(container, body, content_type, accept)

    @staticmethod
    def _serving(container: dict[str, Any]) -> ServingContainer:
        environment = dict(container.get("Environment") or {})
        key = (container.get("Image", ""), container.get("ModelDataUrl", ""), tuple(sorted(environment.items())))
        with STATE.lock:
            if key not in STATE.serving:
                STATE.serving[key] = ServingContainer(ExtensionsApp._model_dir(container["ModelDataUrl"]), environment)
            return STATE.serving[key]

    @staticmethod
    def _model_dir(url: str) -> str:
        from churn.aws.packaging import extract_model_tarball

        with STATE.lock:
            if url in STATE.models:
                return STATE.models[url]
            bucket, key = url[len("s3://") :].split("/", 1)
            data = s3_backends[ACCOUNT]["aws"].get_object(bucket, key).value
            directory = extract_model_tarball(data, tempfile.mkdtemp(prefix="moto-model-"))
            STATE.models[url] = str(directory)
            return str(directory)


def _is_ours(container: dict[str, Any]) -> bool:
    """Our image: every container that no stand-in in CONTAINER_EMULATORS claims."""
    return not any(key in container.get("Image", "") for key in CONTAINER_EMULATORS)


def run_chain(
    containers: list[dict[str, Any]], body: bytes, content_type: str, accept: str, custom_attributes: str = ""
) -> tuple[dict, int]:
    """One request through a model's containers in series, as SageMaker runs a model; (last result, its index).

    The request's Content-Type goes to the first container, each container's response
    Content-Type to the next; only the last container sees the caller's Accept (without
    one, or ``*/*``, each container answers in its SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT,
    else JSON, as the container toolkit does). A container's error stops the chain.
    """
    result: dict = {"status": 500, "message": "the model has no containers"}
    index = 0
    for index, container in enumerate(containers):
        # ours answer in their own default (CSV); a stand-in in its SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else JSON
        default = (
            ""
            if _is_ours(container)
            else (container.get("Environment") or {}).get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
        )
        last = index == len(containers) - 1
        wanted = accept if last and accept not in ("", "*/*") else default
        result = ExtensionsApp._run(container, body, content_type, wanted, custom_attributes)
        if result["status"] != 200:
            break
        body, content_type = base64.b64decode(result["body"]), result["content_type"]
    return result, index


# -- batch transform --------------------------------------------------------------------
# moto 5.2.5 marks a transform job Completed at once and writes nothing. Here CreateTransformJob
# is InProgress for one DescribeTransformJob; then every input object under the S3 prefix is
# sent through the job's model (``run_chain``: the same containers an endpoint runs) the way
# the request says: SplitType None -> the object is one request; Line -> its lines, grouped
# (MultiRecord) into requests of at most MaxPayloadInMB, or one line each (SingleRecord).
# Each object's answers are assembled (AssembleWith Line: one per line; None: concatenated)
# into ``<S3OutputPath>/<object name>.out``. A request larger than MaxPayloadInMB, or a
# container error, fails the job with a ClientError naming the object, as SageMaker does.
def transform_requests() -> list[dict]:
    """Every CreateTransformJob request so far, in order, with ``Output`` (the last .out URI) once it ran."""
    with STATE.lock:
        return [{**t["request"], "Output": t.get("output")} for t in STATE.transforms.values()]


class TransformClientError(Exception):
    pass


def _transform_requests(data: bytes, transform_input: dict[str, Any], strategy: str, max_bytes: int) -> list[bytes]:
    if transform_input.get("SplitType", "None") == "None":
        return [data]
    lines = [line + b"\n" for line in data.split(b"\n") if line.strip()]
    if strategy == "SingleRecord":
        return lines
    requests_, current = [], b""
    for line in lines:
        if current and len(current) + len(line) > max_bytes:
            requests_.append(current)
            current = b""
        current += line
    return requests_ + ([current] if current else [])


def run_transform(backend: Any, job: Any, request: dict[str, Any]) -> str:
    """Score every input object with the job's model; returns the last .out URI written."""
    model = backend._models.get(job.model_name)
    if model is None:
        raise TransformClientError(f"model {job.model_name} does not exist")
    containers = model.containers or [model.primary_container]
    transform_input = request["TransformInput"]
    source = transform_input["DataSource"]["S3DataSource"]["S3Uri"]
    bucket, prefix = source[len("s3://") :].split("/", 1) if "/" in source[len("s3://") :] else (source[5:], "")
    output = request["TransformOutput"]["S3OutputPath"].rstrip("/")
    accept = request["TransformOutput"].get("Accept", "")
    assemble = request["TransformOutput"].get("AssembleWith", "None")
    max_bytes = int(request.get("MaxPayloadInMB", 6)) * 1024 * 1024
    strategy = request.get("BatchStrategy", "MultiRecord")
    store = s3_backends[ACCOUNT]["aws"].get_bucket(bucket)
    objects = {
        name: key.value for name, key in sorted(store.keys.items()) if name.startswith(prefix) and key is not None
    }
    if not objects:
        raise TransformClientError(f"no input objects under {source}")
    written = None
    for name, data in objects.items():
        answers = []
        for body in _transform_requests(data, transform_input, strategy, max_bytes):
            if len(body) > max_bytes:
                raise TransformClientError(
                    f"s3://{bucket}/{name}: a request of {len(body)} bytes exceeds "
                    f"MaxPayloadInMB {max_bytes // (1024 * 1024)}"
                )
            result, index = run_chain(containers, body, transform_input.get("ContentType", ""), accept)
            if result["status"] != 200:
                raise TransformClientError(
                    f"s3://{bucket}/{name}: container {index + 1} answered {result['status']}: {result.get('message')}"
                )
            answers.append(base64.b64decode(result["body"]))
        if assemble == "Line":
            out = b"".join(a if a.endswith(b"\n") else a + b"\n" for a in answers)
        else:
            out = b"".join(answers)
        written = f"{output}/{name[len(prefix) :].lstrip('/')}.out"
        out_bucket, out_key = written[len("s3://") :].split("/", 1)
        s3_backends[ACCOUNT]["aws"].put_object(out_bucket, out_key, out)
    return written  # type: ignore[return-value]


def _create_transform_job(self: SageMakerResponse) -> Any:
    result = _ORIGINALS["create_transform_job"](self)
    name = self._get_param("TransformJobName")
    job = self.sagemaker_backend.transform_jobs[name]
    job.transform_job_status = "InProgress"
    with STATE.lock:
        STATE.transforms[name] = {"request": json.loads(self.body), "polls": 1, "output": None}
    return result


def _describe_transform_job(self: SageMakerResponse) -> Any:
    name = self._get_param("TransformJobName")
    job = self.sagemaker_backend.transform_jobs.get(name)
    with STATE.lock:
        tracked = STATE.transforms.get(name)
        if job is not None and tracked is not None and job.transform_job_status == "InProgress":
            if tracked["polls"] > 0:
                tracked["polls"] -= 1
            else:
                try:
                    tracked["output"] = run_transform(self.sagemaker_backend, job, tracked["request"])
                    job.transform_job_status = "Completed"
                except TransformClientError as error:
                    job.transform_job_status, job.failure_reason = "Failed", f"ClientError: {error}"
                job.transform_end_time = job.last_modified_time = datetime.now(UTC)
    return _ORIGINALS["describe_transform_job"](self)


def _stop_transform_job(self: SageMakerResponse) -> EmptyResult:
    name = self._get_param("TransformJobName")
    job = self.sagemaker_backend.transform_jobs.get(name)
    if job is None:
        raise ValidationError(message=f"Could not find transform job '{name}'.")
    job.transform_job_status = "Stopped"
    return EmptyResult()


_PATCHES.update(
    {
        "create_transform_job": _create_transform_job,
        "describe_transform_job": _describe_transform_job,
        "stop_transform_job": _stop_transform_job,
    }
)


class ServingContainer:
    """One of our containers as SageMaker runs it: ``serve`` in a process of its own, on a port of its own.

    The process sees the container's Environment, its model directory (the extracted archive)
    and SAGEMAKER_BIND_TO_PORT, as the image does (where CHURN_MODEL_DIR is /opt/ml/model), and
    binds 127.0.0.1. A container that refuses to start (a bundle that fails its SHA-256 check,
    say) answers every request with a 500 carrying its log, as a failed health check would.
    """

    START_SECONDS = 120.0  # generous: two shared cores, a cold import of pandas and scikit-learn

    def __init__(self, model_dir: str, environment: dict[str, str]) -> None:
        from churn.net import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(model_dir, f"serve-{self.port}.log")
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "SAGEMAKER_"))},
            **environment,
            "CHURN_MODEL_DIR": model_dir,
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "CHURN_SERVING_HOST": "127.0.0.1",
            "PYTHONPATH": repo,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "churn.serving.container", "serve"],
                cwd=repo,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.ready: bool | None = None
        self.lock = threading.Lock()

    def _log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                return handle.read()[-2000:].strip()
        except OSError:
            return ""

    def _wait_ready(self) -> bool:
        import time

        import requests

        with self.lock:
            deadline = time.monotonic() + self.START_SECONDS
            while self.ready is None:
                if self.process.poll() is not None:
                    self.ready = False
                    break
                try:
                    if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                        self.ready = True
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    self.ready = False
                    break
                time.sleep(0.05)
            return bool(self.ready)

    def invoke(self, body: bytes, content_type: str, accept: str, custom_attributes: str = "") -> dict:
        import requests

        if not self._wait_ready():
            return {
                "status": 500,
                "message": f"the container did not pass its /ping health check "
                f"(exit code {self.process.poll()}): {self._log()}",
            }
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        try:
            response = requests.post(self.url + "/invocations", data=body, headers=headers, timeout=60)
        except requests.RequestException as error:
            return {"status": 500, "message": f"the container did not answer: {error}"}
        if response.status_code != 200:
            return {"status": response.status_code, "message": response.text.strip()}
        return {
            "status": 200,
            "body": base64.b64encode(response.content).decode(),
            "content_type": response.headers.get("Content-Type", ""),
        }

    def stop(self) -> None:
        from tests.processes import stop_process_group

        stop_process_group(self.process)


# Stand-ins for images that cannot run here (another model's containers, e.g. Autopilot's):
# image substring -> handler(container, body, content_type, accept) returning
# {"status", "body" (base64), "content_type"} or {"status", "message"}. moto_automl adds one.
CONTAINER_EMULATORS: dict[str, Callable[[dict[str, Any], bytes, str, str], dict]] = {}


class QuietRequestHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class ExtendedMotoServer(ThreadedMotoServer):
    """moto's ThreadedMotoServer with the extensions above in front of it, and no request log."""

    def __init__(
        self, port: int, ip_address: str = "127.0.0.1", middleware: Callable[[Callable], Callable] = lambda app: app
    ):
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self._middleware = middleware  # wraps the whole app (strict_aws validates requests there)

    def _server_entry(self) -> None:
        app = self._middleware(ExtensionsApp(DomainDispatcherApplication(create_backend_app)))
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=QuietRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    def start(self) -> None:
        install()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        super().start()

    def stop(self) -> None:
        super().stop()
        uninstall()
        STATE.reset()

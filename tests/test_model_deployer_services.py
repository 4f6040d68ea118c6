"""The local endpoint as a ZenML service, driven through ZenML's own CLI (``zenml model-deployer models ...``).

Real parts only: an isolated ZenML store (tests/conftest.py), MLflow (sqlite) registry, our server as a
daemon on 127.0.0.1, and ZenML's unmodified click CLI (``zenml.cli.cli``) run in-process with CliRunner.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from zenml import pipeline, step

from churn.model_registry import register_all_or_nothing
from tests.conftest import local_stack_fixture

REPO = Path(__file__).resolve().parents[1]
ENDPOINT = "services-test-endpoint"
MODEL = "services-test-model"


stack = local_stack_fixture(ENDPOINT)


@pytest.fixture(scope="module")
def registered(stack, trained_bundle, tmp_path_factory):
    """Two approved versions of one bundle in the stack's MLflow registry: ``[(version, uri, sha256), ...]``."""
    bundle, _ = trained_bundle
    out = []
    for run in ("1", "2"):
        directory = tmp_path_factory.mktemp(f"bundle-{run}") / "bundle"
        sha256 = bundle.save(directory)
        lineage = {"bundle_sha256": sha256, "zenml_pipeline_run_uuid": f"run-{run}", "data_fingerprint": "f" * 64}
        version, _ = register_all_or_nothing(stack.model_registry, MODEL, str(directory), lineage, "Approved")
        out.append((str(version.version), str(directory), sha256))
    return out


def zenml(*args: str) -> str:
    """ZenML's CLI, unmodified; its output."""
    from zenml.cli.cli import cli

    result = CliRunner().invoke(cli, ["model-deployer", "models", *args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def churn_endpoints() -> str:
    import run as cli_module

    result = CliRunner().invoke(cli_module.cli, ["endpoints"])
    assert result.exit_code == 0, result.output
    return result.output


def _service(stack):
    (service,) = stack.model_deployer.endpoint_services(ENDPOINT)
    return service


def _ping(url: str) -> requests.Response:
    return requests.get(url + "/ping", timeout=5)


def test_zenml_cli_lists_describes_logs_stops_starts_and_deletes_our_endpoint(stack, registered):
    deployer = stack.model_deployer
    (v1, uri1, sha1), (v2, _, sha2) = registered
    deployed = deployer.deploy_bundle(ENDPOINT, MODEL, v1, uri1, sha1)
    service = _service(stack)
    uuid = str(service.uuid)
    assert (service.config.model_name, service.config.model_version, service.config.sha256) == (MODEL, v1, sha1)
    assert service.status.state.value == "active" and service.prediction_url == deployed["invocations_url"]

    listed = zenml("list")
    assert uuid in listed and MODEL in listed and "No served models found" not in listed
    assert uuid in zenml("list", "--model", MODEL, "--model-version", v1)
    assert uuid not in zenml("list", "--model-version", "999")
    described = zenml("describe", uuid)
    for expected in ("MODEL_VERSION", v1, "ENDPOINT_NAME", ENDPOINT, sha1, deployed["invocations_url"]):
        assert expected in described
    line = churn_endpoints()
    assert f"{ENDPOINT}: active {deployed['invocations_url']} serving {MODEL} v{v1} [ZenML service {uuid}]" in line

    log_lines = (Path(service.config.endpoint_dir) / "server.log").read_text().strip().splitlines()
    logs = zenml("logs", uuid, "--raw")
    assert log_lines and log_lines[-1].strip()[:60] in logs

    # stop: the server is gone, ZenML and run.py endpoints say inactive
    zenml("stop", uuid)
    with pytest.raises(requests.ConnectionError):
        _ping(deployed["url"])
    assert _service(stack).status.state.value == "inactive"
    assert f"{ENDPOINT}: inactive (the endpoint server is not running)" in churn_endpoints()

    # start: the same version serves again
    zenml("start", uuid)
    url = deployer.endpoint_url(ENDPOINT)
    assert _ping(url).headers["X-Model-Version"] == v1
    assert _service(stack).status.state.value == "active" and str(_service(stack).uuid) == uuid

    # a new version (given as an MLflow model URI: fetched into the staging dir, hash-checked) is a new record
    deployer.deploy_bundle(ENDPOINT, MODEL, v2, f"models:/{MODEL}/{v2}", sha2)
    assert _ping(url).headers["X-Model-Version"] == v2
    service = _service(stack)
    assert service.config.model_version == v2 and str(service.uuid) != uuid
    assert uuid not in zenml("list") and str(service.uuid) in zenml("list")
    assert f"serving {MODEL} v{v2} [ZenML service {service.uuid}]" in churn_endpoints()

    # delete: the endpoint and its record are gone, everywhere
    zenml("delete", str(service.uuid))
    with pytest.raises(requests.ConnectionError):
        _ping(url)
    assert not Path(service.config.endpoint_dir).exists()
    assert ENDPOINT not in churn_endpoints()
    assert str(service.uuid) not in zenml("list")


def test_an_endpoint_without_a_record_is_recorded_and_a_record_without_an_endpoint_dropped(stack, registered):
    from stacks.services.endpoint import forget, list_records

    deployer = stack.model_deployer
    version, uri, sha256 = registered[0]
    deployer.deploy_bundle(ENDPOINT, MODEL, version, uri, sha256)
    try:
        forget([r.id for r in list_records(deployer.service_class, str(deployer.id), ENDPOINT)])  # e.g. store down
        assert f"serving {MODEL} v{version}" in churn_endpoints()  # recorded again from the endpoint itself
        (record,) = list_records(deployer.service_class, str(deployer.id), ENDPOINT)
        assert zenml("describe", str(record.id)).count(sha256) == 1
    finally:
        deployer.remove_endpoint(ENDPOINT)  # behind ZenML's back: the record stays until the next listing
    assert list_records(deployer.service_class, str(deployer.id), ENDPOINT)
    assert ENDPOINT not in churn_endpoints()
    assert list_records(deployer.service_class, str(deployer.id), ENDPOINT) == []


def test_a_bundle_uri_that_cannot_be_fetched_is_refused_by_name(stack, registered):
    from stacks.contracts import DeploymentError

    version, _, sha256 = registered[0]
    with pytest.raises(DeploymentError, match=f"could not fetch the bundle at models:/{MODEL}/404"):
        stack.model_deployer.deploy_bundle(ENDPOINT, MODEL, version, f"models:/{MODEL}/404", sha256)


@step(enable_cache=False)
def deploy_version(model_name: str, version: str, uri: str, sha256: str) -> str:
    """What the deploy step does: deploy_bundle on the active stack's deployer."""
    from zenml.client import Client

    return Client().active_stack.model_deployer.deploy_bundle(ENDPOINT, model_name, version, uri, sha256)["version"]


@pipeline(enable_cache=False)
def deploy_pipeline(model_name: str, version: str, uri: str, sha256: str) -> None:
    deploy_version(model_name, version, uri, sha256)


def test_a_deployment_from_a_step_records_its_pipeline_step_and_run(stack, registered):
    from zenml.client import Client

    version, uri, sha256 = registered[0]
    run = deploy_pipeline(model_name=MODEL, version=version, uri=uri, sha256=sha256)
    try:
        service = _service(stack)
        assert (service.config.pipeline_name, service.config.pipeline_step_name) == (
            "deploy_pipeline",
            "deploy_version",
        )
        assert service.config.run_name == Client().get_pipeline_run(run.id).name
        listed = zenml("list", "--pipeline-name", "deploy_pipeline", "--pipeline-run-id", str(run.id))
        assert str(service.uuid) in listed and "deploy_version" in listed
        assert str(service.uuid) not in zenml("list", "--pipeline-name", "another_pipeline")
    finally:
        stack.model_deployer.delete_endpoint(ENDPOINT)


def test_cleanup_stops_every_server_when_the_store_cannot_delete_their_records(stack, registered, monkeypatch, capsys):
    from zenml.client import Client

    from stacks.contracts import CleanupRequest
    from stacks.services.endpoint import list_records

    deployer = stack.model_deployer
    version, uri, sha256 = registered[0]
    names = [f"{ENDPOINT}-a", f"{ENDPOINT}-b"]
    urls = [deployer.deploy_bundle(name, MODEL, version, uri, sha256)["url"] for name in names]

    def store_down(store, service_id):  # mocked: a ZenML store outage cannot be made on demand here
        raise RuntimeError("injected: the ZenML store is unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(type(Client().zen_store), "delete_service", store_down)
        removed = deployer.cleanup(CleanupRequest(yes=True), echo=print, confirm=lambda _: True)
    assert set(names) <= set(removed)  # (cleanup removes every endpoint of the stack; others may share it)
    for url in urls:  # every server stopped, the first record error did not abort cleanup
        with pytest.raises(requests.ConnectionError):
            _ping(url)
    out = capsys.readouterr().out
    for name in names:  # each of them warned about, by name
        assert f"warning: endpoint '{name}' was removed, but its ZenML service records were not deleted (Runtime" in out
    assert all(list_records(deployer.service_class, str(deployer.id), name) for name in names)
    listed = churn_endpoints()  # the next listing drops the stale records
    assert all(name not in listed for name in names)
    assert all(list_records(deployer.service_class, str(deployer.id), name) == [] for name in names)


def test_allow_older_rolls_back_on_purpose_and_is_not_recorded_as_metadata(stack, registered):
    deployer = stack.model_deployer
    (v1, uri1, sha1), (v2, uri2, sha2) = registered
    name = f"{ENDPOINT}-rollback"
    try:
        deployer.deploy_bundle(name, MODEL, v2, uri2, sha2)
        assert deployer.deploy_bundle(name, MODEL, v1, uri1, sha1)["version"] == v2  # older: not without asking
        assert deployer.deploy_bundle(name, MODEL, v1, uri1, sha1, allow_older=True)["version"] == v1
        deployer.deploy_bundle(name, MODEL, v2, uri2, sha2)
        # the old spelling, still read for one release: honoured, not stored
        rolled = deployer.deploy_bundle(
            name, MODEL, v1, uri1, sha1, metadata={"allow_older": True, "mlflow_run_id": "r"}
        )
        assert rolled["version"] == v1
        (entry,) = [e for e in deployer.list_endpoints() if e["endpoint_name"] == name]
        assert entry["version"] == v1 and entry.get("mlflow_run_id") == "r" and "allow_older" not in entry
        assert "allow_older" not in zenml("describe", str(_named(stack, name).uuid))
    finally:
        deployer.delete_endpoint(name)


def _named(stack, name):
    (service,) = stack.model_deployer.endpoint_services(name)
    return service

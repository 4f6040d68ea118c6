"""The Model Control Plane's rules on a real ZenML store (the session's sqlite store; no pipeline run).

The pipeline tests (tests/test_pipeline_local.py) check what a training run records; here the
stage mapping and the lookup by registry version that the CLI and the deploy step rely on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from churn.model_control import find_version, record_deployment, stage_for, sync_stage, version_metadata


@pytest.fixture
def model_name():
    from zenml.client import Client

    name = f"mcp-test-{uuid.uuid4().hex[:8]}"
    Client().create_model(name=name)
    yield name
    Client().delete_model(name)


def _version(model_name: str, registry_version: str | None):
    from zenml import log_metadata
    from zenml.client import Client

    version = Client().create_model_version(model_name_or_id=model_name)
    report = {"accuracy": 0.81, "roc_auc": 0.88, "unseen_categories": {}}
    registration = (
        None
        if registry_version is None
        else {"version": registry_version, "approval_status": "Approved", "sha256": "a" * 64, "mlflow_run_id": "r1"}
    )
    log_metadata(
        metadata=version_metadata(report, {"passed": registration is not None, "message": "m"}, registration),
        model_version_id=version.id,
    )
    return version


def _stages(model_name: str) -> dict[str, str]:
    from zenml.client import Client

    return {v.name: v.stage for v in Client().list_model_versions(model=model_name, size=100).items}


def test_the_stage_follows_approval_then_deployment_and_one_version_is_production(model_name):
    from zenml.client import Client

    one, three, thirteen = (_version(model_name, rv) for rv in ("1", "3", "13"))
    unregistered = _version(model_name, None)  # a gate-failed run: no registry version
    assert find_version(model_name, "3").id == three.id  # "3" is not "13"
    assert sync_stage(model_name, "3", approval_status="PendingManualApproval", deployed=False) == "none"
    assert sync_stage(model_name, "3", approval_status="Approved", deployed=False) == "staging"
    assert record_deployment(model_name, "1", endpoint_name="ep", endpoint_url="http://127.0.0.1:1") == "production"
    assert record_deployment(model_name, "3", endpoint_name="ep", endpoint_url="http://127.0.0.1:2") == "production"
    assert _stages(model_name) == {one.name: "archived", three.name: "production", thirteen.name: None, "4": None}
    served = Client().get_model_version(model_name, three.name, hydrate=True).run_metadata
    assert served["endpoint"] == {"name": "ep", "url": "http://127.0.0.1:2"}
    assert served["registry_version"] == "3" and served["metrics"] == {"accuracy": 0.81, "roc_auc": 0.88}
    assert (
        "registry_version" not in Client().get_model_version(model_name, unregistered.name, hydrate=True).run_metadata
    )
    # rejecting what serves archives it: a rejected version is never production
    assert sync_stage(model_name, "3", approval_status="Rejected", deployed=True) == "archived"
    assert _stages(model_name)[three.name] == "archived"


def test_versions_the_control_plane_never_saw_are_not_an_error(model_name):
    _version(model_name, "1")
    assert sync_stage(model_name, "99", approval_status="Approved", deployed=True) is None
    assert record_deployment(model_name, "99", endpoint_name="ep", endpoint_url=None) is None
    assert sync_stage("no-such-model-" + model_name, "1", approval_status="Approved", deployed=False) is None


def test_an_unknown_approval_status_is_refused_by_name(model_name):
    with pytest.raises(ValueError, match="approval_status must be one of .*Approved.*got 'approved'"):
        sync_stage(model_name, "1", approval_status="approved", deployed=False)
    assert stage_for("Approved", deployed=True).value == "production"


def zenml_cli(*args: str) -> dict:
    """The real ``zenml`` command (a process: its JSON output goes to the console it opened first) as parsed JSON."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "zenml"), *args, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_zenml_cli_lists_the_model_and_its_versions_with_their_stage(model_name):
    _version(model_name, "7")
    _version(model_name, "8")
    record_deployment(model_name, "7", endpoint_name="ep", endpoint_url="http://127.0.0.1:9")
    listed = zenml_cli("model", "version", "list", "--model", model_name)
    assert sorted((v["model"], v["number"], v["stage"] or "") for v in listed["items"]) == [
        (model_name, 1, "production"),
        (model_name, 2, ""),
    ]
    # the ZenML version of a registry version, found from the shell by its metadata
    found = zenml_cli("model", "version", "list", "--model", model_name, "--run_metadata", "registry_version:8")
    assert [v["number"] for v in found["items"]] == [2]
    assert model_name in [m["name"] for m in zenml_cli("model", "list", "--size", "100")["items"]]


def test_a_reconcile_records_what_serves_even_when_the_replaced_version_cannot_be_looked_up(model_name, capsys):
    """The replaced version's lookup fails (the group is not in the registry): the new one is production anyway."""
    from zenml.client import Client

    from churn.model_control import follow_reconcile

    _version(model_name, "1"), _version(model_name, "2")
    record_deployment(model_name, "1", endpoint_name="ep", endpoint_url=None)
    outcome = {"action": "deployed", "to_serve": "2", "served_before": "1", "endpoint_name": "ep", "endpoint": {}}
    follow_reconcile(Client().active_stack.model_registry, model_name, outcome)
    assert _stages(model_name)["2"] == "production"
    assert f"warning: the stage of {model_name} v1 (no longer served)" in capsys.readouterr().err


def test_bookkeeping_that_fails_warns_naming_what_was_not_recorded(capsys):
    from churn.model_control import warn_only

    def store_down(*_args, **_kwargs):
        raise ConnectionError("ZenML store unreachable")

    assert warn_only("the deployment of m v3", store_down, "m", "3", endpoint_name="ep") is None
    assert "warning: the deployment of m v3 was not recorded: ConnectionError: ZenML store unreachable" in (
        capsys.readouterr().err
    )

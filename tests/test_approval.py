"""The approval workflow on the local stack: real MLflow registry, real ZenML store, real endpoint server.

Versions are registered with ``register_all_or_nothing`` (what RegisterModel calls) rather than whole
pipeline runs; ``run.py approve|reject|promote|reconcile`` run through click in this process and deploy
through the stack's local model deployer, whose server answers GET /ping with X-Model-Version.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from churn.model_registry import CHAMPION_MARKER, model_to_serve, register_all_or_nothing

GROUP = f"approval-test-{uuid.uuid4().hex[:6]}"
ENDPOINT = f"approval-test-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def stack(session_dir):
    from zenml.client import Client
    from zenml.utils import source_utils

    from stacks.local import setup_local_stack

    source_utils.set_custom_source_root(str(Path(__file__).resolve().parents[1]))
    setup_local_stack(activate=True)
    active = Client().active_stack
    yield active
    active.model_deployer.delete_endpoint(ENDPOINT)  # stops its server by pid


@pytest.fixture(scope="module")
def bundle_dir(trained_bundle, tmp_path_factory):
    bundle, _ = trained_bundle
    directory = tmp_path_factory.mktemp("registered") / "bundle"
    return str(directory), bundle.save(directory)


def _register(stack, bundle_dir, status: str, run: str) -> str:
    uri, sha256 = bundle_dir
    lineage = {"bundle_sha256": sha256, "zenml_pipeline_run_uuid": f"run-{run}", "bundle_uri": uri}
    version, _ = register_all_or_nothing(stack.model_registry, GROUP, uri, lineage, status)
    return str(version.version)


def _run(*args: str, ok: bool = True):
    from run import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def _zenml_version(registry_version: str):
    """A ZenML model version of GROUP recording ``registry_version``, as a training run's register step leaves it."""
    from zenml import log_metadata
    from zenml.client import Client

    from churn.model_control import version_metadata

    try:
        Client().get_model(GROUP)
    except KeyError:
        Client().create_model(name=GROUP)
    version = Client().create_model_version(model_name_or_id=GROUP)
    registration = {"version": registry_version, "approval_status": "Pending", "sha256": "a" * 64, "mlflow_run_id": ""}
    log_metadata(
        metadata=version_metadata({}, {"passed": True, "message": "m"}, registration), model_version_id=version.id
    )
    return version.id


def _zenml_stage(version_id) -> str:
    from zenml.client import Client

    return Client().get_model_version(GROUP, version_id).stage


def _served(stack) -> str:
    url = stack.model_deployer.endpoint_url(ENDPOINT)
    return requests.get(f"{url}/ping", timeout=10).headers["X-Model-Version"]


def _tags(version: str) -> dict:
    import mlflow

    return mlflow.MlflowClient().get_model_version(GROUP, version).tags


def _champion_alias() -> str:
    import mlflow

    return str(mlflow.MlflowClient().get_model_version_by_alias(GROUP, "champion").version)


def test_approve_promote_reject_follow_through_to_the_endpoint(stack, bundle_dir):
    import mlflow.exceptions

    registry = stack.model_registry
    v1 = _register(stack, bundle_dir, "Approved", "1")
    v2 = _register(stack, bundle_dir, "PendingManualApproval", "2")
    assert model_to_serve(registry, GROUP).version == v1  # the pending version is not served, nor batch-scored
    out = _run("reconcile", "--group", GROUP, "--endpoint", ENDPOINT)
    assert f"Endpoint {ENDPOINT} serves {GROUP} v{v1}" in out and _served(stack) == v1

    out = _run("approve", GROUP, v2, "--endpoint", ENDPOINT, "--no-deploy", "--reason", "reviewed")
    assert f"{GROUP} version {v2} is Approved." in out and "Not deployed (--no-deploy)" in out
    assert _served(stack) == v1  # --no-deploy deployed nothing
    assert _tags(v2)["approval_status"] == "Approved" and _tags(v2)["approval_description"] == "reviewed"
    assert model_to_serve(registry, GROUP).version == v2  # what batch scoring (load_approved_model) now takes
    assert f"Endpoint {ENDPOINT} serves {GROUP} v{v2} (was v{v1})" in _run(
        "reconcile", "--group", GROUP, "--endpoint", ENDPOINT
    )
    assert _served(stack) == v2
    assert "already serves" in _run("reconcile", "--group", GROUP, "--endpoint", ENDPOINT)  # idempotent

    v3 = _register(stack, bundle_dir, "PendingManualApproval", "3")
    zenml_v3 = _zenml_version(v3)
    assert _served(stack) == v2 and model_to_serve(registry, GROUP).version == v2
    out = _run("approve", GROUP, v3, "--endpoint", ENDPOINT)
    assert f"serves {GROUP} v{v3} (was v{v2})" in out
    assert _served(stack) == v3 and _champion_alias() == v3
    assert _zenml_stage(zenml_v3) == "production"  # the ZenML model version follows approval and deployment

    out = _run("promote", GROUP, v1, "--endpoint", ENDPOINT)  # a rollback to the oldest version
    assert f"serves {GROUP} v{v1} (was v{v3})" in out
    assert _served(stack) == v1 and _champion_alias() == v1 and model_to_serve(registry, GROUP).version == v1
    assert _zenml_stage(zenml_v3) == "staging"  # Approved, no longer served
    assert _tags(v1)[CHAMPION_MARKER] == v3  # pinned over every version that existed then

    out = _run("reject", GROUP, v1, "--endpoint", ENDPOINT)  # the served version
    assert f"{GROUP} version {v1} is Rejected." in out and f"serves {GROUP} v{v3} (was v{v1})" in out
    assert _served(stack) == v3 and CHAMPION_MARKER not in _tags(v1) and _tags(v1)["approval_status"] == "Rejected"

    _run("reject", GROUP, v2, "--endpoint", ENDPOINT)
    out = _run("reject", GROUP, v3, "--endpoint", ENDPOINT)
    assert f"{GROUP} has no Approved version to serve: endpoint {ENDPOINT} still serves {GROUP} v{v3}" in out
    assert _served(stack) == v3  # left running, and said so
    assert model_to_serve(registry, GROUP) is None
    with pytest.raises(mlflow.exceptions.MlflowException):  # models:/GROUP@champion loads no Rejected version
        _champion_alias()


def test_a_version_approved_after_a_promotion_is_served_over_it(stack, bundle_dir):
    from churn.model_registry import promote, set_approval

    registry = stack.model_registry
    old = _register(stack, bundle_dir, "Approved", "4")
    newer = _register(stack, bundle_dir, "Approved", "5")
    promote(registry, GROUP, old)
    assert model_to_serve(registry, GROUP).version == old
    pending = _register(stack, bundle_dir, "PendingManualApproval", "6")
    assert model_to_serve(registry, GROUP).version == old  # the pin holds against what is not approved
    set_approval(registry, GROUP, newer, "Approved")
    assert model_to_serve(registry, GROUP).version == old  # and against versions that existed when it was made
    set_approval(registry, GROUP, pending, "Approved")  # registered after the promotion: it wins
    assert model_to_serve(registry, GROUP).version == pending


def test_unknown_group_unknown_version_and_promoting_a_rejected_version_are_refused(stack, bundle_dir):
    out = _run("approve", "no-such-group", "1", "--endpoint", ENDPOINT, ok=False)
    assert "the registry has no model (package group) named 'no-such-group'" in out
    rejected = _register(stack, bundle_dir, "Rejected", "7")
    out = _run("approve", GROUP, "999", "--endpoint", ENDPOINT, ok=False)
    assert f"{GROUP} has no version '999' (its versions: " in out
    out = _run("promote", GROUP, rejected, "--endpoint", ENDPOINT, ok=False)
    assert f"{GROUP} version {rejected} is Rejected; approve it first" in out
    out = _run("approve", GROUP, rejected, ok=False)  # no --endpoint, and no pipeline config names the group
    assert f"no pipeline config (configs/rf.yaml, configs/automl.yaml) has model_package_group '{GROUP}'" in out
    assert _tags(rejected)["approval_status"] == "Rejected"  # checked before anything changed
    out = _run("approve", GROUP, rejected, "--no-deploy")  # no endpoint needed to change the registry only
    assert f"{GROUP} version {rejected} is Approved." in out and "Not deployed (--no-deploy)" in out


def test_reconcile_with_a_config_file_deploys_with_that_files_deploy_keys(tmp_path):
    """``run.py reconcile --config FILE``'s deploy settings are FILE's, not configs/rf.yaml's."""
    import yaml

    from cli.common import load_config
    from cli.lifecycle import _target

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "rf.yaml").read_text())
    data.update(model_package_group="other-group", endpoint_name="other-endpoint", initial_instance_count=3)
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config("rf", str(path))
    name, settings = _target(config.model_package_group, config.endpoint_name, config=config)
    assert (name, settings.initial_instance_count) == ("other-endpoint", 3)


def test_a_promotion_made_while_a_deploy_runs_is_what_the_endpoint_ends_on(stack, bundle_dir):
    """The model to serve is chosen before deploy_bundle; a promotion made during it is served after it."""
    import copy

    from churn.model_registry import promote, reconcile

    group, endpoint = f"{GROUP}-race", f"{ENDPOINT}-race"
    uri, sha256 = bundle_dir

    def register(run: str) -> str:
        lineage = {"bundle_sha256": sha256, "zenml_pipeline_run_uuid": f"run-{run}", "bundle_uri": uri}
        return str(register_all_or_nothing(stack.model_registry, group, uri, lineage, "Approved")[0].version)

    old, new = register("r1"), register("r2")
    local = type(stack.model_deployer)

    class PromotesDuringTheFirstDeploy(local):
        """The stack's real local deployer (same component, this subclass): an operator promotes mid-deploy."""

        def deploy_bundle(self, **kwargs):
            if not getattr(self, "_promoted", False):
                self._promoted = True
                promote(stack.model_registry, group, old)  # `run.py promote` in another shell, meanwhile
            return super().deploy_bundle(**kwargs)

    racing = copy.copy(stack.model_deployer)
    racing.__class__ = PromotesDuringTheFirstDeploy
    try:
        outcome = reconcile(stack.model_registry, racing, group, endpoint)
        url = stack.model_deployer.endpoint_url(endpoint)
        assert requests.get(f"{url}/ping", timeout=10).headers["X-Model-Version"] == old != new
        assert (outcome["to_serve"], outcome["action"]) == (old, "deployed")
    finally:
        stack.model_deployer.delete_endpoint(endpoint)

"""SageMaker endpoints as ZenML services, against the emulator: status from DescribeEndpoint, list, describe, delete.

Real parts: the session's ZenML store, our SageMaker stack's deployer, moto over HTTP with strict botocore
validation; ZenML's own deployer API (``find_model_server``, ``delete_model_server``) and CLI drive it.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.cloud import moto_extensions as emulator
from tests.cloud import moto_failures
from tests.cloud.conftest import boto

ENDPOINT = "classification-model-endpoint"  # the stack's: the IAM documents allow only its names
MODEL = "classification-model-group"
OTHER_ENDPOINT = "automl-classification-endpoint"  # the other endpoint name the IAM documents allow


@pytest.fixture
def deployed(aws, bucket, active_stack, trained_bundle, tmp_path):
    """Version 1 of a bundle served at ENDPOINT by the active SageMaker stack; returns (deployer, deploy result)."""
    bundle, _ = trained_bundle
    sha256 = bundle.save(tmp_path / "bundle")
    deployer = active_stack.model_deployer
    deployer.endpoint_services()  # records of endpoints an earlier test's emulator held are dropped
    return deployer, deployer.deploy_bundle(ENDPOINT, MODEL, "1", str(tmp_path / "bundle"), sha256)


def _zenml(*args: str) -> str:
    from zenml.cli.cli import cli

    result = CliRunner().invoke(cli, ["model-deployer", "models", *args], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _churn_endpoints() -> str:
    from run import cli

    result = CliRunner().invoke(cli, ["endpoints"])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_endpoint_is_a_service_whose_status_is_describe_endpoints(deployed):
    deployer, result = deployed
    (service,) = deployer.find_model_server()
    assert (service.config.endpoint_name, service.config.model_name, service.config.model_version) == (
        ENDPOINT,
        MODEL,
        "1",
    )
    assert service.config.endpoint_config_name == result["endpoint_config_name"]
    assert service.status.state.value == "active" and service.prediction_url == result["invocations_url"]
    uuid = str(service.uuid)
    info = deployer.get_model_server_info(service)
    assert info["MODEL_VERSION"] == "1" and info["ENDPOINT_CONFIG_NAME"] == result["endpoint_config_name"]
    assert uuid in _zenml("list") and result["endpoint_config_name"] in _zenml("describe", uuid)
    assert f"{ENDPOINT}: active (SageMaker: InService) {result['invocations_url']} serving {MODEL} v1" in (
        _churn_endpoints()
    )

    # an update that SageMaker fails: Updating -> pending, then Failed -> error with SageMaker's reason
    emulator.fail_next_endpoint_change(ENDPOINT, "injected: out of capacity")
    boto("sagemaker").update_endpoint(EndpointName=ENDPOINT, EndpointConfigName=result["endpoint_config_name"])
    (updating,) = deployer.find_model_server(service_uuid=service.uuid)
    assert updating.status.state.value == "pending_startup" and updating.status.last_error == "SageMaker: Updating"
    (failed,) = deployer.find_model_server(service_uuid=service.uuid)
    assert failed.status.state.value == "error" and "Failed (injected: out of capacity)" in failed.status.last_error
    assert f"{ENDPOINT}: error (SageMaker: Failed (injected: out of capacity))" in _churn_endpoints()

    # a SageMaker endpoint cannot be paused: ZenML's stop is refused, naming delete
    with pytest.raises(RuntimeError, match="cannot be paused on this platform.*models delete"):
        deployer.stop_model_server(service.uuid)

    # ZenML's delete removes the endpoint, its configs and models, and the record
    deployer.delete_model_server(service.uuid)
    assert boto("sagemaker").list_endpoints()["Endpoints"] == []
    assert boto("sagemaker").list_endpoint_configs()["EndpointConfigs"] == []
    assert deployer.find_model_server() == []
    assert ENDPOINT not in _churn_endpoints()


def test_an_endpoint_deleted_outside_zenml_drops_out_of_the_list(deployed):
    deployer, _ = deployed
    (service,) = deployer.find_model_server(service_name=ENDPOINT)
    boto("sagemaker").delete_endpoint(EndpointName=ENDPOINT)
    (gone,) = deployer.find_model_server(service_uuid=service.uuid)
    assert gone.status.state.value == "inactive" and gone.status.last_error == "the endpoint does not exist"
    assert deployer.find_model_server() == []  # a listing drops the record: nothing left to start or stop


def test_endpoints_whose_describe_endpoint_fails_are_listed_in_error_with_the_reason(deployed):
    deployer, _ = deployed
    (service,) = deployer.find_model_server(service_name=ENDPOINT)
    with moto_failures.describe_endpoint_failing("injected: the security token is expired"):
        listed = _churn_endpoints()  # a listing, not a traceback
        (failed,) = deployer.find_model_server(service_uuid=service.uuid)
        assert str(service.uuid) in _zenml("list") and str(service.uuid) in _zenml("describe", str(service.uuid))
    assert f"{ENDPOINT}: error (DescribeEndpoint failed: " in listed and "security token is expired" in listed
    assert failed.status.state.value == "error"
    assert (
        "ExpiredTokenException" in failed.status.last_error and "security token is expired" in failed.status.last_error
    )
    (again,) = deployer.find_model_server(service_uuid=service.uuid)  # DescribeEndpoint answers again
    assert again.status.state.value == "active"


@pytest.mark.parametrize(
    ("action", "reason", "service_state"),
    [  # the service's state is DescribeEndpoint's: the endpoint serves when only its config or tags cannot be read
        ("DescribeEndpoint", f"describing endpoint '{ENDPOINT}'", "error"),
        ("DescribeEndpointConfig", f"reading endpoint '{ENDPOINT}'", "active"),
        ("ListTags", f"reading endpoint '{ENDPOINT}'", "active"),
    ],
)
def test_one_endpoint_that_cannot_be_read_is_reported_and_the_others_are_listed(
    deployed, trained_bundle, tmp_path, action, reason, service_state
):
    deployer, _ = deployed
    bundle, _ = trained_bundle
    deployer.deploy_bundle(OTHER_ENDPOINT, MODEL, "1", str(tmp_path / "bundle"), bundle.save(tmp_path / "bundle"))
    with moto_failures.sagemaker_call_failing(action, "injected: the security token is expired", endpoint=ENDPOINT):
        listed = {e["endpoint_name"]: e for e in deployer.list_endpoints()}
        services = {s.config.endpoint_name: s for s in deployer.find_model_server()}  # reconciled from that listing
    assert (listed[OTHER_ENDPOINT]["version"], listed[OTHER_ENDPOINT]["running"]) == ("1", True)
    assert "error" not in listed[OTHER_ENDPOINT]
    failed = listed[ENDPOINT]
    assert (failed["status"], failed["running"], failed["version"]) == ("Unknown", False, "?")
    assert reason in failed["error"] and "security token is expired" in failed["error"]
    assert services[OTHER_ENDPOINT].status.state.value == "active"
    assert services[ENDPOINT].status.state.value == service_state
    assert services[ENDPOINT].config.model_version == "1"  # its record is kept, not dropped as gone


def test_allow_older_does_not_become_a_tag(aws, bucket, active_stack, trained_bundle, tmp_path):
    bundle, _ = trained_bundle
    sha256 = bundle.save(tmp_path / "bundle")
    deployer = active_stack.model_deployer
    deployed = deployer.deploy_bundle(
        ENDPOINT, MODEL, "1", str(tmp_path / "bundle"), sha256, metadata={"allow_older": True}, allow_older=True
    )
    try:
        sm = boto("sagemaker")
        arn = sm.describe_endpoint_config(EndpointConfigName=deployed["endpoint_config_name"])["EndpointConfigArn"]
        keys = {t["Key"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
        assert "churn:endpoint" in keys and not any("allow_older" in k for k in keys)
    finally:
        deployer.delete_endpoint(ENDPOINT)

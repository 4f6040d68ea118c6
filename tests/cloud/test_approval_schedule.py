"""The documented path for approvals made in SageMaker Studio: a scheduled reconcile on the SageMaker stack.

``python run.py reconcile --schedule CRON`` makes, through our schedule machinery (stacks/scheduling.py),
an EventBridge Scheduler schedule that starts a one-step SageMaker pipeline (the reconcile step). What
that step does after a Studio approval is tested in tests/cloud/test_approval_sagemaker.py (the same
``churn.model_registry.reconcile``). Driven like test_cloud_schedule.py (a client process on a ZenML
server it sees as remote; the emulator for AWS).

What the scheduled run does is the reconcile pipeline itself: run here on the SageMaker stack's local
orchestrator after a Studio approval (a raw UpdateModelPackage).
"""

from __future__ import annotations

import json

from tests.cloud.conftest import ACCOUNT, REGION, boto
from tests.cloud.test_approval_sagemaker import (  # noqa: F401 - saved_bundle is a fixture
    GROUP,
    _endpoint_version,
    _package,
    _register,
    saved_bundle,
)
from tests.cloud.test_orchestrator_submission import (  # noqa: F401 - fixtures
    SCHEDULER_ROLE_ARN,
    assert_operator_policy_allows,
    driver,
    remote_stack_config,
    remote_zenml,
    setup_remote_stack,
)

SCHEDULE = "churn-reconcile"


def test_reconcile_on_a_schedule_is_an_eventbridge_schedule_of_the_reconcile_pipeline(aws, bucket, driver, tmp_path):  # noqa: F811
    name = "sm-reconcile-schedule"
    setup = setup_remote_stack(driver, remote_stack_config(name), tmp_path / "stack.yaml")[0]
    assert setup["exit_code"] == 0, setup["output"]

    created = driver.cli(["reconcile", "--schedule", "*/30 * * * *", "--schedule-name", SCHEDULE])
    assert created["exit_code"] == 0, created["output"]
    assert f"schedule '{SCHEDULE}' created on the sagemaker orchestrator (AWS cron: */30 * * * ? *" in created["output"]

    scheduler, sagemaker = boto("scheduler"), boto("sagemaker")
    [listed] = scheduler.list_schedules()["Schedules"]
    assert listed["Name"].startswith("churn-reconcile-")  # ZenML names it after the pipeline run
    schedule = scheduler.get_schedule(Name=listed["Name"], GroupName="default")
    assert schedule["ScheduleExpression"] == "cron(*/30 * * * ? *)" and schedule["State"] == "ENABLED"
    assert schedule["Target"]["RoleArn"] == SCHEDULER_ROLE_ARN
    assert schedule["Target"]["Arn"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{listed['Name']}"
    steps = json.loads(sagemaker.describe_pipeline(PipelineName=listed["Name"])["PipelineDefinition"])["Steps"]
    assert [s["Name"] for s in steps] == ["reconcile_endpoint"]

    deleted = driver.cli(["schedule", "delete", SCHEDULE])
    assert deleted["exit_code"] == 0, deleted["output"]
    assert scheduler.list_schedules()["Schedules"] == [] and sagemaker.list_pipelines()["PipelineSummaries"] == []
    assert {c.operation for c in assert_operator_policy_allows(driver, remote_stack_config(name))} >= {
        "CreatePipeline",
        "CreateSchedule",
    }


def test_the_reconcile_pipeline_serves_a_studio_approval_and_the_zenml_stage_follows(
    aws,
    bucket,
    active_stack,
    saved_bundle,  # noqa: F811
):
    from zenml import log_metadata
    from zenml.client import Client

    from churn.config import load_config
    from churn.model_control import version_metadata
    from pipelines.reconcile import churn_reconcile

    registry = active_stack.model_registry
    v1 = _register(registry, saved_bundle, "Approved", "1")
    v2 = _register(registry, saved_bundle, "PendingManualApproval", "2")
    try:  # v2's ZenML model version, as its training run's register step leaves it
        Client().get_model(GROUP)
    except KeyError:
        Client().create_model(name=GROUP)
    zenml_v2 = Client().create_model_version(model_name_or_id=GROUP).id
    registration = {"version": v2, "approval_status": "PendingManualApproval", "sha256": "a" * 64, "mlflow_run_id": ""}
    log_metadata(
        metadata=version_metadata({}, {"passed": True, "message": "m"}, registration), model_version_id=zenml_v2
    )

    boto("sagemaker").update_model_package(  # the approval, made in SageMaker Studio
        ModelPackageArn=_package(v2)["ModelPackageArn"], ModelApprovalStatus="Approved"
    )
    churn_reconcile.with_options(enable_cache=False)(config=load_config("configs/rf.yaml").model_dump())
    assert _endpoint_version() == v2 != v1
    assert Client().get_model_version(GROUP, zenml_v2).stage == "production"

"""Issue 6 item 3 on the SageMaker stack: `run.py --schedule` makes a ZenML schedule and an
EventBridge Scheduler schedule (AWS cron), `schedule list` shows it, `schedule delete` removes both.

Driven like test_orchestrator_submission.py: a client process connected to a ZenML server it
sees as remote (the SageMaker orchestrator refuses local stores), the emulator for AWS. ZenML
names the EventBridge schedule and the SageMaker pipeline it starts after the orchestrator run
(``churn-rf-training-<32 hex>``), not after our schedule; the link is the ZenML schedule's
``trigger_url`` metadata, which ``stacks.scheduling`` follows.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

from tests.cloud.conftest import ACCOUNT, REGION, ROLE_ARN, boto
from tests.cloud.test_orchestrator_submission import (  # noqa: F401 - fixtures
    SCHEDULER_ROLE_ARN,
    assert_operator_policy_allows,
    driver,
    remote_stack_config,
    remote_zenml,
    setup_remote_stack,
)

SCHEDULE = "churn-weekly"
GENERATED = re.compile(r"^churn-rf-training-[0-9a-f]{32}$")


def test_cloud_schedule_create_list_delete(aws, bucket, driver, tmp_path):  # noqa: F811 - the imported fixture
    name = "sm-remote-schedule"
    setup = setup_remote_stack(driver, remote_stack_config(name), tmp_path / "stack.yaml")[0]
    assert setup["exit_code"] == 0, setup["output"]

    created = driver.cli(["--variant", "rf", "--schedule", "0 3 * * 1", "--schedule-name", SCHEDULE])
    assert created["exit_code"] == 0, created["output"]
    assert (
        f"schedule '{SCHEDULE}' created on the sagemaker orchestrator (AWS cron: 0 3 ? * 2 *, times in UTC;"
        in created["output"]
    )

    # EventBridge Scheduler: the converted cron, starting the SageMaker pipeline ZenML created, as the scheduler role
    scheduler, sagemaker = boto("scheduler"), boto("sagemaker")
    [listed] = scheduler.list_schedules()["Schedules"]
    assert (
        GENERATED.match(listed["Name"])
        and f"EventBridge schedule default/{listed['Name']} in {REGION}" in created["output"]
    )
    schedule = scheduler.get_schedule(Name=listed["Name"], GroupName="default")
    assert schedule["ScheduleExpression"] == "cron(0 3 ? * 2 *)" and schedule["State"] == "ENABLED"
    assert schedule["Target"]["RoleArn"] == SCHEDULER_ROLE_ARN
    assert schedule["Target"]["Arn"] == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/{listed['Name']}"
    described = sagemaker.describe_pipeline(PipelineName=listed["Name"])
    assert described["RoleArn"] == ROLE_ARN and len(json.loads(described["PipelineDefinition"])["Steps"]) == 7
    assert sagemaker.list_pipeline_executions(PipelineName=listed["Name"])["PipelineExecutionSummaries"] == []

    zenml = driver.py(f"""
from zenml.client import Client
s = Client().get_schedule({SCHEDULE!r}, allow_name_prefix_match=False)
result = {{"cron": s.cron_expression, "active": s.active, "trigger_url": s.run_metadata.get("trigger_url")}}
""")
    assert zenml["cron"] == "0 3 ? * 2 *" and zenml["active"]
    assert zenml["trigger_url"].endswith(f"#schedules/default/{listed['Name']}")
    shown = driver.cli(["schedule", "list"])
    assert shown["exit_code"] == 0
    assert f"{SCHEDULE}: '0 3 ? * 2 *' on sagemaker (EventBridge default/{listed['Name']}: ENABLED)" in shown["output"]

    # refused with a clear message, and nothing is created
    refusals = {
        "61 3 * * *": "cron expression '61 3 * * *' is not valid",
        "0 3 * *": "has 4 fields; use the standard 5: minute hour day-of-month month day-of-week",
        "0 3 1 * 1": "restricts both day-of-month and day-of-week; AWS cron allows only one of them",
    }
    for cron, message in refusals.items():
        refused = driver.cli(["--variant", "rf", "--schedule", cron, "--schedule-name", "churn-bad"])
        assert refused["exit_code"] == 1 and message in refused["output"], refused["output"]
        assert "Traceback" not in refused["output"]
    again = driver.cli(["--variant", "rf", "--schedule", "0 4 * * *", "--schedule-name", SCHEDULE])
    assert again["exit_code"] == 1 and f"a schedule named '{SCHEDULE}' already exists" in again["output"]
    assert (
        len(scheduler.list_schedules()["Schedules"]) == 1 and len(sagemaker.list_pipelines()["PipelineSummaries"]) == 1
    )

    deleted = driver.cli(["schedule", "delete", SCHEDULE])
    assert deleted["exit_code"] == 0, deleted["output"]
    assert (
        f"deleted schedule '{SCHEDULE}' and its EventBridge schedule default/{listed['Name']} and the SageMaker "
        f"pipeline {listed['Name']}"
    ) in deleted["output"]
    assert scheduler.list_schedules()["Schedules"] == [] and sagemaker.list_pipelines()["PipelineSummaries"] == []
    assert driver.cli(["schedule", "list"])["output"].strip() == "No schedules."
    missing = driver.cli(["schedule", "delete", SCHEDULE])
    assert missing["exit_code"] == 1 and f"no schedule named '{SCHEDULE}'" in missing["output"]

    # the name is free again (ZenML archives deleted schedules under another name)
    recreated = driver.cli(["--variant", "rf", "--schedule", "30 2 1 * *", "--schedule-name", SCHEDULE])
    assert recreated["exit_code"] == 0 and "(AWS cron: 30 2 1 * ? *, times in UTC;" in recreated["output"], recreated[
        "output"
    ]
    assert driver.cli(["schedule", "delete", SCHEDULE])["exit_code"] == 0
    assert scheduler.list_schedules()["Schedules"] == []
    assert {c.operation for c in assert_operator_policy_allows(driver, remote_stack_config(name))} >= {
        "CreatePipeline",
        "CreateSchedule",
        "DeleteSchedule",
        "DeletePipeline",
    }

    # a SageMaker orchestrator without a scheduler role cannot schedule: said before anything is created
    no_role = setup_remote_stack(
        driver, remote_stack_config(f"{name}-norole", scheduler_role_arn=None), tmp_path / "norole.yaml"
    )[0]
    assert no_role["exit_code"] == 0, no_role["output"]
    refused = driver.cli(["--variant", "rf", "--schedule", "0 3 * * 1", "--schedule-name", SCHEDULE])
    assert refused["exit_code"] == 1 and "set sagemaker_orchestrator.scheduler_role_arn" in refused["output"]
    assert sagemaker.list_pipelines()["PipelineSummaries"] == []


def test_eventbridge_link_and_removal_use_the_operator_role(aws):
    """In process (so the IAM test sees the calls): the link ZenML records, and what delete removes."""
    from stacks.scheduling import _delete_eventbridge_schedule, eventbridge_target

    generated = "churn-rf-training-" + "0123456789abcdef" * 2
    url = f"https://{REGION}.console.aws.amazon.com/scheduler/home?region={REGION}#schedules/default/{generated}"
    assert eventbridge_target(SimpleNamespace(run_metadata={"trigger_url": url})) == (REGION, "default", generated)
    assert eventbridge_target(SimpleNamespace(run_metadata={})) is None

    sagemaker, scheduler = boto("sagemaker"), boto("scheduler")
    arn = sagemaker.create_pipeline(
        PipelineName=generated, RoleArn=ROLE_ARN, PipelineDefinition=json.dumps({"Version": "2020-12-01", "Steps": []})
    )["PipelineArn"]
    scheduler.create_schedule(
        Name=generated,
        ScheduleExpression="cron(0 3 ? * 2 *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": arn, "RoleArn": SCHEDULER_ROLE_ARN},
    )
    assert _delete_eventbridge_schedule(REGION, "default", generated, None) == [
        f"its EventBridge schedule default/{generated}",
        f"the SageMaker pipeline {generated}",
    ]
    assert scheduler.list_schedules()["Schedules"] == [] and sagemaker.list_pipelines()["PipelineSummaries"] == []
    assert _delete_eventbridge_schedule(REGION, "default", generated, None) == []  # already gone: nothing to do

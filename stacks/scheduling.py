"""Scheduled runs on either stack.

- local orchestrator (ZenML has no scheduler there): our local scheduler process
  (``churn.schedules``), started detached on demand; schedules persist as files.
- SageMaker orchestrator: a ZenML ``Schedule`` with the AWS cron form. ZenML creates a
  SageMaker pipeline and an EventBridge Scheduler schedule, both named after the
  orchestrator run (``churn-rf-training-<32 hex>``), not after our schedule, and records
  the schedule only as the ZenML schedule's ``trigger_url`` metadata. ``list`` reads the
  EventBridge schedule back through that link; ``delete`` removes the EventBridge schedule,
  the SageMaker pipeline it starts and the ZenML schedule (ZenML cannot delete SageMaker
  schedules itself). The AWS calls are the operator's (stacks/iam/operator_policy.json).

Length: one entry point per schedule operation for both stacks (local scheduler, EventBridge via
ZenML); a little over 300 lines after formatting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from zenml.client import Client
from zenml.config.global_config import GlobalConfiguration
from zenml.enums import StackComponentType as T

from churn import names
from churn.processes import holder_pid
from churn.schedules import LOCK_FILE, ScheduleError, ScheduleStore, to_aws_cron, validate_cron

REPO = Path(__file__).resolve().parents[1]


def is_local_orchestrator() -> bool:
    return Client().active_stack.orchestrator.flavor == "local"


def local_root() -> Path:
    return Path(GlobalConfiguration().local_stores_path) / "scheduler"


def local_store() -> ScheduleStore:
    return ScheduleStore(local_root() / "schedules")


STOPPED_MARKER = "scheduler.stopped"  # written by `schedule stop`: do not revive until `schedule start`


def local_scheduler_pid() -> int | None:
    """The pid of the live local scheduler (the process holding its lock), or None."""
    return holder_pid(local_root() / LOCK_FILE)


def ensure_local_scheduler() -> int:
    """Start the local scheduler process if it is not running; return its pid."""
    root = local_root()
    (root / STOPPED_MARKER).unlink(missing_ok=True)
    pid = local_scheduler_pid()
    if pid:
        return pid
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(root / "scheduler.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "churn.schedules", "--root", str(root)],
            cwd=str(REPO),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while local_scheduler_pid() != process.pid:  # started once it holds its lock
        if process.poll() is not None or time.monotonic() > deadline:
            raise ScheduleError(f"the local scheduler did not start; see {root / 'scheduler.log'}")
        time.sleep(0.1)
    return process.pid


def stop_local_scheduler(timeout: float = 30.0) -> bool:
    """Stop the local scheduler (signalled by the pid of its lock's live holder); True if one was running.

    It stays stopped (no automatic revival) until ``schedule start`` or a new schedule.
    """
    root = local_root()
    if root.is_dir():
        (root / STOPPED_MARKER).write_text("stopped by `run.py schedule stop`\n")
    pid = local_scheduler_pid()
    if not pid:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while local_scheduler_pid() == pid and time.monotonic() < deadline:
        time.sleep(0.1)
    return True


def revive_local_scheduler() -> str | None:
    """Restart the local scheduler if local schedules exist but it is dead (not stopped on purpose).

    Returns a sentence saying so, or None when nothing was done.
    """
    root = local_root()
    if (root / STOPPED_MARKER).exists() or not local_store().list() or local_scheduler_pid():
        return None
    pid = ensure_local_scheduler()
    return f"The local scheduler was not running though schedules exist: restarted it (pid {pid})."


def local_scheduler_status() -> dict[str, Any]:
    errors: dict[str, str] = {}
    schedules = local_store().list(errors)
    pid = local_scheduler_pid()
    state = "running" if pid else ("stopped" if (local_root() / STOPPED_MARKER).exists() else "not running")
    return {
        "pid": pid,
        "state": state,
        "schedules": schedules,
        "errors": errors,
        "log": str(local_root() / "scheduler.log"),
    }


def create_schedule(name: str, cron: str, run_command: list[str], pipeline: Any, config: dict[str, Any]) -> str:
    """Schedule ``pipeline`` on the active stack; returns a sentence saying what was created."""
    if is_local_orchestrator():
        local_store().add(name, cron, run_command)
        pid = ensure_local_scheduler()
        return (
            f"local schedule '{name}' ({validate_cron(cron)}) created, times in UTC; "
            f"the local scheduler (pid {pid}) runs it"
        )
    from zenml.config.schedule import Schedule

    from stacks.sagemaker.run_options import configure_for_active_stack

    aws = to_aws_cron(cron)
    try:
        names.schedule(name)
    except names.InvalidName as error:
        raise ScheduleError(str(error)) from None
    client = Client()
    orchestrator = client.active_stack.orchestrator
    if not orchestrator.config.is_schedulable:
        raise ScheduleError(
            f"the {orchestrator.flavor} orchestrator of stack '{client.active_stack.name}' cannot schedule runs"
        )
    if orchestrator.flavor == "sagemaker" and not orchestrator.config.scheduler_role:
        raise ScheduleError(
            "the SageMaker orchestrator needs a role for EventBridge Scheduler: set "
            "sagemaker_orchestrator.scheduler_role_arn in the stack config and run `python run.py "
            "stack setup sagemaker --config FILE` again"
        )
    try:
        client.get_schedule(name, allow_name_prefix_match=False)
    except KeyError:
        pass
    else:
        raise ScheduleError(
            f"a schedule named '{name}' already exists; delete it first (python run.py schedule delete {name})"
        )
    configure_for_active_stack(pipeline).with_options(schedule=Schedule(name=name, cron_expression=aws))(config=config)
    target = eventbridge_target(client.get_schedule(name, allow_name_prefix_match=False))
    where = f"; EventBridge schedule {target[1]}/{target[2]} in {target[0]}" if target else ""
    return f"schedule '{name}' created on the {orchestrator.flavor} orchestrator (AWS cron: {aws}, times in UTC{where})"


def eventbridge_target(schedule: Any) -> tuple[str, str, str] | None:
    """(region, group, name) of the EventBridge schedule ZenML made for a ZenML schedule, if it recorded one.

    ZenML's SageMaker orchestrator stores only a console link as the schedule's metadata:
    ``trigger_url = https://<region>.console.aws.amazon.com/scheduler/home?region=<region>#schedules/<group>/<name>``.
    """
    url = (getattr(schedule, "run_metadata", None) or {}).get("trigger_url")
    if not isinstance(url, str) or "#schedules/" not in url:
        return None
    region = urlparse(url).hostname.split(".", 1)[0]
    group, _, name = url.split("#schedules/", 1)[1].partition("/")
    return (region, group, name) if name else (region, "default", group)


def _orchestrator_config(client: Client, schedule: Any) -> dict[str, Any]:
    try:
        return dict(client.get_stack_component(T.ORCHESTRATOR, schedule.orchestrator_id).configuration)
    except (KeyError, TypeError, ValueError):
        return {}


def _cloud_schedules(client: Client) -> list[Any]:
    orchestrator = client.active_stack.orchestrator
    return list(client.list_schedules(orchestrator_id=orchestrator.id, size=1000).items)


def list_schedules() -> list[dict[str, Any]]:
    if is_local_orchestrator():
        running = local_scheduler_pid() is not None
        return [
            {
                "name": s.name,
                "cron": s.cron,
                "last_fire": s.last_fire,
                "last_status": s.last_status,
                "where": f"local scheduler ({'running' if running else 'stopped'})",
            }
            for s in local_store().list()
        ]
    client = Client()
    flavor = client.active_stack.orchestrator.flavor
    entries = []
    for schedule in _cloud_schedules(client):
        entry = {
            "name": schedule.name,
            "cron": schedule.cron_expression,
            "last_fire": None,
            "last_status": None,
            "where": flavor,
            "eventbridge": None,
            "state": None,
            "expression": None,
            "target": None,
        }
        target = eventbridge_target(schedule)
        if target:
            region, group, name = target
            entry["eventbridge"] = f"{group}/{name}"
            found = _get_eventbridge_schedule(
                region, group, name, _orchestrator_config(client, schedule).get("aws_profile")
            )
            if found is None:
                entry["state"] = "MISSING"
            else:
                entry.update(
                    state=found.get("State"),
                    expression=found.get("ScheduleExpression"),
                    target=found.get("Target", {}).get("Arn"),
                )
            entry["where"] = f"{flavor} (EventBridge {entry['eventbridge']}: {entry['state']})"
        entries.append(entry)
    return entries


def delete_schedule(name: str) -> str:
    try:
        names.schedule(name)
    except names.InvalidName as error:
        raise ScheduleError(str(error)) from None
    if is_local_orchestrator():
        if not local_store().delete(name):
            raise ScheduleError(f"no local schedule named '{name}'")
        return f"deleted local schedule '{name}'"
    client = Client()
    try:
        schedule = client.get_schedule(name, allow_name_prefix_match=False)
    except KeyError:
        raise ScheduleError(f"no schedule named '{name}' on the active stack") from None
    target = eventbridge_target(schedule)
    removed = []
    if target:
        region, group, eventbridge_name = target
        removed = _delete_eventbridge_schedule(
            region, group, eventbridge_name, _orchestrator_config(client, schedule).get("aws_profile")
        )
    client.delete_schedule(schedule.id)
    if not target:
        return (
            f"deleted schedule '{name}' from ZenML; ZenML recorded no EventBridge schedule for it: check "
            "`aws scheduler list-schedules --name-prefix churn-` (python run.py cleanup removes ours)"
        )
    return f"deleted schedule '{name}'" + (
        f" and {' and '.join(removed)}"
        if removed
        else f" (its EventBridge schedule {target[1]}/{target[2]} was already gone)"
    )


def _aws_failure(error: BaseException, doing: str) -> ScheduleError:
    from churn.aws.clients import explain

    return ScheduleError(str(explain(error, doing)))


def _get_eventbridge_schedule(region: str, group: str, name: str, profile: str | None) -> dict[str, Any] | None:
    from churn.aws.clients import acting_as, client, error_code

    with acting_as("operator"):
        try:
            return client("scheduler", region, profile).get_schedule(Name=name, GroupName=group)
        except Exception as error:  # noqa: BLE001 - "not found" is an answer; anything else is explained
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise _aws_failure(error, f"reading EventBridge schedule {group}/{name}") from None


def _delete_eventbridge_schedule(region: str, group: str, name: str, profile: str | None) -> list[str]:
    """Delete the EventBridge schedule and the SageMaker pipeline it starts; return what was removed."""
    from churn.aws.clients import acting_as, client, error_code

    found = _get_eventbridge_schedule(region, group, name, profile)
    if found is None:
        return []
    removed = []
    with acting_as("operator"):
        try:
            client("scheduler", region, profile).delete_schedule(Name=name, GroupName=group)
            removed.append(f"its EventBridge schedule {group}/{name}")
        except Exception as error:  # noqa: BLE001
            if error_code(error) != "ResourceNotFoundException":
                raise _aws_failure(error, f"deleting EventBridge schedule {group}/{name}") from None
        arn = found.get("Target", {}).get("Arn", "")
        if ":pipeline/" in arn:
            pipeline = arn.split(":pipeline/", 1)[1]
            try:
                client("sagemaker", region, profile).delete_pipeline(PipelineName=pipeline)
                removed.append(f"the SageMaker pipeline {pipeline}")
            except Exception as error:  # noqa: BLE001
                if error_code(error) not in ("ResourceNotFound", "ResourceNotFoundException"):
                    raise _aws_failure(error, f"deleting SageMaker pipeline {pipeline}") from None
    return removed

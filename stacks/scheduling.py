"""Scheduled runs on either stack.

- local orchestrator (ZenML has no scheduler there): our local scheduler process
  (``churn.schedules``), started detached on demand; schedules persist as files.
- SageMaker orchestrator: a ZenML ``Schedule`` with the AWS cron form (EventBridge
  Scheduler); listing and deleting also remove the EventBridge schedule, which ZenML
  cannot do itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from zenml.client import Client
from zenml.config.global_config import GlobalConfiguration

from churn.processes import pid_alive
from churn.schedules import ScheduleError, ScheduleStore, to_aws_cron, validate_cron

REPO = Path(__file__).resolve().parents[1]


def is_local_orchestrator() -> bool:
    return Client().active_stack.orchestrator.flavor == "local"


def local_root() -> Path:
    return Path(GlobalConfiguration().local_stores_path) / "scheduler"


def local_store() -> ScheduleStore:
    return ScheduleStore(local_root() / "schedules")


def local_scheduler_pid() -> int | None:
    try:
        pid = int((local_root() / "scheduler.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def ensure_local_scheduler() -> int:
    """Start the local scheduler process if it is not running; return its pid."""
    pid = local_scheduler_pid()
    if pid:
        return pid
    root = local_root()
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(root / "scheduler.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "churn.schedules", "--root", str(root)], cwd=str(REPO), env=env,
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while local_scheduler_pid() != process.pid:  # started once it holds the lock and wrote its pid
        if process.poll() is not None or time.monotonic() > deadline:
            raise ScheduleError(f"the local scheduler did not start; see {root / 'scheduler.log'}")
        time.sleep(0.1)
    return process.pid


def stop_local_scheduler() -> bool:
    pid = local_scheduler_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        return True
    return False


def create_schedule(name: str, cron: str, run_command: List[str], pipeline: Any, config: Dict[str, Any]) -> str:
    """Schedule ``pipeline`` on the active stack; returns a sentence saying what was created."""
    if is_local_orchestrator():
        local_store().add(name, cron, run_command)
        pid = ensure_local_scheduler()
        return f"local schedule '{name}' ({validate_cron(cron)}) created; the local scheduler (pid {pid}) runs it"
    from zenml.config.schedule import Schedule

    aws = to_aws_cron(cron)
    pipeline.with_options(schedule=Schedule(name=name, cron_expression=aws))(config=config)
    return f"schedule '{name}' created on the {Client().active_stack.orchestrator.flavor} orchestrator (AWS cron: {aws})"


def list_schedules() -> List[Dict[str, Any]]:
    if is_local_orchestrator():
        running = local_scheduler_pid() is not None
        return [{"name": s.name, "cron": s.cron, "last_fire": s.last_fire, "last_status": s.last_status,
                 "where": f"local scheduler ({'running' if running else 'stopped'})"} for s in local_store().list()]
    return [{"name": s.name, "cron": s.cron_expression, "last_fire": None, "last_status": None,
             "where": Client().active_stack.orchestrator.flavor} for s in Client().list_schedules(size=1000).items]


def delete_schedule(name: str) -> str:
    if is_local_orchestrator():
        if not local_store().delete(name):
            raise ScheduleError(f"no local schedule named '{name}'")
        return f"deleted local schedule '{name}'"
    client = Client()
    try:
        schedule = client.get_schedule(name)
    except KeyError:
        raise ScheduleError(f"no schedule named '{name}' on the active stack") from None
    removed = _delete_eventbridge_schedule(name)
    client.delete_schedule(schedule.id)
    return f"deleted schedule '{name}'" + (" and its EventBridge schedule" if removed else "")


def _delete_eventbridge_schedule(name: str) -> bool:
    import boto3
    from botocore.exceptions import ClientError

    try:
        boto3.client("scheduler").delete_schedule(Name=name)
        return True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        raise

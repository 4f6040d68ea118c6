"""``python run.py schedule ...`` and ``--schedule CRON``: scheduled training runs on the active stack (UTC)."""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import click

from cli.common import HERE, fail, training_pipeline


def create_training_schedule(variant: str, config_path: str | None, config: Any, cron: str, name: str) -> None:
    """``python run.py --variant V --schedule CRON``: run the training command on a cron schedule.

    Args:
        variant: ``rf`` or ``automl``.
        config_path: the ``--config`` file (None: the variant's default).
        config: the loaded pipeline config.
        cron: standard 5-field cron (UTC).
        name: the schedule's name.
    """
    from churn.schedules import ScheduleError
    from stacks.scheduling import create_schedule

    command = [sys.executable, str(HERE / "run.py"), "--variant", variant]
    if config_path:
        command += ["--config", str(Path(config_path).resolve())]
    try:
        click.echo(create_schedule(name, cron, command, training_pipeline(variant), config.model_dump()))
    except ScheduleError as error:
        fail(str(error))


def revive_scheduler() -> None:
    """Any command restarts a local scheduler that died while schedules exist, and says so."""
    try:
        from stacks.scheduling import revive_local_scheduler

        message = revive_local_scheduler()
    except Exception as error:  # noqa: BLE001 - never let this stop the command the user asked for
        click.echo(f"warning: could not check or restart the local scheduler: {error}", err=True)
        return
    if message:
        click.echo(message, err=True)


@click.group(help="Scheduled runs on the active stack.")
def schedule() -> None:
    pass


@schedule.command("list", help="List the active stack's schedules.")
def schedule_list() -> None:
    from stacks.scheduling import list_schedules

    entries = list_schedules()
    if not entries:
        click.echo("No schedules.")
        return
    click.echo("(cron and last-run times are UTC)")
    for entry in entries:
        last = f", last run {entry['last_fire']} ({entry['last_status']})" if entry["last_fire"] else ""
        click.echo(f"{entry['name']}: '{entry['cron']}' on {entry['where']}{last}")


@schedule.command("status", help="Whether the local scheduler is running, and each local schedule's next run (UTC).")
def schedule_status() -> None:
    from datetime import datetime

    from stacks.scheduling import local_scheduler_status

    status = local_scheduler_status()
    running = f" (pid {status['pid']})" if status["pid"] else ""
    click.echo(
        f"Local scheduler: {status['state']}{running}; {len(status['schedules'])} schedule(s); log {status['log']}"
    )
    now = datetime.now(UTC)
    for entry in status["schedules"]:
        last = f", last run {entry.last_fire} ({entry.last_status})" if entry.last_fire else ""
        click.echo(
            f"  {entry.name}: '{entry.cron}' UTC, next {entry.next_fire(now).strftime('%Y-%m-%d %H:%M')} UTC{last}"
        )
    for file_name, message in status["errors"].items():
        click.echo(f"  {file_name}: {message}")


@schedule.command("start", help="Start the local scheduler (runs the local schedules; cron times are UTC).")
def schedule_start() -> None:
    from churn.schedules import ScheduleError
    from stacks.scheduling import ensure_local_scheduler, local_scheduler_pid

    was = local_scheduler_pid()
    try:
        pid = ensure_local_scheduler()
    except ScheduleError as error:
        fail(str(error))
    click.echo(f"Local scheduler {'already running' if was else 'started'} (pid {pid}); cron times are UTC")


@schedule.command("stop", help="Stop the local scheduler; it stays stopped until `schedule start`.")
def schedule_stop() -> None:
    from stacks.scheduling import stop_local_scheduler

    click.echo("Stopped the local scheduler." if stop_local_scheduler() else "The local scheduler was not running.")


@schedule.command("delete", help="Delete a schedule (on SageMaker also its EventBridge schedule).")
@click.argument("name")
def schedule_delete(name: str) -> None:
    from churn.schedules import ScheduleError
    from stacks.scheduling import delete_schedule

    try:
        click.echo(delete_schedule(name))
    except ScheduleError as error:
        fail(str(error))

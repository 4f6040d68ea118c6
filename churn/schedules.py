"""Cron schedules: validation, the AWS form, and the local scheduler (no ZenML here).

Policies of the local scheduler (ZenML's local orchestrator has none):
- schedules are JSON files under a root directory, so they survive restarts;
- a run never overlaps the previous run of the same schedule: a fire time that comes
  while the previous run is still going is skipped (and logged);
- missed runs (the scheduler was down): on start, fire times missed since the last run are
  coalesced into ONE catch-up run, then the schedule continues normally;
- cron times are UTC;
- one bad schedule (an unreadable file, a command that cannot start) is reported and
  skipped; the others keep running, and so does the scheduler;
- liveness: the scheduler holds ``scheduler.lock`` (churn.processes) while it lives.

Length: validation, the AWS form and the local scheduler of one schedule format; a little over 300
lines after formatting.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from churn import names
from churn.files import atomic_write_json

NAME = re.compile(r"^" + names.SCHEDULE.pattern + r"$")  # kept for callers; the rule lives in churn.names
LOCK_FILE = "scheduler.lock"
_DOW_NAMES = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}


class ScheduleError(ValueError):
    """A cron expression or schedule that cannot be used; the message says why."""


def validate_cron(expression: str) -> str:
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week)."""
    from croniter import croniter

    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"cron expression {expression!r} has {len(fields)} fields; use the standard 5: "
            "minute hour day-of-month month day-of-week, e.g. '0 3 * * *' for 03:00 every day"
        )
    if not croniter.is_valid(expression):
        raise ScheduleError(f"cron expression {expression!r} is not valid (e.g. '0 3 * * 1' = Mondays 03:00)")
    return " ".join(fields)


def _aws_day_of_week(field_value: str) -> str:
    """Standard cron days 0-7 (0 and 7 = Sunday) -> AWS 1-7 (1 = Sunday); names pass through."""

    def convert(token: str) -> str:
        if token.upper() in _DOW_NAMES or token in ("*", "?", "L"):
            return token
        if not token.isdigit() or int(token) > 7:
            raise ScheduleError(f"day-of-week value {token!r} cannot be converted to AWS cron")
        return str(int(token) % 7 + 1)

    parts = []
    for item in field_value.split(","):
        base, _, step = item.partition("/")
        suffix = f"/{step}" if step else ""
        if "-" in base:
            start, end = base.split("-", 1)
            if end == "7":  # "... through Sunday": AWS numbers Sunday 1, so the range wraps
                parts += [f"{convert(start)}-7{suffix}", "1"]
                continue
            base = f"{convert(start)}-{convert(end)}"
        else:
            base = convert(base)
        parts.append(base + suffix)
    return ",".join(dict.fromkeys(parts))


def to_aws_cron(expression: str) -> str:
    """The 6-field form EventBridge Scheduler wants: ``cron(m h dom mon dow year)`` body.

    AWS needs '?' in one of day-of-month / day-of-week; both restricted cannot be expressed.
    """
    minute, hour, dom, month, dow = validate_cron(expression).split()
    if dow == "*":
        dow = "?"
    elif dom == "*":
        dom, dow = "?", _aws_day_of_week(dow)
    else:
        raise ScheduleError(
            f"cron expression {expression!r} restricts both day-of-month and day-of-week; "
            "AWS cron allows only one of them (put * in the other)"
        )
    return f"{minute} {hour} {dom} {month} {dow} *"


@dataclass
class Schedule:
    name: str
    cron: str
    command: list[str]
    created_at: str
    last_fire: str | None = None
    last_status: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)

    def next_fire(self, after: datetime) -> datetime:
        from croniter import croniter

        return croniter(self.cron, after).get_next(datetime)


def _read_schedule(path: Path) -> Schedule:
    try:
        schedule = Schedule(**json.loads(path.read_text()))
        validate_cron(schedule.cron)
        if schedule.name != path.stem or not isinstance(schedule.command, list) or not schedule.command:
            raise ValueError("its name must match the file name and its command must be a non-empty list")
        _utc(schedule.last_fire or schedule.created_at)
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise ScheduleError(f"schedule file {path} cannot be used: {type(error).__name__}: {error}") from None
    return schedule


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class ScheduleStore:
    """Schedules as JSON files in ``root`` (written atomically)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        try:
            return self.root / f"{names.schedule(name)}.json"
        except names.InvalidName as error:
            raise ScheduleError(str(error)) from None

    def add(self, name: str, cron: str, command: builtins.list[str], now: datetime | None = None) -> Schedule:
        if self._path(name).exists():
            raise ScheduleError(f"a schedule named '{name}' already exists; delete it first")
        now = now or datetime.now(UTC)
        schedule = Schedule(name=name, cron=validate_cron(cron), command=command, created_at=now.isoformat())
        self.save(schedule)
        return schedule

    def save(self, schedule: Schedule) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self._path(schedule.name), asdict(schedule))

    def list(self, errors: dict[str, str] | None = None) -> builtins.list[Schedule]:
        """The readable schedules; an unreadable file is skipped (and named in ``errors``, when given)."""
        if not self.root.is_dir():
            return []
        schedules = []
        for path in sorted(self.root.glob("*.json")):
            try:
                schedules.append(_read_schedule(path))
            except ScheduleError as error:
                if errors is not None:
                    errors[path.name] = str(error)
        return schedules

    def get(self, name: str) -> Schedule | None:
        path = self._path(name)
        return _read_schedule(path) if path.is_file() else None

    def delete(self, name: str) -> bool:
        try:
            self._path(name).unlink()
            return True
        except FileNotFoundError:
            return False


class LocalScheduler:
    """Fires due schedules; one running process per schedule at most.

    ``launch(schedule) -> Popen-like`` starts a run; tests pass a fake one.
    """

    def __init__(
        self, store: ScheduleStore, launch: Callable[[Schedule], subprocess.Popen], log: Callable[[str], None] = print
    ):
        self.store, self.launch, self.log = store, launch, log
        self.running: dict[str, subprocess.Popen] = {}
        self.reported: dict[str, str] = {}

    def due(self, schedule: Schedule, now: datetime) -> bool:
        since = _utc(schedule.last_fire or schedule.created_at)
        return schedule.next_fire(since) <= now

    def tick(self, now: datetime | None = None) -> list[str]:
        """Start every due schedule that is not still running; return the names started."""
        now = now or datetime.now(UTC)
        started = []
        for name, process in list(self.running.items()):
            if process.poll() is not None:
                del self.running[name]
                try:
                    schedule = self.store.get(name)
                    if schedule is not None:
                        schedule.last_status = (
                            "succeeded" if process.returncode == 0 else f"failed (exit {process.returncode})"
                        )
                        schedule.history = (
                            schedule.history + [{"finished": now.isoformat(), "status": schedule.last_status}]
                        )[-20:]
                        self.store.save(schedule)
                except (ScheduleError, OSError) as error:
                    self.log(
                        f"schedule {name}: run finished (exit {process.returncode}) "
                        f"but its status was not saved: {error}"
                    )
        errors: dict[str, str] = {}
        for schedule in self.store.list(errors):
            try:
                if self._fire(schedule, now):
                    started.append(schedule.name)
            except Exception as error:  # noqa: BLE001 - one bad schedule must not stop the others
                self._report(schedule.name, f"schedule {schedule.name}: not run: {type(error).__name__}: {error}")
                try:
                    schedule.last_fire, schedule.last_status = now.isoformat(), f"failed to start: {error}"[:500]
                    self.store.save(schedule)
                except (ScheduleError, OSError):
                    pass
        for file_name, message in errors.items():
            self._report(file_name, message)
        return started

    def _report(self, key: str, message: str) -> None:
        """Log a failure once per distinct message (a bad file is not re-reported every tick)."""
        if self.reported.get(key) != message:
            self.reported[key] = message
            self.log(message)

    def _fire(self, schedule: Schedule, now: datetime) -> bool:
        if not self.due(schedule, now):
            return False
        if schedule.name in self.running:
            self.log(f"schedule {schedule.name}: fire time reached while the previous run is still going; skipped")
            schedule.last_fire = now.isoformat()  # the skipped fire is consumed, not queued
            self.store.save(schedule)
            return False
        missed = (
            schedule.last_fire is not None and schedule.next_fire(schedule.next_fire(_utc(schedule.last_fire))) <= now
        )
        self.log(f"schedule {schedule.name}: starting run" + (" (catch-up for missed fire times)" if missed else ""))
        self.running[schedule.name] = self.launch(schedule)
        schedule.last_fire, schedule.last_status = now.isoformat(), "running"
        self.store.save(schedule)
        return True

    def serve(self, poll_seconds: float = 5.0, stop: Callable[[], bool] = lambda: False) -> None:
        while not stop():
            try:
                self.tick()
            except Exception as error:  # noqa: BLE001 - the scheduler outlives any one failure
                self._report("(tick)", f"scheduler tick failed, retrying: {type(error).__name__}: {error}")
            time.sleep(poll_seconds)


def _daemon_main() -> None:
    """``python -m churn.schedules --root DIR``: the local scheduler process (one per root)."""
    import argparse
    import signal
    import sys

    from churn.processes import hold_lock

    parser = argparse.ArgumentParser(description="churn-mlops local scheduler")
    parser.add_argument("--root", required=True)
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if hold_lock(root / LOCK_FILE) is None:
        sys.exit(f"a scheduler is already running for {root}")
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    def launch(schedule: Schedule) -> subprocess.Popen:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        with open(logs / f"{schedule.name}-{stamp}.log", "ab") as out:
            return subprocess.Popen(schedule.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log(message: str) -> None:
        print(f"{datetime.now(UTC).isoformat()} {message}", flush=True)

    log(f"scheduler started for {root} (cron times are UTC)")
    LocalScheduler(ScheduleStore(root / "schedules"), launch, log).serve(args.poll_seconds, stop=lambda: bool(stopping))
    log("scheduler stopped")


if __name__ == "__main__":
    _daemon_main()

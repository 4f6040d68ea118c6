"""``python run.py approve | reject | promote GROUP VERSION`` and ``python run.py reconcile``: the approval workflow.

Each command changes the registry (``churn.model_registry``: MLflow's approval tag and alias locally,
ModelApprovalStatus on SageMaker), then follows through: the group's endpoint is made to serve the
model to serve (``churn.model_registry.model_to_serve``) through the active stack's model deployer,
the same ``deploy_bundle`` call the deploy step makes. ``--no-deploy`` changes the registry only;
``python run.py reconcile`` deploys later (also what a schedule runs: approvals made in SageMaker
Studio reach the endpoint at the next scheduled reconcile).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cli.common import CONFIGS, HERE, fail, load_config, stack_component


def _config_for(group: str) -> Any | None:
    """The pipeline config (rf, automl) whose ``model_package_group`` is ``group``, or None."""
    for variant in CONFIGS:
        config = load_config(variant, None)
        if config.model_package_group == group:
            return config
    return None


def _target(group: str, endpoint: str | None, deploy: bool = True, config: Any = None) -> tuple[str | None, Any]:
    """(endpoint name, deploy settings) for ``group``: ``--endpoint`` or the pipeline config that names the group.

    ``config`` is the pipeline config the command was given (``reconcile --config FILE``): its deploy keys
    are used; None: the config (rf, automl) whose ``model_package_group`` is ``group``.
    Checked before the registry is changed, so a command that could not deploy changes nothing.
    Without ``deploy`` an unknown endpoint is None rather than an error.
    """
    from churn.config import DeploySettings, deploy_settings

    config = config if config is not None else _config_for(group)
    if endpoint is None and config is None and not deploy:
        return None, DeploySettings()
    if endpoint is None and config is None:
        fail(
            f"no pipeline config (configs/rf.yaml, configs/automl.yaml) has model_package_group {group!r}; "
            "pass --endpoint NAME (or --no-deploy)"
        )
    settings = DeploySettings(**deploy_settings(config.model_dump())) if config is not None else DeploySettings()
    return endpoint or config.endpoint_name, settings


def follow_through(
    group: str, target: tuple[str | None, Any], deploy: bool, changed: tuple[str, str] | None = None
) -> dict[str, Any] | None:
    """Make the group's endpoint serve its model to serve and say what happened.

    Args:
        group: the registered model / model package group.
        target: its endpoint and deploy settings (:func:`_target`; endpoint None: unknown, only with ``deploy`` False).
        deploy: False: report only (``--no-deploy``).
        changed: (version, approval status) the command just set, for the ZenML model version's stage.

    Returns:
        ``churn.model_registry.reconcile``'s outcome (None when the endpoint is unknown).
    """
    from churn.bundle import BundleError
    from churn.model_control import follow_reconcile
    from churn.model_registry import model_to_serve, reconcile
    from stacks.contracts import DeploymentError

    registry, deployer = stack_component("model_registry"), stack_component("model_deployer")
    name, settings = target
    if name is None:
        chosen = model_to_serve(registry, group)
        click.echo(f"Not deployed (--no-deploy): the model to serve is {group} v{getattr(chosen, 'version', None)}.")
        follow_reconcile(registry, group, None, changed)
        return None
    try:
        outcome = reconcile(registry, deployer, group, name, settings, deploy=deploy)
    except (DeploymentError, BundleError) as error:
        fail(
            f"{error}. The registry change stands; endpoint {name} keeps serving what it served. "
            f"Retry with `python run.py reconcile --group {group} --endpoint {name}`"
        )
    to_serve, before, action = outcome["to_serve"], outcome["served_before"], outcome["action"]
    if action == "nothing to serve":
        still = f"still serves {group} v{before}" if before else "serves nothing of it"
        click.echo(
            f"{group} has no Approved version to serve: endpoint {name} {still}. Approve or promote a version, "
            f"or remove the endpoint with `python run.py cleanup`."
        )
    elif action == "unchanged":
        click.echo(f"Endpoint {name} already serves {group} v{to_serve}, the model to serve.")
    elif action == "not deployed":
        click.echo(
            f"Not deployed (--no-deploy): the model to serve is {group} v{to_serve}; endpoint {name} "
            + (f"serves v{before}." if before else "serves nothing of it.")
            + f" Deploy it with `python run.py reconcile --group {group} --endpoint {name}`."
        )
    else:
        url = (outcome.get("endpoint") or {}).get("url")
        was = f" (was v{before})" if before else ""
        click.echo(f"Endpoint {name} serves {group} v{to_serve}{was} at {url}")
    follow_reconcile(registry, group, outcome, changed)
    return outcome


def _change(group: str, version: str, status: str, reason: str) -> None:
    from churn.model_registry import ApprovalError, set_approval

    try:
        set_approval(stack_component("model_registry"), group, version, status, reason)
    except ApprovalError as error:
        fail(str(error))
    click.echo(f"{group} version {version} is {status}.")


_endpoint = click.option("--endpoint", default=None, help="The group's endpoint (default: the config's endpoint_name).")
_no_deploy = click.option("--no-deploy", is_flag=True, help="Change the registry only; deploy nothing.")
_reason = click.option("--reason", default="", help="Why (SageMaker: the ApprovalDescription).")


def _approval_command(name: str, status: str, doc: str) -> click.Command:
    """``run.py approve`` / ``run.py reject``: set ``status`` on VERSION of GROUP, then follow through."""

    def command(group: str, version: str, endpoint: str | None, no_deploy: bool, reason: str) -> None:
        target = _target(group, endpoint, deploy=not no_deploy)
        _change(group, version, status, reason)
        follow_through(group, target, deploy=not no_deploy, changed=(version, status))

    command.__doc__ = doc
    for option in (_reason, _no_deploy, _endpoint, click.argument("version"), click.argument("group")):
        command = option(command)
    return click.command(name)(command)


approve = _approval_command(
    "approve",
    "Approved",
    "Approve VERSION of GROUP, then deploy the model to serve (the newest Approved, unless a promotion pins one).",
)
reject = _approval_command(
    "reject",
    "Rejected",
    "Reject VERSION of GROUP; if it was served, the next model to serve is deployed (or none is, and it says so).",
)


@click.command()
@click.argument("group")
@click.argument("version")
@_endpoint
@_no_deploy
def promote(group: str, version: str, endpoint: str | None, no_deploy: bool) -> None:
    """Make VERSION of GROUP the model to serve, also when older (a rollback); a pending version is approved.

    It stays served until a version registered after the promotion is approved.
    """
    from churn.model_registry import ApprovalError
    from churn.model_registry import promote as promote_version

    target = _target(group, endpoint, deploy=not no_deploy)
    try:
        promote_version(stack_component("model_registry"), group, version)
    except ApprovalError as error:
        fail(str(error))
    click.echo(f"{group} version {version} is promoted: it is the model to serve.")
    follow_through(group, target, deploy=not no_deploy, changed=(version, "Approved"))


@click.command()
@click.option("--variant", type=click.Choice(sorted(CONFIGS)), default="rf", show_default=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Pipeline config YAML.")
@click.option("--group", default=None, help="The model package group (default: the config's).")
@_endpoint
@click.option("--schedule", "cron", default=None, help="Reconcile on a cron schedule instead (UTC, 5 fields).")
@click.option("--schedule-name", default=None, help="The schedule's name (default: <variant>-reconcile).")
def reconcile(
    variant: str,
    config_path: str | None,
    group: str | None,
    endpoint: str | None,
    cron: str | None,
    schedule_name: str | None,
) -> None:
    """Deploy the model to serve when the endpoint serves something else (idempotent).

    On a schedule it makes approvals made outside this CLI (SageMaker Studio) reach the endpoint.
    """
    config = load_config(variant, config_path)
    if cron is None:
        group = group or config.model_package_group
        follow_through(group, _target(group, endpoint or config.endpoint_name, config=config), deploy=True)
        return
    from churn.schedules import ScheduleError
    from pipelines.reconcile import churn_reconcile
    from stacks.scheduling import create_schedule

    command = [sys.executable, str(HERE / "run.py"), "reconcile", "--variant", variant]
    if config_path:
        command += ["--config", str(Path(config_path).resolve())]
    settings = {**config.model_dump()}
    settings.update({k: v for k, v in {"model_package_group": group, "endpoint_name": endpoint}.items() if v})
    command += [a for k, v in (("--group", group), ("--endpoint", endpoint)) if v for a in (k, v)]
    try:
        click.echo(create_schedule(schedule_name or f"{variant}-reconcile", cron, command, churn_reconcile, settings))
    except ScheduleError as error:
        fail(str(error))

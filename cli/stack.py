"""``python run.py stack ...`` (setup, cleanup from a stack config, IAM policies) and ``python run.py cleanup``."""

from __future__ import annotations

import json

import click

from cli.common import fail, load_config, stack_component


def _stack_config(command):
    """``--config FILE`` (required): the SageMaker stack config a command reads."""
    return click.option(
        "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The SageMaker stack config."
    )(command)


def _cleanup_flags(command):
    """``--include-registry``, ``--include-s3`` and ``--yes``, as both cleanup commands take them."""
    for option in (
        click.option("--yes", is_flag=True, help="Do not ask for confirmation."),
        click.option(
            "--include-s3", is_flag=True, help="SageMaker: also delete everything under s3://<bucket>/<prefix>/."
        ),
        click.option(
            "--include-registry", is_flag=True, help="SageMaker: also delete the model packages and their group."
        ),
    ):
        command = option(command)
    return command


@click.group(help="Stack recipes.")
def stack() -> None:
    pass


@stack.command("setup", help="Register our flavors, components and the stack (idempotent), and activate it.")
@click.argument("name", type=click.Choice(["local", "sagemaker"]))
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="sagemaker: the stack config (start from configs/sagemaker_stack.example.yaml).",
)
def stack_setup(name: str, config_path: str | None) -> None:
    if name == "sagemaker":
        from churn.config import ConfigError
        from stacks.sagemaker.recipe import setup_sagemaker_stack

        if not config_path:
            fail("`stack setup sagemaker` needs --config FILE (start from configs/sagemaker_stack.example.yaml)")
        try:
            changes = setup_sagemaker_stack(config_path, activate=True)
        except ConfigError as error:
            fail(str(error))
        from zenml.client import Client

        active = Client().active_stack_model.name
        click.echo(
            f"Stack '{active}' is active"
            + (f"; {', '.join(f'{k} {v}' for k, v in changes.items())}" if changes else " (nothing changed)")
        )
        return
    from stacks.local import setup_local_stack

    created = setup_local_stack(activate=True)
    click.echo(
        f"Stack '{name}' is active"
        + (f"; registered: {', '.join(created)}" if created else " (nothing new to register)")
    )


@stack.command(
    "cleanup",
    help="SageMaker, from its stack config (no registered stack needed): remove the endpoints, "
    "endpoint configs, models, schedules (and with flags the registry groups / S3 prefix).",
)
@_stack_config
@_cleanup_flags
def stack_cleanup(config_path: str, include_registry: bool, include_s3: bool, yes: bool) -> None:
    from churn.aws.clients import AwsError
    from churn.config import ConfigError
    from churn.deployment_error import DeploymentError
    from stacks.sagemaker.cleanup import cleanup_settings, run_cleanup
    from stacks.sagemaker.config import stack_settings

    try:
        run_cleanup(cleanup_settings(stack_settings(config_path), include_registry, include_s3), yes, echo=click.echo)
    except (AwsError, ConfigError, DeploymentError) as error:
        fail(str(error))


@stack.command(
    "iam",
    help="SageMaker: print the execution role's policy (or --role operator / trust / scheduler / "
    "scheduler-trust) with the stack config's values filled in.",
)
@_stack_config
@click.option(
    "--role",
    type=click.Choice(["execution", "operator", "trust", "scheduler", "scheduler-trust"]),
    default="execution",
    show_default=True,
)
def stack_iam(config_path: str, role: str) -> None:
    from churn.aws.iam import policy_values, render_policy
    from churn.config import ConfigError
    from stacks.sagemaker.config import load_recipe

    names = {
        "execution": "execution_role_policy",
        "operator": "operator_policy",
        "trust": "trust_policy",
        "scheduler": "scheduler_role_policy",
        "scheduler-trust": "scheduler_trust_policy",
    }
    try:
        settings, remote = load_recipe(config_path)
    except ConfigError as error:
        fail(str(error))
    scheduler_role = remote.scheduler_role_arn if remote else None
    values = policy_values({**settings.model_dump(), "scheduler_role_arn": scheduler_role})
    click.echo(json.dumps(render_policy(names[role], values), indent=2))


@click.command(
    help="Remove the active stack's endpoints. SageMaker: also endpoint configs, models and schedules; "
    "--include-registry / --include-s3 remove the registry group and the S3 prefix too."
)
@_cleanup_flags
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Pipeline config whose endpoint and group to remove (default: rf's and automl's).",
)
def cleanup(yes: bool, include_registry: bool, include_s3: bool, config_path: str | None) -> None:
    from stacks.contracts import CleanupRequest, DeploymentError

    deployer = stack_component("model_deployer")
    # both variants' endpoints and groups, or only the one --config names
    rf, automl = (load_config("rf", config_path), load_config("automl", config_path))
    request = CleanupRequest(
        endpoint_names=[rf.endpoint_name, automl.endpoint_name],
        model_package_groups=[rf.model_package_group, automl.model_package_group],
        include_registry=include_registry,
        include_s3=include_s3,
        yes=yes,
    )
    try:
        deployer.cleanup(request, echo=click.echo, confirm=click.confirm)
    except DeploymentError as error:
        fail(str(error))

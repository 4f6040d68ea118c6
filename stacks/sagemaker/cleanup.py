"""Cleanup on the SageMaker stack: plan, confirm, remove (what is removed, and how, is ``churn.aws.cleanup``).

``python run.py cleanup`` reaches it through the stack's model deployer (its ``cleanup``), and
``python run.py stack cleanup --config FILE`` from a stack config, without a registered stack.
"""

from __future__ import annotations

from collections.abc import Callable

from churn.aws.cleanup import CleanupSettings
from churn.aws.settings import SageMakerStackSettings


def cleanup_settings(
    settings: SageMakerStackSettings, include_registry: bool = False, include_s3: bool = False
) -> CleanupSettings:
    """What cleanup removes for a stack config: both variants' endpoints (with ``include_registry`` their groups).

    Args:
        settings: the stack's settings (its endpoint and model package group names included).
        include_registry: also delete the model packages and their groups.
        include_s3: also delete everything under ``s3://<bucket>/<prefix>/``.

    Returns:
        The settings ``churn.aws.cleanup`` plans and removes with.
    """
    return CleanupSettings(
        region=settings.region,
        bucket=settings.bucket,
        prefix=settings.prefix,
        endpoint_names=list(dict.fromkeys([settings.endpoint_name, settings.automl_endpoint_name])),
        model_package_groups=list(dict.fromkeys([settings.model_package_group, settings.automl_model_package_group])),
        include_registry=include_registry,
        include_s3=include_s3,
        profile=settings.aws_profile,
    )


def run_cleanup(
    cleanup_config: CleanupSettings,
    yes: bool,
    echo: Callable[[str], None] = print,
    confirm: Callable[[str], bool] | None = None,
) -> list[str]:
    """Plan, confirm (unless ``yes``), remove, telling the user each step.

    Args:
        cleanup_config: what to remove.
        yes: do not ask first.
        echo: prints one line to the user.
        confirm: asks a yes/no question (default: ``click.confirm``).

    Returns:
        What was removed (empty when nothing was planned or the user declined).

    Raises:
        churn.aws.clients.AwsError: AWS refused a call; what was removed before it stays removed.
    """
    from churn.aws.cleanup import cleanup, plan_cleanup

    include_registry, include_s3 = cleanup_config.include_registry, cleanup_config.include_s3
    planned = plan_cleanup(cleanup_config)
    if not planned:
        echo("Nothing to remove.")
        return []
    echo("Will remove:\n  " + "\n  ".join(str(r) for r in planned))
    if not include_registry or not include_s3:
        bucket_prefix = f"s3://{cleanup_config.bucket}/{cleanup_config.prefix}/"
        kept = (
            ("the model registry groups (--include-registry)", include_registry),
            (f"{bucket_prefix} (--include-s3)", include_s3),
        )
        echo("(kept: " + ", ".join(what for what, flag in kept if not flag) + ")")
    if not yes and not (confirm or _confirm)("Remove these?"):
        echo("Nothing removed.")
        return []
    removed = cleanup(cleanup_config, planned, progress=lambda line: echo(line))
    echo(f"Removed {len(removed)} item(s).")
    if any(" S3 objects under " in line for line in removed):
        echo("The artifacts ZenML's cache points to are gone: run the next training with --no-cache.")
    return removed


def _confirm(question: str) -> bool:
    import click

    return click.confirm(question)

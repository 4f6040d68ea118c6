"""What every command needs: the one-line failure, the pipeline configs, the active stack's components."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import click

HERE = Path(__file__).resolve().parents[1]
CONFIGS = {"rf": HERE / "configs" / "rf.yaml", "automl": HERE / "configs" / "automl.yaml"}


def fail(message: str) -> NoReturn:
    """End the command with ``Error: <message>`` and exit status 1 (no traceback).

    Args:
        message: what went wrong, naming the key, file or component.

    Raises:
        click.ClickException: always.
    """
    raise click.ClickException(message)


def load_config(variant: str, config_path: str | None) -> Any:
    """The variant's pipeline config (``configs/<variant>.yaml`` unless ``config_path``), or a one-line failure.

    Args:
        variant: ``rf`` or ``automl``.
        config_path: another pipeline config file, or None.

    Returns:
        The validated ``churn.config.PipelineConfig``.
    """
    from churn.config import ConfigError
    from churn.config import load_config as load

    try:
        return load(config_path or CONFIGS[variant])
    except ConfigError as error:
        fail(str(error))


def stack_component(kind: str) -> Any:
    """The active stack's component of one kind, or a one-line failure saying how to get one.

    Args:
        kind: the ``Stack`` attribute (``feature_store``, ``model_deployer``, ``experiment_tracker``, ...).

    Returns:
        The component (an implementation of its contract in ``stacks.contracts``).
    """
    from zenml.client import Client

    stack = Client().active_stack
    component = getattr(stack, kind)
    if component is None:
        fail(
            f"the active stack '{stack.name}' has no {kind.replace('_', ' ')}; "
            "run `python run.py stack setup local` (or `zenml stack set local`)"
        )
    return component


def training_pipeline(variant: str) -> Any:
    """The training pipeline of a variant (``rf`` or ``automl``)."""
    from pipelines.training import churn_automl_training, churn_rf_training

    return {"rf": churn_rf_training, "automl": churn_automl_training}[variant]


def ensure_stack() -> None:
    """On ZenML's bare default stack, register and activate our local stack (idempotent)."""
    from zenml.client import Client

    if Client().active_stack_model.name == "default":
        from stacks.local import setup_local_stack

        created = setup_local_stack(activate=True)
        click.echo("Using the 'local' stack" + (f" (registered: {', '.join(created)})" if created else ""))


def seed_tracking_store() -> None:
    """A local MLflow store the active stack's tracker has not created yet starts migrated (churn.tracking_store)."""
    from zenml.client import Client

    from churn.tracking_store import seed_sqlite_store

    tracker = Client().active_stack.experiment_tracker
    if tracker is not None and hasattr(tracker, "get_tracking_uri"):
        seed_sqlite_store(tracker.get_tracking_uri())

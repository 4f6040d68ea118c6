"""churn-mlops command line.

    python run.py --variant rf [--config FILE] [--no-cache]     train, gate, register, deploy
    python run.py ingest [--csv FILE --target COL] [--if-empty]  feature ingestion
    python run.py predict --csv FILE [--endpoint NAME] [--probabilities]
    python run.py schedule list | status | start | stop | delete NAME   scheduled runs (times in UTC)
    python run.py stack setup local                              register the local stack
    python run.py image build [--push]                           the SageMaker image (docker/Dockerfile)
    python run.py endpoints | cleanup [--yes]                    list / stop local endpoints
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
os.environ.setdefault("ZENML_ENABLE_REPO_INIT_WARNINGS", "false")
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

HERE = Path(__file__).resolve().parent
CONFIGS = {"rf": HERE / "configs" / "rf.yaml", "automl": HERE / "configs" / "automl.yaml"}


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _load_config(variant: str, config_path: str | None):
    from churn.config import ConfigError, load_config

    try:
        return load_config(config_path or CONFIGS[variant])
    except ConfigError as error:
        _fail(str(error))


def _stack_component(kind: str):
    from zenml.client import Client

    stack = Client().active_stack
    component = getattr(stack, kind)
    if component is None:
        _fail(f"the active stack '{stack.name}' has no {kind.replace('_', ' ')}; "
              "run `python run.py stack setup local` (or `zenml stack set local`)")
    return component


def _training_pipeline(variant: str):
    from pipelines.training import churn_automl_training, churn_rf_training

    return {"rf": churn_rf_training, "automl": churn_automl_training}[variant]


def _schedule(variant: str, config_path: str | None, config, cron: str, name: str) -> None:
    from churn.schedules import ScheduleError
    from stacks.scheduling import create_schedule

    command = [sys.executable, str(HERE / "run.py"), "--variant", variant]
    if config_path:
        command += ["--config", str(Path(config_path).resolve())]
    try:
        click.echo(create_schedule(name, cron, command, _training_pipeline(variant), config.model_dump()))
    except ScheduleError as error:
        _fail(str(error))


def _revive_scheduler() -> None:
    """Any command restarts a local scheduler that died while schedules exist, and says so."""
    try:
        from stacks.scheduling import revive_local_scheduler

        message = revive_local_scheduler()
    except Exception as error:  # noqa: BLE001 - never let this stop the command the user asked for
        click.echo(f"warning: could not check or restart the local scheduler: {error}", err=True)
        return
    if message:
        click.echo(message, err=True)


def _ensure_stack() -> None:
    """On ZenML's bare default stack, register and activate our local stack (idempotent)."""
    from zenml.client import Client

    if Client().active_stack_model.name == "default":
        from stacks.local import setup_local_stack

        created = setup_local_stack(activate=True)
        click.echo("Using the 'local' stack" + (f" (registered: {', '.join(created)})" if created else ""))


def _output(steps, step: str, name: str):
    """``steps``: ``run.steps`` read once (each read of that property queries every step of the run)."""
    try:
        return steps[step].outputs[name][0].load()
    except (KeyError, IndexError):
        return None


def _print_summary(run) -> None:
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id)
    orchestrator = Client().active_stack.orchestrator.flavor
    if run.status.value != "completed" and orchestrator != "local":
        click.echo(f"\nRun {run.name}: {run.status.value} on the {orchestrator} orchestrator")
        for key in ("orchestrator_url", "pipeline_execution_arn"):
            if run.run_metadata.get(key):
                click.echo(f"  {key}: {run.run_metadata[key]}")
        click.echo("  metrics, registry and endpoint follow when the steps finish (ZenML dashboard / SageMaker console)")
        return
    steps = run.steps
    report = _output(steps, "evaluate", "evaluation_report") or {}
    verdict = _output(steps, "gate", "gate_verdict") or {}
    registration = _output(steps, "register", "registration") or {}
    deployment = _output(steps, "deploy", "deployment") or {}
    click.echo("\n" + "=" * 72)
    click.echo(f"Run {run.name}: {run.status.value}")
    if report:
        click.echo("Metrics:  " + "  ".join(f"{k}={report[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1_score", "roc_auc") if report.get(k) is not None))
    if verdict:
        click.echo(f"Gate:     {verdict['message']}")
    if registration.get("registered"):
        trained_in = registration.get("trained_in_mlflow_run_id") or registration["mlflow_run_id"]
        click.echo(f"Registry: {registration['model_name']} version {registration['version']} ({registration['approval_status']}), "
                   f"MLflow run {registration['mlflow_run_id']}"
                   + ("" if trained_in == registration["mlflow_run_id"] else
                      f"\n          data and code unchanged: training reused from MLflow run {trained_in} (--no-cache retrains)"))
    else:
        click.echo(f"Registry: nothing registered ({registration.get('reason', 'see above')})")
    if deployment.get("deployed"):
        click.echo(f"Endpoint: {deployment['endpoint_name']} -> {deployment['invocations_url']}")
        click.echo("          try: .venv/bin/python run.py predict --csv sample_input.csv")
    else:
        click.echo(f"Endpoint: not updated ({deployment.get('reason', 'see above')})")
    tracker = Client().active_stack.experiment_tracker
    if tracker is not None and hasattr(tracker, "get_tracking_uri"):
        click.echo(f"MLflow:   mlflow ui --backend-store-uri {tracker.get_tracking_uri()} --host 127.0.0.1")
    click.echo("ZenML:    .venv/bin/python run.py dashboard   (runs, steps, evaluation report, model card)")
    click.echo("=" * 72)


@click.group(invoke_without_command=True, help=__doc__)
@click.option("--variant", type=click.Choice(["rf", "automl"]), default="rf", show_default=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Pipeline config YAML (default: configs/<variant>.yaml).")
@click.option("--no-cache", is_flag=True, help="Run every step, even when its inputs did not change.")
@click.option("--demo-data-if-empty", is_flag=True, help="Ingest the demo data first when the feature group has no records.")
@click.option("--schedule", "cron", default=None, help="Run on a cron schedule instead of now (standard 5 fields, e.g. '0 3 * * 1').")
@click.option("--schedule-name", default=None, help="Name of the schedule (default: <variant>-training).")
@click.pass_context
def cli(ctx: click.Context, variant: str, config_path: str | None, no_cache: bool, demo_data_if_empty: bool,
        cron: str | None, schedule_name: str | None) -> None:
    if ctx.invoked_subcommand != "schedule":
        _revive_scheduler()
    if ctx.invoked_subcommand is not None:
        return
    config = _load_config(variant, config_path)
    _ensure_stack()
    if cron is not None:
        _schedule(variant, config_path, config, cron, schedule_name or f"{variant}-training")
        return
    from stacks.sagemaker import configure_for_active_stack

    store = _stack_component("feature_store")
    if demo_data_if_empty and store.record_count(config.feature_group_name) == 0:
        click.echo(f"Feature group '{config.feature_group_name}' is empty: ingesting the demo data first.")
        from pipelines.ingestion import churn_feature_ingestion

        configure_for_active_stack(churn_feature_ingestion)(feature_group_name=config.feature_group_name,
                                                            target_column=config.target_column)
    pipeline = configure_for_active_stack(_training_pipeline(variant).with_options(enable_cache=not no_cache))
    try:
        run = pipeline(config=config.model_dump())
    except RuntimeError as error:  # the step's own error and the alert were already logged above
        _fail(f"{error}. If a step failed, the stack's alerter was told; its message names the step log.")
    _print_summary(run)


@cli.command(help="Write demo data (default) or a CSV into the feature store.")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False), help="CSV with customer_id and a binary target.")
@click.option("--target", default=None, help="Target column of the CSV (default: the config's target_column).")
@click.option("--feature-group", default=None, help="Feature group (default: the config's feature_group_name).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--customers", default=5000, show_default=True, type=click.IntRange(1, 999_999),
              help="Demo data: number of customers (ids CUST_000001 onwards).")
@click.option("--if-empty", is_flag=True, help="Do nothing when the feature group already has records.")
def ingest(csv_path, target, feature_group, config_path, customers, if_empty) -> None:
    from churn import names
    from churn.ingest import IngestError, prepare_records, read_csv

    config = _load_config("rf", config_path)
    group = feature_group or config.feature_group_name
    target = target or config.target_column
    try:
        names.feature_group(group)
        names.feature(target)
    except names.InvalidName as error:
        _fail(str(error))
    _ensure_stack()
    store = _stack_component("feature_store")
    if if_empty and store.record_count(group) > 0:
        click.echo(f"Feature group '{group}' already has {store.record_count(group)} customers; not ingesting.")
        return
    if csv_path:  # validate before starting a pipeline: a clear message, nothing written
        try:
            existing = store.describe(group)
            prepare_records(read_csv(csv_path), target, group, existing["FeatureDefinitions"] if existing else None)
        except IngestError as error:
            _fail(str(error))
    from pipelines.ingestion import churn_feature_ingestion

    from stacks.sagemaker import configure_for_active_stack

    configure_for_active_stack(churn_feature_ingestion)(
        feature_group_name=group, target_column=target,
        csv_path=str(Path(csv_path).resolve()) if csv_path else None, demo_customers=customers)


@cli.command(help="Send a CSV (header row of raw features) to an endpoint and print the predictions.")
@click.option("--csv", "csv_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--endpoint", default=None, help="Endpoint name (default: the variant config's endpoint_name).")
@click.option("--variant", type=click.Choice(["rf", "automl"]), default="rf", show_default=True)
@click.option("--probabilities", is_flag=True, help="Also print the churn probability per row.")
@click.option("--json", "as_json", is_flag=True, help="Ask for a JSON answer.")
def predict(csv_path, endpoint, variant, probabilities, as_json) -> None:
    config = _load_config(variant, None)
    deployer = _stack_component("model_deployer")
    try:
        response = deployer.invoke(endpoint or config.endpoint_name, Path(csv_path).read_bytes(), "text/csv",
                                   "application/json" if as_json else "text/csv", probabilities)
    except Exception as error:  # noqa: BLE001 - shown to the user as one line
        _fail(str(error))
    if response.status_code != 200:
        _fail(f"endpoint answered HTTP {response.status_code}: {response.text.strip()}")
    if response.headers.get("X-Unseen-Categories"):
        click.echo(f"note: unseen categories mapped to the first known class: {response.headers['X-Unseen-Categories']}", err=True)
    click.echo(response.text.rstrip("\n"))


@cli.command(help="Batch inference: score customers 4001-5000 (configurable) with the latest Approved model.")
@click.option("--variant", type=click.Choice(["rf", "automl"]), default="rf", show_default=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Batch config YAML (default: configs/batch.yaml).")
@click.option("--output", "output_uri", default=None, help="Where to write predictions (path or s3:// URI).")
def batch(variant: str, config_path: str | None, output_uri: str | None) -> None:
    from churn.batch import load_batch_config
    from churn.config import ConfigError

    try:
        training = _load_config(variant, None)
        config = load_batch_config(config_path or HERE / "configs" / "batch.yaml", output_uri=output_uri,
                                   **({} if config_path else {"model_package_group": training.model_package_group}))
    except ConfigError as error:
        _fail(str(error))
    _ensure_stack()
    from pipelines.batch_inference import churn_batch_inference
    from stacks.sagemaker import configure_for_active_stack

    try:
        run = configure_for_active_stack(churn_batch_inference)(config=config.model_dump())
    except RuntimeError as error:
        _fail(f"{error}. If a step failed, the stack's alerter was told; its message names the step log.")
    from zenml.client import Client

    summary = _output(Client().get_pipeline_run(run.id).steps, "batch_predict", "batch_summary") or {}
    click.echo(f"\nScored {summary.get('rows')} customers with {summary.get('model_name')} v{summary.get('version')}: "
               f"{summary.get('location')}")


@cli.group(help="Scheduled runs on the active stack.")
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
    from datetime import datetime, timezone

    from stacks.scheduling import local_scheduler_status

    status = local_scheduler_status()
    running = f" (pid {status['pid']})" if status["pid"] else ""
    click.echo(f"Local scheduler: {status['state']}{running}; {len(status['schedules'])} schedule(s); log {status['log']}")
    now = datetime.now(timezone.utc)
    for entry in status["schedules"]:
        last = f", last run {entry.last_fire} ({entry.last_status})" if entry.last_fire else ""
        click.echo(f"  {entry.name}: '{entry.cron}' UTC, next {entry.next_fire(now).strftime('%Y-%m-%d %H:%M')} UTC{last}")
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
        _fail(str(error))
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
        _fail(str(error))


@cli.command(help="Start the ZenML dashboard on 127.0.0.1 (no browser pop-up, onboarding skipped) and print its URL.")
@click.option("--port", default=8237, show_default=True)
@click.option("--stop", is_flag=True, help="Stop the local dashboard server instead.")
def dashboard(port: int, stop: bool) -> None:
    from churn.dashboard import DashboardError, start_zenml_dashboard, stop_zenml_dashboard

    try:
        if stop:
            stop_zenml_dashboard()
            click.echo("Stopped the local ZenML dashboard.")
            return
        url = start_zenml_dashboard(port=port)
    except DashboardError as error:
        _fail(str(error))
    _ensure_stack()  # `zenml login --local` may reset the active stack to ZenML's default
    tracker = _stack_component("experiment_tracker")
    click.echo(f"ZenML dashboard: {url}  (stop it with: python run.py dashboard --stop)")
    click.echo(f"MLflow UI:       mlflow ui --backend-store-uri {tracker.get_tracking_uri()} --host 127.0.0.1")


@cli.group(help="Stack recipes.")
def stack() -> None:
    pass


@stack.command("setup", help="Register our flavors, components and the stack (idempotent), and activate it.")
@click.argument("name", type=click.Choice(["local", "sagemaker"]))
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="sagemaker: the stack config (start from configs/sagemaker_stack.example.yaml).")
def stack_setup(name: str, config_path: str | None) -> None:
    if name == "sagemaker":
        from churn.config import ConfigError
        from stacks.sagemaker import setup_sagemaker_stack

        if not config_path:
            _fail("`stack setup sagemaker` needs --config FILE (start from configs/sagemaker_stack.example.yaml)")
        try:
            changes = setup_sagemaker_stack(config_path, activate=True)
        except ConfigError as error:
            _fail(str(error))
        from zenml.client import Client

        active = Client().active_stack_model.name
        click.echo(f"Stack '{active}' is active" + (f"; {', '.join(f'{k} {v}' for k, v in changes.items())}"
                                                    if changes else " (nothing changed)"))
        return
    from stacks.local import setup_local_stack

    created = setup_local_stack(activate=True)
    click.echo(f"Stack '{name}' is active" + (f"; registered: {', '.join(created)}" if created else " (nothing new to register)"))


@cli.group(help="Our image (docker/Dockerfile): SageMaker endpoints, AutoML pipelines, batch and steps run in it.")
def image() -> None:
    pass


@image.command("build", help="Build the image, tagged with the content hash of requirements.lock and the code; "
                             "--push also pushes it to the stack's ECR repository.")
@click.option("--base-image", default=None, help="Base image with Python 3.11 (default: python:3.11-slim, "
                                                 "or $CHURN_BASE_IMAGE).")
@click.option("--push", is_flag=True, help="Push to the stack's ECR repository (image_uri, default <account>.dkr.ecr."
                                           "<region>.amazonaws.com/churn-mlops), creating it if missing.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="--push: the SageMaker stack config (default: the active stack's).")
def image_build(base_image: str | None, push: bool, config_path: str | None) -> None:
    from churn import image as churn_image

    try:
        reference = churn_image.build(base_image or os.environ.get("CHURN_BASE_IMAGE") or churn_image.DEFAULT_BASE_IMAGE)
        click.echo(f"Built {reference}")
        if push:
            from churn.aws.clients import AwsError
            from churn.config import ConfigError
            from stacks.sagemaker import settings_from_active_stack, stack_settings

            try:
                settings = stack_settings(config_path) if config_path else settings_from_active_stack()
            except (AwsError, ConfigError) as error:
                _fail(str(error))
            pushed = churn_image.push(reference, settings.region, settings.aws_profile, settings.image_uri)
            click.echo(f"Pushed {pushed}")
            if settings.image_uri and churn_image.is_tagged(settings.image_uri) and settings.image_uri != pushed:
                click.echo(f"note: the stack config names {settings.image_uri}; drop its tag to use the pushed image")
    except churn_image.ImageError as error:
        _fail(str(error))


@cli.command(help="List the active stack's endpoints.")
def endpoints() -> None:
    for entry in _stack_component("model_deployer").list_endpoints():
        state = "running" if entry["running"] else "stopped"
        click.echo(f"{entry['endpoint_name']}: {state} {entry.get('url') or ''} serving {entry['model_name']} v{entry['version']}")


@cli.command(help="Remove the active stack's endpoints. SageMaker: also endpoint configs, models and schedules; "
                  "--include-registry / --include-s3 remove the registry group and the S3 prefix too.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--include-registry", is_flag=True, help="SageMaker: also delete the model packages and their group.")
@click.option("--include-s3", is_flag=True, help="SageMaker: also delete everything under s3://<bucket>/<prefix>/.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Pipeline config whose endpoint and group to remove (default: rf's and automl's).")
def cleanup(yes: bool, include_registry: bool, include_s3: bool, config_path: str | None) -> None:
    deployer = _stack_component("model_deployer")
    if deployer.flavor == "churn_sagemaker_endpoint":
        from churn.aws.clients import AwsError
        from churn.config import ConfigError
        from stacks.sagemaker import run_cleanup, settings_from_active_stack

        # both variants' endpoints and groups, or only the one --config names
        rf, automl = (_load_config("rf", config_path), _load_config("automl", config_path))
        try:
            settings = settings_from_active_stack().model_copy(update={
                "endpoint_name": rf.endpoint_name, "model_package_group": rf.model_package_group,
                "automl_endpoint_name": automl.endpoint_name, "automl_model_package_group": automl.model_package_group})
            run_cleanup(settings, include_registry, include_s3, yes, echo=click.echo)
        except (AwsError, ConfigError) as error:
            _fail(str(error))
        return
    if include_registry or include_s3:
        _fail("--include-registry / --include-s3 apply to the SageMaker stack only")
    names = [e["endpoint_name"] for e in deployer.list_endpoints()]
    if not names:
        click.echo("No endpoints to remove.")
        return
    if not yes and not click.confirm(f"Remove endpoint(s) {', '.join(names)}?"):
        return
    for name in names:
        deployer.delete_endpoint(name)
        click.echo(f"Removed endpoint {name}")


if __name__ == "__main__":
    sys.exit(cli())

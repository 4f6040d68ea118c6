"""The SageMaker stack recipe: our AWS flavors and components from one config, idempotently.

| concern             | component name                  | flavor                          |
|---------------------|---------------------------------|---------------------------------|
| orchestrator        | config ``orchestrator``         | (existing; default: ``default``) |
| artifact store      | config ``artifact_store``       | (existing; default: ``default``) |
| experiment tracker  | config ``experiment_tracker``   | mlflow (``mlflow_tracker``)      |
| feature store       | <stack>-feature-store           | churn_sagemaker_feature_store   |
| model registry      | <stack>-model-registry          | churn_sagemaker_registry        |
| model deployer      | <stack>-endpoint                | churn_sagemaker_endpoint        |
| alerter             | <stack>-sns-alerter             | churn_sns                       |

The config is ``configs/sagemaker_stack.example.yaml``'s keys (the spec's
pipeline_config.yaml names). It holds no account id or secret in the repo; a value that
looks like an AWS key is refused. Credentials come from the environment, a profile
(``aws_profile``) or an attached role. Running the recipe again updates components whose
configuration changed and creates nothing twice.

The steps bind MLflow by the component name ``mlflow_tracker``: for remote steps, point
that tracker at an MLflow tracking server (``mlflow_tracking_uri``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

from zenml.client import Client
from zenml.enums import StackComponentType as T

from churn.aws.settings import SageMakerStackSettings, load_stack_settings, parse_stack_settings
from churn.config import ConfigError
from stacks.local import register_flavors

FLAVOR_SOURCES = {
    "stacks.flavors.sagemaker_feature_store.SageMakerFeatureStoreFlavor": T.FEATURE_STORE,
    "stacks.flavors.sagemaker_registry.SageMakerModelRegistryFlavor": T.MODEL_REGISTRY,
    "stacks.flavors.sagemaker_deployer.SageMakerEndpointDeployerFlavor": T.MODEL_DEPLOYER,
    "stacks.flavors.sns_alerter.SNSAlerterFlavor": T.ALERTER,
}
FLAVORS = {T.FEATURE_STORE: "churn_sagemaker_feature_store", T.MODEL_REGISTRY: "churn_sagemaker_registry",
           T.MODEL_DEPLOYER: "churn_sagemaker_endpoint", T.ALERTER: "churn_sns"}
SUFFIXES = {T.FEATURE_STORE: "feature-store", T.MODEL_REGISTRY: "model-registry",
            T.MODEL_DEPLOYER: "endpoint", T.ALERTER: "sns-alerter"}


def stack_settings(config: Union[SageMakerStackSettings, Mapping[str, Any], str, Path]) -> SageMakerStackSettings:
    """Validated settings from a settings object, a mapping or a YAML file path."""
    if isinstance(config, SageMakerStackSettings):
        return config
    if isinstance(config, (str, Path)):
        return load_stack_settings(config)
    return parse_stack_settings(config)


def component_plan(settings: SageMakerStackSettings,
                   overrides: Optional[Mapping[T, Mapping[str, Any]]] = None) -> Dict[T, tuple]:
    """component type -> (name, flavor, configuration) for our four AWS components."""
    configs = {T.FEATURE_STORE: settings.feature_store_config(), T.MODEL_REGISTRY: settings.registry_config(),
               T.MODEL_DEPLOYER: settings.deployer_config(), T.ALERTER: settings.alerter_config()}
    plan = {}
    for kind, configuration in configs.items():
        configuration = {**configuration, **dict((overrides or {}).get(kind, {}))}
        plan[kind] = (f"{settings.stack_name}-{SUFFIXES[kind]}", FLAVORS[kind], configuration)
    return plan


def _ensure_component(client: Client, kind: T, name: str, flavor: str, configuration: Dict[str, Any]) -> Optional[str]:
    try:
        existing = client.get_stack_component(kind, name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack_component(name=name, flavor=flavor, component_type=kind,
                                      configuration={k: v for k, v in configuration.items() if v is not None})
        return "created"
    if existing.flavor_name != flavor:
        raise ConfigError(f"a {kind.value} named '{name}' already exists with flavor '{existing.flavor_name}', "
                          f"not '{flavor}'; choose another stack_name")
    wanted = {k: v for k, v in configuration.items() if v is not None}
    current = {k: v for k, v in existing.configuration.items() if v is not None}
    if wanted != current:
        client.update_stack_component(name, kind, configuration={**{k: None for k in current}, **configuration})
        return "updated"
    return None


def setup_sagemaker_stack(config: Union[SageMakerStackSettings, Mapping[str, Any], str, Path], activate: bool = True,
                          overrides: Optional[Mapping[T, Mapping[str, Any]]] = None) -> Dict[str, str]:
    """Register our AWS flavors, the components and the stack (idempotent); return what changed.

    ``overrides``: extra configuration per component type (e.g. faster polling in tests).
    """
    settings = stack_settings(config)
    client = Client()
    changes: Dict[str, str] = {}
    register_flavors(client, FLAVOR_SOURCES)
    plan = component_plan(settings, overrides)
    for kind, (name, flavor, configuration) in plan.items():
        change = _ensure_component(client, kind, name, flavor, configuration)
        if change:
            changes[name] = change
    tracker = settings.experiment_tracker
    try:
        client.get_stack_component(T.EXPERIMENT_TRACKER, tracker, allow_name_prefix_match=False)
    except KeyError:
        configuration = {"tracking_uri": settings.mlflow_tracking_uri} if settings.mlflow_tracking_uri else {}
        client.create_stack_component(name=tracker, flavor="mlflow", component_type=T.EXPERIMENT_TRACKER,
                                      configuration=configuration)
        changes[tracker] = "created"
    for kind, name in ((T.ORCHESTRATOR, settings.orchestrator), (T.ARTIFACT_STORE, settings.artifact_store)):
        try:
            client.get_stack_component(kind, name, allow_name_prefix_match=False)
        except KeyError:
            raise ConfigError(f"{kind.value} '{name}' is not registered; register it first "
                              f"(e.g. `zenml {kind.value.replace('_', '-')} register {name} ...`) or use 'default'") from None
    components = {T.ORCHESTRATOR: settings.orchestrator, T.ARTIFACT_STORE: settings.artifact_store,
                  T.EXPERIMENT_TRACKER: tracker, **{kind: name for kind, (name, _, _) in plan.items()}}
    try:
        stack = client.get_stack(settings.stack_name, allow_name_prefix_match=False)
        current = {kind: [c.name for c in items] for kind, items in stack.components.items()}
        if any(current.get(kind) != [name] for kind, name in components.items()):
            client.update_stack(settings.stack_name, component_updates=components)
            changes[settings.stack_name] = "updated"
    except KeyError:
        client.create_stack(name=settings.stack_name, components=components)
        changes[settings.stack_name] = "created"
    if activate and client.active_stack_model.name != settings.stack_name:
        client.activate_stack(settings.stack_name)
    return changes


def cleanup_settings(settings: SageMakerStackSettings, include_registry: bool = False, include_s3: bool = False):
    """What ``python run.py cleanup`` removes on this stack (see churn.aws.cleanup)."""
    from churn.aws.cleanup import CleanupSettings

    return CleanupSettings(region=settings.region, bucket=settings.bucket, prefix=settings.prefix,
                           endpoint_names=[settings.endpoint_name], model_package_group=settings.model_package_group,
                           include_registry=include_registry, include_s3=include_s3, profile=settings.aws_profile)


def settings_from_active_stack() -> SageMakerStackSettings:
    """Rebuild the stack settings from the active stack's components (for cleanup/iam commands)."""
    stack = Client().active_stack
    deployer, registry, alerter = stack.model_deployer, stack.model_registry, stack.alerter
    if deployer is None or deployer.flavor != FLAVORS[T.MODEL_DEPLOYER]:
        raise ConfigError(f"the active stack '{stack.name}' is not a SageMaker stack (its model deployer is "
                          f"{getattr(deployer, 'flavor', None)!r}); run `zenml stack set sagemaker`")
    d = deployer.config
    raw: Dict[str, Any] = {"stack_name": stack.name, "region": d.region, "bucket": d.bucket, "prefix": d.prefix,
                           "role_arn": d.role_arn, "aws_profile": d.aws_profile,
                           "inference_instance_type": d.inference_instance_type}
    if registry is not None and registry.flavor == FLAVORS[T.MODEL_REGISTRY]:
        raw["approval_status"] = registry.config.approval_status
    if alerter is not None and alerter.flavor == FLAVORS[T.ALERTER]:
        raw["sns_topic_arn"] = alerter.config.sns_topic_arn
    return parse_stack_settings(raw, f"stack '{stack.name}'")


def run_cleanup(settings: SageMakerStackSettings, include_registry: bool, include_s3: bool, yes: bool,
                echo=print, confirm=None) -> list:
    """Plan, confirm (unless ``yes``), remove; returns what was removed. Used by the CLIs."""
    from churn.aws.cleanup import cleanup, plan_cleanup

    cleanup_config = cleanup_settings(settings, include_registry, include_s3)
    planned = plan_cleanup(cleanup_config)
    if not planned:
        echo("Nothing to remove.")
        return []
    echo("Will remove:\n  " + "\n  ".join(str(r) for r in planned))
    if not include_registry or not include_s3:
        echo("(kept: " + ", ".join(x for x, flag in (("the model registry group (--include-registry)", include_registry),
                                                     (f"s3://{settings.bucket}/{settings.prefix}/ (--include-s3)", include_s3))
                                  if not flag) + ")")
    if not yes and not (confirm or _confirm)("Remove these?"):
        echo("Nothing removed.")
        return []
    removed = cleanup(cleanup_config, planned, progress=lambda line: echo(line))
    echo(f"Removed {len(removed)} item(s).")
    return removed


def _confirm(question: str) -> bool:
    import click

    return click.confirm(question)


def _cli():
    import json

    import click

    from churn.aws.clients import AwsError

    @click.group(help="The SageMaker stack: python -m stacks.sagemaker setup|cleanup|iam --config FILE")
    def cli() -> None:
        pass

    def load(config_path: str) -> SageMakerStackSettings:
        try:
            return stack_settings(config_path)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None

    @cli.command(help="Register the flavors, components and stack (idempotent) and activate it.")
    @click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
    def setup(config_path: str) -> None:
        try:
            changes = setup_sagemaker_stack(load(config_path), activate=True)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        click.echo("SageMaker stack is active" + (f"; {', '.join(f'{k} {v}' for k, v in changes.items())}" if changes else
                                                   " (nothing changed)"))

    @cli.command(help="Remove endpoint, endpoint configs, models, schedules (and with flags the registry group / S3 prefix).")
    @click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
    @click.option("--include-registry", is_flag=True, help="Also delete every model package and the model package group.")
    @click.option("--include-s3", is_flag=True, help="Also delete everything under s3://<bucket>/<prefix>/.")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def cleanup(config_path: str, include_registry: bool, include_s3: bool, yes: bool) -> None:
        try:
            run_cleanup(load(config_path), include_registry, include_s3, yes, echo=click.echo)
        except AwsError as error:
            raise click.ClickException(str(error)) from None

    @cli.command(help="Print the execution role's policy (or --role operator / trust) with your values filled in.")
    @click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
    @click.option("--role", type=click.Choice(["execution", "operator", "trust"]), default="execution", show_default=True)
    def iam(config_path: str, role: str) -> None:
        from churn.aws.iam import policy_values, render_policy

        names = {"execution": "execution_role_policy", "operator": "operator_policy", "trust": "trust_policy"}
        values = policy_values(load(config_path).model_dump())
        click.echo(json.dumps(render_policy(names[role], values), indent=2))

    return cli


if __name__ == "__main__":
    _cli()()

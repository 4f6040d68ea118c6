"""The SageMaker stack recipe: our AWS flavors, the remote-execution components and the stack,
from one config, idempotently.

| concern             | component name                  | flavor                          |
|---------------------|---------------------------------|---------------------------------|
| orchestrator        | <stack>-orchestrator (*)        | sagemaker (ZenML)               |
| artifact store      | <stack>-artifact-store (*)      | s3 (ZenML)                      |
| container registry  | <stack>-container-registry (*)  | default, ECR URI (prebuilt image) |
|                     | <stack>-ecr (*)                 | aws (image-builder path)        |
| image builder       | <stack>-image-builder (*)       | local (Docker) or aws (CodeBuild); image-builder path only |
| experiment tracker  | config ``experiment_tracker``   | mlflow (``mlflow_tracker``)      |
| feature store       | <stack>-feature-store           | churn_sagemaker_feature_store   |
| model registry      | <stack>-model-registry          | churn_sagemaker_registry        |
| model deployer      | <stack>-endpoint                | churn_sagemaker_endpoint        |
| alerter             | <stack>-sns-alerter             | churn_sns                       |

(*) only with a ``sagemaker_orchestrator:`` block in the config: the steps then run as
SageMaker pipeline jobs. Without it the stack uses the existing ``orchestrator`` and
``artifact_store`` components (default: ZenML's local ones), i.e. steps run on this machine
and talk to AWS.

The stack carries the label ``automl_engine: sagemaker_autopilot`` (churn.automl picks the
AutoML engine by it) and, with remote execution, the labels the pipeline runs read through
:func:`stacks.sagemaker.run_options.configure_for_active_stack`: ``image_path`` (``prebuilt``:
``DockerSettings(skip_build=True, parent_image=<image>)``, no image is built and ZenML archives the
code to the artifact store; ``build``: ZenML builds an image from ``requirements.lock`` with the
image builder and pushes it to ECR), ``parent_image`` and ``training_instance_type`` (the training
steps; the others run on ``processing_instance_type``).

The config is ``configs/sagemaker_stack.example.yaml``'s keys (the spec's pipeline_config.yaml
names). It holds no account id or secret in the repo; a value that looks like an AWS key is
refused. Credentials come from the environment, a profile (``aws_profile``) or an attached role.
Running the recipe again updates components whose configuration changed and creates nothing twice.

The SageMaker orchestrator needs a remote ZenML server (``zenml login https://...``; ZenML refuses
to submit from a local store), and every stack component must be reachable from the jobs: the
steps bind MLflow by the component name ``mlflow_tracker``, so that tracker must point at an
MLflow tracking server (``mlflow_tracking_uri``, credentials in the ZenML secret
``sagemaker_orchestrator.mlflow_tracking_secret``). The tracker is shared by name with every stack
on the same ZenML server.

Length: the component plan and its registration are one recipe; the config model, run options and
cleanup are in their own modules of this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zenml.client import Client
from zenml.enums import StackComponentType as T

from churn.aws.settings import SageMakerStackSettings, parse_stack_settings
from churn.config import ConfigError
from stacks.contracts import AUTOML_ENGINE_LABEL
from stacks.local import register_flavors
from stacks.sagemaker.config import Config, RemoteExecution, load_recipe
from stacks.sagemaker.run_options import DEFAULT_TRAINING_INSTANCE_TYPE, LABELS

FLAVOR_SOURCES = {
    "stacks.flavors.sagemaker_feature_store.SageMakerFeatureStoreFlavor": T.FEATURE_STORE,
    "stacks.flavors.sagemaker_registry.SageMakerModelRegistryFlavor": T.MODEL_REGISTRY,
    "stacks.flavors.sagemaker_deployer.SageMakerEndpointDeployerFlavor": T.MODEL_DEPLOYER,
    "stacks.flavors.sns_alerter.SNSAlerterFlavor": T.ALERTER,
}
FLAVORS = {
    T.FEATURE_STORE: "churn_sagemaker_feature_store",
    T.MODEL_REGISTRY: "churn_sagemaker_registry",
    T.MODEL_DEPLOYER: "churn_sagemaker_endpoint",
    T.ALERTER: "churn_sns",
}
SUFFIXES = {
    T.FEATURE_STORE: "feature-store",
    T.MODEL_REGISTRY: "model-registry",
    T.MODEL_DEPLOYER: "endpoint",
    T.ALERTER: "sns-alerter",
}

AUTOML_ENGINE = "sagemaker_autopilot"
DEFAULT_PROCESSING_INSTANCE_TYPE = "ml.m5.large"
MANAGED = (T.ORCHESTRATOR, T.ARTIFACT_STORE, T.CONTAINER_REGISTRY, T.IMAGE_BUILDER)


def component_plan(
    settings: SageMakerStackSettings, overrides: Mapping[T, Mapping[str, Any]] | None = None
) -> dict[T, tuple]:
    """component type -> (name, flavor, configuration) for our four AWS components."""
    configs = {
        T.FEATURE_STORE: settings.feature_store_config(),
        T.MODEL_REGISTRY: settings.registry_config(),
        T.MODEL_DEPLOYER: settings.deployer_config(),
        T.ALERTER: settings.alerter_config(),
    }
    plan = {}
    for kind, configuration in configs.items():
        configuration = {**configuration, **dict((overrides or {}).get(kind, {}))}
        plan[kind] = (f"{settings.stack_name}-{SUFFIXES[kind]}", FLAVORS[kind], configuration)
    return plan


def remote_plan(settings: SageMakerStackSettings, remote: RemoteExecution) -> dict[T, tuple]:
    """component type -> (name, flavor, configuration) for the remote-execution components."""
    stack = settings.stack_name
    orchestrator = {
        "execution_role": remote.execution_role_arn or settings.role_arn,
        "scheduler_role": remote.scheduler_role_arn,
        "region": settings.region,
        "bucket": settings.bucket,
        "aws_profile": settings.aws_profile,
        "instance_type": settings.processing_instance_type or DEFAULT_PROCESSING_INSTANCE_TYPE,
        "synchronous": remote.synchronous,
        "use_training_step": remote.use_training_step,
        "volume_size_in_gb": remote.volume_size_in_gb,
        "max_runtime_in_seconds": remote.max_runtime_in_seconds,
        "environment": dict(remote.environment) or None,
    }
    path = remote.artifact_store_path or f"s3://{settings.bucket}/{settings.prefix.strip('/')}/zenml"
    plan = {
        T.ORCHESTRATOR: (f"{stack}-orchestrator", "sagemaker", orchestrator),
        T.ARTIFACT_STORE: (f"{stack}-artifact-store", "s3", {"path": path.rstrip("/")}),
    }
    if not remote.image_builder:  # nothing is pushed: the default flavor holds the ECR URI for the stack validation
        plan[T.CONTAINER_REGISTRY] = (f"{stack}-container-registry", "default", {"uri": remote.container_registry_uri})
    else:  # ZenML logs Docker (or CodeBuild) into ECR to push the image it builds
        plan[T.CONTAINER_REGISTRY] = (f"{stack}-ecr", "aws", {"uri": remote.container_registry_uri})
        builder = {"code_build_project": remote.code_build_project} if remote.image_builder == "aws" else {}
        plan[T.IMAGE_BUILDER] = (f"{stack}-image-builder", remote.image_builder, builder)
    return plan


def tracker_config(settings: SageMakerStackSettings, remote: RemoteExecution | None) -> dict[str, Any]:
    if not settings.mlflow_tracking_uri:
        return {}
    configuration: dict[str, Any] = {"tracking_uri": settings.mlflow_tracking_uri}
    if remote is not None:
        secret = remote.mlflow_tracking_secret
        if remote.mlflow_tracking_auth == "token":
            configuration["tracking_token"] = f"{{{{{secret}.token}}}}"
        else:
            configuration["tracking_username"] = f"{{{{{secret}.username}}}}"
            configuration["tracking_password"] = f"{{{{{secret}.password}}}}"
    return configuration


def default_step_image(settings: SageMakerStackSettings, remote: RemoteExecution) -> str:
    """The prebuilt image the steps run in: ``image``, else the stack's ``image_uri``, else our ECR repository.

    An untagged name gets this code's content tag when a run is submitted (``pipeline_options``), the
    tag ``run.py image build --push`` pushes.
    """
    from churn.image import DEFAULT_REPOSITORY

    return remote.image or settings.image_uri or f"{remote.container_registry_uri}/{DEFAULT_REPOSITORY}"


def stack_labels(settings: SageMakerStackSettings, remote: RemoteExecution | None) -> dict[str, Any]:
    """The labels the recipe sets (None: remove the label)."""
    labels: dict[str, Any] = {key: None for key in LABELS}
    labels[AUTOML_ENGINE_LABEL] = AUTOML_ENGINE
    if remote is not None:
        labels["image_path"] = "build" if remote.image_builder else "prebuilt"
        labels["parent_image"] = None if remote.image_builder else default_step_image(settings, remote)
        labels["training_instance_type"] = settings.training_instance_type or DEFAULT_TRAINING_INSTANCE_TYPE
        labels["job_output_uri"] = job_output_uri(settings.bucket, settings.prefix)
    return labels


def job_output_uri(bucket: str, prefix: str) -> str:
    """Where the steps' SageMaker jobs write (the SDK adds ``<job>/output/``, ``<job>/debug-output/``, ...):
    under the stack's prefix, which the execution role may write (stacks/iam), not the bucket's root."""
    return f"s3://{bucket}/{prefix.strip('/')}/sagemaker-jobs"


def _ensure_component(client: Client, kind: T, name: str, flavor: str, configuration: dict[str, Any]) -> str | None:
    try:
        existing = client.get_stack_component(kind, name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack_component(
            name=name,
            flavor=flavor,
            component_type=kind,
            configuration={k: v for k, v in configuration.items() if v is not None},
        )
        return "created"
    if existing.flavor_name != flavor:
        raise ConfigError(
            f"a {kind.value} named '{name}' already exists with flavor '{existing.flavor_name}', "
            f"not '{flavor}'; choose another stack_name"
        )
    wanted = {k: v for k, v in configuration.items() if v is not None}
    current = {k: v for k, v in existing.configuration.items() if v is not None}
    if wanted != current:
        client.update_stack_component(name, kind, configuration={**{k: None for k in current}, **configuration})
        return "updated"
    return None


def _ensure_tracker(client: Client, settings: SageMakerStackSettings, remote: RemoteExecution | None) -> str | None:
    """Create the MLflow tracker if missing; with remote execution, point it at the tracking server."""
    name, configuration = settings.experiment_tracker, tracker_config(settings, remote)
    try:
        client.get_stack_component(T.EXPERIMENT_TRACKER, name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack_component(
            name=name, flavor="mlflow", component_type=T.EXPERIMENT_TRACKER, configuration=configuration
        )
        return "created"
    if remote is None:
        return None  # shared by name with the other stacks: keep it as it is
    return _ensure_component(client, T.EXPERIMENT_TRACKER, name, "mlflow", configuration)


def _require_secret(client: Client, remote: RemoteExecution) -> None:
    """The MLflow tracker's credentials live in a ZenML secret (never in the config): it must exist first."""
    try:
        client.get_secret(remote.mlflow_tracking_secret, allow_partial_name_match=False)
    except (KeyError, NotImplementedError):
        keys = "--token=..." if remote.mlflow_tracking_auth == "token" else "--username=... --password=..."
        raise ConfigError(
            f"the MLflow tracking server's credentials go into the ZenML secret "
            f"'{remote.mlflow_tracking_secret}', which does not exist; create it first: "
            f"zenml secret create {remote.mlflow_tracking_secret} {keys}"
        ) from None


def setup_sagemaker_stack(
    config: Config, activate: bool = True, overrides: Mapping[T, Mapping[str, Any]] | None = None
) -> dict[str, str]:
    """Register our AWS flavors, the components and the stack (idempotent); return what changed.

    ``overrides``: extra configuration per component type (e.g. faster polling in tests).
    """
    settings, remote = load_recipe(config)
    client = Client()
    if remote is not None:
        _require_secret(client, remote)
    changes: dict[str, str] = {}
    register_flavors(client, FLAVOR_SOURCES)
    plan = component_plan(settings, overrides)
    if remote is not None:
        plan.update(remote_plan(settings, remote))
    for kind, (name, flavor, configuration) in plan.items():
        change = _ensure_component(client, kind, name, flavor, configuration)
        if change:
            changes[name] = change
    tracker = settings.experiment_tracker
    change = _ensure_tracker(client, settings, remote)
    if change:
        changes[tracker] = change
    if remote is None:
        for kind, name in ((T.ORCHESTRATOR, settings.orchestrator), (T.ARTIFACT_STORE, settings.artifact_store)):
            try:
                client.get_stack_component(kind, name, allow_name_prefix_match=False)
            except KeyError:
                raise ConfigError(
                    f"{kind.value} '{name}' is not registered; register it first (e.g. `zenml "
                    f"{kind.value.replace('_', '-')} register {name} ...`) or use 'default'"
                ) from None
        plan[T.ORCHESTRATOR] = (settings.orchestrator, None, None)
        plan[T.ARTIFACT_STORE] = (settings.artifact_store, None, None)
    components: dict[T, list[str]] = {kind: [name] for kind, (name, _, _) in plan.items()}
    components[T.EXPERIMENT_TRACKER] = [tracker]
    for kind in MANAGED:
        components.setdefault(kind, [])
    labels = stack_labels(settings, remote)
    try:
        stack = client.get_stack(settings.stack_name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack(
            name=settings.stack_name,
            components={k: v for k, v in components.items() if v},
            labels={k: v for k, v in labels.items() if v is not None},
        )
        changes[settings.stack_name] = "created"
    else:
        current = {kind: [c.name for c in items] for kind, items in stack.components.items()}
        current_labels = stack.labels or {}
        stale_components = any(current.get(kind, []) != names for kind, names in components.items())
        stale_labels = any(current_labels.get(key) != value for key, value in labels.items())
        if stale_components or stale_labels:
            client.update_stack(
                settings.stack_name,
                component_updates=components if stale_components else None,
                labels=labels if stale_labels else None,
            )
            changes[settings.stack_name] = "updated"
    if activate and client.active_stack_model.name != settings.stack_name:
        client.activate_stack(settings.stack_name)
    return changes


def settings_from_active_stack() -> SageMakerStackSettings:
    """Rebuild the stack settings from the active stack's components.

    For ``run.py image build --push`` without --config.
    """
    stack = Client().active_stack
    deployer, registry, alerter = stack.model_deployer, stack.model_registry, stack.alerter
    if deployer is None or deployer.flavor != FLAVORS[T.MODEL_DEPLOYER]:
        raise ConfigError(
            f"the active stack '{stack.name}' is not a SageMaker stack (its model deployer is "
            f"{getattr(deployer, 'flavor', None)!r}); run `zenml stack set sagemaker`"
        )
    d = deployer.config
    raw: dict[str, Any] = {
        "stack_name": stack.name,
        "region": d.region,
        "bucket": d.bucket,
        "prefix": d.prefix,
        "role_arn": d.role_arn,
        "aws_profile": d.aws_profile,
        "image_uri": d.image_uri,
    }
    if registry is not None and registry.flavor == FLAVORS[T.MODEL_REGISTRY]:
        raw["approval_status"] = registry.config.approval_status
    if alerter is not None and alerter.flavor == FLAVORS[T.ALERTER]:
        raw["sns_topic_arn"] = alerter.config.sns_topic_arn
    return parse_stack_settings(raw, f"stack '{stack.name}'")

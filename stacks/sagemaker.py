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
:func:`configure_for_active_stack`: ``image_path`` (``prebuilt``: ``DockerSettings(skip_build=True,
parent_image=<image>)``, no image is built and ZenML archives the code to the artifact store;
``build``: ZenML builds an image from ``requirements.lock`` with the image builder and pushes it
to ECR), ``parent_image`` and ``training_instance_type`` (the training steps; the others run on
``processing_instance_type``).

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
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Tuple, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from zenml.client import Client
from zenml.enums import StackComponentType as T

from churn.aws.settings import (IMAGE_URI as IMAGE, ROLE_ARN, S3_URI, SageMakerStackSettings,
                                parse_stack_settings, refuse_credentials)
from churn.config import INSTANCE_TYPE, ConfigError, _describe, read_yaml_mapping
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

REMOTE_KEY = "sagemaker_orchestrator"
AUTOML_ENGINE = "sagemaker_autopilot"
TRAINING_STEPS = ("train_rf", "train_automl")          # run on training_instance_type
DEFAULT_TRAINING_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_PROCESSING_INSTANCE_TYPE = "ml.m5.large"
LABELS = ("automl_engine", "image_path", "parent_image", "training_instance_type", "job_output_uri")
ECR_REGISTRY = r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
_PLACEHOLDER = re.compile(r"ACCOUNT_ID|<[^>]+>")
MANAGED = (T.ORCHESTRATOR, T.ARTIFACT_STORE, T.CONTAINER_REGISTRY, T.IMAGE_BUILDER)


class RemoteExecution(BaseModel):
    """The ``sagemaker_orchestrator:`` block: run the steps as SageMaker pipeline jobs.

    Image: either prebuilt (``image``, default: the stack's ``image_uri``, else
    ``<container_registry_uri>/churn-mlops``; our image from docker/Dockerfile, pushed by ``run.py
    image build --push``; without a tag the content tag of requirements.lock + code is used; no
    build, the code travels through the artifact store) or ``image_builder`` (``local`` Docker or
    ``aws`` CodeBuild builds an image from requirements.lock and pushes it to ``container_registry_uri``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    execution_role_arn: Optional[str] = Field(None, pattern=ROLE_ARN)   # None: the stack's role_arn
    scheduler_role_arn: Optional[str] = Field(None, pattern=ROLE_ARN)   # EventBridge Scheduler starts the pipeline as it
    synchronous: bool = True                  # `run.py` waits for the SageMaker pipeline execution
    use_training_step: bool = True            # steps as training jobs (False: processing jobs)
    volume_size_in_gb: int = Field(30, ge=1, le=16384)
    max_runtime_in_seconds: int = Field(86400, ge=1, le=432000)
    environment: Dict[str, str] = Field(default_factory=dict)   # extra variables for every step (no secrets)
    artifact_store_path: Optional[str] = Field(None, pattern=S3_URI)    # None: s3://<bucket>/<prefix>/zenml
    container_registry_uri: str = Field(pattern=ECR_REGISTRY)
    image: Optional[str] = Field(None, pattern=IMAGE)
    image_builder: Optional[Literal["local", "aws"]] = None
    code_build_project: Optional[str] = None  # image_builder: aws
    mlflow_tracking_secret: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    mlflow_tracking_auth: Literal["password", "token"] = "password"

    @model_validator(mode="after")
    def _one_image_path(self) -> "RemoteExecution":
        if self.image and self.image_builder:
            raise ValueError("set at most one of 'image' (a prebuilt image: DockerSettings(skip_build=True, "
                             "parent_image=image); default: the stack's image_uri) and 'image_builder' "
                             "(local or aws: build the image)")
        if self.image_builder == "aws" and not self.code_build_project:
            raise ValueError("image_builder 'aws' needs 'code_build_project' (an AWS CodeBuild project)")
        if self.image and not self.image.startswith(self.container_registry_uri + "/"):
            raise ValueError(f"image {self.image!r} is not in container_registry_uri "
                             f"{self.container_registry_uri!r} (SageMaker jobs pull from your ECR)")
        return self


def _refuse_placeholders(node: Any, path: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _refuse_placeholders(value, f"{path}.{key}")
    elif isinstance(node, str) and _PLACEHOLDER.search(node):
        raise ConfigError(f"'{path}' still holds a placeholder ({node}); put your own value in your copy of the "
                          "file (never credentials: those come from the environment, a profile or a role)")


def parse_remote(raw: Any, source: str = "stack config") -> Optional[RemoteExecution]:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: '{REMOTE_KEY}' must be a mapping of keys to values")
    try:
        refuse_credentials({REMOTE_KEY: dict(raw)})
        _refuse_placeholders(dict(raw), REMOTE_KEY)
        return RemoteExecution(**raw)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    except ValidationError as error:
        raise ConfigError(f"{source}: {REMOTE_KEY}: {_describe(error)}") from None


Config = Union[SageMakerStackSettings, Mapping[str, Any], str, Path]


def load_recipe(config: Config) -> Tuple[SageMakerStackSettings, Optional[RemoteExecution]]:
    """The stack settings and the optional remote-execution block, validated."""
    if isinstance(config, SageMakerStackSettings):
        return config, None
    source = "stack config"
    if isinstance(config, (str, Path)):
        source = str(config)
        config = read_yaml_mapping(config, what="stack config",
                                   hint=" (start from configs/sagemaker_stack.example.yaml)")
    if not isinstance(config, Mapping):
        raise ConfigError(f"{source} must be a mapping of keys to values")
    raw = dict(config)
    block = raw.pop(REMOTE_KEY, None)
    settings = parse_stack_settings(raw, source)
    remote = parse_remote(block, source)
    if remote is not None:
        _check_remote(settings, remote, source)
    return settings, remote


def _check_remote(settings: SageMakerStackSettings, remote: RemoteExecution, source: str) -> None:
    problems = []
    if settings.orchestrator != "default" or settings.artifact_store != "default":
        problems.append(f"with '{REMOTE_KEY}' the recipe registers <stack>-orchestrator and <stack>-artifact-store; "
                        "remove the 'orchestrator' / 'artifact_store' keys")
    uri = settings.mlflow_tracking_uri or ""
    if not uri.startswith(("http://", "https://")):
        problems.append("SageMaker jobs cannot reach a local MLflow store: set 'mlflow_tracking_uri' to your "
                        "MLflow tracking server (http(s)://...)")
    for key in ("training_instance_type", "processing_instance_type"):
        value = getattr(settings, key)
        if value is not None and not re.match(INSTANCE_TYPE, value):
            problems.append(f"'{key}' is not a SageMaker instance type (e.g. ml.m5.xlarge): {value!r}")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))


def stack_settings(config: Config) -> SageMakerStackSettings:
    """Validated settings from a settings object, a mapping or a YAML file path."""
    return load_recipe(config)[0]


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


def remote_plan(settings: SageMakerStackSettings, remote: RemoteExecution) -> Dict[T, tuple]:
    """component type -> (name, flavor, configuration) for the remote-execution components."""
    stack = settings.stack_name
    orchestrator = {
        "execution_role": remote.execution_role_arn or settings.role_arn,
        "scheduler_role": remote.scheduler_role_arn,
        "region": settings.region, "bucket": settings.bucket, "aws_profile": settings.aws_profile,
        "instance_type": settings.processing_instance_type or DEFAULT_PROCESSING_INSTANCE_TYPE,
        "synchronous": remote.synchronous, "use_training_step": remote.use_training_step,
        "volume_size_in_gb": remote.volume_size_in_gb, "max_runtime_in_seconds": remote.max_runtime_in_seconds,
        "environment": dict(remote.environment) or None,
    }
    path = remote.artifact_store_path or f"s3://{settings.bucket}/{settings.prefix.strip('/')}/zenml"
    plan = {
        T.ORCHESTRATOR: (f"{stack}-orchestrator", "sagemaker", orchestrator),
        T.ARTIFACT_STORE: (f"{stack}-artifact-store", "s3", {"path": path.rstrip("/")}),
    }
    if not remote.image_builder:   # nothing is pushed: the default flavor holds the ECR URI for the stack validation
        plan[T.CONTAINER_REGISTRY] = (f"{stack}-container-registry", "default", {"uri": remote.container_registry_uri})
    else:              # ZenML logs Docker (or CodeBuild) into ECR to push the image it builds
        plan[T.CONTAINER_REGISTRY] = (f"{stack}-ecr", "aws", {"uri": remote.container_registry_uri})
        builder = {"code_build_project": remote.code_build_project} if remote.image_builder == "aws" else {}
        plan[T.IMAGE_BUILDER] = (f"{stack}-image-builder", remote.image_builder, builder)
    return plan


def tracker_config(settings: SageMakerStackSettings, remote: Optional[RemoteExecution]) -> Dict[str, Any]:
    if not settings.mlflow_tracking_uri:
        return {}
    configuration: Dict[str, Any] = {"tracking_uri": settings.mlflow_tracking_uri}
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


def stack_labels(settings: SageMakerStackSettings, remote: Optional[RemoteExecution]) -> Dict[str, Any]:
    """The labels the recipe sets (None: remove the label)."""
    labels: Dict[str, Any] = {key: None for key in LABELS}
    labels["automl_engine"] = AUTOML_ENGINE
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


def _ensure_tracker(client: Client, settings: SageMakerStackSettings, remote: Optional[RemoteExecution]) -> Optional[str]:
    """Create the MLflow tracker if missing; with remote execution, point it at the tracking server."""
    name, configuration = settings.experiment_tracker, tracker_config(settings, remote)
    try:
        existing = client.get_stack_component(T.EXPERIMENT_TRACKER, name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack_component(name=name, flavor="mlflow", component_type=T.EXPERIMENT_TRACKER,
                                      configuration=configuration)
        return "created"
    if remote is None:
        return None   # shared by name with the other stacks: keep it as it is
    return _ensure_component(client, T.EXPERIMENT_TRACKER, name, "mlflow", configuration)


def _require_secret(client: Client, remote: RemoteExecution) -> None:
    """The MLflow tracker's credentials live in a ZenML secret (never in the config): it must exist first."""
    try:
        client.get_secret(remote.mlflow_tracking_secret, allow_partial_name_match=False)
    except (KeyError, NotImplementedError):
        keys = "--token=..." if remote.mlflow_tracking_auth == "token" else "--username=... --password=..."
        raise ConfigError(f"the MLflow tracking server's credentials go into the ZenML secret "
                          f"'{remote.mlflow_tracking_secret}', which does not exist; create it first: "
                          f"zenml secret create {remote.mlflow_tracking_secret} {keys}") from None


def setup_sagemaker_stack(config: Config, activate: bool = True,
                          overrides: Optional[Mapping[T, Mapping[str, Any]]] = None) -> Dict[str, str]:
    """Register our AWS flavors, the components and the stack (idempotent); return what changed.

    ``overrides``: extra configuration per component type (e.g. faster polling in tests).
    """
    settings, remote = load_recipe(config)
    client = Client()
    if remote is not None:
        _require_secret(client, remote)
    changes: Dict[str, str] = {}
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
                raise ConfigError(f"{kind.value} '{name}' is not registered; register it first (e.g. `zenml "
                                  f"{kind.value.replace('_', '-')} register {name} ...`) or use 'default'") from None
        plan[T.ORCHESTRATOR] = (settings.orchestrator, None, None)
        plan[T.ARTIFACT_STORE] = (settings.artifact_store, None, None)
    components: Dict[T, List[str]] = {kind: [name] for kind, (name, _, _) in plan.items()}
    components[T.EXPERIMENT_TRACKER] = [tracker]
    for kind in MANAGED:
        components.setdefault(kind, [])
    labels = stack_labels(settings, remote)
    try:
        stack = client.get_stack(settings.stack_name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack(name=settings.stack_name, components={k: v for k, v in components.items() if v},
                            labels={k: v for k, v in labels.items() if v is not None})
        changes[settings.stack_name] = "created"
    else:
        current = {kind: [c.name for c in items] for kind, items in stack.components.items()}
        current_labels = stack.labels or {}
        stale_components = any(current.get(kind, []) != names for kind, names in components.items())
        stale_labels = any(current_labels.get(key) != value for key, value in labels.items())
        if stale_components or stale_labels:
            client.update_stack(settings.stack_name, component_updates=components if stale_components else None,
                                labels=labels if stale_labels else None)
            changes[settings.stack_name] = "updated"
    if activate and client.active_stack_model.name != settings.stack_name:
        client.activate_stack(settings.stack_name)
    return changes


# -- what a pipeline run on the stack needs (read from the stack's labels) -------------------
def pipeline_options(labels: Optional[Mapping[str, Any]], step_names: Optional[List[str]] = None) -> Dict[str, Any]:
    """``with_options`` keyword arguments for a run on a stack with these labels ({} off SageMaker).

    prebuilt image: ``DockerSettings(skip_build=True, parent_image=...)``, the code is archived to
    the artifact store; build: an image from requirements.lock. Training steps (those of
    ``step_names`` in TRAINING_STEPS) run on the ``training_instance_type``. Every step's job writes its
    output (and the SDK's debugger/profiler output) under ``job_output_uri``.
    """
    from zenml.config import DockerSettings

    labels = labels or {}
    path = labels.get("image_path")
    if path not in ("prebuilt", "build"):
        return {}
    if path == "prebuilt":
        from churn.image import current_tag, is_tagged

        image = labels["parent_image"]   # untagged: the image `run.py image build --push` pushes from this code
        docker = DockerSettings(skip_build=True, parent_image=image if is_tagged(image) else f"{image}:{current_tag()}",
                                allow_download_from_artifact_store=True)
    else:
        docker = DockerSettings(requirements="requirements.lock", python_package_installer="uv",
                                allow_download_from_artifact_store=True)
    options: Dict[str, Any] = {"settings": {"docker": docker}}
    if labels.get("job_output_uri"):
        options["settings"]["orchestrator"] = {"output_data_s3_uri": labels["job_output_uri"]}
    training = [name for name in TRAINING_STEPS if step_names is None or name in step_names]
    if labels.get("training_instance_type") and training:
        options["steps"] = {name: {"settings": {"orchestrator": {"instance_type": labels["training_instance_type"]}}}
                            for name in training}
    return options


def configure_for_stack(pipeline: Any, labels: Optional[Mapping[str, Any]]) -> Any:
    """``pipeline`` with the stack's run options applied (unchanged on stacks without them)."""
    code = getattr(getattr(pipeline, "entrypoint", None), "__code__", None)
    step_names = list(code.co_names) if code is not None else None   # the steps the pipeline function calls
    options = pipeline_options(labels, step_names)
    return pipeline.with_options(**options) if options else pipeline


def configure_for_active_stack(pipeline: Any) -> Any:
    """What ``run.py`` applies before calling a pipeline: the active stack's image and instance settings."""
    return configure_for_stack(pipeline, Client().active_stack_model.labels)


def cleanup_settings(settings: SageMakerStackSettings, include_registry: bool = False, include_s3: bool = False):
    """What ``python run.py cleanup`` removes on this stack (see churn.aws.cleanup): both variants' endpoints
    (and with ``include_registry`` their model package groups)."""
    from churn.aws.cleanup import CleanupSettings

    return CleanupSettings(region=settings.region, bucket=settings.bucket, prefix=settings.prefix,
                           endpoint_names=list(dict.fromkeys([settings.endpoint_name, settings.automl_endpoint_name])),
                           model_package_groups=list(dict.fromkeys([settings.model_package_group,
                                                                    settings.automl_model_package_group])),
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
                           "role_arn": d.role_arn, "aws_profile": d.aws_profile, "image_uri": d.image_uri}
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
        echo("(kept: " + ", ".join(x for x, flag in (("the model registry groups (--include-registry)", include_registry),
                                                     (f"s3://{settings.bucket}/{settings.prefix}/ (--include-s3)", include_s3))
                                  if not flag) + ")")
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
            changes = setup_sagemaker_stack(config_path, activate=True)
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
    @click.option("--role", type=click.Choice(["execution", "operator", "trust", "scheduler", "scheduler-trust"]),
                  default="execution", show_default=True)
    def iam(config_path: str, role: str) -> None:
        from churn.aws.iam import policy_values, render_policy

        names = {"execution": "execution_role_policy", "operator": "operator_policy", "trust": "trust_policy",
                 "scheduler": "scheduler_role_policy", "scheduler-trust": "scheduler_trust_policy"}
        try:
            settings, remote = load_recipe(config_path)
        except ConfigError as error:
            raise click.ClickException(str(error)) from None
        values = policy_values({**settings.model_dump(), "scheduler_role_arn": remote.scheduler_role_arn if remote else None})
        click.echo(json.dumps(render_policy(names[role], values), indent=2))

    return cli


if __name__ == "__main__":
    _cli()()

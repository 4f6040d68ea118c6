"""The SageMaker stack recipe (idempotent, no credentials) and cleanup (spec: Clean Up)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from churn.aws.cleanup import cleanup, plan_cleanup
from churn.config import ConfigError
from tests.cloud.conftest import ACCOUNT, BUCKET, PREFIX, REGION, ROLE_ARN, boto, stack_config

REPO = Path(__file__).resolve().parents[2]
ENDPOINT = "classification-model-endpoint"
MODEL = "classification-model-group"
AUTOML_ENDPOINT, AUTOML_MODEL = "automl-classification-endpoint", "classification-model-automl-group"


def test_recipe_is_idempotent_and_updates_changed_components(moto_server, sagemaker_stack):
    from zenml.client import Client
    from zenml.enums import StackComponentType as T

    from stacks.sagemaker.recipe import setup_sagemaker_stack

    name = f"recipe-{uuid.uuid4().hex[:8]}"
    created = setup_sagemaker_stack(stack_config(stack_name=name), activate=False)
    assert set(created) == {
        f"{name}-feature-store",
        f"{name}-model-registry",
        f"{name}-endpoint",
        f"{name}-sns-alerter",
        name,
    }
    assert setup_sagemaker_stack(stack_config(stack_name=name), activate=False) == {}
    changed = setup_sagemaker_stack(stack_config(stack_name=name, deploy_timeout_seconds=600), activate=False)
    assert changed == {f"{name}-endpoint": "updated"}
    deployer = Client().get_stack_component(T.MODEL_DEPLOYER, f"{name}-endpoint")
    assert deployer.configuration["deploy_timeout_seconds"] == 600
    # how an endpoint is served is the pipeline config's (DeploySettings): refused here, by name
    with pytest.raises(
        ConfigError,
        match="inference_instance_type, autoscaling_max_capacity: per-pipeline deploy "
        r"settings.*pipeline config \(configs/rf.yaml",
    ):
        setup_sagemaker_stack(
            stack_config(stack_name=name, inference_instance_type="ml.c5.xlarge", autoscaling_max_capacity=3),
            activate=False,
        )
    stack = Client().get_stack(name)
    assert stack.components[T.EXPERIMENT_TRACKER][0].name == "mlflow_tracker"
    assert stack.components[T.ORCHESTRATOR][0].name == "default"
    assert stack.labels == {"automl_engine": "sagemaker_autopilot"}  # churn.automl picks SageMaker Autopilot
    assert T.CONTAINER_REGISTRY not in stack.components and T.IMAGE_BUILDER not in stack.components


def test_recipe_registers_remote_execution_and_switches_image_paths(moto_server):
    """The sagemaker_orchestrator block: orchestrator, S3 artifact store, registry, image path (no submission here)."""
    from zenml.client import Client
    from zenml.enums import StackComponentType as T

    from pipelines.training import churn_automl_training, churn_rf_training
    from stacks.sagemaker.recipe import setup_sagemaker_stack
    from stacks.sagemaker.run_options import configure_for_stack, pipeline_options, pipeline_step_names
    from tests.cloud.test_orchestrator_submission import IMAGE, REGISTRY, SCHEDULER_ROLE_ARN, remote_stack_config

    name = f"remote-{uuid.uuid4().hex[:8]}"
    tracker = f"mlflow-{name}"  # not the session's shared `mlflow_tracker`: the block points it at a tracking server
    secret = f"mlflow-{name}"  # the tracking server's credentials: a ZenML secret, never the config

    def config(**remote):
        return {
            **remote_stack_config(name, **{"mlflow_tracking_secret": secret, **remote}),
            "experiment_tracker": tracker,
        }

    client = Client()
    with pytest.raises(
        ConfigError, match=f"create it first: zenml secret create {secret} --username=... --password=..."
    ):
        setup_sagemaker_stack(config(), activate=False)
    assert client.list_stacks(name=name).items == []  # refused before registering anything
    client.create_secret(secret, values={"username": "ci", "password": "test-only"})  # test values only

    created = setup_sagemaker_stack(config(), activate=False)
    assert created == {
        **{
            f"{name}-{part}": "created"
            for part in (
                "feature-store",
                "model-registry",
                "endpoint",
                "sns-alerter",
                "orchestrator",
                "artifact-store",
                "container-registry",
            )
        },
        tracker: "created",
        name: "created",
    }
    assert setup_sagemaker_stack(config(), activate=False) == {}
    stack = client.get_stack(name)
    assert {
        kind: [(c.name, c.flavor_name) for c in items]
        for kind, items in stack.components.items()
        if kind in (T.ORCHESTRATOR, T.ARTIFACT_STORE, T.CONTAINER_REGISTRY, T.IMAGE_BUILDER)
    } == {
        T.ORCHESTRATOR: [(f"{name}-orchestrator", "sagemaker")],
        T.ARTIFACT_STORE: [(f"{name}-artifact-store", "s3")],
        T.CONTAINER_REGISTRY: [(f"{name}-container-registry", "default")],
    }
    orchestrator = client.get_stack_component(T.ORCHESTRATOR, f"{name}-orchestrator").configuration
    assert {
        k: orchestrator.get(k)
        for k in ("execution_role", "scheduler_role", "region", "bucket", "instance_type", "environment")
    } == {
        "execution_role": ROLE_ARN,
        "scheduler_role": SCHEDULER_ROLE_ARN,
        "region": REGION,
        "bucket": BUCKET,
        "instance_type": "ml.m5.large",
        "environment": {"CHURN_STACK": name},
    }
    assert (
        client.get_stack_component(T.ARTIFACT_STORE, f"{name}-artifact-store").configuration["path"]
        == f"s3://{BUCKET}/{PREFIX}/zenml"
    )
    assert (
        client.get_stack_component(T.CONTAINER_REGISTRY, f"{name}-container-registry").configuration["uri"] == REGISTRY
    )
    mlflow = client.get_stack_component(T.EXPERIMENT_TRACKER, tracker).configuration
    assert (mlflow["tracking_uri"], mlflow["tracking_username"], mlflow["tracking_password"]) == (
        "https://mlflow.example.com",
        f"{{{{{secret}.username}}}}",
        f"{{{{{secret}.password}}}}",
    )
    assert stack.labels == {
        "automl_engine": "sagemaker_autopilot",
        "image_path": "prebuilt",
        "parent_image": IMAGE,
        "training_instance_type": "ml.c5.2xlarge",
        "job_output_uri": f"s3://{BUCKET}/{PREFIX}/sagemaker-jobs",
    }

    # what a run applies on this stack: the prebuilt image (no build), training steps on the training instance type
    rf = pipeline_options(stack.labels, pipeline_step_names(churn_rf_training))
    docker = rf["settings"]["docker"]
    assert (docker.skip_build, docker.parent_image, docker.allow_download_from_artifact_store) == (True, IMAGE, True)
    assert rf["steps"] == {"train_rf": {"settings": {"orchestrator": {"instance_type": "ml.c5.2xlarge"}}}}
    assert rf["settings"]["orchestrator"] == {"output_data_s3_uri": f"s3://{BUCKET}/{PREFIX}/sagemaker-jobs"}
    assert set(pipeline_options(stack.labels, pipeline_step_names(churn_automl_training))["steps"]) == {"train_automl"}
    assert configure_for_stack(churn_rf_training, {"automl_engine": "sagemaker_autopilot"}) is churn_rf_training

    # the image-builder path: ZenML builds from requirements.lock and pushes to ECR (aws registry flavor)
    changed = setup_sagemaker_stack(config(image=None, image_builder="local"), activate=False)
    assert changed == {f"{name}-ecr": "created", f"{name}-image-builder": "created", name: "updated"}
    stack = client.get_stack(name)
    assert [c.name for c in stack.components[T.CONTAINER_REGISTRY]] == [f"{name}-ecr"]
    assert [(c.name, c.flavor_name) for c in stack.components[T.IMAGE_BUILDER]] == [(f"{name}-image-builder", "local")]
    assert stack.labels["image_path"] == "build" and "parent_image" not in stack.labels
    docker = pipeline_options(stack.labels)["settings"]["docker"]
    assert not docker.skip_build and docker.requirements == "requirements.lock"
    assert setup_sagemaker_stack(config(image=None, image_builder="local"), activate=False) == {}

    # without the block: steps run here again, the remote-only components leave the stack
    assert setup_sagemaker_stack({**stack_config(stack_name=name), "experiment_tracker": tracker}, activate=False) == {
        name: "updated"
    }
    stack = client.get_stack(name)
    assert [c.name for c in stack.components[T.ORCHESTRATOR]] == ["default"]
    assert [c.name for c in stack.components[T.ARTIFACT_STORE]] == ["default"]
    assert T.CONTAINER_REGISTRY not in stack.components and T.IMAGE_BUILDER not in stack.components
    assert stack.labels == {"automl_engine": "sagemaker_autopilot"} and pipeline_options(stack.labels) == {}


def test_config_refuses_credentials_placeholders_and_unknown_keys():
    from stacks.sagemaker.config import stack_settings

    with pytest.raises(ConfigError, match="config key 'bucket' looks like an AWS credential"):
        stack_settings(stack_config(bucket="AKIA" + "IOSFODNN7EXAMPLE"))
    with pytest.raises(ConfigError, match="config key 'aws_profile' looks like an AWS credential"):
        stack_settings(stack_config(aws_profile="wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"))
    with pytest.raises(ConfigError, match="unknown key 'aws_secret_access_key'"):
        stack_settings(stack_config(aws_secret_access_key="x"))
    with pytest.raises(ConfigError, match="key 'role_arn'"):
        stack_settings(stack_config(role_arn="ML-Role-Pipelines"))

    example = REPO / "configs" / "sagemaker_stack.example.yaml"
    with pytest.raises(
        ConfigError, match=r"'role_arn' still holds a placeholder \(arn:aws:iam::ACCOUNT_ID:role/ML-Role-Pipelines\)"
    ):
        stack_settings(example)
    with pytest.raises(ConfigError, match=r"'mlflow_tracking_uri' still holds a placeholder"):
        stack_settings(yaml.safe_load(example.read_text().replace("ACCOUNT_ID", ACCOUNT)))
    filled = yaml.safe_load(
        example.read_text()
        .replace("ACCOUNT_ID", ACCOUNT)
        .replace("<your-mlflow-tracking-server>", "mlflow.example.com")
    )
    settings = stack_settings(filled)
    assert settings.region == "us-west-2" and settings.athena_output == "s3://mlbucket-sagemaker/athena-query-results/"
    from stacks.sagemaker.config import load_recipe
    from stacks.sagemaker.recipe import default_step_image

    settings, remote = load_recipe(filled)  # the example runs the steps in our image, prebuilt-image path
    assert remote.image is None and remote.image_builder is None
    assert default_step_image(settings, remote) == f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com/churn-mlops"
    assert remote.scheduler_role_arn == f"arn:aws:iam::{ACCOUNT}:role/ML-Role-Scheduler"


def test_cleanup_removes_endpoint_configs_models_schedules_then_registry_and_s3(
    aws, bucket, sagemaker_stack, trained_bundle, tmp_path
):
    from zenml.model_registries.base_model_registry import ModelRegistryModelMetadata

    from stacks.sagemaker.cleanup import cleanup_settings
    from stacks.sagemaker.config import stack_settings

    bundle, _ = trained_bundle
    sha256 = bundle.save(tmp_path / "bundle")
    version = sagemaker_stack.model_registry.register_model_version(
        name=MODEL,
        model_source_uri=str(tmp_path / "bundle"),
        metadata=ModelRegistryModelMetadata(approval_status="Approved", bundle_sha256=sha256),
    )
    deployer = sagemaker_stack.model_deployer
    deployer.deploy_bundle(ENDPOINT, MODEL, version.version, str(tmp_path / "bundle"), sha256)
    deployer.deploy_bundle(ENDPOINT, MODEL, version.version, str(tmp_path / "bundle"), sha256)
    automl_version = sagemaker_stack.model_registry.register_model_version(  # the AutoML variant's names
        name=AUTOML_MODEL,
        model_source_uri=str(tmp_path / "bundle"),
        metadata=ModelRegistryModelMetadata(approval_status="Approved", bundle_sha256=sha256),
    )
    deployer.deploy_bundle(AUTOML_ENDPOINT, AUTOML_MODEL, automl_version.version, str(tmp_path / "bundle"), sha256)
    scheduler, events = boto("scheduler"), boto("events")
    target = {"Arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/churn-rf-training-x", "RoleArn": ROLE_ARN}
    for schedule in ("churn-rf-training-0123456789abcdef", "someone-elses-schedule"):
        scheduler.create_schedule(
            Name=schedule, ScheduleExpression="cron(0 3 1 * ? *)", FlexibleTimeWindow={"Mode": "OFF"}, Target=target
        )
    events.put_rule(Name="churn-rf-training-monthly", ScheduleExpression="cron(0 0 1 * ? *)")
    events.put_targets(Rule="churn-rf-training-monthly", Targets=[{"Id": "training-poc-target", **target}])
    boto("s3").put_object(Bucket=BUCKET, Key="elsewhere/keep.txt", Body=b"not ours")

    settings = cleanup_settings(stack_settings(stack_config()))
    planned = [str(r) for r in plan_cleanup(settings)]
    assert f"endpoint {ENDPOINT}" in planned and "schedule churn-rf-training-0123456789abcdef" in planned
    assert f"endpoint {AUTOML_ENDPOINT}" in planned
    assert "eventbridge rule churn-rf-training-monthly" in planned
    assert sum(line.startswith("endpoint config + model") for line in planned) == 3
    assert not any("someone-elses" in line or "model package" in line or "s3" in line for line in planned)

    removed = cleanup(settings, progress=lambda _: None)
    assert f"autoscaling target of endpoint {ENDPOINT}" in removed and f"endpoint {ENDPOINT}" in removed
    assert f"endpoint {AUTOML_ENDPOINT}" in removed
    assert sum(line.startswith("endpoint config ") for line in removed) == 3
    assert sum(line.startswith("model ") for line in removed) == 3
    sagemaker = boto("sagemaker")
    assert sagemaker.list_endpoints()["Endpoints"] == [] and sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert sagemaker.list_models()["Models"] == []
    assert [s["Name"] for s in scheduler.list_schedules()["Schedules"]] == ["someone-elses-schedule"]
    assert events.list_rules(NamePrefix="churn-")["Rules"] == []
    assert len(sagemaker.list_model_packages(ModelPackageGroupName=MODEL)["ModelPackageSummaryList"]) == 1

    everything = cleanup_settings(stack_settings(stack_config()), include_registry=True, include_s3=True)
    removed = cleanup(everything, progress=lambda _: None)
    assert f"model package group {AUTOML_MODEL}" in removed
    assert f"model package group {MODEL}" in removed and any(
        line.endswith(f"under s3://{BUCKET}/{PREFIX}/") for line in removed
    )
    assert sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    keys = [o["Key"] for o in boto("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys == ["elsewhere/keep.txt"]
    assert cleanup(everything, progress=lambda _: None) == []  # nothing left: says so, removes nothing


def test_cleanup_command_asks_first_and_tells_what_it_removed(aws, bucket, tmp_path):
    from click.testing import CliRunner

    from run import cli

    boto("events").put_rule(Name="churn-rf-training-monthly", ScheduleExpression="cron(0 0 1 * ? *)")
    config = tmp_path / "stack.yaml"
    config.write_text(yaml.safe_dump(stack_config()))
    declined = CliRunner().invoke(cli, ["stack", "cleanup", "--config", str(config)], input="n\n")
    assert declined.exit_code == 0 and "Will remove:\n  eventbridge rule churn-rf-training-monthly" in declined.output
    assert "Nothing removed." in declined.output and boto("events").list_rules()["Rules"]
    done = CliRunner().invoke(cli, ["stack", "cleanup", "--config", str(config), "--yes"])
    assert done.exit_code == 0 and "Removed eventbridge rule churn-rf-training-monthly" in done.output
    assert boto("events").list_rules()["Rules"] == [] and "--no-cache" not in done.output
    boto("s3").put_object(Bucket=BUCKET, Key=f"{PREFIX}/zenml/artifact", Body=b"x")
    wiped = CliRunner().invoke(cli, ["stack", "cleanup", "--config", str(config), "--include-s3", "--yes"])
    assert wiped.exit_code == 0 and "run the next training with --no-cache" in wiped.output, wiped.output
    again = CliRunner().invoke(cli, ["stack", "cleanup", "--config", str(config), "--yes"])
    assert again.output.strip() == "Nothing to remove."
    bad = CliRunner().invoke(
        cli, ["stack", "cleanup", "--config", str(REPO / "configs" / "sagemaker_stack.example.yaml")]
    )
    assert bad.exit_code != 0 and "still holds a placeholder" in bad.output and "Traceback" not in bad.output


def test_run_py_cleanup_asks_the_active_stacks_deployer(aws, bucket, active_stack, trained_bundle, tmp_path):
    """`run.py cleanup` names no backend: the SageMaker deployer's cleanup removes the pipelines' endpoints."""
    from click.testing import CliRunner

    from run import cli

    bundle, _ = trained_bundle
    sha256 = bundle.save(tmp_path / "bundle")
    active_stack.model_deployer.deploy_bundle(ENDPOINT, MODEL, "1", str(tmp_path / "bundle"), sha256)
    declined = CliRunner().invoke(cli, ["cleanup"], input="n\n")
    assert declined.exit_code == 0 and f"endpoint {ENDPOINT}" in declined.output, declined.output
    assert "Nothing removed." in declined.output and boto("sagemaker").list_endpoints()["Endpoints"]
    done = CliRunner().invoke(cli, ["cleanup", "--yes"])
    assert done.exit_code == 0 and f"Removed endpoint {ENDPOINT}" in done.output, done.output
    assert boto("sagemaker").list_endpoints()["Endpoints"] == [] and boto("sagemaker").list_models()["Models"] == []

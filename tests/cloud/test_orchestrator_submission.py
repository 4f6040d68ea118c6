"""Issue 6 item 2: the rf pipeline submitted to the SageMaker orchestrator, against the emulator.

How far it goes, without Docker: all the way through ZenML's submission. ZenML refuses to
submit to a remote orchestrator from a local store ("Stacks with remote components such as
remote orchestrators ... require a remote ZenML server", zenml/stack/stack.py,
``prepare_pipeline_submission``). A store counts as local when the server's id equals the
client's user id (``ServerModel.is_local``), which is the case for ``zenml login --local``
in the same config directory. So the test starts a ZenML server (``zenml login --local``,
no Docker) in a config directory of its own and connects a client with a *different* config
directory over HTTP: to that client it is a remote server, as a deployed one would be.

On that server the recipe registers the stack (SageMaker orchestrator, S3 artifact store on
the emulator, container registry with the ECR URI, prebuilt-image path:
``DockerSettings(skip_build=True, parent_image=...)``: no image is built, the code is archived
to the S3 artifact store). The run is driven in a separate process (``DriverProcess``: run.py's
commands and plain Python in one process, to pay ZenML's imports once). The assertions read
the SageMaker pipeline back from the emulator: one training job step per pipeline step, the
configured instance types, role, image and environment, and one started execution. What the
emulator cannot do is run the jobs (moto marks the execution Succeeded at once; no container
runs), so the ZenML run stays "provisioning": no step executes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.conftest import ACCOUNT, BUCKET, PREFIX, REGION, ROLE_ARN, boto, stack_config

REPO = Path(__file__).resolve().parents[2]
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
IMAGE = f"{REGISTRY}/churn-mlops:1.0.0"
SCHEDULER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ML-Role-Scheduler"
TRAINING_INSTANCE, PROCESSING_INSTANCE = "ml.c5.2xlarge", "ml.m5.large"
RF_STEPS = ["source_features", "preprocess", "train_rf", "evaluate", "gate", "register", "deploy"]
MLFLOW_SECRET = "mlflow_tracking"
JOB_OUTPUT = f"s3://{BUCKET}/{PREFIX}/sagemaker-jobs"
# run.py applies the stack's run options (image, instance types) once it calls configure_for_active_stack;
# until then the test makes the same pipeline call itself (run.py alone would try to build an image).
RUN_PY_APPLIES_STACK_OPTIONS = "configure_for_active_stack" in (REPO / "run.py").read_text()


def remote_stack_config(stack_name: str, **remote: Any) -> dict:
    """A stack config with the SageMaker orchestrator (prebuilt-image path) on the emulator."""
    block = {
        "scheduler_role_arn": SCHEDULER_ROLE_ARN,
        "container_registry_uri": REGISTRY,
        "image": IMAGE,
        "mlflow_tracking_secret": MLFLOW_SECRET,
        "environment": {"CHURN_STACK": stack_name},
    }
    block.update(remote)
    return stack_config(
        stack_name=stack_name,
        mlflow_tracking_uri="https://mlflow.example.com",
        training_instance_type=TRAINING_INSTANCE,
        processing_instance_type=PROCESSING_INSTANCE,
        sagemaker_orchestrator=block,
    )


# -- a ZenML server the client sees as remote ----------------------------------------------
class RemoteZenML:
    """``zenml login --local`` (no Docker) in a config directory of its own, on a free loopback port."""

    def __init__(self) -> None:
        self.server_dir: str | None = None
        self.url: str | None = None
        self.pid: int | None = None
        self.start_seconds = 0.0

    def start(self) -> RemoteZenML:
        from churn.dashboard import start_zenml_dashboard
        from churn.net import free_port
        from tests.browser.servers import zenml_server_pid

        self.server_dir = tempfile.mkdtemp(prefix="churn-remote-zenml-")
        began = time.monotonic()
        try:
            self.url = start_zenml_dashboard(
                port=free_port(), config_path=self.server_dir, env={"ZENML_LOGGING_VERBOSITY": "WARN"}
            )
        finally:
            self.pid = zenml_server_pid(self.server_dir)
        self.start_seconds = time.monotonic() - began
        return self

    def client_env(self, client_dir: str, sagemaker_config: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_STORE_")}
        env.update(
            {
                "ZENML_CONFIG_PATH": client_dir,
                "ZENML_STORE_URL": self.url,
                "ZENML_STORE_USERNAME": "default",
                "ZENML_STORE_PASSWORD": "",
                "ZENML_LOGGING_VERBOSITY": "WARN",
                "ZENML_ANALYTICS_OPT_IN": "false",
                "ZENML_AUTO_OPEN_DASHBOARD": "false",
                "SAGEMAKER_USER_CONFIG_OVERRIDE": sagemaker_config,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            }
        )
        return env

    def stop(self) -> None:
        """Stop the server daemon we started (by its pid; ``zenml logout --local`` as a fallback)."""
        if self.server_dir is None:
            return
        from churn.dashboard import DashboardError, stop_zenml_dashboard
        from churn.processes import pid_alive

        if self.pid is not None and pid_alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        if self.pid is None or pid_alive(self.pid):
            try:
                stop_zenml_dashboard(config_path=self.server_dir, timeout=60)
            except (DashboardError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.server_dir, ignore_errors=True)
        self.server_dir = None


_SHARED: dict[str, RemoteZenML] = {}


@pytest.fixture(scope="session")
def remote_zenml(moto_server):
    """One server for the session (test_cloud_schedule.py imports this fixture too)."""
    if "server" not in _SHARED:
        _SHARED["server"] = RemoteZenML()
        try:
            _SHARED["server"].start()
        except Exception:
            _SHARED.pop("server").stop()
            raise
    yield _SHARED["server"]
    server = _SHARED.pop("server", None)
    if server is not None:
        server.stop()


# -- run.py and Python in one client process connected to that server ----------------------
_DRIVER = r"""
import json, os, sys, traceback
import botocore.client

# every AWS call this client process makes (ZenML's orchestrator and the SageMaker SDK included),
# for the IAM check of the operator's policy
_make_api_call = botocore.client.BaseClient._make_api_call


def _record(client, operation_name, api_params):
    model = client.meta.service_model
    with open(os.environ["CHURN_TEST_AWS_CALLS"], "a") as calls:
        calls.write(json.dumps({"service": model.service_name, "signing_name": model.signing_name,
                                "operation": operation_name, "params": api_params,
                                "region": client.meta.region_name}, default=str) + "\n")


def _recorded(self, operation_name, api_params):
    _record(self, operation_name, api_params)
    return _make_api_call(self, operation_name, api_params)


botocore.client.BaseClient._make_api_call = _recorded
import aiobotocore.client  # the S3 artifact store goes through s3fs, i.e. aiobotocore
_make_async_call = aiobotocore.client.AioBaseClient._make_api_call


async def _recorded_async(self, operation_name, api_params):
    _record(self, operation_name, api_params)
    return await _make_async_call(self, operation_name, api_params)


aiobotocore.client.AioBaseClient._make_api_call = _recorded_async
from zenml.utils import source_utils
source_utils.set_custom_source_root(sys.argv[1])
from click.testing import CliRunner
import run as run_py
namespace = {}
for line in sys.stdin:
    request = json.loads(line)
    began = __import__("time").monotonic()
    try:
        if "cli" in request:
            result = CliRunner().invoke(run_py.cli, request["cli"])
            error = None
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                error = "".join(traceback.format_exception(*result.exc_info))
            reply = {"exit_code": result.exit_code, "output": result.output, "error": error}
        else:
            namespace.pop("result", None)
            exec(request["exec"], namespace)
            reply = {"result": namespace.get("result"), "error": None}
    except BaseException:
        reply = {"error": traceback.format_exc()}
    reply["seconds"] = round(__import__("time").monotonic() - began, 1)
    print("@@REPLY " + json.dumps(reply, default=str), flush=True)
"""


class DriverProcess:
    """A client process of the remote server: ``cli([...])`` runs a run.py command, ``py(code)`` runs code
    (its ``result`` variable comes back). Output other than the replies goes to ``log``."""

    def __init__(self, server: RemoteZenML, workdir: Path):
        sagemaker_config = workdir / "sagemaker-sdk.yaml"  # the SDK's telemetry would call AWS directly
        sagemaker_config.write_text(
            "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
        )
        client_dir = workdir / "zenml-client"
        client_dir.mkdir()
        self.log_path = workdir / "driver.log"
        self.log: list[str] = []
        self.calls_path = workdir / "aws-calls.jsonl"
        self.calls_path.touch()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _DRIVER, str(REPO)],
            cwd=str(REPO),
            env={
                **server.client_env(str(client_dir), str(sagemaker_config)),
                "CHURN_TEST_AWS_CALLS": str(self.calls_path),
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def _ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith("@@REPLY "):
                return json.loads(line[len("@@REPLY ") :])
            self.log.append(line)
        raise AssertionError(f"the driver process exited ({self.process.wait()}):\n{''.join(self.log[-40:])}")

    def cli(self, args: list[str]) -> dict:
        reply = self._ask({"cli": args})
        assert reply.get("error") is None, reply["error"]
        return reply

    def py(self, code: str) -> Any:
        reply = self._ask({"exec": code})
        assert reply["error"] is None, reply["error"]
        return reply["result"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log_path.write_text("".join(self.log) + (self.process.stdout.read() or ""))


@pytest.fixture
def driver(remote_zenml, tmp_path):
    process = DriverProcess(remote_zenml, tmp_path)
    yield process
    process.close()


def assert_operator_policy_allows(driver: DriverProcess, config: dict) -> list:
    """Every AWS call the driver made (as the person operating the stack) is allowed by stacks/iam."""
    from churn.aws.clients import ApiCall
    from churn.aws.iam import policy_values
    from tests.cloud.iam_check import load_role_policies, violations

    calls = [ApiCall(role="operator", **json.loads(line)) for line in driver.calls_path.read_text().splitlines()]
    problems = violations(calls, load_role_policies(policy_values(config)), ACCOUNT)
    assert not problems, "not allowed by stacks/iam:\n" + "\n".join(problems)
    return calls


def setup_remote_stack(driver: DriverProcess, config: dict, path: Path) -> list[dict]:
    """The MLflow secret (test values) and ``run.py stack setup sagemaker`` twice; returns both replies."""
    import yaml

    driver.py(f"""
from zenml.client import Client
try:
    Client().get_secret({MLFLOW_SECRET!r})
except KeyError:
    Client().create_secret({MLFLOW_SECRET!r}, values={{"username": "ci", "password": "test-only"}})
""")
    path.write_text(yaml.safe_dump(config))
    return [driver.cli(["stack", "setup", "sagemaker", "--config", str(path)]) for _ in range(2)]


def test_rf_pipeline_is_submitted_to_the_sagemaker_orchestrator(aws, bucket, driver, remote_zenml, tmp_path):
    name = "sm-remote-submit"
    first, second = setup_remote_stack(driver, remote_stack_config(name), tmp_path / "stack.yaml")
    assert first["exit_code"] == 0, first["output"]
    for component in (
        f"{name}-orchestrator created",
        f"{name}-artifact-store created",
        f"{name}-container-registry created",
        f"{name} created",
    ):
        assert component in first["output"]
    assert second["exit_code"] == 0 and "(nothing changed)" in second["output"], second["output"]

    stack = driver.py("""
from zenml.client import Client
client = Client()
model = client.active_stack_model
result = {"store": client.zen_store.type.value, "local_store": client.zen_store.is_local_store(), "name": model.name,
          "labels": model.labels,
          "components": {k.value: [(c.name, c.flavor_name) for c in v] for k, v in model.components.items()}}
""")
    assert stack["store"] == "rest" and stack["local_store"] is False and stack["name"] == name
    assert stack["labels"] == {
        "automl_engine": "sagemaker_autopilot",
        "image_path": "prebuilt",
        "parent_image": IMAGE,
        "training_instance_type": TRAINING_INSTANCE,
        "job_output_uri": JOB_OUTPUT,
    }
    assert stack["components"]["orchestrator"] == [[f"{name}-orchestrator", "sagemaker"]]
    assert stack["components"]["artifact_store"] == [[f"{name}-artifact-store", "s3"]]
    assert stack["components"]["container_registry"] == [[f"{name}-container-registry", "default"]]
    assert "image_builder" not in stack["components"]

    if RUN_PY_APPLIES_STACK_OPTIONS:  # `python run.py --variant rf` itself
        ran = driver.cli(["--variant", "rf", "--no-cache"])
        assert ran["exit_code"] == 0, ran["output"]
    else:  # what run.py does for `--variant rf`, with the stack's run options applied
        driver.py("""
from churn.config import load_config
from pipelines.training import churn_rf_training
from stacks.sagemaker.run_options import configure_for_active_stack
configure_for_active_stack(churn_rf_training.with_options(enable_cache=False))(config=load_config("configs/rf.yaml").model_dump())
""")
    submitted = driver.py("""
from zenml.client import Client
[run] = Client().list_pipeline_runs(
    pipeline_name="churn_rf_training", sort_by="desc:created", size=1, hydrate=True
).items
result = {"status": run.status.value, "metadata": {k: str(v) for k, v in run.run_metadata.items()},
          "build_images": [item.image for item in run.build.images.values()] if run.build else None}
""")
    sagemaker = boto("sagemaker")
    [summary] = sagemaker.list_pipelines()["PipelineSummaries"]
    pipeline_name = summary["PipelineName"]
    assert pipeline_name.startswith("churn-rf-training-")
    described = sagemaker.describe_pipeline(PipelineName=pipeline_name)
    assert described["RoleArn"] == ROLE_ARN
    steps = json.loads(described["PipelineDefinition"])["Steps"]
    assert [s["Name"] for s in steps] == RF_STEPS  # one SageMaker job per step
    for step in steps:
        arguments = step["Arguments"]
        assert step["Type"] == "Training" and arguments["RoleArn"] == ROLE_ARN
        assert arguments["AlgorithmSpecification"]["TrainingImage"] == IMAGE
        assert arguments["AlgorithmSpecification"]["ContainerArguments"][-2:] == ["--step_name", step["Name"]]
        expected = TRAINING_INSTANCE if step["Name"] == "train_rf" else PROCESSING_INSTANCE
        assert arguments["ResourceConfig"]["InstanceType"] == expected, step["Name"]
        # the job writes under the stack's prefix, where the execution role may write (not s3://bucket/<job>/)
        outputs = {
            "OutputDataConfig": arguments["OutputDataConfig"]["S3OutputPath"],
            **{
                key: arguments[key]["S3OutputPath"] for key in ("DebugHookConfig", "ProfilerConfig") if key in arguments
            },
        }
        assert all(uri.startswith(JOB_OUTPUT) for uri in outputs.values()), (step["Name"], outputs)
        environment = arguments["Environment"]
        assert environment["ZENML_STORE_URL"] == remote_zenml.url and environment["CHURN_STACK"] == name
    [execution] = sagemaker.list_pipeline_executions(PipelineName=pipeline_name)["PipelineExecutionSummaries"]
    assert submitted["metadata"]["pipeline_execution_arn"] == execution["PipelineExecutionArn"]
    assert submitted["build_images"] == [IMAGE]  # skip_build: the prebuilt image, no build
    assert submitted["status"] in ("initializing", "provisioning", "running")  # no job runs on the emulator
    keys = [o["Key"] for o in boto("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/zenml/").get("Contents", [])]
    assert any(k.startswith(f"{PREFIX}/zenml/code_uploads/") and k.endswith(".tar.gz") for k in keys), keys

    # everything the person submitting did in AWS is allowed by the operator's documents (stacks/iam)
    calls = assert_operator_policy_allows(driver, remote_stack_config(name))
    assert {c.operation for c in calls} >= {"CreatePipeline", "StartPipelineExecution", "PutObject"}


def test_recipe_refuses_an_incomplete_remote_block():
    from churn.config import ConfigError
    from stacks.sagemaker.config import load_recipe
    from stacks.sagemaker.recipe import stack_labels
    from stacks.sagemaker.run_options import pipeline_options

    labels = stack_labels(*load_recipe(remote_stack_config("x", image=None)))  # no image: our image in the registry
    assert (labels["image_path"], labels["parent_image"]) == ("prebuilt", f"{REGISTRY}/churn-mlops")
    from churn.image import content_tag

    assert pipeline_options(labels)["settings"]["docker"].parent_image == f"{REGISTRY}/churn-mlops:{content_tag()}"
    with pytest.raises(ConfigError, match="set at most one of 'image'"):
        load_recipe(remote_stack_config("x", image_builder="local"))
    with pytest.raises(ConfigError, match="image_builder 'aws' needs 'code_build_project'"):
        load_recipe(remote_stack_config("x", image=None, image_builder="aws"))
    with pytest.raises(ConfigError, match="is not in container_registry_uri"):
        load_recipe(remote_stack_config("x", image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/other:1"))
    with pytest.raises(ConfigError, match="set 'mlflow_tracking_uri' to your MLflow tracking server"):
        load_recipe({**remote_stack_config("x"), "mlflow_tracking_uri": None})
    with pytest.raises(ConfigError, match="remove the 'orchestrator' / 'artifact_store' keys"):
        load_recipe({**remote_stack_config("x"), "orchestrator": "my-orchestrator"})
    with pytest.raises(ConfigError, match=r"'sagemaker_orchestrator.container_registry_uri' still holds a placeholder"):
        load_recipe(remote_stack_config("x", container_registry_uri="ACCOUNT_ID.dkr.ecr.us-west-2.amazonaws.com"))
    with pytest.raises(
        ConfigError, match=r"config key 'sagemaker_orchestrator.environment.KEY' looks like an AWS credential"
    ):
        load_recipe(remote_stack_config("x", environment={"KEY": "AKIA" + "IOSFODNN7EXAMPLE"}))

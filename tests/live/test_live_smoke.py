"""Live smoke test on a real AWS sandbox account: opt-in, never run by CI.

    CHURN_LIVE_AWS=1 CHURN_LIVE_STACK_CONFIG=/path/to/your/sagemaker_stack.yaml \\
        .venv/bin/python -m pytest tests/live -s

Credentials come from the environment (AWS_PROFILE, AWS_ACCESS_KEY_ID..., SSO, or an attached
role); the stack config is yours (start from configs/sagemaker_stack.example.yaml; only its
account-level keys are read: region, bucket, prefix, role_arn, aws_profile, image). Optional:
CHURN_LIVE_INSTANCE_TYPE (default ml.m5.large; must be non-burstable, e.g. ml.c5.large).

What it does, with the product's own functions (churn.aws.*, the ones the emulator tests run):
1. ingest: creates a feature group ``churn-live-<id>`` and ingests a handful of demo records
   (``churn.aws.feature_store.FeatureGroupClient.ingest``);
2. register: trains a tiny RandomForest on them and registers it in a model package group
   ``churn-live-<id>`` as Approved (``churn.aws.registry.ModelPackageClient.register``);
3. deploy: serves it at endpoint ``churn-live-<id>`` on one small non-burstable instance, autoscaling 1-1
   (``churn.aws.endpoint.SageMakerEndpoints.deploy``) and invokes it with CSV;
4. removes everything it created, in ``finally`` (endpoint, configs, models, autoscaling target,
   model packages and group, feature group, and every S3 object under ``<prefix>/live-smoke/<id>/``,
   where it writes everything; offline-store files that Feature Store delivers after the delete,
   up to ~15 minutes later, land there too: the printed prefix says where to look);
and prints what it created and how long each phase took. Cost: one ml.m5.large endpoint for
roughly 10 minutes, plus a few cents of S3/Feature Store writes.
"""

from __future__ import annotations

import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

LIVE = os.environ.get("CHURN_LIVE_AWS") == "1"
pytestmark = pytest.mark.skipif(
    not LIVE,
    reason="live AWS smoke test: opt in with CHURN_LIVE_AWS=1 and "
    "CHURN_LIVE_STACK_CONFIG=<your stack config> (README: Live smoke test)",
)
NON_BURSTABLE = ("ml.m5.large", "ml.c5.large", "ml.m5.xlarge", "ml.c5.xlarge")


class Phases:
    """Timings and created resources, printed at the end whatever happened."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.created: list[str] = []
        self.removed: list[str] = []

    @contextmanager
    def phase(self, name: str):
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = time.monotonic() - started

    def report(self) -> str:
        lines = ["", "live smoke test:", "  created:"] + [f"    {c}" for c in self.created]
        lines += ["  removed:"] + [f"    {r}" for r in self.removed]
        lines += ["  phases:"] + [f"    {name:<10} {seconds:7.1f} s" for name, seconds in self.timings.items()]
        return "\n".join(lines)


def _settings():
    from stacks.sagemaker.config import stack_settings

    path = os.environ.get("CHURN_LIVE_STACK_CONFIG")
    if not path:
        pytest.fail(
            "set CHURN_LIVE_STACK_CONFIG to your stack config (start from configs/sagemaker_stack.example.yaml)"
        )
    return stack_settings(path)


def test_ingest_register_deploy_invoke_and_remove_on_a_sandbox_account(tmp_path: Path):
    from churn.aws import s3
    from churn.aws.athena import Polling
    from churn.aws.clients import client
    from churn.aws.endpoint import EndpointSettings, SageMakerEndpoints
    from churn.aws.feature_store import FeatureGroupClient
    from churn.aws.registry import ModelPackageClient
    from churn.config import DeploySettings
    from churn.demo_data import generate_customers
    from churn.preprocessing import Preprocessor
    from churn.training import train_random_forest

    settings = _settings()
    instance_type = os.environ.get("CHURN_LIVE_INSTANCE_TYPE", "ml.m5.large")
    assert instance_type in NON_BURSTABLE, f"use a small non-burstable instance type ({', '.join(NON_BURSTABLE)})"
    name = f"churn-live-{uuid.uuid4().hex[:8]}"
    # everything it writes goes under one prefix of its own (registry pointers included), removed at the end
    prefix = f"{settings.prefix.strip('/')}/live-smoke/{name}"
    root = f"s3://{settings.bucket}/{prefix}"
    offline = f"{root}/feature-store"
    phases = Phases()
    region, profile = settings.region, settings.aws_profile
    store = FeatureGroupClient(
        region,
        settings.role_arn,
        offline,
        settings.athena_output,
        athena_workgroup=settings.athena_workgroup,
        enable_online_store=True,
        max_workers=2,
        profile=profile,
    )
    registry = ModelPackageClient(region, settings.bucket, prefix, image_uri=settings.image_uri, profile=profile)
    endpoints = SageMakerEndpoints(
        EndpointSettings(
            region=region,
            role_arn=settings.role_arn,
            bucket=settings.bucket,
            prefix=prefix,
            image_uri=settings.image_uri,
            polling=Polling(initial=15.0, maximum=30.0, timeout=settings.deploy_timeout_seconds),
            profile=profile,
        )
    )
    frame = generate_customers(40, seed=7)
    failures: list[str] = []
    try:
        with phases.phase("ingest"):
            phases.created.append(f"feature group {name} (offline store {offline})")
            summary = store.ingest(name, frame, "churn")
            assert summary["records"] == len(frame)

        with phases.phase("register"):
            preprocessor = Preprocessor.fit(frame, "churn")
            bundle = train_random_forest(frame, preprocessor, {"n_estimators": 10, "max_depth": 3}, 7)
            bundle_dir = tmp_path / "bundle"
            sha256 = bundle.save(bundle_dir)
            phases.created.append(f"model package group {name} (objects under {root}/registry/)")
            package = registry.register(
                name, str(bundle_dir), sha256, {"live_smoke_test": name}, approval_status="Approved"
            )
            version = str(package["ModelPackageVersion"])

        with phases.phase("deploy"):
            phases.created.append(f"endpoint {name} on {instance_type} (config, model, autoscaling target)")
            deployed = endpoints.deploy(
                name,
                name,
                version,
                str(bundle_dir),
                sha256,
                settings=DeploySettings(
                    inference_instance_type=instance_type, autoscaling_min_capacity=1, autoscaling_max_capacity=1
                ),
            )
            assert deployed["instance_type"] == instance_type

        with phases.phase("invoke"):
            rows = frame.drop(columns=["churn"]).iloc[:5]
            response = endpoints.invoke(name, rows.to_csv(index=False).encode(), "text/csv", "text/csv")
            assert response.status_code == 200, response.text
            assert response.text.splitlines() == [str(v) for v in bundle.predict(rows)]
    finally:
        with phases.phase("remove"):
            sm = client("sagemaker", region, profile)
            steps = [
                ("endpoint", lambda: phases.removed.extend(endpoints.delete(name))),
                ("registry", lambda: phases.removed.extend(registry.delete_group(name))),
                (
                    "feature group",
                    lambda: (
                        sm.delete_feature_group(FeatureGroupName=name),
                        phases.removed.append(f"feature group {name}"),
                    ),
                ),
            ]
            steps.append(
                (
                    root,
                    lambda: phases.removed.append(
                        f"{s3.delete_prefix(root + '/', region, profile)} S3 objects under {root}/"
                    ),
                )
            )
            for what, remove in steps:
                try:
                    remove()
                except Exception as error:  # noqa: BLE001 - try every removal; report what is left
                    failures.append(f"{what}: {error}")
        print(phases.report())
        if failures:
            print("  NOT removed (remove by hand):\n    " + "\n    ".join(failures))
    assert not failures, "some resources were not removed (see above)"

"""SageMaker endpoint deployer against the emulator: create, update, autoscaling, rollback, invoke."""

from __future__ import annotations

import json
import logging

import pytest

from churn.aws.athena import Polling
from churn.aws.autoscaling import autoscaling_decision
from churn.aws.endpoint import EndpointSettings, SageMakerEndpoints
from churn.config import DeploySettings
from tests.cloud import moto_extensions as emulator
from tests.cloud.conftest import BUCKET, PREFIX, REGION, ROLE_ARN, boto

ENDPOINT = "classification-model-endpoint"
MODEL = "classification-model-group"
RESOURCE = f"endpoint/{ENDPOINT}/variant/AllTraffic"


@pytest.fixture
def bundles(trained_bundle, tmp_path):
    """Two different bundles (v1, v2) saved as the register step leaves them."""
    from sklearn.ensemble import RandomForestClassifier

    from churn.bundle import ModelBundle

    bundle, split = trained_bundle
    first = tmp_path / "v1"
    sha1 = bundle.save(first)
    pre = bundle.preprocessor
    matrix, _ = pre.transform(split.train)
    other = ModelBundle(
        RandomForestClassifier(n_estimators=5, max_depth=3, random_state=1).fit(matrix, split.train["churn"]), pre
    )
    sha2 = other.save(tmp_path / "v2")
    return {"1": (str(first), sha1, bundle), "2": (str(tmp_path / "v2"), sha2, other)}, split


def _scaling(resource: str = RESOURCE):
    client = boto("application-autoscaling")
    targets = client.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])["ScalableTargets"]
    policies = client.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)["ScalingPolicies"]
    return targets, policies


def test_create_then_update_to_a_new_version_with_autoscaling(aws, bucket, sagemaker_stack, bundles):
    deployer = sagemaker_stack.model_deployer
    (uri1, sha1, bundle1), (uri2, sha2, bundle2) = bundles[0]["1"], bundles[0]["2"]
    split = bundles[1]
    assert deployer.endpoint_url(ENDPOINT) is None

    first = deployer.deploy_bundle(ENDPOINT, MODEL, "1", uri1, sha1, {"mlflow_run_id": "abc", "zenml_run_id": "r1"})
    assert first["endpoint_name"] == ENDPOINT and first["version"] == "1" and first["sha256"] == sha1
    assert first["url"].startswith("https://us-west-2.console.aws.amazon.com/sagemaker/")
    assert (
        first["invocations_url"]
        == f"https://runtime.sagemaker.us-west-2.amazonaws.com/endpoints/{ENDPOINT}/invocations"
    )
    assert first["previous_endpoint_config"] == "" and first["model_data_url"].startswith(
        f"s3://{BUCKET}/{PREFIX}/endpoints/"
    )
    described = boto("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert (
        described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == first["endpoint_config_name"]
    )
    variant = boto("sagemaker").describe_endpoint_config(EndpointConfigName=first["endpoint_config_name"])[
        "ProductionVariants"
    ][0]
    assert variant["InstanceType"] == "ml.m5.xlarge" and variant["ModelName"] == first["sagemaker_model_name"]
    model = boto("sagemaker").describe_model(ModelName=first["sagemaker_model_name"])
    assert model["ExecutionRoleArn"] == ROLE_ARN
    assert model["PrimaryContainer"]["Environment"]["CHURN_BUNDLE_SHA256"] == sha1  # serve verifies the bundle with it

    # autoscaling: ml.m5 gets a scalable target and a target-tracking policy
    assert first["autoscaling"]["enabled"]
    targets, policies = _scaling()
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [(1, 5)]
    config = policies[0]["TargetTrackingScalingPolicyConfiguration"]
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"

    # the endpoint runs our image's `serve` over the packaged model.tar.gz (the local endpoint's server)
    rows = split.test.iloc[:25]
    response = deployer.invoke(ENDPOINT, rows.to_csv(index=False).encode(), "text/csv", "text/csv")
    assert response.status_code == 200 and response.headers["Content-Type"].split(";")[0] == "text/csv", response.text
    assert response.text.splitlines() == [str(v) for v in bundle1.predict(rows)]
    bare = boto("sagemaker-runtime").invoke_endpoint(
        EndpointName=ENDPOINT,
        ContentType="text/csv",  # no Accept: CSV
        Body=rows.to_csv(index=False).encode(),
    )
    assert bare["ContentType"].split(";")[0] == "text/csv" and bare["Body"].read().decode() == response.text
    bad = deployer.invoke(ENDPOINT, b"age\n", "text/csv", "text/csv")  # a 4xx naming the problem
    assert bad.status_code == 400 and "no data rows" in bad.text

    # update to v2: same endpoint, new config; the instance count autoscaling chose is kept
    boto("sagemaker").update_endpoint_weights_and_capacities(
        EndpointName=ENDPOINT, DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}]
    )
    second = deployer.deploy_bundle(ENDPOINT, MODEL, "2", uri2, sha2)
    assert second["previous_endpoint_config"] == first["endpoint_config_name"]
    described = boto("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert described["EndpointConfigName"] == second["endpoint_config_name"]
    assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 3
    response = deployer.invoke(ENDPOINT, rows.to_csv(index=False).encode(), "text/csv", "text/csv", probabilities=True)
    document = json.loads(response.text)
    assert response.status_code == 200 and document["predictions"] == bundle2.predict(rows).tolist()
    assert len(document["probabilities"]) == len(rows)
    # v1's config was kept for a rollback; a third deployment prunes it
    third = deployer.deploy_bundle(ENDPOINT, MODEL, "1", uri1, sha1)
    names = {c["EndpointConfigName"] for c in boto("sagemaker").list_endpoint_configs()["EndpointConfigs"]}
    assert names == {third["endpoint_config_name"], second["endpoint_config_name"]}
    assert first["sagemaker_model_name"] not in {m["ModelName"] for m in boto("sagemaker").list_models()["Models"]}

    listed = deployer.list_endpoints()
    assert [(e["endpoint_name"], e["version"], e["running"]) for e in listed] == [(ENDPOINT, "1", True)]
    assert deployer.endpoint_url(ENDPOINT) == first["invocations_url"]


def test_burstable_instances_skip_autoscaling_with_a_logged_reason(aws, bucket, bundles, caplog):
    from churn.aws.endpoint import DeploymentError

    (uri1, sha1, _) = bundles[0]["1"]
    settings = dict(
        region=REGION,
        role_arn=ROLE_ARN,
        bucket=BUCKET,
        prefix=PREFIX,
        polling=Polling(initial=0.01, maximum=0.05, timeout=30),
    )

    endpoints = SageMakerEndpoints(EndpointSettings(**settings), progress=lambda _: None)

    def on(instance_type: str) -> DeploySettings:
        return DeploySettings(inference_instance_type=instance_type)

    endpoints.deploy(ENDPOINT, MODEL, "1", uri1, sha1, settings=on("ml.m5.large"))
    assert len(_scaling()[0]) == 1
    # another non-burstable type: SageMaker requires autoscaling off during the type change; it is back after
    changed = endpoints.deploy(ENDPOINT, MODEL, "1", uri1, sha1, settings=on("ml.c5.xlarge"))
    assert changed["autoscaling"]["enabled"] and len(_scaling()[0]) == 1 and len(_scaling()[1]) == 1
    with caplog.at_level(logging.WARNING, logger="churn.aws.autoscaling"):
        result = endpoints.deploy(ENDPOINT, MODEL, "1", uri1, sha1, settings=on("ml.t2.medium"))
    assert not result["autoscaling"]["enabled"] and "ml.t2.medium is a burstable instance type" in caplog.text
    assert _scaling() == ([], [])  # the m5 target was removed

    endpoints.autoscaling.configure(ENDPOINT, on("ml.m5.large"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="churn.aws.autoscaling"):
        skipped = endpoints.autoscaling.configure(ENDPOINT, on("ml.t3.medium"))
    assert not skipped["enabled"] and "autoscaling skipped: ml.t3.medium is a burstable instance type" in caplog.text
    assert _scaling() == ([], [])
    for kind in ("ml.t2.medium", "ml.t3.medium", "ml.t3a.large", "ml.t4g.small"):
        assert not autoscaling_decision(kind, True)[0]
    assert autoscaling_decision("ml.c5.xlarge", True)[0] and not autoscaling_decision("ml.m5.xlarge", False)[0]

    # SageMaker real-time hosting offers no ml.t3: refused up front, with the alternatives, nothing created
    configs = boto("sagemaker").list_endpoint_configs()["EndpointConfigs"]
    with pytest.raises(DeploymentError, match=r"ml.t3.medium is not an instance type .*\(ml.t2.medium"):
        endpoints.deploy(ENDPOINT, MODEL, "1", uri1, sha1, settings=on("ml.t3.medium"))
    assert boto("sagemaker").list_endpoint_configs()["EndpointConfigs"] == configs


def test_a_failed_update_rolls_back_to_the_previous_config(aws, bucket, sagemaker_stack, bundles):
    from stacks.contracts import DeploymentError

    deployer = sagemaker_stack.model_deployer
    (uri1, sha1, bundle1), (uri2, sha2, _) = bundles[0]["1"], bundles[0]["2"]
    first = deployer.deploy_bundle(ENDPOINT, MODEL, "1", uri1, sha1)
    emulator.fail_next_endpoint_change(ENDPOINT)
    with pytest.raises(
        DeploymentError,
        match=rf"update to {MODEL} v2 failed \(injected: .*\); rolled back to the "
        rf"previous endpoint config '{first['endpoint_config_name']}'",
    ):
        deployer.deploy_bundle(ENDPOINT, MODEL, "2", uri2, sha2)
    described = boto("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert (
        described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == first["endpoint_config_name"]
    )
    configs = [c["EndpointConfigName"] for c in boto("sagemaker").list_endpoint_configs()["EndpointConfigs"]]
    assert configs == [first["endpoint_config_name"]]  # the failed version's config is gone
    rows = bundles[1].test.iloc[:5]
    assert deployer.invoke(ENDPOINT, rows.to_csv(index=False).encode()).text.splitlines() == [
        str(v) for v in bundle1.predict(rows)
    ]


def test_a_failed_first_deployment_leaves_nothing_behind(aws, bucket, sagemaker_stack, bundles):
    from stacks.contracts import DeploymentError

    (uri1, sha1, _) = bundles[0]["1"]
    emulator.fail_next_endpoint_change(ENDPOINT, "injected: capacity error")
    with pytest.raises(DeploymentError, match="could not be created .*capacity error.*deleted"):
        sagemaker_stack.model_deployer.deploy_bundle(ENDPOINT, MODEL, "1", uri1, sha1)
    assert boto("sagemaker").list_endpoints()["Endpoints"] == []
    assert boto("sagemaker").list_endpoint_configs()["EndpointConfigs"] == []
    assert boto("sagemaker").list_models()["Models"] == []


def test_the_deploy_settings_passed_in_are_the_ones_applied(aws, bucket, sagemaker_stack, bundles):
    """The deployer has no instance type or autoscaling of its own: each deployment says (DeploySettings)."""
    deployer = sagemaker_stack.model_deployer
    assert deployer.unused_settings() == []  # the SageMaker deployer applies every deploy key
    (uri1, sha1, _) = bundles[0]["1"]
    settings = DeploySettings(
        inference_instance_type="ml.c5.large",
        initial_instance_count=2,
        autoscaling_min_capacity=2,
        autoscaling_max_capacity=4,
    )
    deployed = deployer.deploy_bundle(ENDPOINT, MODEL, "1", uri1, sha1, settings=settings)
    [variant] = boto("sagemaker").describe_endpoint_config(EndpointConfigName=deployed["endpoint_config_name"])[
        "ProductionVariants"
    ]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.large", 2)
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in _scaling()[0]] == [(2, 4)]
    off = deployer.deploy_bundle(
        ENDPOINT, MODEL, "1", uri1, sha1, settings=settings.model_copy(update={"enable_autoscaling": False})
    )
    assert not off["autoscaling"]["enabled"] and _scaling() == ([], [])

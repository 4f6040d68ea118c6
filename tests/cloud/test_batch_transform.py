"""Batch inference on the SageMaker stack: one Batch Transform job with the serving containers (emulator),
and batch output written to S3 atomically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.aws.s3 import AtomicS3Writer
from churn.batch import OUTPUT_COLUMNS, load_batch_config, score_in_chunks, write_chunks
from churn.feature_query import FeatureQuery
from tests.cloud import moto_extensions as emulator
from tests.cloud.conftest import API_CALLS, BUCKET, PREFIX, REGION, boto
from tests.cloud.test_registry import _register

pytestmark = pytest.mark.pipeline
GROUP = "mlops_poc_churn_classification_feature"
MODEL = "classification-model-group"


def _keys(prefix: str) -> list:
    return [o["Key"] for o in boto("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


def test_run_py_batch_on_the_sagemaker_stack_runs_one_batch_transform(
    aws, bucket, active_stack, trained_bundle, tmp_path, demo_frame
):
    from click.testing import CliRunner
    from zenml.client import Client

    import run as cli_module

    bundle, _ = trained_bundle
    sha256 = bundle.save(tmp_path / "bundle")
    _register(active_stack.model_registry, str(tmp_path / "bundle"), sha256, "Approved", "1")
    active_stack.feature_store.ingest(GROUP, demo_frame.iloc[:300], "churn")
    query = FeatureQuery(GROUP, 101, 300)
    emulator.queue_latest_records(aws, query, REGION)
    config = tmp_path / "batch.yaml"
    config.write_text(
        "customer_id_start: 101\ncustomer_id_end: 300\nchunk_rows: 70\ninstance_count: 3\n"
        f"model_package_group: {MODEL}\noutput_format: parquet\n"
    )
    output = f"s3://{BUCKET}/{PREFIX}/predictions"

    result = CliRunner().invoke(cli_module.cli, ["batch", "--config", str(config), "--output", output])

    assert result.exit_code == 0, result.output
    # one transform job: the registered package's serving container, 3 instances, 3 whole-CSV requests
    [job] = emulator.transform_requests()
    assert job["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 3}
    assert (
        job["TransformInput"]["SplitType"] == "None"
        and job["TransformOutput"]["Accept"] == "application/json; probabilities=true"
    )
    package = active_stack.model_registry.registry.get_package(MODEL, "1")
    served = package["InferenceSpecification"]["Containers"][0]
    assert job["ModelName"].startswith(f"{MODEL}-batch-") and job["ModelName"] == job["TransformJobName"]
    assert emulator.invocations() == []  # no endpoint was involved
    # the job's model is created from the Approved package, as an endpoint's is (Studio lists it under the version)
    [created] = [
        c.params for c in API_CALLS if c.operation == "CreateModel" and c.params["ModelName"] == job["ModelName"]
    ]
    assert created["PrimaryContainer"] == {"ModelPackageName": package["ModelPackageArn"]}
    assert "Containers" not in created
    models = boto("sagemaker").list_models()["Models"]
    assert [m for m in models if m["ModelName"] == job["ModelName"]] == []  # the job's model was removed afterwards

    run = Client().get_pipeline_run(Client().list_pipeline_runs(sort_by="desc:created", size=1).items[0].id)
    summary = run.steps["batch_predict"].outputs["batch_summary"][0].load()
    assert summary["scored_by"] == f"SageMaker Batch Transform {job['TransformJobName']}" and summary["rows"] == 200
    assert summary["location"] == f"{output}/{run.name}.parquet" and summary["location"] in result.output
    written = pd.read_parquet(
        pd.io.common.BytesIO(
            boto("s3").get_object(Bucket=BUCKET, Key=summary["location"].split("/", 3)[3])["Body"].read()
        )
    )
    # the same columns and answers as scoring in process, in customer order
    raw = run.steps["source_features"].outputs["raw_features"][0].load()
    expected = pd.concat(score_in_chunks(bundle, raw, 1000, MODEL, "1", str(run.id)), ignore_index=True)
    assert list(written.columns) == OUTPUT_COLUMNS
    assert written["customer_id"].tolist() == [f"CUST_{i:06d}" for i in range(101, 301)]
    assert (written["prediction"] == expected["prediction"]).all()
    assert np.allclose(written["probability"], expected["probability"], atol=1e-9)
    assert set(written["model_version"]) == {"1"} and set(written["run_id"]) == {str(run.id)}
    # the job's input and output (customer data) are gone; only the predictions remain
    assert _keys(f"{PREFIX}/batch/") == []
    assert served["ModelDataUrl"].endswith("model.tar.gz")


def test_a_failed_transform_stops_the_batch_and_writes_nothing(aws, bucket, sagemaker_stack, trained_bundle, tmp_path):
    from stacks.contracts import DeploymentError

    bundle, split = trained_bundle
    sha256 = bundle.save(tmp_path / "bundle")
    version = {
        "model_name": MODEL,
        "version": "4",
        "model_source_uri": "models:/m-not-a-bundle",  # an MLflow version's source: the bundle is at bundle_uri
        "bundle_uri": str(tmp_path / "bundle"),
        "bundle_sha256": sha256,
    }
    features = split.test.assign(customer_id=[f"CUST_{i + 1:06d}" for i in range(len(split.test))])
    location = f"s3://{BUCKET}/{PREFIX}/predictions/failed.parquet"
    with pytest.raises(DeploymentError, match=r"batch transform '.*-batch-.*' Failed: ClientError: .*answered 400"):
        sagemaker_stack.model_deployer.batch_predict(
            features.drop(columns=["age"]), bundle, version, location, "parquet", 50, "run-x"
        )
    assert _keys(f"{PREFIX}/predictions/") == [] and _keys(f"{PREFIX}/batch/") == []
    with pytest.raises(DeploymentError, match="not a Batch Transform instance type"):
        sagemaker_stack.model_deployer.batch_predict(
            features, bundle, version, location, "parquet", 50, "run-x", instance_type="ml.t3.medium"
        )


def test_s3_output_appears_only_when_complete(aws, bucket, trained_bundle):
    bundle, split = trained_bundle
    frame = pd.concat([split.test] * 20, ignore_index=True)
    frame = frame.assign(customer_id=[f"CUST_{i + 1:06d}" for i in range(len(frame))])
    key = f"{PREFIX}/predictions/out.csv"

    def failing():
        chunks = score_in_chunks(bundle, frame, 500, "m", "1", "r")
        yield next(chunks)
        raise RuntimeError("scoring died mid-batch")

    with pytest.raises(RuntimeError, match="mid-batch"):
        write_chunks(failing(), f"s3://{BUCKET}/{key}", "csv", region=REGION)
    assert _keys(key) == [] and boto("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []

    # streamed in parts (small parts here: 5 MiB is S3's minimum) and equal to the unstreamed output
    counts = write_chunks(
        score_in_chunks(bundle, frame, 97, "m", "1", "r"), f"s3://{BUCKET}/{key}", "parquet", region=REGION
    )
    whole = pd.concat(score_in_chunks(bundle, frame, len(frame), "m", "1", "r"), ignore_index=True)
    body = boto("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    pd.testing.assert_frame_equal(pd.read_parquet(pd.io.common.BytesIO(body)), whole)
    assert counts["rows"] == len(frame)

    with AtomicS3Writer(f"s3://{BUCKET}/{PREFIX}/big.bin", REGION, part_bytes=1) as handle:  # 5 MiB parts
        for _ in range(12):
            handle.write(b"x" * (1024 * 1024))
        assert _keys(f"{PREFIX}/big.bin") == []  # nothing visible before the end
        assert len(boto("s3").list_multipart_uploads(Bucket=BUCKET)["Uploads"]) == 1
    assert boto("s3").head_object(Bucket=BUCKET, Key=f"{PREFIX}/big.bin")["ContentLength"] == 12 * 1024 * 1024


def test_batch_config_instance_keys():
    config = load_batch_config("configs/batch.yaml")
    assert config.instance_count == 1 and config.instance_type == "ml.m5.xlarge"

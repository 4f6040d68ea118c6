"""The registered version is a real MLflow model (churn.mlflow_model): the tools MLflow users know work on it.

Real parts only: a sqlite MLflow store and its artifact directory in tmp, a registered model whose
``champion`` alias points at the version, ``mlflow models serve`` and our own server as processes on
127.0.0.1 (stopped by process group).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service import utils as tracking_utils

from churn.bundle import BundleError, bundle_sha256
from churn.mlflow_model import code_modules, log_bundle_model
from churn.net import free_port
from tests.conftest import ServerProcess, publish
from tests.processes import mlflow_serve_command, stop_process_group, wait_for_ping

GROUP = "pyfunc-test-group"


@pytest.fixture(scope="module")
def champion(trained_bundle, tmp_path_factory):
    """The bundle logged as an MLflow model in a run, registered as version 1 of GROUP, alias champion."""
    bundle, split = trained_bundle
    root = tmp_path_factory.mktemp("mlflow")
    previous = tracking_utils._tracking_uri
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(tracking_uri)
    try:
        experiment = mlflow.create_experiment("pyfunc", artifact_location=(root / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            sha256 = bundle.save(root / "bundle")
            logged = log_bundle_model(bundle, root / "bundle", sha256, example_rows=split.test)
        client = mlflow.MlflowClient()
        client.create_registered_model(GROUP)
        version = client.create_model_version(GROUP, logged.model_uri, run_id=run.info.run_id)
        client.set_registered_model_alias(GROUP, "champion", version.version)
        yield {
            "bundle": bundle,
            "rows": split.test[bundle.feature_order].reset_index(drop=True),
            "sha256": sha256,
            "logged": logged,
            "tracking_uri": tracking_uri,
            "root": root,
        }
    finally:
        mlflow.set_tracking_uri(previous)


def test_load_model_predicts_exactly_as_the_bundle(champion):
    bundle, rows = champion["bundle"], champion["rows"]
    model = mlflow.pyfunc.load_model(f"models:/{GROUP}@champion")
    assert model.predict(rows).tolist() == bundle.predict(rows).tolist()
    with_probability = model.predict(rows, params={"include_probability": True})
    assert with_probability["probability"].tolist() == bundle.predict_proba(rows)[0].tolist()
    assert with_probability["prediction"].tolist() == bundle.predict(rows).tolist()
    # the signature names the raw feature columns, categoricals as strings
    inputs = {spec.name: spec.type.name for spec in model.metadata.get_input_schema().inputs}
    assert list(inputs) == bundle.feature_order
    assert {inputs[c] for c in bundle.preprocessor.classes} == {"string"}


def test_the_bundle_inside_the_model_is_the_registered_bytes(champion):
    bundle_dir = Path(champion["logged"].bundle_uri.removeprefix("file://"))
    assert bundle_sha256(bundle_dir) == champion["sha256"]
    model_dir = bundle_dir.parents[1]
    assert (model_dir / "MLmodel").is_file() and (model_dir / "input_example.json").is_file()
    shipped = sorted(p.stem for p in (model_dir / "code" / "churn").glob("*.py"))
    assert shipped == code_modules() and {"bundle", "preprocessing", "fast_forest", "mlflow_model"} <= set(shipped)
    assert "training" not in shipped and "dashboard" not in shipped  # not what loading and predicting need
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert f"scikit-learn=={__import__('sklearn').__version__}" in requirements
    assert all("==" in line for line in requirements)


def test_a_tampered_bundle_inside_the_model_is_refused(champion, tmp_path):
    model_dir = Path(champion["logged"].bundle_uri.removeprefix("file://")).parents[1]
    copy = shutil.copytree(model_dir, tmp_path / "model")
    (copy / "artifacts" / "bundle" / "bundle.json").write_text(
        (copy / "artifacts" / "bundle" / "bundle.json").read_text().replace('"target"', '"target" ', 1)
    )
    with pytest.raises(BundleError, match="refusing to load a bundle that is not the registered one"):
        mlflow.pyfunc.load_model(str(copy))


def test_the_signature_rejects_a_missing_column_naming_it(champion):
    model = mlflow.pyfunc.load_model(f"models:/{GROUP}@champion")
    with pytest.raises(MlflowException, match="missing inputs.*'tenure_months'"):
        model.predict(champion["rows"].drop(columns=["tenure_months"]))


def test_mlflow_models_serve_answers_as_our_endpoint(champion, tmp_path):
    bundle, rows = champion["bundle"], champion["rows"].head(200)
    port = free_port()
    log = tmp_path / "mlflow-serve.log"
    # cwd and PYTHONPATH outside the repository: the model's own code (code_paths) is all it imports of ours
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": champion["tracking_uri"],
        "MLFLOW_ENABLE_TELEMETRY": "false",
        "OMP_NUM_THREADS": "1",
    }
    with open(log, "wb") as out:
        served = subprocess.Popen(
            mlflow_serve_command(f"models:/{GROUP}@champion", port),
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    endpoint_dir = tmp_path / "endpoint"
    publish(endpoint_dir, bundle, "1")
    ours = ServerProcess(endpoint_dir)
    try:
        ours.wait_ready()
        wait_for_ping(f"http://127.0.0.1:{port}", served, "mlflow models serve", 120, log)
        theirs = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            timeout=60,
            json={"dataframe_split": json.loads(rows.to_json(orient="split", index=False))},
        )
        assert theirs.status_code == 200, theirs.text
        our_answer = requests.post(
            ours.url + "/invocations", data=rows.to_csv(index=False), headers={"Content-Type": "text/csv"}, timeout=60
        )
        assert our_answer.status_code == 200, our_answer.text
        assert [str(v) for v in theirs.json()["predictions"]] == our_answer.text.splitlines()
        assert theirs.json()["predictions"] == bundle.predict(rows).tolist()
        missing = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            timeout=60,
            json={
                "dataframe_split": json.loads(rows.drop(columns=["contract_type"]).to_json(orient="split", index=False))
            },
        )
        assert missing.status_code == 400 and "contract_type" in missing.json()["message"]
    finally:
        stop_process_group(served)
        ours.stop()


def test_requirements_pin_the_lock_and_the_bundles_own_libraries(trained_bundle):
    import dataclasses

    from churn.image import locked_versions
    from churn.mlflow_model import pinned_requirements

    bundle, _ = trained_bundle
    automl_like = dataclasses.replace(bundle, info={"serving_requirements": {"lightgbm": "4.7.0"}})
    pins = dict(line.split("==") for line in pinned_requirements(automl_like))
    locked = locked_versions()
    assert pins["lightgbm"] == locked["lightgbm"] and pins["mlflow"] == locked["mlflow"]
    assert pins["scikit-learn"] == locked["scikit-learn"] and pins["pandas"] == locked["pandas"]
    unknown = dataclasses.replace(bundle, info={"serving_requirements": {"no-such-library-xyz": ""}})
    with pytest.raises(ValueError, match="no-such-library-xyz is neither in requirements.lock nor installed"):
        pinned_requirements(unknown)


def test_an_automl_ensemble_model_loads_in_a_fresh_process_outside_the_repo(trained_bundle, tmp_path):
    """The model ships the code its estimator's classes live in (churn.automl here), not only the bundle code."""
    import dataclasses

    from churn.automl.ensemble import WeightedEnsemble
    from churn.mlflow_model import save_bundle_model

    bundle, split = trained_bundle
    ensemble = dataclasses.replace(
        bundle, estimator=WeightedEnsemble([bundle.estimator, bundle.estimator], [0.5, 0.5], ["rf_a", "rf_b"])
    )
    ensemble.save(tmp_path / "bundle")
    save_bundle_model(str(tmp_path / "bundle"), str(tmp_path / "model"))
    assert "automl" in code_modules((tmp_path / "bundle" / "estimator.joblib").read_bytes())
    rows = split.test[bundle.feature_order].head(50).reset_index(drop=True)
    rows = rows.astype({c: float for c in bundle.preprocessor.medians})  # the signature without example rows
    rows.to_parquet(tmp_path / "rows.parquet")
    script = (
        "import mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({str(tmp_path / 'model')!r})\n"
        f"print(model.predict(pd.read_parquet({str(tmp_path / 'rows.parquet')!r})).tolist())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [int(v) for v in ensemble.predict(rows)]


def test_batch_and_the_champion_gate_fetch_a_bundle_from_an_mlflow_model_uri(trained_bundle, tmp_path):
    """``churn.batch.fetch_bundle`` reads the bundle from the model's URI or its bundle URI, verified by hash."""
    from churn.batch import fetch_bundle

    bundle, split = trained_bundle
    previous = tracking_utils._tracking_uri
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        experiment = mlflow.create_experiment("fetch", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            sha256 = bundle.save(tmp_path / "bundle")
            logged = log_bundle_model(bundle, tmp_path / "bundle", sha256, example_rows=split.test)
        for i, uri in enumerate([logged.model_uri, logged.bundle_uri]):
            fetched = fetch_bundle(uri, tmp_path / f"fetched-{i}", expected_sha256=sha256)
            assert list(fetched.predict(split.test)) == list(bundle.predict(split.test)), uri
        with pytest.raises(BundleError):
            fetch_bundle(logged.model_uri, tmp_path / "fetched-wrong", expected_sha256="0" * 64)
    finally:
        mlflow.set_tracking_uri(previous)

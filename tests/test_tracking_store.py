"""A new local MLflow store starts as a copy of an empty migrated database (churn.tracking_store), and MLflow
works on it as on a store it created itself; existing and remote stores are left alone."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from churn.tracking_store import seed_sqlite_store, sqlite_path


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # the template is built once for the module (~6 s)


def test_mlflow_tracks_and_registers_on_a_seeded_store(cache, tmp_path):
    uri = f"sqlite:///{tmp_path / 'zen' / 'mlflow.db'}"
    assert seed_sqlite_store(uri, cache) is True
    client = MlflowClient(uri, registry_uri=uri)  # MLflow checks the schema revision when it opens the store
    (default,) = client.search_experiments()
    assert default.name == "Default"
    experiment = client.create_experiment("churn", artifact_location=str(tmp_path / "artifacts"))
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "accuracy", 0.75)
    client.create_registered_model("classification-model-group")
    version = client.create_model_version("classification-model-group", f"runs:/{run.info.run_id}/model")
    assert client.get_run(run.info.run_id).data.metrics == {"accuracy": 0.75}
    assert str(version.version) == "1"
    assert [p.name for p in cache.iterdir()] == [next(cache.glob("mlflow-*-empty.db")).name]


def test_two_stores_seeded_from_one_template_are_independent(cache, tmp_path):
    first, second = (f"sqlite:///{tmp_path / name / 'mlflow.db'}" for name in ("a", "b"))
    assert seed_sqlite_store(first, cache) and seed_sqlite_store(second, cache)
    MlflowClient(first).create_experiment("only-in-first")
    assert [e.name for e in MlflowClient(second).search_experiments()] == ["Default"]


def test_an_existing_store_is_never_replaced(cache, tmp_path):
    store = tmp_path / "mlflow.db"
    uri = f"sqlite:///{store}"
    MlflowClient(uri).create_experiment("kept")
    before = store.read_bytes()
    assert seed_sqlite_store(uri, cache) is False
    assert store.read_bytes() == before
    assert "kept" in [e.name for e in MlflowClient(uri).search_experiments()]


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:5000", "databricks", "file:///tmp/mlruns", "sqlite:///:memory:", "sqlite://"]
)
def test_remote_and_non_file_stores_are_left_alone(cache, uri):
    assert sqlite_path(uri) is None
    assert seed_sqlite_store(uri, cache) is False


def test_a_store_that_cannot_be_written_is_left_to_mlflow(cache, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert seed_sqlite_store(f"sqlite:///{blocker / 'mlflow.db'}", cache) is False  # its directory is a file
    assert blocker.read_text() == ""

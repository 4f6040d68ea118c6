"""Nothing half-registered, integrity fails closed, one alert per failed run (local stack, real parts).

Real ZenML (fresh sqlite store), the real MLflow registry of the local stack, the local
alerter's outbox. Faults are injected where nothing real can fail on demand: a materializer
whose save/load raises (standing in for an artifact store refusing a write or a read), a
registration follow-up that raises, a registry wrapper whose stage update raises.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import pytest
from zenml import pipeline, step
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.model_registries.base_model_registry import ModelRegistryModelMetadata

from churn.bundle import BundleError, ModelBundle
from churn.model_registry import approved_version, register_all_or_nothing
from materializers.bundle_materializer import ModelBundleMaterializer
from steps.alert import notify_failure

pytestmark = pytest.mark.pipeline
MODEL = "integrity-test-model"
LEAK = "AWS_SECRET_ACCESS_KEY=" + "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"


@pytest.fixture(scope="module")
def stack(session_dir):
    from zenml.client import Client
    from zenml.utils import source_utils

    from stacks.local import setup_local_stack

    source_utils.set_custom_source_root(str(Path(__file__).resolve().parents[1]))
    setup_local_stack(activate=True)
    return Client().active_stack


def _alerts(stack):
    path = Path(stack.alerter.outbox_path)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- a step output whose materializer fails on save or on load ------------------------------
class Brittle:
    def __init__(self, mode: str) -> None:
        self.mode = mode


class BrittleMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (Brittle,)

    def save(self, data: Brittle) -> None:
        if data.mode == "fail-save":
            raise OSError(f"injected: the artifact store refused the write ({LEAK})")
        with fileio.open(os.path.join(self.uri, "mode.txt"), "w") as handle:
            handle.write(data.mode)

    def load(self, data_type: type[Any]) -> Brittle:
        with fileio.open(os.path.join(self.uri, "mode.txt"), "r") as handle:
            mode = handle.read()
        if mode == "fail-load":
            raise OSError("injected: the artifact store could not read the input")
        return Brittle(mode)


@step(enable_cache=False, output_materializers=BrittleMaterializer)
def make_brittle(mode: str) -> Brittle:
    return Brittle(mode)


@step(enable_cache=False)
def use_brittle(thing: Brittle) -> str:
    return thing.mode


@pipeline(on_failure=notify_failure, enable_cache=False)
def brittle_pipeline(mode: str) -> None:
    use_brittle(make_brittle(mode))


@pytest.mark.parametrize(
    "mode, failing_step, error",
    [
        ("fail-save", "make_brittle", "injected: the artifact store refused the write"),
        ("fail-load", "use_brittle", "injected: the artifact store could not read the input"),
    ],
)
def test_an_output_save_or_input_load_failure_sends_exactly_one_alert(stack, mode, failing_step, error):
    before = len(_alerts(stack))
    with pytest.raises(Exception):
        brittle_pipeline(mode=mode)
    new = _alerts(stack)[before:]
    assert len(new) == 1, new
    assert new[0]["pipeline"] == "brittle_pipeline" and new[0]["step"] == failing_step and error in new[0]["error"]
    assert "wJalrXUtnFEMI" not in json.dumps(new[0])  # the local alerter redacts


def test_a_working_run_sends_no_alert(stack):
    before = len(_alerts(stack))
    brittle_pipeline(mode="fine")
    assert len(_alerts(stack)) == before


# -- the bundle materializer verifies what it loads ---------------------------------------
@step(enable_cache=False, output_materializers=ModelBundleMaterializer)
def make_bundle() -> ModelBundle:
    from churn.demo_data import generate_customers
    from churn.preprocessing import Preprocessor
    from churn.training import train_random_forest

    frame = generate_customers(300, seed=3)
    return train_random_forest(frame, Preprocessor.fit(frame, "churn"), {"n_estimators": 5, "max_depth": 3}, 1)


@pipeline(enable_cache=False)
def bundle_pipeline() -> None:
    make_bundle()


def test_the_bundle_materializer_refuses_an_artifact_changed_in_the_store(stack):
    run = bundle_pipeline()
    from zenml.client import Client

    artifact = Client().get_pipeline_run(run.id).steps["make_bundle"].outputs["output"][0]
    assert isinstance(artifact.load(), ModelBundle)  # untouched: verified and loaded
    estimator = Path(artifact.uri) / "estimator.joblib"
    estimator.write_bytes(estimator.read_bytes() + b"\0")  # changed behind ZenML's back
    with pytest.raises(BundleError, match="refusing to load a bundle that is not the registered one"):
        artifact.load()


# -- MLflow registry: all or nothing, one rule for "the approved model" -------------------
@pytest.fixture(scope="module")
def bundle_dir(trained_bundle, tmp_path_factory):
    bundle, _ = trained_bundle
    directory = tmp_path_factory.mktemp("registered") / "bundle"
    return str(directory), bundle.save(directory)


def _lineage(sha256: str, run: str) -> dict:
    return {"bundle_sha256": sha256, "zenml_pipeline_run_uuid": f"run-{run}", "data_fingerprint": "f" * 64}


class StageFails:
    """The real registry, except that setting a stage (MLflow: the alias) fails, as a lost connection would."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def update_model_version(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("stage") is not None:
            raise RuntimeError("injected: setting the alias failed")
        return self._registry.update_model_version(*args, **kwargs)


def test_a_failure_after_the_mlflow_version_is_created_leaves_nothing_batch_would_use(stack, bundle_dir):
    registry = stack.model_registry
    uri, sha256 = bundle_dir
    first, _ = register_all_or_nothing(registry, MODEL, uri, _lineage(sha256, "1"), "Approved")
    assert approved_version(registry, MODEL).version == first.version

    def lineage_fails(version):
        raise RuntimeError("injected: tagging the MLflow run failed")

    with pytest.raises(RuntimeError, match="injected: tagging"):
        register_all_or_nothing(registry, MODEL, uri, _lineage(sha256, "2"), "Approved", then=lineage_fails)
    with pytest.raises(RuntimeError, match="injected: setting the alias"):
        register_all_or_nothing(StageFails(registry), MODEL, uri, _lineage(sha256, "3"), "Approved")

    versions = registry.list_model_versions(name=MODEL)
    assert [v.version for v in versions] == [first.version]  # the two failed versions were deleted
    assert approved_version(registry, MODEL).version == first.version  # what batch and deploy use


def test_an_approved_version_without_a_recorded_hash_is_refused(stack, bundle_dir):
    registry = stack.model_registry
    uri, _ = bundle_dir
    bare = registry.register_model_version(
        name=MODEL, model_source_uri=uri, metadata=ModelRegistryModelMetadata(approval_status="Approved")
    )
    try:
        with pytest.raises(
            BundleError, match=f"no bundle sha256 is recorded in the registry's record of {MODEL} version"
        ):
            approved_version(registry, MODEL)
    finally:
        registry.delete_model_version(name=MODEL, version=bare.version)


@step(enable_cache=False, output_materializers=BrittleMaterializer)
def register_then_fail_to_save(model_name: str, uri: str, sha256: str) -> Brittle:
    """Registers (and approves) a version like the register step, then its output cannot be saved."""
    from zenml import get_step_context
    from zenml.client import Client

    context = get_step_context()
    lineage = {
        **_lineage(sha256, "x"),
        "zenml_pipeline_run_uuid": str(context.pipeline_run.id),
        "zenml_step_name": context.step_name,
    }
    register_all_or_nothing(Client().active_stack.model_registry, model_name, uri, lineage, "Approved")
    return Brittle("fail-save")


@pipeline(on_failure=notify_failure, enable_cache=False)
def register_pipeline(model_name: str, uri: str, sha256: str) -> None:
    register_then_fail_to_save(model_name, uri, sha256)


def test_a_step_that_registered_and_then_failed_to_save_its_outputs_leaves_nothing_registered(stack, bundle_dir):
    registry = stack.model_registry
    uri, sha256 = bundle_dir
    name = MODEL + "-step"
    first, _ = register_all_or_nothing(registry, name, uri, _lineage(sha256, "1"), "Approved")
    before = len(_alerts(stack))
    with pytest.raises(Exception):
        register_pipeline(model_name=name, uri=uri, sha256=sha256)
    assert [v.version for v in registry.list_model_versions(name=name)] == [first.version]
    assert approved_version(registry, name).version == first.version
    new = _alerts(stack)[before:]
    assert len(new) == 1 and new[0]["step"] == "register_then_fail_to_save"

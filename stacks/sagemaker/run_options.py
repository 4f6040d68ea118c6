"""What a pipeline run needs from the active stack, read from the stack's labels (every stack).

The SageMaker recipe (:mod:`stacks.sagemaker.recipe`) sets the labels when it registers remote
execution: ``image_path`` (``prebuilt``: ``DockerSettings(skip_build=True, parent_image=<image>)``,
no image is built and ZenML archives the code to the artifact store; ``build``: ZenML builds an
image from ``requirements.lock``), ``parent_image``, ``training_instance_type`` (the training steps;
the others run on the orchestrator's instance type) and ``job_output_uri``. A stack without them
(the local stack, a SageMaker stack whose steps run on this machine) gets no run options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zenml.client import Client

from stacks.contracts import AUTOML_ENGINE_LABEL

TRAINING_STEPS = ("train_rf", "train_automl")  # run on training_instance_type
DEFAULT_TRAINING_INSTANCE_TYPE = "ml.m5.xlarge"
LABELS = (AUTOML_ENGINE_LABEL, "image_path", "parent_image", "training_instance_type", "job_output_uri")


def pipeline_options(labels: Mapping[str, Any] | None, step_names: list[str] | None = None) -> dict[str, Any]:
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

        image = labels["parent_image"]  # untagged: the image `run.py image build --push` pushes from this code
        docker = DockerSettings(
            skip_build=True,
            parent_image=image if is_tagged(image) else f"{image}:{current_tag()}",
            allow_download_from_artifact_store=True,
        )
    else:
        docker = DockerSettings(
            requirements="requirements.lock", python_package_installer="uv", allow_download_from_artifact_store=True
        )
    options: dict[str, Any] = {"settings": {"docker": docker}}
    if labels.get("job_output_uri"):
        options["settings"]["orchestrator"] = {"output_data_s3_uri": labels["job_output_uri"]}
    training = [name for name in TRAINING_STEPS if step_names is None or name in step_names]
    if labels.get("training_instance_type") and training:
        options["steps"] = {
            name: {"settings": {"orchestrator": {"instance_type": labels["training_instance_type"]}}}
            for name in training
        }
    return options


def configure_for_stack(pipeline: Any, labels: Mapping[str, Any] | None) -> Any:
    """``pipeline`` with the stack's run options applied (unchanged on stacks without them)."""
    options = pipeline_options(labels, pipeline_step_names(pipeline))
    return pipeline.with_options(**options) if options else pipeline


def configure_for_active_stack(pipeline: Any) -> Any:
    """What ``run.py`` applies before calling a pipeline: the active stack's image and instance settings."""
    return configure_for_stack(pipeline, Client().active_stack_model.labels)


def pipeline_step_names(pipeline: Any) -> list[str] | None:
    """The names a pipeline function uses, among them the steps it calls (None: not a pipeline function)."""
    code = getattr(getattr(pipeline, "entrypoint", None), "__code__", None)
    return _names_used(code) if code is not None else None


def _names_used(code: Any) -> list[str]:
    """The global names a function's code uses, its nested functions' and lambdas' included."""
    names = list(code.co_names)
    for constant in code.co_consts:
        if hasattr(constant, "co_names"):
            names += _names_used(constant)
    return names

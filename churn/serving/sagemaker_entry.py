"""Entry points for SageMaker's scikit-learn serving container (``inference.py``).

The container calls ``model_fn(model_dir)`` once, then per request
``input_fn -> predict_fn -> output_fn``. They delegate to the same ``protocol`` module
the local server uses, so both endpoints share one copy of parsing, preprocessing,
prediction and formatting. A ``RequestError`` carries the HTTP status (4xx for bad input)
and a message naming the problem; how it reaches the client is the container toolkit's
business (our emulator answers ModelError with that status, as SageMaker does for 4xx).

The container's role comes from ``CHURN_SERVING_ROLE`` (``churn.serving.inference_pipeline``):
``predict`` (default) scores with the whole bundle; ``encode`` and ``respond`` are the two
ends of a serial inference pipeline around an Autopilot candidate's containers.

Packaging (done by the SageMaker registry/deployer): ``model.tar.gz`` holds the bundle files
at its root and ``code/`` with this package and ``inference.py`` = ``from
churn.serving.sagemaker_entry import *``.
"""

from __future__ import annotations

import os
from typing import Any, Tuple

from churn.bundle import ModelBundle
from churn.preprocessing import InputError
from churn.serving import inference_pipeline as pipeline
from churn.serving import protocol

__all__ = ["model_fn", "input_fn", "predict_fn", "output_fn"]


def _role() -> str:
    role = os.environ.get(pipeline.ROLE_ENV, pipeline.PREDICT).strip().lower() or pipeline.PREDICT
    if role not in pipeline.ROLES:
        raise RuntimeError(f"{pipeline.ROLE_ENV}={role!r}: expected one of {', '.join(pipeline.ROLES)}")
    return role


def _bytes(request_body: Any) -> bytes:
    return request_body.encode() if isinstance(request_body, str) else bytes(request_body)


def model_fn(model_dir: str) -> Any:
    if _role() == pipeline.PREDICT:
        return ModelBundle.load(model_dir)
    return pipeline.load_preprocessing(model_dir)


def input_fn(request_body: Any, request_content_type: str) -> Any:
    body = _bytes(request_body)
    if _role() != pipeline.RESPOND:
        return protocol.parse_request(body, request_content_type)
    try:
        return pipeline.candidate_probabilities(body, request_content_type)
    except pipeline.CandidateOutputError as error:
        raise protocol.RequestError(500, f"the AutoML model's answer could not be read: {error}") from None


def predict_fn(input_data: Any, model: Any) -> Any:
    role = _role()
    if role == pipeline.PREDICT:
        return protocol.predict(model, input_data)
    if role == pipeline.ENCODE:
        try:
            return pipeline.encode(model, input_data)
        except InputError as error:
            raise protocol.RequestError(400, str(error)) from None
    return protocol.Prediction(labels=ModelBundle.label(input_data), proba=input_data)


def output_fn(prediction: Any, accept: str) -> Tuple[bytes, str]:
    if _role() == pipeline.ENCODE:
        return prediction, "text/csv"  # the candidate's input, whatever the client accepts
    # SageMaker passes CustomAttributes only to the container's handler; probabilities
    # are returned when the client asks for JSON, where they cannot be mistaken for labels.
    return protocol.format_response(prediction, accept, probabilities=protocol.wants_json(accept))

"""Entry points for SageMaker's scikit-learn serving container (``inference.py``).

The container calls ``model_fn(model_dir)`` once, then per request
``input_fn -> predict_fn -> output_fn``. They delegate to the same ``protocol`` module
the local server uses, so both endpoints share one copy of parsing, preprocessing,
prediction and formatting.

How the container's toolkit (sagemaker-containers 2.8, in AWS's scikit-learn 1.2 image)
treats what these functions do, and so how they answer:
- any exception raised here becomes HTTP 500, whatever its type: a refused request
  (``protocol.RequestError``, 4xx, message naming the problem) is therefore carried to
  ``output_fn`` as a ``Refusal`` and answered with a response object holding its status;
- a ``(body, content_type)`` tuple gets ``; charset=utf-8`` appended to ``text/*`` types,
  so the answer is a response object with the exact Content-Type (the next container of
  a serial pipeline reads it);
- the functions never see request headers, so ``CustomAttributes`` cannot ask for
  probabilities here: they are returned when the client asks for JSON.
Outside that container (tests, the emulator's harness without its toolkit stand-in) a
refusal is raised as the ``RequestError`` and an answer is the plain tuple.

The container's role comes from ``CHURN_SERVING_ROLE`` (``churn.serving.inference_pipeline``):
``predict`` (default) scores with the whole bundle; ``encode`` and ``respond`` are the two
ends of a serial inference pipeline around an Autopilot candidate's containers.

Packaging (done by the SageMaker registry/deployer): ``model.tar.gz`` holds the bundle files
at its root and ``code/`` with this package and ``inference.py`` = ``from
churn.serving.sagemaker_entry import *``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from churn.bundle import ModelBundle
from churn.preprocessing import InputError
from churn.serving import inference_pipeline as pipeline
from churn.serving import protocol

__all__ = ["model_fn", "input_fn", "predict_fn", "output_fn"]


@dataclass
class Refusal:
    """A request refused before scoring, passed through to ``output_fn`` (see the module docstring)."""

    error: protocol.RequestError


def _role() -> str:
    role = os.environ.get(pipeline.ROLE_ENV, pipeline.PREDICT).strip().lower() or pipeline.PREDICT
    if role not in pipeline.ROLES:
        raise RuntimeError(f"{pipeline.ROLE_ENV}={role!r}: expected one of {', '.join(pipeline.ROLES)}")
    return role


def _answer(body: bytes, content_type: str, status: int = 200) -> Any:
    """The container's response: status and Content-Type exactly as given."""
    try:
        from sagemaker_containers.beta.framework import worker  # AWS's scikit-learn container toolkit
    except ImportError:
        if status != 200:
            raise protocol.RequestError(status, body.decode("utf-8", "replace")) from None
        return body, content_type
    return worker.Response(response=body, status=status, headers={"Content-Type": content_type})


def model_fn(model_dir: str) -> Any:
    if _role() == pipeline.PREDICT:
        return ModelBundle.load(model_dir)
    return pipeline.load_preprocessing(model_dir)


def input_fn(request_body: Any, request_content_type: str) -> Any:
    body = request_body.encode() if isinstance(request_body, str) else bytes(request_body)
    try:
        if _role() != pipeline.RESPOND:
            return protocol.parse_request(body, request_content_type)
        return pipeline.candidate_probabilities(body, request_content_type)
    except protocol.RequestError as error:
        return Refusal(error)
    except pipeline.CandidateOutputError as error:
        return Refusal(protocol.RequestError(500, f"the AutoML model's answer could not be read: {error}"))


def predict_fn(input_data: Any, model: Any) -> Any:
    if isinstance(input_data, Refusal):
        return input_data
    role = _role()
    try:
        if role == pipeline.PREDICT:
            return protocol.predict(model, input_data)
        if role == pipeline.ENCODE:
            return pipeline.encode(model, input_data)
    except protocol.RequestError as error:
        return Refusal(error)
    except InputError as error:
        return Refusal(protocol.RequestError(400, str(error)))
    return protocol.Prediction(labels=ModelBundle.label(input_data), proba=input_data)


def output_fn(prediction: Any, accept: str) -> Any:
    if isinstance(prediction, Refusal):
        return _answer(prediction.error.message.encode(), "text/plain", prediction.error.status)
    if _role() == pipeline.ENCODE:
        return _answer(prediction, "text/csv")  # the candidate's input, whatever the client accepts
    return _answer(*protocol.format_response(prediction, accept, probabilities=protocol.wants_json(accept)))

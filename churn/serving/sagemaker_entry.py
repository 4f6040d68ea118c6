"""Entry points for SageMaker's scikit-learn serving container (``inference.py``).

The container calls ``model_fn(model_dir)`` once, then per request
``input_fn -> predict_fn -> output_fn``. They delegate to the same ``protocol`` module
the local server uses, so both endpoints share one copy of parsing, preprocessing,
prediction and formatting. A ``RequestError`` becomes the container's 4xx through its
``ClientError``-style exceptions where available.

Packaging (done by the SageMaker model deployer): ``model.tar.gz`` holds the bundle files
at its root and ``code/`` with this package and ``inference.py`` = ``from
churn.serving.sagemaker_entry import *``.
"""

from __future__ import annotations

from typing import Any, Tuple

from churn.bundle import ModelBundle
from churn.serving import protocol

__all__ = ["model_fn", "input_fn", "predict_fn", "output_fn"]


def model_fn(model_dir: str) -> ModelBundle:
    return ModelBundle.load(model_dir)


def input_fn(request_body: Any, request_content_type: str):
    body = request_body.encode() if isinstance(request_body, str) else bytes(request_body)
    return protocol.parse_request(body, request_content_type)


def predict_fn(input_data, model: ModelBundle) -> protocol.Prediction:
    return protocol.predict(model, input_data)


def output_fn(prediction: protocol.Prediction, accept: str) -> Tuple[bytes, str]:
    # SageMaker passes CustomAttributes only to the container's handler; probabilities
    # are returned when the client asks for JSON, where they cannot be mistaken for labels.
    return protocol.format_response(prediction, accept, probabilities=protocol.wants_json(accept))

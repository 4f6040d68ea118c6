"""Our container's roles in a SageMaker serial inference pipeline around another model's containers.

An Autopilot candidate's inference containers take *encoded*, header-less CSV rows (what
it was trained on) and answer with its own keys (``predicted_label,probabilities,labels``).
Our endpoint contract is raw feature rows with a header in, our predictions out. So the
endpoint of an Autopilot bundle is a serial inference pipeline of one model::

    [our container, role "encode"] -> [Autopilot's container(s)] -> [our container, role "respond"]

Both our containers are our image (``docker/Dockerfile``, started as ``serve``) and the same
model.tar.gz as any bundle's; ``CHURN_SERVING_ROLE`` in the container's environment picks the
role (``churn.serving.container``):

- ``predict`` (default, a single-container endpoint): the whole bundle scores the request.
- ``encode``: the request is parsed and checked by the same ``protocol`` code (bad input
  is a 4xx naming the column), the bundle's preprocessor encodes it, and the rows go on as
  header-less CSV in ``feature_order``, formatted by ``rows_csv`` as the training rows were.
- ``respond``: the candidate's answer (CSV lines or JSON, whichever it wrote) becomes
  P(class 1) per row, and our response is formatted from it exactly
  as a single-container endpoint formats its own (CSV labels; probabilities when asked).

In a serial pipeline each container's response Content-Type goes to the next container.
Which containers see the client's Accept (and CustomAttributes) is not documented; our
containers answer CSV when no Accept is given. So the encode role answers CSV whatever it
is asked, and the respond role reads CSV or JSON. Neither role
needs the estimator, so they load only ``bundle.json`` (``load_preprocessing``).
"""

from __future__ import annotations

import ast
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from churn.preprocessing import Preprocessor

ROLE_ENV = "CHURN_SERVING_ROLE"
PREDICT, ENCODE, RESPOND = "predict", "encode", "respond"
ROLES = (PREDICT, ENCODE, RESPOND)
# What the candidate's containers are asked to return (SAGEMAKER_INFERENCE_OUTPUT).
CANDIDATE_KEYS = ("predicted_label", "probabilities", "labels")


class CandidateOutputError(ValueError):
    """A candidate container's answer that cannot be read as class probabilities."""


@dataclass
class Preprocessing:
    """What the encode/respond roles load: the bundle's preprocessor and info, no estimator."""

    preprocessor: Preprocessor
    info: dict[str, Any]


def load_preprocessing(model_dir: str | Path) -> Preprocessing:
    from churn.bundle import BUNDLE_FILE, FORMAT_VERSION, BundleError

    path = Path(model_dir) / BUNDLE_FILE
    if not path.is_file():
        raise BundleError(f"{model_dir} is not a model bundle: {BUNDLE_FILE} is missing")
    document = json.loads(path.read_text())
    if document.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{model_dir}: unsupported bundle format {document.get('format_version')!r}")
    return Preprocessing(Preprocessor.from_dict(document["preprocessor"]), document.get("info", {}))


# -- encode ---------------------------------------------------------------------------


def rows_csv(matrix: np.ndarray, header: Sequence[str] | None = None) -> bytes:
    """Numbers as CSV, one row a line (``%.17g``: exact floats, label codes as ``0``, ``1``).

    The one formatter for rows an Autopilot candidate sees: its training file, batch
    transform input and the encode role's output.
    """
    buffer = io.StringIO()
    if header is not None:
        buffer.write(",".join(header) + "\n")
    np.savetxt(buffer, np.asarray(matrix, dtype=np.float64), fmt="%.17g", delimiter=",")
    return buffer.getvalue().encode()


def encode(preprocessing: Preprocessing, columns: Mapping[str, Sequence[Any]]) -> bytes:
    """Raw request columns -> the candidate's input: encoded rows in ``feature_order``, no header.

    Raises ``InputError`` (a 4xx naming the column) for missing columns or bad values.
    """
    matrix, _ = preprocessing.preprocessor.transform(columns)
    return rows_csv(matrix)


# -- respond --------------------------------------------------------------------------


def _split_fields(line: str) -> list[str]:
    """Split one output line on commas outside brackets and quotes (``1,"[0.2, 0.8]","['0', '1']"``)."""
    fields, current, depth, quote = [], [], 0, None
    for char in line:
        if quote:
            if char == quote:
                quote = None
            else:
                current.append(char)
            continue
        if char == '"' and depth == 0:
            quote = char
        elif char == "," and depth == 0:
            fields.append("".join(current).strip())
            current = []
        else:
            depth += char == "["
            depth -= char == "]"
            current.append(char)
    fields.append("".join(current).strip())
    return fields


def _is_one(label: Any) -> bool:
    try:
        return float(label) == 1.0
    except (TypeError, ValueError):
        return str(label).strip().lower() in ("true", "yes")


def _as_list(value: Any, where: str, key: str) -> list[Any]:
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise CandidateOutputError(f"{where}: {key} {value[:100]!r} is not a list") from None
    if not isinstance(value, (list, tuple)):
        raise CandidateOutputError(f"{where}: {key} {str(value)[:100]!r} is not a list")
    return list(value)


def _positive(record: Mapping[str, Any], where: str) -> float:
    missing = [k for k in ("probabilities", "labels") if k not in record]
    if missing:
        raise CandidateOutputError(f"{where} has no {' or '.join(missing)} (it holds {', '.join(record) or 'nothing'})")
    try:
        probabilities = [float(p) for p in _as_list(record["probabilities"], where, "probabilities")]
    except (TypeError, ValueError):
        raise CandidateOutputError(f"{where}: probabilities {record['probabilities']!r:.100} are not numbers") from None
    labels = [str(label) for label in _as_list(record["labels"], where, "labels")]
    positive = [i for i, label in enumerate(labels) if _is_one(label)]
    if len(positive) != 1 or len(probabilities) != len(labels):
        raise CandidateOutputError(f"{where}: labels {labels} do not hold class 1 once (probabilities {probabilities})")
    return probabilities[positive[0]]


def positive_probabilities(text: str, keys: Sequence[str] = CANDIDATE_KEYS) -> np.ndarray:
    """P(class 1) per line of CSV output holding ``keys`` (with ``probabilities`` and ``labels``)."""
    if "probabilities" not in keys or "labels" not in keys:
        raise CandidateOutputError(f"the output holds {', '.join(keys)}; probabilities and labels are needed")
    out: list[float] = []
    for number, line in enumerate(x for x in text.splitlines() if x.strip()):
        fields = _split_fields(line)
        where = f"output line {number + 1}"
        if len(fields) != len(keys):
            raise CandidateOutputError(
                f"{where} has {len(fields)} fields, expected {len(keys)} ({', '.join(keys)}): {line[:200]!r}"
            )
        out.append(_positive(dict(zip(keys, fields)), where))
    return np.asarray(out, dtype=np.float64)


def candidate_probabilities(body: bytes, content_type: str, keys: Sequence[str] = CANDIDATE_KEYS) -> np.ndarray:
    """P(class 1) per row from a candidate container's answer, CSV or JSON.

    JSON is ``{"predictions": [{"predicted_label": ..., "probabilities": [...], "labels": [...]}, ...]}``
    (or the list alone, or JSON lines), as Autopilot's containers write it when asked for JSON.
    """
    text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else str(body)
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in ("application/json", "application/jsonlines", "application/x-jsonlines"):
        return positive_probabilities(text, keys)
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        try:
            document = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as error:
            raise CandidateOutputError(f"the candidate's JSON answer is malformed: {error}") from None
    if isinstance(document, dict):  # {"predictions": [...]}, or one JSON-lines record
        document = document.get("predictions", [document])
    records = document
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise CandidateOutputError(f"the candidate's JSON answer holds no list of prediction records: {text[:200]!r}")
    return np.asarray([_positive(r, f"prediction {i + 1}") for i, r in enumerate(records)], dtype=np.float64)

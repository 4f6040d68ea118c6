"""Request parsing and response formatting for /invocations, free of any web framework.

Input: ``text/csv`` with a header row of raw features (id/metadata and extra columns
ignored, any column order) or ``application/json`` (a list of records, or MLflow's
``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` / ``{"dataframe_records": [...]}``).
Output: one prediction per row, CSV by default, JSON when the client accepts JSON;
class probabilities when asked.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from urllib.parse import quote
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from churn.bundle import ModelBundle
from churn.preprocessing import ArrowColumns, InputError


class RequestError(Exception):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Prediction:
    labels: np.ndarray
    proba: np.ndarray
    unseen: Dict[str, List[str]] = field(default_factory=dict)


LARGE_CSV_BYTES = 64 * 1024


def _parse_large_csv(body: bytes) -> ArrowColumns:
    """Arrow's C++ CSV reader for big batches: every column as text, as the small path.

    The columns stay Arrow arrays (``ArrowColumns``): the preprocessor encodes them without
    a Python object per cell, and they become object arrays of str only when read as such.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    body = body[len(codecs.BOM_UTF8):] if body.startswith(codecs.BOM_UTF8) else body
    body = body.lstrip(b"\r\n")  # blank lines before the header, skipped as the small path does
    first_line = body.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        header = _check_header(next(csv.reader([first_line.decode("utf-8")], strict=True), []))
    except UnicodeDecodeError as error:
        raise RequestError(400, f"malformed CSV header: {error}") from None
    except csv.Error as error:
        spans = "unexpected end of data" in str(error)  # a quote left open at the end of the first line
        raise RequestError(400, "malformed CSV header: " + ("a quoted header cell spans lines" if spans else str(error))) from None
    try:
        table = pacsv.read_csv(  # the header as parsed above (names stripped, as the small path)
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=header, skip_rows=1),
            convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                                 strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise RequestError(400, f"malformed CSV: {str(error)[:300]}") from None
    if table.num_rows == 0:
        raise RequestError(400, "CSV has a header row but no data rows")
    return ArrowColumns(table)


def _check_header(names: List[str]) -> List[str]:
    header = [name.strip() for name in names]
    if not any(header):
        raise RequestError(400, "CSV header row is empty: the first line must name the feature columns")
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise RequestError(400, f"CSV header repeats column(s): {', '.join(dupes)}")
    return header


def _parse_csv(body: bytes) -> Dict[str, List[str]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RequestError(400, f"CSV body is not UTF-8 text: {error}") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as error:
        raise RequestError(400, f"malformed CSV: {error}") from None
    if not rows:
        raise RequestError(400, "empty CSV body: send a header row of feature names and at least one data row")
    header = _check_header(rows[0])
    if len(rows) == 1:
        raise RequestError(400, "CSV has a header row but no data rows")
    width = len(header)
    for number, row in enumerate(rows[1:], start=1):
        if len(row) != width:
            raise RequestError(400, f"CSV row {number} has {len(row)} fields, the header has {width}")
    data = rows[1:]
    return {name: [row[i] for row in data] for i, name in enumerate(header)}


def _records_to_columns(records: Sequence[Any]) -> Dict[str, List[Any]]:
    if not records:
        raise RequestError(400, "JSON body holds no records")
    columns: Dict[str, List[Any]] = {}
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise RequestError(400, f"JSON record {number} is not an object of feature: value")
        for name in record:
            columns.setdefault(name, [None] * (number - 1))
        for name, values in columns.items():
            values.append(record.get(name))
    return columns


def _parse_json(body: bytes) -> Dict[str, List[Any]]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(400, f"malformed JSON: {error}") from None
    if isinstance(payload, dict) and "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) or not isinstance(split.get("data"), list):
            raise RequestError(400, "dataframe_split needs 'columns' (list) and 'data' (list of rows)")
        names, rows = split["columns"], split["data"]
        if not rows:
            raise RequestError(400, "dataframe_split holds no rows")
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) != len(names):
                raise RequestError(400, f"dataframe_split row {number} does not have {len(names)} values")
        return {str(name): [row[i] for row in rows] for i, name in enumerate(names)}
    if isinstance(payload, dict) and "dataframe_records" in payload:
        payload = payload["dataframe_records"]
    elif isinstance(payload, dict) and "instances" in payload:
        payload = payload["instances"]
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise RequestError(400, "JSON body must be a list of records or {'dataframe_split': ...}")
    return _records_to_columns(payload)


def parse_request(body: bytes, content_type: str) -> Mapping[str, Sequence[Any]]:
    """Columns of raw feature values from a request body."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if not body or not body.strip():
        raise RequestError(400, "empty request body: send CSV with a header row, or JSON records")
    if kind in ("text/csv", "application/csv"):
        return _parse_large_csv(body) if len(body) > LARGE_CSV_BYTES else _parse_csv(body)
    if kind in ("application/json",):
        return _parse_json(body)
    raise RequestError(415, f"unsupported content type {content_type!r}: use text/csv or application/json")


def predict(bundle: ModelBundle, columns: Mapping[str, Sequence[Any]]) -> Prediction:
    try:
        proba, unseen = bundle.predict_proba(columns)
    except InputError as error:
        raise RequestError(400, str(error)) from None
    return Prediction(labels=bundle.label(proba), proba=proba, unseen=unseen)


def wants_json(accept: str) -> bool:
    return "application/json" in (accept or "").lower()


def format_response(prediction: Prediction, accept: str, probabilities: bool) -> tuple[bytes, str]:
    """Body and content type: CSV (one label per line; ``label,probability`` when asked) or JSON."""
    if wants_json(accept):
        document: Dict[str, Any] = {"predictions": prediction.labels.tolist()}
        if probabilities:
            document["probabilities"] = [round(float(p), 10) for p in prediction.proba]
        return json.dumps(document).encode(), "application/json"
    if probabilities:
        lines = [f"{label},{proba:.10g}" for label, proba in zip(prediction.labels.tolist(), prediction.proba.tolist())]
    else:
        lines = [str(label) for label in prediction.labels.tolist()]
    return ("\n".join(lines) + "\n").encode(), "text/csv"


def unseen_header(unseen: Dict[str, List[str]]) -> str:
    """``column=value|value;column=value`` for the X-Unseen-Categories header.

    Values are percent-encoded (a header may hold only printable ASCII) and truncated.
    """
    parts = []
    for column, values in unseen.items():
        shown = "|".join(quote(v[:40], safe=" ()-_.,") for v in values[:10])
        parts.append(f"{quote(column, safe='_-')}={shown}")
    return ";".join(parts)[:2000]


def probabilities_requested(query_value: str | None, custom_attributes: str | None) -> bool:
    """True for ``?probabilities=true`` or SageMaker CustomAttributes ``probabilities=true``."""
    if query_value is not None and query_value.lower() in ("1", "true", "yes"):
        return True
    for part in (custom_attributes or "").split(","):
        key, _, value = part.partition("=")
        if key.strip().lower() == "probabilities" and value.strip().lower() in ("1", "true", "yes"):
            return True
    return False

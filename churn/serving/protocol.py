"""Request parsing and response formatting for /invocations, free of any web framework.

Input: ``text/csv`` with a header row of raw features (id/metadata and extra columns
ignored, any column order) or ``application/json`` (a list of records, or MLflow's
``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` / ``{"dataframe_records": [...]}``).
Output: one prediction per row, CSV by default, JSON when the client accepts JSON;
class probabilities when asked.

Length: every input format's parser with its limits, and the response formatter: one contract
(SageMaker hosting) kept in one module so its limits are declared once.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import numpy as np

from churn import fast_forest
from churn.bundle import ModelBundle
from churn.preprocessing import ArrowColumns, InputError


class RequestError(Exception):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """Caps on what one request may hold; each refusal names the limit and its setting.

    Every check is linear in the body size. Settable per server (``Limits.from_env``:
    ``CHURN_MAX_COLUMNS``, ``CHURN_MAX_ROWS``, ``CHURN_MAX_JSON_DEPTH``, ``CHURN_MAX_CELL_BYTES``).
    """

    max_columns: int = 1_000  # CSV header fields, JSON distinct keys, dataframe_split columns
    max_rows: int = 200_000  # CSV data rows, JSON records
    max_json_depth: int = 20  # nesting of JSON arrays/objects (a record list is 2 deep)
    max_cell_bytes: int = 10_000  # one CSV cell, JSON string or key

    ENV = {
        "max_columns": "CHURN_MAX_COLUMNS",
        "max_rows": "CHURN_MAX_ROWS",
        "max_json_depth": "CHURN_MAX_JSON_DEPTH",
        "max_cell_bytes": "CHURN_MAX_CELL_BYTES",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Limits:
        values = {}
        for name, variable in cls.ENV.items():
            if environ.get(variable):
                try:
                    values[name] = int(environ[variable])
                except ValueError:
                    raise ValueError(f"{variable}={environ[variable]!r} is not an integer") from None
                if values[name] < 1:
                    raise ValueError(f"{variable}={environ[variable]!r} must be at least 1")
        return cls(**values)

    def refuse(self, what: str, name: str, status: int = 413) -> RequestError:
        return RequestError(status, f"{what}: over the limit of {getattr(self, name)} ({self.ENV[name]})")


DEFAULT_LIMITS = Limits()


@dataclass
class Prediction:
    labels: np.ndarray
    proba: np.ndarray
    unseen: dict[str, list[str]] = field(default_factory=dict)


LARGE_CSV_BYTES = 64 * 1024


def _parse_large_csv(body: bytes, limits: Limits = DEFAULT_LIMITS, numeric: Collection[str] = ()) -> ArrowColumns:
    """Arrow's C++ CSV reader for big batches: every column as text, as the small path.

    The columns stay Arrow arrays (``ArrowColumns``): the preprocessor encodes them without
    a Python object per cell, and they become object arrays of str only when read as such.
    The ``numeric`` columns (the model's numbers) are read as float64 in the same pass, empty
    cells null, when every one of their cells is a number Arrow reads (it reads them as float()
    does) and no line is longer than ``max_cell_bytes``; their text is parsed only if asked for.
    Otherwise all columns are text, as without ``numeric``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    body = body[len(codecs.BOM_UTF8) :] if body.startswith(codecs.BOM_UTF8) else body
    body = body.lstrip(b"\r\n")  # blank lines before the header, skipped as the small path does
    first_line = body.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        header = _check_header(next(csv.reader([first_line.decode("utf-8")], strict=True), []), limits)
    except UnicodeDecodeError as error:
        raise RequestError(400, f"malformed CSV header: {error}") from None
    except csv.Error as error:
        spans = "unexpected end of data" in str(error)  # a quote left open at the end of the first line
        raise RequestError(
            400, "malformed CSV header: " + ("a quoted header cell spans lines" if spans else str(error))
        ) from None

    def read(floats: Collection[str]) -> Any:
        return pacsv.read_csv(  # the header as parsed above (names stripped, as the small path)
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(use_threads=False, column_names=header, skip_rows=1),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.float64() if name in floats else pa.string() for name in header},
                strings_can_be_null=False,
                null_values=[""],
            ),
        )

    table = None
    floats = [name for name in header if name in numeric]
    if floats and _longest_line(body) <= limits.max_cell_bytes:
        try:
            table = read(floats)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            floats = []  # a cell Arrow does not read as a number (or malformed CSV): all as text, below
    if table is None:
        floats = []
        try:
            table = read(())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise RequestError(400, f"malformed CSV: {str(error)[:300]}") from None
    if table.num_rows == 0:
        raise RequestError(400, "CSV has a header row but no data rows")
    if table.num_rows > limits.max_rows:
        raise limits.refuse(f"CSV has {table.num_rows} data rows", "max_rows")
    import pyarrow.compute as pc

    for name, column in zip(header, table.columns):
        longest = pc.max(pc.binary_length(column)).as_py() if len(column) and name not in floats else 0
        if longest and longest > limits.max_cell_bytes:
            raise limits.refuse(f"column '{name[:50]}' has a cell of {longest} bytes", "max_cell_bytes")
    return ArrowColumns(table, text=(lambda: _parse_large_csv(body, limits)) if floats else None)


def _longest_line(body: bytes) -> int:
    """The longest line's length in bytes (its newline included): no cell is longer."""
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    return int(np.diff(ends, prepend=-1, append=len(body)).max())


def _check_header(names: list[str], limits: Limits = DEFAULT_LIMITS) -> list[str]:
    if len(names) > limits.max_columns:
        raise limits.refuse(f"CSV header has {len(names)} columns", "max_columns")
    header = [name.strip() for name in names]
    if not any(header):
        raise RequestError(400, "CSV header row is empty: the first line must name the feature columns")
    for name in header:
        if len(name) > limits.max_cell_bytes:
            raise limits.refuse(f"CSV header name {name[:50]!r}... is {len(name)} characters", "max_cell_bytes")
    counts = Counter(header)  # linear: the header can be as wide as the limit allows
    if len(counts) != len(header):
        dupes = sorted(name for name, count in counts.items() if count > 1)
        shown = ", ".join(d[:50] for d in dupes[:10]) + (f" and {len(dupes) - 10} more" if len(dupes) > 10 else "")
        raise RequestError(400, f"CSV header repeats column(s): {shown}")
    return header


def _parse_csv(body: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, list[str]]:
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
    header = _check_header(rows[0], limits)
    if len(rows) == 1:
        raise RequestError(400, "CSV has a header row but no data rows")
    if len(rows) - 1 > limits.max_rows:
        raise limits.refuse(f"CSV has {len(rows) - 1} data rows", "max_rows")
    width = len(header)
    for number, row in enumerate(rows[1:], start=1):
        if len(row) != width:
            raise RequestError(400, f"CSV row {number} has {len(row)} fields, the header has {width}")
        for i, cell in enumerate(row):
            if len(cell) > limits.max_cell_bytes:
                raise limits.refuse(
                    f"CSV row {number} column '{header[i][:50]}' has a cell of {len(cell)} characters", "max_cell_bytes"
                )
    data = rows[1:]
    return {name: [row[i] for row in data] for i, name in enumerate(header)}


_SCALARS = (str, int, float, bool, type(None))
_FLOAT_MAX_BITS = 1024  # an integer this long has no float64 value


def _check_cell(value: Any, where: str, limits: Limits, scalar: bool = True) -> None:
    if scalar and not isinstance(value, _SCALARS):
        raise RequestError(
            400,
            f"{where}: a cell must be one value (string, number, boolean or null), "
            f"not {'an object' if isinstance(value, dict) else 'a list'}",
        )
    if isinstance(value, str):
        if len(value) > limits.max_cell_bytes:
            raise limits.refuse(f"{where}: a string of {len(value)} characters", "max_cell_bytes")
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _FLOAT_MAX_BITS:
        raise RequestError(400, f"{where}: the integer is too large to be a number")


class RecordColumns(Mapping):
    """JSON records read as columns, built per column on first access.

    Reading every record once costs O(cells); a column (only the model's features are ever
    asked for) costs O(rows), and refuses a non-scalar cell (InputError naming column and row).
    Records with many distinct keys therefore stay linear, where a dense table of every key would
    be rows x keys.
    """

    def __init__(self, records: Sequence[dict], names: dict[str, None]):
        self._records, self._names, self._built = records, names, {}

    def __getitem__(self, name: str) -> list[Any]:
        if name not in self._names:
            raise KeyError(name)
        values = self._built.get(name)
        if values is None:
            values = [record.get(name) for record in self._records]
            for row, value in enumerate(values):
                if not isinstance(value, _SCALARS):  # the message transform gives a categorical column
                    raise InputError(f"column '{name}' row {row + 1}: {str(value)[:50]!r} is not a single value")
            self._built[name] = values
        return values

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names


def _records_to_columns(records: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> Mapping[str, list[Any]]:
    if not records:
        raise RequestError(400, "JSON body holds no records")
    if len(records) > limits.max_rows:
        raise limits.refuse(f"JSON body has {len(records)} records", "max_rows")
    names: dict[str, None] = {}
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise RequestError(400, f"JSON record {number} is not an object of feature: value")
        for name, value in record.items():
            if name not in names:
                if len(names) >= limits.max_columns:
                    raise limits.refuse(
                        f"JSON records have more than {limits.max_columns} distinct keys", "max_columns"
                    )
                if len(name) > limits.max_cell_bytes:
                    raise limits.refuse(f"JSON record {number} has a key of {len(name)} characters", "max_cell_bytes")
                names[name] = None
            _check_cell(value, f"JSON record {number} key '{name[:50]}'", limits, scalar=False)  # see RecordColumns
    return RecordColumns(records, names)


# A JSON string (escapes included), removed before counting brackets; written unrolled so
# the regular expression engine runs over a string in one step per character class run.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _json_depth(body: bytes) -> int:
    """Deepest nesting of arrays/objects in a JSON text, in linear time without parsing it."""
    import numpy as np

    if b"\\" in body:
        outside = _JSON_STRING.sub(b"", body)
    else:  # no escapes: every other piece between quotes is outside a string (much faster)
        outside = b"".join(body.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def _parse_json(body: bytes, limits: Limits = DEFAULT_LIMITS) -> Mapping[str, Sequence[Any]]:
    depth = _json_depth(body)
    if depth > limits.max_json_depth:
        raise limits.refuse(f"JSON nested {depth} deep", "max_json_depth", status=400)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise RequestError(400, f"malformed JSON: {str(error)[:300]}") from None
    if isinstance(payload, dict) and "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if (
            not isinstance(split, dict)
            or not isinstance(split.get("columns"), list)
            or not isinstance(split.get("data"), list)
        ):
            raise RequestError(400, "dataframe_split needs 'columns' (list) and 'data' (list of rows)")
        names, rows = split["columns"], split["data"]
        if len(names) > limits.max_columns:
            raise limits.refuse(f"dataframe_split has {len(names)} columns", "max_columns")
        if not rows:
            raise RequestError(400, "dataframe_split holds no rows")
        if len(rows) > limits.max_rows:
            raise limits.refuse(f"dataframe_split has {len(rows)} rows", "max_rows")
        for i, name in enumerate(names):
            _check_cell(name, f"dataframe_split column {i + 1}", limits)
        header = [str(name) for name in names]
        counts = Counter(header)
        if len(counts) != len(header):
            dupes = sorted(name for name, count in counts.items() if count > 1)
            raise RequestError(400, f"dataframe_split repeats column(s): {', '.join(d[:50] for d in dupes[:10])}")
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) != len(names):
                raise RequestError(400, f"dataframe_split row {number} does not have {len(names)} values")
            for i, value in enumerate(row):
                _check_cell(value, f"dataframe_split row {number} column '{header[i][:50]}'", limits)
        return {name: [row[i] for row in rows] for i, name in enumerate(header)}
    if isinstance(payload, dict) and "dataframe_records" in payload:
        payload = payload["dataframe_records"]
    elif isinstance(payload, dict) and "instances" in payload:
        payload = payload["instances"]
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        raise RequestError(400, "JSON body must be a list of records or {'dataframe_split': ...}")
    return _records_to_columns(payload, limits)


CSV_TYPES = ("text/csv", "application/csv")
SPLIT_PART_BYTES = 256 * 1024  # a large CSV body is scored in row parts of at least this size (``split_csv``)


def _media_type(content_type: str) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def parse_request(
    body: bytes, content_type: str, limits: Limits = DEFAULT_LIMITS, numeric: Collection[str] = ()
) -> Mapping[str, Sequence[Any]]:
    """Columns of raw feature values from a request body (refused with a 4xx past ``limits``).

    ``numeric`` names the model's number columns: a large CSV body reads them as numbers in its
    parse (the preprocessor's result is the same; see ``_parse_large_csv``).
    """
    kind = _media_type(content_type)
    if not body or not body.strip():
        raise RequestError(400, "empty request body: send CSV with a header row, or JSON records")
    if kind in CSV_TYPES:
        if len(body) > LARGE_CSV_BYTES:
            return _parse_large_csv(body, limits, numeric)
        return _parse_csv(body, limits)
    if kind in ("application/json",):
        return _parse_json(body, limits)
    raise RequestError(415, f"unsupported content type {content_type!r}: use text/csv or application/json")


def predict_body(bundle: ModelBundle, body: bytes, content_type: str, limits: Limits = DEFAULT_LIMITS) -> Prediction:
    """The prediction for a request body; a large CSV body in row parts side by side, one per thread it may use.

    The threads are those of the caller's ``fast_forest.row_threads`` cap (the server's
    ``Scorer`` sets it); the number columns of the model are read as numbers in the parse.
    """
    numeric = bundle.preprocessor.numeric_columns

    def predict_part(part: bytes) -> Prediction:
        return predict(bundle, parse_request(part, content_type, limits, numeric))

    parts = split_csv(body, content_type, fast_forest.thread_cap(), limits)
    if len(parts) > 1:
        try:
            return join(fast_forest.side_by_side(predict_part, parts), bundle.feature_order)
        except RequestError:
            pass  # refused in a part: the whole body once more, for an error whose row numbers are the client's
    return predict_part(body)


def predict(bundle: ModelBundle, columns: Mapping[str, Sequence[Any]]) -> Prediction:
    try:
        proba, unseen = bundle.predict_proba(columns)
    except InputError as error:
        raise RequestError(400, str(error)) from None
    except OverflowError as error:  # a number no float holds, from any input path
        raise RequestError(400, f"a value is out of range: {error}") from None
    return Prediction(labels=bundle.label(proba), proba=proba, unseen=unseen)


def split_csv(body: bytes, content_type: str, parts: int, limits: Limits = DEFAULT_LIMITS) -> list[bytes]:
    """A CSV body as up to ``parts`` bodies of consecutive rows, each under the same header; else ``[body]``.

    Each part parses, transforms and scores on its own thread, and their predictions joined
    (``join``) are the whole body's. Split only when that holds: a CSV body with no quote
    character (a quoted cell may hold a newline), parts of ``SPLIT_PART_BYTES`` at least, and too
    few bytes for more than ``max_rows`` rows of the header's width (a valid row has a byte per
    field at least), so the parts' limits are the whole body's. A part that fails is no proof the
    whole does the same way (its rows are counted from the cut): the caller parses the whole
    body then, for the error the client can place.

    Args:
        body: the request body.
        content_type: the request's Content-Type.
        parts: how many parts at most (the threads the request may use).
        limits: the server's limits.

    Returns:
        The parts, the first one starting as ``body`` does.
    """
    parts = min(parts, len(body) // SPLIT_PART_BYTES)
    if parts < 2 or _media_type(content_type) not in CSV_TYPES or b'"' in body:
        return [body]
    text_start = len(body) - len(body.removeprefix(codecs.BOM_UTF8).lstrip(b"\r\n"))
    header_end = body.find(b"\n", text_start) + 1
    if header_end == 0 or len(body) > limits.max_rows * (body.count(b",", text_start, header_end) + 1):
        return [body]
    header = body[text_start:header_end]
    step = (len(body) - header_end) // parts
    cuts = [header_end]
    for k in range(1, parts):
        cut = body.find(b"\n", header_end + k * step) + 1
        if cut > cuts[-1]:
            cuts.append(cut)
    cuts = [c for c in cuts if c < len(body)] + [len(body)]
    if len(cuts) < 3:
        return [body]
    return [body[: cuts[1]]] + [header + body[a:b] for a, b in zip(cuts[1:-1], cuts[2:])]


def join(predictions: Sequence[Prediction], feature_order: Sequence[str]) -> Prediction:
    """The predictions of a body's parts (``split_csv``), in order, as the whole body's."""
    unseen: dict[str, set[str]] = {}
    for prediction in predictions:
        for column, names in prediction.unseen.items():
            unseen.setdefault(column, set()).update(names)
    return Prediction(
        labels=np.concatenate([p.labels for p in predictions]),
        proba=np.concatenate([p.proba for p in predictions]),
        unseen={column: sorted(unseen[column]) for column in feature_order if column in unseen},
    )


def wants_json(accept: str) -> bool:
    return "application/json" in (accept or "").lower()


def format_response(prediction: Prediction, accept: str, probabilities: bool) -> tuple[bytes, str]:
    """Body and content type: CSV (one label per line; ``label,probability`` when asked) or JSON."""
    if wants_json(accept):
        document: dict[str, Any] = {"predictions": prediction.labels.tolist()}
        if probabilities:
            document["probabilities"] = [round(float(p), 10) for p in prediction.proba]
        return json.dumps(document).encode(), "application/json"
    if probabilities:
        lines = [f"{label},{proba:.10g}" for label, proba in zip(prediction.labels.tolist(), prediction.proba.tolist())]
    else:
        lines = [str(label) for label in prediction.labels.tolist()]
    return ("\n".join(lines) + "\n").encode(), "text/csv"


def unseen_header(unseen: dict[str, list[str]]) -> str:
    """``column=value|value;column=value`` for the X-Unseen-Categories header.

    Values are percent-encoded (a header may hold only printable ASCII) and truncated.
    """
    parts = []
    for column, values in unseen.items():
        shown = "|".join(quote(v[:40], safe=" ()-_.,") for v in values[:10])
        parts.append(f"{quote(column, safe='_-')}={shown}")
    return ";".join(parts)[:2000]


def probabilities_requested(query_value: str | None, custom_attributes: str | None, accept: str | None = None) -> bool:
    """True for ``?probabilities=true``, SageMaker CustomAttributes ``probabilities=true``, or an
    Accept parameter ``probabilities=true`` (``application/json; probabilities=true``: the one way a
    Batch Transform job, which sends neither a query string nor CustomAttributes, can ask)."""

    def yes(value: str) -> bool:
        return value.strip().strip('"').lower() in ("1", "true", "yes")

    if query_value is not None and yes(query_value):
        return True
    parameters = [p for media in (accept or "").split(",") for p in media.split(";")[1:]]
    for part in (custom_attributes or "").split(",") + parameters:
        key, _, value = part.partition("=")
        if key.strip().lower() == "probabilities" and yes(value):
            return True
    return False

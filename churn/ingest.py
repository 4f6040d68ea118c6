"""Validation of records before they enter the feature store.

Everything is checked before anything is written: a file with no id column, no or a
non-binary target, no rows, duplicate ids or column names, ids outside CUST_000000..999999,
a column name SageMaker would refuse, or columns that conflict with the existing feature
group stops with an IngestError that names the problem. Integer ``event_time`` values
are read as Unix epoch seconds (below 10^11) or milliseconds (10^11 to 10^14); other
magnitudes are refused rather than guessed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from churn import names
from churn.feature_query import event_times_text, utc_now_iso
from churn.preprocessing import InputError, validate_target
from churn.schema import EVENT_TIME, ID_COLUMN, STORE_METADATA_COLUMNS, customer_key

_CUSTOMER_KEY = re.compile(r"^CUST_\d{6}$")
# SageMaker Feature Store feature types.
INTEGRAL, FRACTIONAL, STRING = "Integral", "Fractional", "String"


class IngestError(ValueError):
    """Records that cannot be ingested; nothing was written."""


def read_csv(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise IngestError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise IngestError(f"{path} is not a readable CSV file: {error}") from None
    if frame.empty:
        raise IngestError(f"{path} has a header but no rows")
    header = [str(c) for c in pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]]
    repeated = sorted({c for c in header if header.count(c) > 1}) if len(set(header)) < len(header) else []
    if repeated:
        raise IngestError(
            f"{path}: column(s) {', '.join(repr(c) for c in repeated)} appear more than once in the header"
        )
    return frame


def infer_feature_definitions(frame: pd.DataFrame) -> dict[str, str]:
    """Feature type per column, as SageMaker Feature Store names them."""
    definitions = {}
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series):
            definitions[column] = STRING
        elif pd.api.types.is_integer_dtype(series):
            definitions[column] = INTEGRAL
        elif pd.api.types.is_float_dtype(series):
            definitions[column] = FRACTIONAL
        else:
            definitions[column] = STRING
    return definitions


def _normalise_ids(ids: pd.Series) -> pd.Series:
    if pd.api.types.is_integer_dtype(ids):
        outside = ids[(ids < 0) | (ids > 999_999)]
        if len(outside):
            raise IngestError(
                f"column '{ID_COLUMN}' row {ids.index.get_loc(outside.index[0]) + 1} has {outside.iloc[0]}, "
                "outside the customer id range 0..999999 (CUST_000000..CUST_999999)"
            )
        return ids.map(customer_key)
    text = ids.astype(str)
    bad = text[~text.str.match(_CUSTOMER_KEY.pattern)]
    if len(bad):
        raise IngestError(
            f"column '{ID_COLUMN}' must hold ids like CUST_000001 or plain numbers 0..999999; "
            f"row {ids.index.get_loc(bad.index[0]) + 1} has {bad.iloc[0]!r}"
        )
    return text


def _check_compatible(definitions: dict[str, str], existing: dict[str, str], group: str) -> None:
    problems = []
    for column in sorted(set(existing) - set(definitions)):
        problems.append(f"column '{column}' ({existing[column]}) is missing")
    for column in sorted(set(definitions) - set(existing)):
        problems.append(f"column '{column}' is not in the feature group")
    for column in sorted(set(definitions) & set(existing)):
        new, old = definitions[column], existing[column]
        if new != old and not (new == INTEGRAL and old == FRACTIONAL):
            problems.append(f"column '{column}' is {new} here but {old} in the feature group")
    if problems:
        raise IngestError(f"schema conflicts with feature group '{group}': " + "; ".join(problems))


_EPOCH_MS_FROM, _EPOCH_MS_TO = 10**11, 10**14  # 10^11 s is year 5138; 10^14 ms is year 5138


def _parse_event_times(values: pd.Series) -> pd.Series:
    """Timestamps as UTC datetimes: ISO-8601 text, or integer epoch seconds / milliseconds."""
    if pd.api.types.is_bool_dtype(values):
        raise IngestError(f"column '{EVENT_TIME}' holds true/false values, not timestamps")
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values)
        if numbers.isna().any():
            row = int(numbers.isna().to_numpy().argmax())
            raise IngestError(f"column '{EVENT_TIME}' row {row + 1} is empty")
        seconds = numbers < _EPOCH_MS_FROM
        bad = (numbers < 0) | (numbers >= _EPOCH_MS_TO) | (numbers % 1 != 0) & ~seconds
        if bad.any() or (seconds.any() and not seconds.all()):
            row = int(bad.to_numpy().argmax()) if bad.any() else int((seconds != seconds.iloc[0]).to_numpy().argmax())
            raise IngestError(
                f"column '{EVENT_TIME}' row {row + 1}: {values.iloc[row]!r} is not a Unix epoch time this store reads "
                f"(whole column in seconds below 10^11, or in milliseconds from 10^11 to 10^14; or ISO-8601 text)"
            )
        return pd.to_datetime(numbers, unit="s" if seconds.all() else "ms", utc=True)
    parsed = pd.to_datetime(values, utc=True, errors="coerce")
    if parsed.isna().any():
        row = int(parsed.isna().to_numpy().argmax())
        raise IngestError(f"column '{EVENT_TIME}' row {row + 1}: {values.iloc[row]!r} is not a timestamp")
    return parsed


def prepare_records(
    frame: pd.DataFrame,
    target: str,
    group: str,
    existing_definitions: dict[str, str] | None = None,
    now: str | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Validate ``frame`` and return (records with store metadata, feature definitions)."""
    if frame.empty:
        raise IngestError("no rows to ingest")
    columns = [str(c) for c in frame.columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1}) if len(set(columns)) < len(columns) else []
    if repeated:
        raise IngestError(f"column(s) {', '.join(repr(c) for c in repeated)} appear more than once")
    for column in columns:
        try:
            names.feature(column)
        except names.InvalidName as error:
            raise IngestError(str(error)) from None
    if ID_COLUMN not in frame.columns:
        raise IngestError(f"no '{ID_COLUMN}' column (columns: {', '.join(map(str, frame.columns))})")
    reserved = [c for c in STORE_METADATA_COLUMNS if c in frame.columns]
    if reserved:
        raise IngestError(f"column(s) {', '.join(reserved)} are reserved for the feature store")
    try:
        labels = validate_target(frame, target)
    except InputError as error:
        raise IngestError(str(error)) from None
    records = frame.copy()
    records[target] = labels
    records[ID_COLUMN] = _normalise_ids(records[ID_COLUMN])
    duplicated = records[ID_COLUMN][records[ID_COLUMN].duplicated()]
    if len(duplicated):
        raise IngestError(f"{ID_COLUMN} {duplicated.iloc[0]} appears more than once in the input")
    now = now or utc_now_iso()
    if EVENT_TIME not in records.columns:
        records[EVENT_TIME] = now
    else:
        parsed = _parse_event_times(records[EVENT_TIME])
        records[EVENT_TIME] = event_times_text(parsed)
    records[EVENT_TIME] = records[EVENT_TIME].astype(str)
    definitions = infer_feature_definitions(records)
    if existing_definitions is not None:
        _check_compatible(definitions, existing_definitions, group)
        for column, kind in existing_definitions.items():
            if kind == FRACTIONAL and column in records:
                records[column] = records[column].astype(float)
        definitions = dict(existing_definitions)
    records["write_time"] = now
    records["api_invocation_time"] = now
    records["is_deleted"] = False
    return records, definitions

"""Validation of records before they enter the feature store.

Everything is checked before anything is written: a file with no id column, no or a
non-binary target, no rows, duplicate ids, or columns that conflict with the existing
feature group stops with an IngestError that names the problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Optional

import pandas as pd

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
    return frame


def infer_feature_definitions(frame: pd.DataFrame) -> Dict[str, str]:
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
        return ids.map(customer_key)
    text = ids.astype(str)
    bad = text[~text.str.match(_CUSTOMER_KEY.pattern)]
    if len(bad):
        raise IngestError(
            f"column '{ID_COLUMN}' must hold ids like CUST_000001 or plain numbers; "
            f"row {bad.index[0] + 1} has {bad.iloc[0]!r}"
        )
    return text


def _check_compatible(definitions: Dict[str, str], existing: Dict[str, str], group: str) -> None:
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


def prepare_records(
    frame: pd.DataFrame,
    target: str,
    group: str,
    existing_definitions: Optional[Dict[str, str]] = None,
    now: Optional[str] = None,
) -> tuple[pd.DataFrame, Dict[str, str]]:
    """Validate ``frame`` and return (records with store metadata, feature definitions)."""
    if frame.empty:
        raise IngestError("no rows to ingest")
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
        parsed = pd.to_datetime(records[EVENT_TIME], utc=True, errors="coerce")
        if parsed.isna().any():
            row = int(parsed.isna().to_numpy().argmax())
            raise IngestError(f"column '{EVENT_TIME}' row {row + 1}: {records[EVENT_TIME].iloc[row]!r} is not a timestamp")
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

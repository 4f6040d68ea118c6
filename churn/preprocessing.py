"""Preprocessing with the spec's rules, as a fitted object that inference reuses.

Rules (spec, PreprocessData): identifier and metadata columns are dropped; missing
values become 'Unknown' in text columns and the median in numeric columns; text
columns are label-encoded (classes sorted, as sklearn's LabelEncoder does); a
category never seen in training maps to the first known class (spec, Troubleshooting)
and is reported. The state is plain data (JSON), so the endpoint needs no pickle of it.

``transform`` takes a mapping of column -> values (a DataFrame, parsed CSV columns or
JSON records), so training, evaluation, the endpoint and batch scoring share one code path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np
import pandas as pd

from churn.schema import NON_FEATURE_COLUMNS

UNKNOWN = "Unknown"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MISSING_TEXT = {"", "na", "nan", "null", "none"}


class InputError(ValueError):
    """Input rows that cannot be scored; the message names the column and row."""


class MissingColumnsError(InputError):
    def __init__(self, missing: Sequence[str]):
        self.missing = list(missing)
        super().__init__(f"missing required column(s): {', '.join(self.missing)}")


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return value.strip().lower() in _MISSING_TEXT
    return False


def to_float(values: Sequence[Any], column: str) -> np.ndarray:
    """Numbers of one column as float64, missing as NaN; bad text names column and row."""
    try:
        return np.array(values, dtype=np.float64)  # a copy: callers fill NaNs in place
    except (TypeError, ValueError):
        pass
    out = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        if _is_missing(value):
            out[row] = np.nan
            continue
        try:
            out[row] = float(value)
        except (TypeError, ValueError):
            raise InputError(
                f"column '{column}' row {row + 1}: {str(value)[:50]!r} is not a number"
            ) from None
    return out


@dataclass
class Preprocessor:
    """Fitted preprocessing state: medians, category classes and feature order."""

    target: str
    feature_order: List[str]
    medians: Dict[str, float]
    classes: Dict[str, List[str]]
    unseen_policy: str = "first_class"

    @classmethod
    def fit(cls, frame: pd.DataFrame, target: str) -> "Preprocessor":
        """Learn the state from training rows (identifier/metadata columns are ignored)."""
        features = [c for c in frame.columns if c not in NON_FEATURE_COLUMNS and c != target]
        if not features:
            raise InputError("no feature columns left after dropping id, metadata and target")
        medians, classes = {}, {}
        for column in features:
            series = frame[column]
            if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
                text = series.astype("object").where(series.notna(), UNKNOWN).astype(str)
                classes[column] = sorted(set(text))
            else:
                median = series.median()
                medians[column] = float(median) if pd.notna(median) else 0.0
        return cls(target=target, feature_order=features, medians=medians, classes=classes)

    @property
    def required_columns(self) -> List[str]:
        return list(self.feature_order)

    def transform(self, columns: Mapping[str, Sequence[Any]]) -> Tuple[np.ndarray, Dict[str, List[str]]]:
        """Encode raw rows into the model's matrix.

        Returns the float64 matrix (rows x features in ``feature_order``) and the unseen
        categories per column (mapped to the first known class, as the spec says).
        Extra columns are ignored; missing required columns raise MissingColumnsError.
        """
        missing = [c for c in self.feature_order if c not in columns]
        if missing:
            raise MissingColumnsError(missing)
        n_rows = len(columns[self.feature_order[0]])
        matrix = np.empty((n_rows, len(self.feature_order)), dtype=np.float64)
        unseen: Dict[str, List[str]] = {}
        for j, column in enumerate(self.feature_order):
            values = columns[column]
            if len(values) != n_rows:
                raise InputError(f"column '{column}' has {len(values)} values, expected {n_rows}")
            if column in self.medians:
                numbers = to_float(values, column)
                numbers[np.isnan(numbers)] = self.medians[column]
                too_large = np.abs(numbers) > _FLOAT32_MAX  # trees compare in float32
                if too_large.any():
                    row = int(np.flatnonzero(too_large)[0])
                    raise InputError(f"column '{column}' row {row + 1}: {values[row]!r:.50} is out of range")
                matrix[:, j] = numbers
            else:
                matrix[:, j], novel = self._encode(column, values)
                if novel:
                    unseen[column] = novel
        return matrix, unseen

    def _encode(self, column: str, values: Sequence[Any]) -> Tuple[np.ndarray, List[str]]:
        codes = {name: float(i) for i, name in enumerate(self.classes[column])}
        try:
            distinct = set(values)
        except TypeError:  # an unhashable value, e.g. a list inside a JSON record
            row = next(i for i, v in enumerate(values) if not isinstance(v, (str, int, float, bool, type(None))))
            raise InputError(f"column '{column}' row {row + 1}: {str(values[row])[:50]!r} is not a single value") from None
        lookup: Dict[Any, float] = {}
        novel: List[str] = []
        for value in distinct:
            name = UNKNOWN if _is_missing(value) else str(value)
            code = codes.get(name)
            if code is None:
                code = 0.0  # spec: unseen categories map to the first known class
                novel.append(name)
            lookup[value] = code
        out = np.fromiter(map(lookup.__getitem__, values), dtype=np.float64, count=len(values))
        return out, sorted(set(novel))

    def to_dict(self) -> Dict[str, Any]:
        return {
            "target": self.target,
            "feature_order": self.feature_order,
            "medians": self.medians,
            "classes": self.classes,
            "unseen_policy": self.unseen_policy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Preprocessor":
        return cls(**dict(data))


@dataclass
class SplitData:
    train: pd.DataFrame
    test: pd.DataFrame
    info: Dict[str, Any] = field(default_factory=dict)


def validate_target(frame: pd.DataFrame, target: str) -> pd.Series:
    """The target as 0/1 ints; raises InputError naming the column and bad values."""
    if target not in frame.columns:
        raise InputError(f"target column '{target}' is not in the data (columns: {', '.join(map(str, frame.columns))})")
    y = frame[target]
    if y.isna().any():
        rows = (np.flatnonzero(y.isna().to_numpy())[:5] + 1).tolist()
        raise InputError(f"target column '{target}' has missing values (rows {rows})")
    values = set(pd.unique(y).tolist())
    if not values <= {0, 1}:
        bad = sorted(map(str, values - {0, 1}))[:5]
        raise InputError(f"target column '{target}' must be binary 0/1, found value(s) {', '.join(bad)}")
    return y.astype(int)


def split_train_test(frame: pd.DataFrame, target: str, test_size: float, random_state: int) -> SplitData:
    """Stratified train/test split (spec: 80/20), with a clear error when it cannot stratify."""
    from sklearn.model_selection import train_test_split

    y = validate_target(frame, target)
    counts = y.value_counts()
    if len(counts) < 2:
        raise InputError(f"target column '{target}' has only class {counts.index[0]}; need both 0 and 1")
    n_test = math.ceil(len(frame) * test_size)
    if counts.min() < 2 or n_test < 2 or len(frame) - n_test < 2:
        raise InputError(
            f"too few rows to split {len(frame)} rows {1 - test_size:.0%}/{test_size:.0%} "
            f"stratified by '{target}' (class counts {counts.to_dict()})"
        )
    frame = frame.assign(**{target: y})
    train, test = train_test_split(frame, test_size=test_size, stratify=y, random_state=random_state)
    info = {
        "rows": len(frame), "train_rows": len(train), "test_rows": len(test),
        "positive_rate": float(y.mean()), "test_size": test_size, "random_state": random_state,
    }
    return SplitData(train.reset_index(drop=True), test.reset_index(drop=True), info)

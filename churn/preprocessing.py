"""Preprocessing with the spec's rules, as a fitted object that inference reuses.

Rules (spec, PreprocessData): identifier and metadata columns are dropped; missing
values become 'Unknown' in text columns and the median in numeric columns; text
columns are label-encoded (classes sorted, as sklearn's LabelEncoder does); a
category never seen in training maps to the first known class (spec, Troubleshooting)
and is reported. The state is plain data (JSON), so the endpoint needs no pickle of it.

``transform`` takes a mapping of column -> values (a DataFrame, parsed CSV columns or
JSON records), so training, evaluation, the endpoint and batch scoring share one code path.
Large CSV batches arrive as ``ArrowColumns``; for those ``transform`` first tries a
vectorised fast path and falls back to the per-value code, which alone defines results
and error messages.

Length: one fitted object (fit, transform, serialization) and its vectorized encoder; kept together
so the spec's rules and their fast path are read side by side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.schema import NON_FEATURE_COLUMNS

UNKNOWN = "Unknown"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MISSING_TEXT = {"", "na", "nan", "null", "none"}
_ARROW_MIN_ROWS = 64  # a shorter Series: the per-value lookup is quicker than converting to Arrow


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
            raise InputError(f"column '{column}' row {row + 1}: {str(value)[:50]!r} is not a number") from None
    return out


# Bytes a plain decimal literal is made of ("-12.5e+3"): no whitespace, no letters but e/E
# (so no 'nan', 'inf', '0x..'), no '_' (float() and numpy accept "1_0", Arrow does not).
_DECIMAL_BYTES = np.zeros(256, dtype=bool)
_DECIMAL_BYTES[list(b"0123456789+-.eE")] = True


class ArrowColumns(Mapping):
    """The columns of a pyarrow table of text (the large-CSV parser's result) as a mapping.

    ``columns[name]`` is what the parser returned before: an object array of ``str`` (made
    on first access). ``transform`` reads ``arrow(name)`` instead, which skips making a
    Python string per cell.
    """

    def __init__(self, table: Any, text: Callable[[], ArrowColumns] | None = None):
        # table.column() per name, as the parser always did (a repeated name raises KeyError)
        self._arrays = {name: table.column(name) for name in table.column_names}
        self._numpy: dict[str, np.ndarray] = {}
        self._text = text  # the same body with every column as text, for a column the parser read as numbers

    def __getitem__(self, name: str) -> np.ndarray:
        values = self._numpy.get(name)
        if values is None:
            array = self._arrays[name]
            if self._text is not None and not _is_text(array):
                if not isinstance(self._text, ArrowColumns):
                    self._text = self._text()
                array = self._text.arrow(name)
            values = self._numpy[name] = array.to_numpy(zero_copy_only=False)
        return values

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def arrow(self, name: str) -> Any:
        """The column as a pyarrow ChunkedArray: text, or float64 for a column the parser read as numbers."""
        return self._arrays[name]


def _is_text(array: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_string(array.type) or pa.types.is_large_string(array.type)


def _plain_text(array: Any) -> Any:
    """One pyarrow StringArray without nulls, or None for anything else."""
    import pyarrow as pa

    if array.null_count or not pa.types.is_string(array.type):
        return None
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _fast_float(array: Any) -> np.ndarray | None:
    """``to_float`` of a column of text cells that are all plain decimal literals or empty.

    Arrow parses decimal literals correctly rounded, as float() and numpy do, so the numbers
    are bit-for-bit those of ``to_float``; empty cells are missing (NaN) there too. Returns
    None (use ``to_float``) for anything else: whitespace, other missing markers, text, NaN,
    infinity, overflow. A float64 column (the parser read its cells as numbers, only where
    Arrow reads a cell as float() does) is taken as it is, NaN and null being missing in
    ``to_float`` too; with an infinity, None.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_float64(array.type):  # the parser read the column as numbers: float() of each cell, empty ones null
        numbers = array.to_numpy(zero_copy_only=False)
        numbers = numbers if numbers.flags.writeable else numbers.copy()
        return None if np.isinf(numbers).any() else numbers  # infinity: the exact path names the cell
    text = _plain_text(array)
    if text is None:
        return None
    _, offset_buffer, data_buffer = text.buffers()
    offsets = np.frombuffer(offset_buffer, dtype=np.int32, count=len(text) + 1, offset=text.offset * 4)
    if data_buffer is not None:
        data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if not _DECIMAL_BYTES[data].all():
            return None
    empty = offsets[1:] == offsets[:-1]
    if empty.any():
        text = pc.if_else(pa.array(empty), pa.scalar(None, pa.string()), text)
    try:
        numbers = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False, writable=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if np.isinf(numbers).any() or np.count_nonzero(np.isnan(numbers)) != np.count_nonzero(empty):
        return None
    return numbers


def _arrow_text(values: Any) -> Any:
    """``values`` as one pyarrow string array (missing cells null), or None when they are not all text.

    Takes pyarrow arrays and pandas Series of string or object dtype (None, NaN and pd.NA
    become nulls: all of them are 'missing' to ``_encode_exact``). Lists (JSON records) and
    numpy arrays return None: hashing their Python objects is as quick as converting them.
    """
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        array = values
    elif isinstance(values, pd.Series) and (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        try:
            array = pa.array(values, from_pandas=True)  # from_pandas: NaN is null, not a float
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            return None  # mixed or non-text values
    else:
        return None
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_string_view(array.type):
        array = array.cast(pa.large_string())
    return array if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) else None


@dataclass
class Preprocessor:
    """Fitted preprocessing state: medians, category classes and feature order."""

    target: str
    feature_order: list[str]
    medians: dict[str, float]
    classes: dict[str, list[str]]
    unseen_policy: str = "first_class"

    @classmethod
    def fit(cls, frame: pd.DataFrame, target: str) -> Preprocessor:
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
    def required_columns(self) -> list[str]:
        return list(self.feature_order)

    @property
    def numeric_columns(self) -> list[str]:
        """The number features (the others are categories)."""
        return list(self.medians)

    def transform(self, columns: Mapping[str, Sequence[Any]]) -> tuple[np.ndarray, dict[str, list[str]]]:
        """Encode raw rows into the model's matrix.

        Returns the float64 matrix (rows x features in ``feature_order``) and the unseen
        categories per column (mapped to the first known class, as the spec says).
        Extra columns are ignored; missing required columns raise MissingColumnsError.
        """
        missing = [c for c in self.feature_order if c not in columns]
        if missing:
            raise MissingColumnsError(missing)
        # Arrow columns (a large CSV batch) try the vectorised fast path first. It handles
        # only input whose result it can match bit for bit and gives up on anything else,
        # so the per-value code below stays the source of truth, and of every error message.
        arrow = columns.arrow if isinstance(columns, ArrowColumns) else None
        n_rows = len(arrow(self.feature_order[0]) if arrow is not None else columns[self.feature_order[0]])
        matrix = np.empty((n_rows, len(self.feature_order)), dtype=np.float64)
        unseen: dict[str, list[str]] = {}
        for j, column in enumerate(self.feature_order):
            if arrow is not None and len(arrow(column)) == n_rows:
                fast = self._fast_column(column, arrow(column))
                if fast is not None:
                    matrix[:, j], novel = fast
                    if novel:
                        unseen[column] = novel
                    continue
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

    def _fast_column(self, column: str, array: Any) -> tuple[np.ndarray, list[str]] | None:
        """One column's values and unseen categories from Arrow text, or None to take the exact path."""
        if column not in self.medians and not _is_text(array):
            return None  # a category column read as numbers: its text, on the exact path
        if column in self.medians:
            numbers = _fast_float(array)
            if numbers is None:
                return None
            numbers[np.isnan(numbers)] = self.medians[column]
            if (np.abs(numbers) > _FLOAT32_MAX).any():
                return None  # the exact path raises the out-of-range error
            return numbers, []
        return self._encode(column, array)

    def _encode(self, column: str, values: Any) -> tuple[np.ndarray, list[str]]:
        """Class codes of one text column and its unseen categories (sorted).

        Text of ``_ARROW_MIN_ROWS`` rows or more (a pyarrow array, a pandas Series of str/None/NaN) is
        dictionary-encoded by Arrow and ``_encode_exact`` looks up each *distinct* value once;
        the codes are then spread to the rows. Anything else (numbers, booleans, mixed types)
        takes ``_encode_exact`` on every row, which alone defines results and error messages.
        """
        text = _arrow_text(values) if len(values) >= _ARROW_MIN_ROWS or not isinstance(values, pd.Series) else None
        if text is None:
            return self._encode_exact(column, values)
        encoded = text.dictionary_encode()
        distinct = encoded.dictionary.to_numpy(zero_copy_only=False)
        if encoded.null_count:  # None/NaN/pd.NA cells: one more distinct value, missing
            distinct = np.append(distinct, None)
            indices = encoded.indices.fill_null(len(distinct) - 1)
        else:
            indices = encoded.indices
        codes, novel = self._encode_exact(column, distinct)
        return codes[indices.to_numpy()], novel

    def _encode_exact(self, column: str, values: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
        """The per-value definition: missing -> 'Unknown', else str(value); unseen -> the first class."""
        codes = {name: float(i) for i, name in enumerate(self.classes[column])}
        try:
            distinct = set(values)
        except TypeError:  # an unhashable value, e.g. a list inside a JSON record
            row = next(i for i, v in enumerate(values) if not isinstance(v, (str, int, float, bool, type(None))))
            raise InputError(
                f"column '{column}' row {row + 1}: {str(values[row])[:50]!r} is not a single value"
            ) from None
        lookup: dict[Any, float] = {}
        novel: list[str] = []
        for value in distinct:
            name = UNKNOWN if _is_missing(value) else str(value)
            code = codes.get(name)
            if code is None:
                code = 0.0  # spec: unseen categories map to the first known class
                novel.append(name)
            lookup[value] = code
        out = np.fromiter(map(lookup.__getitem__, values), dtype=np.float64, count=len(values))
        return out, sorted(set(novel))

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "feature_order": self.feature_order,
            "medians": self.medians,
            "classes": self.classes,
            "unseen_policy": self.unseen_policy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessor:
        return cls(**dict(data))


@dataclass
class SplitData:
    train: pd.DataFrame
    test: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


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
        "rows": len(frame),
        "train_rows": len(train),
        "test_rows": len(test),
        "positive_rate": float(y.mean()),
        "test_size": test_size,
        "random_state": random_state,
    }
    return SplitData(train.reset_index(drop=True), test.reset_index(drop=True), info)

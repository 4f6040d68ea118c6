"""A large CSV request is parsed, transformed and scored in row parts on the threads it may use
(``protocol.split_csv``, ``protocol.predict_body``): the answer must be the whole body's, byte for byte,
and so must every refusal (row numbers as the client counts them)."""

from __future__ import annotations

import codecs

import pandas as pd
import pytest

from churn import fast_forest
from churn.serving import protocol


def _body(split, copies: int = 12) -> tuple[pd.DataFrame, bytes]:
    frame = pd.concat([split.test] * copies, ignore_index=True)
    return frame, frame.to_csv(index=False).encode()


def _whole_and_parts(bundle, body: bytes, content_type: str = "text/csv"):
    with fast_forest.row_threads(1):
        whole = protocol.predict_body(bundle, body, content_type, protocol.DEFAULT_LIMITS)
    with fast_forest.row_threads(3):
        parts = protocol.predict_body(bundle, body, content_type, protocol.DEFAULT_LIMITS)
    return whole, parts


def test_parts_share_the_header_and_hold_every_row_once(trained_bundle):
    _, split = trained_bundle
    frame, body = _body(split)
    header = body.split(b"\n", 1)[0] + b"\n"
    prefixed = protocol.split_csv(codecs.BOM_UTF8 + b"\r\n" + body, "text/csv; charset=utf-8", 3)
    assert len(prefixed) == 3 and prefixed[0].startswith(codecs.BOM_UTF8 + b"\r\n" + header)
    assert all(part.startswith(header) for part in prefixed[1:])  # the header without what came before it
    parts = protocol.split_csv(body, "text/csv", 3)
    assert len(parts) == 3 and all(part.startswith(header) for part in parts)
    rows = [line for part in parts for line in part.splitlines()[1:]]
    assert rows == body.splitlines()[1:] and len(rows) == len(frame)


def test_bodies_that_cannot_be_cut_safely_stay_whole(trained_bundle):
    _, split = trained_bundle
    frame, body = _body(split)
    assert protocol.split_csv(body, "application/json", 2) == [body]
    assert protocol.split_csv(body, "text/csv", 1) == [body]
    assert protocol.split_csv(body[:100_000], "text/csv", 2) == [body[:100_000]]  # parts too small
    quoted = frame.to_csv(index=False, quoting=1).encode()  # a quoted cell may hold a newline
    assert protocol.split_csv(quoted, "text/csv", 2) == [quoted]
    few_rows = protocol.Limits(max_rows=1000)  # the parts' row limit would not be the whole's
    assert protocol.split_csv(body, "text/csv", 2, few_rows) == [body]


def test_scored_in_parts_the_answer_is_the_whole_bodys(trained_bundle):
    bundle, split = trained_bundle
    frame, _ = _body(split)
    odd = frame.astype(object)
    odd.loc[len(odd) - 3, "contract_type"] = "Weekly"  # unseen, in the last part only
    odd.loc[5, "payment_method"] = "Cheque"  # unseen, in the first part only
    odd.loc[::7, "total_charges"] = ""
    body = odd.to_csv(index=False).encode()
    assert len(protocol.split_csv(body, "text/csv", 3)) == 3
    whole, parts = _whole_and_parts(bundle, body)
    assert parts.proba.tobytes() == whole.proba.tobytes() and parts.labels.tolist() == whole.labels.tolist()
    assert list(parts.unseen.items()) == list(whole.unseen.items())
    assert whole.unseen == {"contract_type": ["Weekly"], "payment_method": ["Cheque"]}
    assert protocol.format_response(parts, "", True) == protocol.format_response(whole, "", True)


@pytest.mark.parametrize(
    "column, text, message",
    [
        ("monthly_charges", "lots", "column 'monthly_charges' row {row}: 'lots' is not a number"),
        ("age", "1e309", "column 'age' row {row}: '1e309' is out of range"),
    ],
)
def test_a_refusal_in_a_late_part_names_the_row_as_the_client_counts_it(trained_bundle, column, text, message):
    bundle, split = trained_bundle
    frame, _ = _body(split)
    changed = frame.astype(object)
    row = len(changed) - 10
    changed.loc[row, column] = text
    body = changed.to_csv(index=False).encode()
    assert len(protocol.split_csv(body, "text/csv", 2)) == 2
    with fast_forest.row_threads(2), pytest.raises(protocol.RequestError) as error:
        protocol.predict_body(bundle, body, "text/csv", protocol.DEFAULT_LIMITS)
    assert error.value.status == 400 and error.value.message == message.format(row=row + 1)

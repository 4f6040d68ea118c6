"""Batch output: streamed chunk by chunk, and never left half-written (local files here; S3 in tests/cloud)."""

from __future__ import annotations

import pandas as pd
import pytest

from churn.batch import OUTPUT_COLUMNS, score_in_chunks, score_to, write_chunks


def _frame(trained_bundle, copies: int = 4) -> pd.DataFrame:
    _, split = trained_bundle
    frame = pd.concat([split.test] * copies, ignore_index=True)
    return frame.assign(customer_id=[f"CUST_{i + 1:06d}" for i in range(len(frame))])


@pytest.mark.parametrize("output_format", ["parquet", "csv"])
def test_a_streamed_batch_writes_what_one_unstreamed_chunk_writes(trained_bundle, tmp_path, output_format):
    bundle, _ = trained_bundle
    frame = _frame(trained_bundle)
    seen = []
    # chunks scored on 3 threads, a few ahead of the writer, still arrive whole and in order
    streamed = write_chunks(
        score_in_chunks(bundle, frame, 37, "m", "3", "run-1", threads=3),
        str(tmp_path / f"s.{output_format}"),
        output_format,
        progress=seen.append,
    )
    whole = write_chunks(
        score_in_chunks(bundle, frame, len(frame), "m", "3", "run-1"),
        str(tmp_path / f"w.{output_format}"),
        output_format,
    )
    read = pd.read_parquet if output_format == "parquet" else pd.read_csv
    got, want = read(tmp_path / f"s.{output_format}"), read(tmp_path / f"w.{output_format}")
    assert len(seen) == -(-len(frame) // 37) and seen[-1] == len(frame)  # one write per chunk, as scored
    assert list(got.columns) == OUTPUT_COLUMNS and streamed == whole and streamed["rows"] == len(frame)
    pd.testing.assert_frame_equal(got, want)
    assert got["customer_id"].tolist() == frame["customer_id"].tolist()


def test_an_interrupted_batch_leaves_no_output_and_keeps_the_previous_one(trained_bundle, tmp_path):
    bundle, _ = trained_bundle
    frame = _frame(trained_bundle)
    target = tmp_path / "out" / "predictions.parquet"
    summary = score_to(bundle, frame, str(target), "parquet", 50, "m", "1", "run-1", progress=lambda _: None)
    before = target.read_bytes()

    def failing():
        chunks = score_in_chunks(bundle, frame, 50, "m", "2", "run-2")
        yield next(chunks)
        yield next(chunks)
        raise RuntimeError("scoring died mid-batch")

    with pytest.raises(RuntimeError, match="mid-batch"):
        write_chunks(failing(), str(target), "parquet")
    assert target.read_bytes() == before  # the earlier complete output, untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["predictions.parquet"]  # no partial file left
    with pytest.raises(RuntimeError, match="mid-batch"):
        write_chunks(failing(), str(tmp_path / "fresh.csv"), "csv")
    assert not (tmp_path / "fresh.csv").exists()
    assert summary["rows"] == len(frame) and 0 <= summary["positive_rate"] <= 1

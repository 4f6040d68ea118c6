"""Benchmark: batch scoring rows/s and peak memory, up to a million customers (999,999: the CUST_XXXXXX id space).

    python bench/batch.py [--rows 999999] [--chunk-rows 50000] [--repeats 3] [--threads N] [--unstreamed] [--store DIR]

Writes --rows demo customers to a throwaway local offline store, trains the spec's RF on
customers 1-4000, then times the batch path the pipeline uses (DuckDB read of the
latest records, chunked scoring streamed to a parquet file) and prints rows/s and peak RSS.
``--store DIR`` keeps the prepared store in DIR and reuses it on the next run (preparing a
million customers takes minutes).
Wall and CPU seconds are printed per stage (the CPU is shared: the load average is printed
too); scoring + writing is repeated --repeats times (min / median), and one chunk is split
into preprocessing and trees to show where the time goes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_mib() -> float:
    """This process's current resident set (Linux /proc), in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


class _RssSampler(threading.Thread):
    """The highest current RSS seen while scoring (ru_maxrss is the process's lifetime peak, set by the read)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.highest, self.done = _rss_mib(), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            self.highest = max(self.highest, _rss_mib())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=999_999)  # CUST_XXXXXX holds at most 999,999 ids
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="scoring threads (default: score_in_chunks's)")
    parser.add_argument("--unstreamed", action="store_true", help="hold every scored chunk, then write (the old way)")
    parser.add_argument("--store", default=None, help="prepared store to reuse (made there when missing)")
    parser.add_argument("--prepare-only", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import pandas as pd

    from churn.batch import score_in_chunks, write_chunks
    from churn.demo_data import generate_customers
    from churn.feature_query import FeatureQuery
    from churn.ingest import prepare_records
    from churn.offline_store import LocalOfflineStore
    from churn.preprocessing import Preprocessor, split_train_test
    from churn.training import train_random_forest

    if args.prepare_only:
        records, definitions = prepare_records(generate_customers(args.rows, seed=7), "churn", "bench")
        store = LocalOfflineStore(args.prepare_only)
        store.create_group("bench", definitions, "churn")
        store.put_records("bench", records)
        return
    work = Path(tempfile.mkdtemp(prefix="churn-bench-batch-"))
    store_dir = Path(args.store) if args.store else work / "store"
    store = LocalOfflineStore(store_dir)
    started = time.perf_counter()
    if store.describe("bench") is None:
        # the store is written by a child process, so this process's peak RSS is the batch path's own
        subprocess.run(
            [sys.executable, __file__, "--rows", str(args.rows), "--prepare-only", str(store_dir)], check=True
        )
        print(f"prepared {args.rows:,} customers in {time.perf_counter() - started:.1f}s (in a child process)")
    else:
        print(f"reusing the store in {store_dir} (its customers: the run that made it)")
    train, _ = store.read_latest(FeatureQuery("bench", 1, 4000))
    split = split_train_test(train, "churn", 0.2, 42)
    bundle = train_random_forest(
        split.train, Preprocessor.fit(split.train, "churn"), {"n_estimators": 100, "max_depth": 10}, 42
    )

    t0, c0 = time.perf_counter(), time.process_time()
    frame, _ = store.read_latest(FeatureQuery("bench", 1, args.rows))
    t1, c1 = time.perf_counter(), time.process_time()
    before_scoring = _rss_mib()
    sampler = _RssSampler()
    sampler.start()
    walls, cpus = [], []
    for _ in range(args.repeats):
        s0, p0 = time.perf_counter(), time.process_time()
        chunks = score_in_chunks(bundle, frame, args.chunk_rows, "bench", "1", "bench", threads=args.threads)
        if args.unstreamed:
            held = list(chunks)
            predictions = pd.concat(held, ignore_index=True)
            rows = write_chunks(iter(held), str(work / "predictions.parquet"))["rows"]
            del predictions, held
        else:
            rows = write_chunks(chunks, str(work / "predictions.parquet"))["rows"]
        walls.append(time.perf_counter() - s0)
        cpus.append(time.process_time() - p0)
    sampler.done.set()
    sampler.join()
    check = pd.read_parquet(work / "predictions.parquet", columns=["customer_id"])
    assert rows == len(check) == args.rows
    chunk = frame.iloc[: args.chunk_rows]
    p0 = time.process_time()
    matrix, _ = bundle.preprocessor.transform(chunk)
    p1 = time.process_time()
    fast = bundle._fast_path()
    (fast.predict_positive if fast is not None else bundle.estimator.predict_proba)(matrix)
    p2 = time.process_time()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    read, score = t1 - t0, min(walls)
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine: wall times are noisy)")
    print(f"read latest records: wall {read:6.1f}s  cpu {c1 - c0:6.1f}s  ({args.rows / read:,.0f} rows/s)")
    print(
        f"score + write x{args.repeats}: wall min {score:.1f}s median {statistics.median(walls):.1f}s, "
        f"cpu min {min(cpus):.1f}s ({rows / score:,.0f} rows/s at the min, chunks of {args.chunk_rows:,})"
    )
    print(f"  one chunk of {len(chunk):,}: preprocess cpu {p1 - p0:.3f}s, trees cpu {p2 - p1:.3f}s")
    print(
        f"end to end (read + best score/write): {read + score:6.1f}s  ({rows / (read + score):,.0f} rows/s; "
        f"cpu {c1 - c0 + min(cpus):.1f}s = {rows / (c1 - c0 + min(cpus)):,.0f} rows per cpu-second)"
    )
    print(f"peak RSS: {peak:,.0f} MiB (the whole batch path; set by the feature read)")
    print(
        f"scoring ({'unstreamed' if args.unstreamed else 'streamed'} output): RSS {before_scoring:,.0f} MiB before, "
        f"highest {sampler.highest:,.0f} MiB during (+{sampler.highest - before_scoring:,.0f} MiB)"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Bronze landing and silver merging: speed against a plain Delta write, memory against table size.

    python benchmarks/lake_landing.py [--rows 2000000]

Each case runs in its own child process so its peak memory is its own. Baseline: the
same rows materialized as one Arrow table and written with `write_deltalake`. plantlake:
`lake.bronze.land`, which streams batches into the first commit, and on a rerun merges
them insert-if-absent; then silver (dedupe, GX, merge) over the landed rows, in chunks.
The last line holds the ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

BATCH = 50_000
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("updated_at", pa.timestamp("us", tz="UTC")),
        ("machine_id", pa.string()),
        ("quantity", pa.decimal128(12, 3)),
        ("price", pa.float64()),
        ("status", pa.string()),
        ("lot", pa.string()),
        ("count_a", pa.int64()),
        ("count_b", pa.int64()),
        ("note", pa.string()),
    ]
)


def batches(rows: int) -> Iterator[pa.RecordBatch]:
    rng = np.random.default_rng(1)
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    for offset in range(0, rows, BATCH):
        n = min(BATCH, rows - offset)
        ids = np.arange(offset, offset + n, dtype=np.int64)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(ids),
                pa.array(start + ids * 1_000_000, pa.timestamp("us", tz="UTC")),
                pa.array([f"M-{i % 50:03d}" for i in ids]),
                pa.array(rng.integers(0, 10_000_000, n)).cast(pa.decimal128(19, 0)).cast(pa.decimal128(12, 3)),
                pa.array(rng.random(n) * 100),
                pa.array(np.where(ids % 7 == 0, "done", "open")),
                pa.array([f"LOT-{i % 977:05d}" for i in ids]),
                pa.array(rng.integers(0, 1000, n)),
                pa.array(rng.integers(0, 1000, n)),
                pa.array(["ok"] * n),
            ],
            schema=SCHEMA,
        )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _case(name: str, rows: int, folder: str, results: multiprocessing.Queue) -> None:
    try:
        results.put(_measure(name, rows, folder))
    except Exception as exc:  # the parent waits on the queue: tell it instead of hanging
        results.put(exc)
        raise


def _measure(name: str, rows: int, folder: str) -> tuple[str, int, float, float]:
    from deltalake import write_deltalake

    from plantlake.lake import bronze
    from plantlake.lake.layout import Ingestion, Lake

    path = Path(folder) / name
    before = _peak_mb()
    started = time.perf_counter()
    if name.startswith("silver"):
        from plantlake.assets.steps import merge_validated
        from plantlake.config import TableExpectations
        from plantlake.lake import silver, transforms
        from plantlake.quality.suites import erp_suite

        lake_path = Path(folder) / name
        bronze.land(lake_path / "bronze", batches(rows), SCHEMA, ["id", "updated_at"], Ingestion.now("r"), "bench")
        before, started = _peak_mb(), time.perf_counter()
        chunks = silver.pending_chunks(lake_path / "silver", {"t": silver.BronzeInput(lake_path / "bronze", ["id"])})
        merge_validated(
            Lake(lake_path),
            lake_path / "silver",
            chunks,
            lambda work: (transforms.erp_rows(work.rows["t"], ["id"], "updated_at"), []),
            lambda schema: erp_suite(["id"], TableExpectations(), schema),
            ["id"],
            "r",
        )
    elif name == "baseline":
        write_deltalake(str(path), pa.Table.from_batches(list(batches(rows)), schema=SCHEMA))
    else:
        for run in range(2 if name == "rerun" else 1):
            if run == 1:
                started = time.perf_counter()
            bronze.land(path, batches(rows), SCHEMA, ["id", "updated_at"], Ingestion.now(f"run-{run}"), "bench")
    return name, rows, time.perf_counter() - started, _peak_mb() - before


def run(name: str, rows: int, folder: str) -> tuple[float, float]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_case, args=(name, rows, folder, results))
    process.start()
    outcome = results.get()
    process.join()
    if isinstance(outcome, Exception):
        raise SystemExit(f"benchmark case {name!r} failed: {outcome}")
    _, _, seconds, peak = outcome
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base_s, base_mb = run("baseline", args.rows, folder)
        land_s, land_mb = run("land", args.rows, folder)
        half_s, half_mb = run("land_half", args.rows // 2, folder)
        rerun_s, rerun_mb = run("rerun", args.rows, folder)
        silver_s, silver_mb = run("silver", args.rows, folder)
        silver_half_s, silver_half_mb = run("silver_half", args.rows // 2, folder)
    print(
        f"baseline write_deltalake of a materialized table: {args.rows:,} rows in {base_s:.2f} s, "
        f"peak +{base_mb:.0f} MB"
    )
    print(
        f"plantlake bronze.land, streamed first load:       {args.rows:,} rows in {land_s:.2f} s, "
        f"peak +{land_mb:.0f} MB"
    )
    print(
        f"plantlake bronze.land, half the rows:             {args.rows // 2:,} rows in {half_s:.2f} s, "
        f"peak +{half_mb:.0f} MB"
    )
    print(
        f"plantlake bronze.land, rerun of the same rows:    {args.rows:,} rows in {rerun_s:.2f} s, "
        f"peak +{rerun_mb:.0f} MB"
    )
    print(
        f"plantlake silver (dedupe, GX, merge):            {args.rows:,} rows in {silver_s:.2f} s, "
        f"peak +{silver_mb:.0f} MB"
    )
    print(
        f"plantlake silver, half the rows:                  {args.rows // 2:,} rows in {silver_half_s:.2f} s, "
        f"peak +{silver_half_mb:.0f} MB"
    )
    print(
        f"land_vs_write={base_s / land_s:.2f} mem_vs_write={land_mb / max(base_mb, 1):.2f} "
        f"mem_growth_2x_rows={land_mb / max(half_mb, 1):.2f} rerun_vs_first={rerun_s / land_s:.2f} "
        f"rerun_peak_mb={rerun_mb:.0f} silver_mem_growth_2x_rows={silver_mb / max(silver_half_mb, 1):.2f} "
        f"silver_rows_per_s={args.rows / silver_s:.0f}"
    )


if __name__ == "__main__":
    main()

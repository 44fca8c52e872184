"""Source to queryable silver: plantlake against dlt at its fastest and against a raw binary COPY.

    python benchmarks/end_to_end.py [--rows 5000000] [--csv-rows 2000000] [--profile CASE] [--cases A,B]

Needs the `bench` extra (`make bench-e2e` installs it) and PostgreSQL. It builds the
10-column table of `erp_load.py` in a scratch database, then times, each case in its own
child process (imports before the clock starts, peak memory its own):
- copy: `COPY ... TO STDOUT (FORMAT binary)`, bytes read and dropped: the floor;
- plantlake: the ERP bronze step and then the silver step (`assets.erp.load_bronze`,
  `build_silver`): landed, deduplicated on the key, validated, merged, queryable;
- dlt: `sql_table(backend="connectorx")` (its fastest backend for PostgreSQL) with
  `write_disposition="merge"` on the primary key into a Delta table, incremental on the cursor;
- plantlake at N/2 rows (a row filter), to show peak memory does not grow with N;
- incremental: 1% of the rows change, as an ERP's do overnight: new orders (half of them) and
  changes to the most recent ones (the other half). Each tool loads them from a copy of its
  lake after the full load, three times; the median counts;
- the same with the changed rows spread evenly over all keys (`incr_spread_share`): every
  silver file then holds a changed key and is rewritten, as copy-on-write Delta must;
- fixed: plantlake's two steps again with nothing new at the source;
- csv: the 2M-row supplier CSV of `files_logs.py`, plantlake's bronze and silver steps
  against `pandas.read_csv` and a deltalake MERGE on the key into a Delta table.
The last line holds the figures:
    full_vs_dlt= incr_vs_dlt= silver_vs_copy= csv_vs_pandas_merge= incr_share= peak_mb= peak_mb_half= fixed_s=
`--profile CASE` runs one plantlake case under cProfile instead (after the build) and prints
where its time goes. `--cases plantlake,plantlake_half` runs only the full loads named (of
`SUBSET`), each in its own process as above, and prints their times and peaks, not the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from erp_load import TABLE, build_postgres, case_copy, dlt_load, drop
from files_logs import read_csv_with_pandas, supplier_source, write_csv
from harness import entry_point, run_case

PG_SERVER = os.environ.get("PLANTLAKE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/")


def _erp_table(options: dict):
    from plantlake.config import ErpTable, RowFilter

    where = [RowFilter(column="id", op="<=", value=options["limit"])] if options.get("limit") else []
    return ErpTable(name=TABLE, primary_key=["id"], cursor="updated_at", where=where, deletes=None)


def _warm_up_validation() -> None:
    """Import GX and build its context, as every nightly run has by its silver steps (seconds, once)."""
    import pyarrow as pa

    from plantlake.quality.expectations import validate
    from plantlake.quality.suites import Expect

    validate(pa.table({"id": [1]}), [Expect("not_null", "id")], "warm-up")


def case_plantlake(url: str, lake_root: str, options: dict) -> Callable[[], int]:
    import adbc_driver_postgresql.dbapi  # noqa: F401  (a nightly run has its code loaded; so does the dlt case)
    import connectorx  # noqa: F401 - the same

    from plantlake.assets.erp import build_silver, load_bronze
    from plantlake.config import ErpSource
    from plantlake.lake import delta
    from plantlake.lake.layout import Lake

    sa.create_engine(url).dialect.loaded_dbapi  # noqa: B018 - loads the driver, as a nightly run has
    _warm_up_validation()
    table = _erp_table(options)
    source = ErpSource(name="bench", url=url, batch_rows=100_000, tables=[table])
    lake = Lake(Path(lake_root))
    run_id = options.get("run", "bench")

    def run() -> int:
        load_bronze(lake, source, table, run_id)
        build_silver(lake, source, table, run_id)
        return delta.row_count(lake.table("silver", f"bench_{TABLE}"))

    return run


def case_dlt(url: str, lake_root: str, _: dict) -> Callable[[], int]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from deltalake import DeltaTable

    def run() -> int:
        dlt_load(
            url,
            lake_root,
            "connectorx",
            incremental=dlt.sources.incremental("updated_at"),
            primary_key="id",
            write_disposition={"disposition": "merge", "strategy": "upsert"},
        )
        return int(DeltaTable(str(Path(lake_root) / "bench" / TABLE)).to_pyarrow_dataset().count_rows())

    return run


def case_csv_plantlake(folder: str, lake_root: str, _: dict) -> Callable[[], int]:
    from plantlake.assets.suppliers import build_silver, load_bronze
    from plantlake.lake import delta
    from plantlake.lake.layout import Lake

    source = supplier_source(folder)
    lake = Lake(Path(lake_root))
    _warm_up_validation()

    def run() -> int:
        load_bronze(lake, source, "bench")
        build_silver(lake, "material_lots", [source], "bench")
        return delta.row_count(lake.table("silver", "material_lots"))

    return run


def case_csv_pandas(folder: str, lake_root: str, _: dict) -> Callable[[], int]:
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    def run() -> int:
        frame = read_csv_with_pandas(folder).drop_duplicates("lot_id", keep="last")  # a MERGE takes a key once
        data = pa.Table.from_pandas(frame, preserve_index=False)
        write_deltalake(lake_root, data.schema.empty_table(), mode="append")  # the table a nightly merge meets
        DeltaTable(lake_root).merge(
            data, "t.lot_id = s.lot_id", source_alias="s", target_alias="t"
        ).when_matched_update_all().when_not_matched_insert_all().execute()
        return DeltaTable(lake_root).to_pyarrow_dataset().count_rows()

    return run


CASES = {
    "copy": case_copy,
    "plantlake": case_plantlake,
    "dlt": case_dlt,
    "csv_plantlake": case_csv_plantlake,
    "csv_pandas": case_csv_pandas,
}


# changed rows carry distinct times, as an ERP's do (a look-back re-reads only the newest)
STAMP = "now() + {column} * INTERVAL '1 microsecond'"


def change_rows(url: str, rows: int, spread: bool) -> int:
    """Change 1% of the rows: new orders and changes to the newest ones, or (`spread`) changes over all keys."""
    share = rows // 100
    with sa.create_engine(url, isolation_level="AUTOCOMMIT").connect() as connection:
        if spread:
            changed = connection.execute(
                sa.text(
                    f"UPDATE {TABLE} SET status = 'spread', updated_at = {STAMP.format(column='id')} WHERE id % 100 = 0"
                )
            ).rowcount
        else:
            top = connection.execute(sa.text(f"SELECT max(id) FROM {TABLE}")).scalar_one()
            changed = connection.execute(
                sa.text(
                    f"UPDATE {TABLE} SET status = 'changed', quantity = quantity + 1, "
                    f"updated_at = {STAMP.format(column='id')} WHERE id > {top - share // 2}"
                )
            ).rowcount
            changed += connection.execute(
                sa.text(
                    f"INSERT INTO {TABLE} SELECT g, 'SO-' || g, g % 5000, 'P-' || (g % 997), (g % 100000) / 7.0, "
                    f"(g % 50000) / 100.0, 'draft', now(), {STAMP.format(column='g')}, NULL "
                    f"FROM generate_series({top + 1}, {top + share - share // 2}) g"
                )
            ).rowcount
        connection.execute(sa.text(f"VACUUM ANALYZE {TABLE}"))  # settled, as after the build
    return changed


def median_of_three(label: str, case: str, url: str, lake: Path, work: Path, expected: int) -> dict:
    """The case three times, each from a copy of `lake` (flushed to disk first); the median run."""
    runs = []
    for attempt in range(3):
        copy = work / f"{lake.name}_{label}_{attempt}"
        shutil.copytree(lake, copy)
        os.sync()  # the copy's writes reach the disk now, not while the case is timed
        runs.append(run_case(__file__, f"{case} {label} #{attempt + 1}", case, url, str(copy), {"run": label}))
        assert runs[-1]["rows"] == expected, f"{case} {label}: {runs[-1]['rows']} rows in silver, {expected} expected"
    return sorted(runs, key=lambda run: run["seconds"])[1]


def profile(case: str, url: str, lake_root: str) -> None:
    """Run one plantlake case under cProfile and print the functions that take the time."""
    import cProfile
    import pstats

    run = CASES[case](url, lake_root, {})
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(run)
    print(f"{case}: {time.perf_counter() - started:.2f} s")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)


# the full loads `--cases` can pick: label, case, whether it reads the CSV, whether at N/2 rows
SUBSET = {
    "copy": ("raw COPY", "copy", False, False),
    "plantlake": ("plantlake", "plantlake", False, False),
    "plantlake_half": ("plantlake (N/2)", "plantlake", False, True),
    "dlt": ("dlt connectorx", "dlt", False, False),
    "csv_plantlake": ("plantlake csv", "csv_plantlake", True, False),
    "csv_pandas": ("pandas + MERGE", "csv_pandas", True, False),
}


def run_subset(names: list[str], pg: str, work: Path, rows: int) -> None:
    """The named full loads (a name may repeat), each into a lake of its own; a CSV case reads its own copy."""
    figures = []
    for index, name in enumerate(names):
        label, case, reads_csv, half = SUBSET[name]
        source = pg
        if reads_csv:
            source = str(work / f"csv_{index}")
            shutil.copytree(work / "csv", source)
        options = {"limit": rows // 2} if half else {}
        result = run_case(__file__, label, case, source, str(work / f"{index}_{name}"), options)
        figures.append(f"{name}_s={result['seconds']:.3g} {name}_peak_mb={result['peak_mb']:.0f}")
    print(" ".join(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--csv-rows", type=int, default=2_000_000)
    parser.add_argument("--profile", choices=["plantlake", "csv_plantlake"], default=None)
    parser.add_argument("--cases", type=lambda text: text.split(","), default=None, help=", ".join(SUBSET))
    args = parser.parse_args()
    unknown = [name for name in args.cases or [] if name not in SUBSET]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(SUBSET)}")
    csv_needed = args.cases is None or any(SUBSET[name][2] for name in args.cases)
    database = f"plantlake_e2e_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="plantlake-e2e-bench-"))
    try:
        started = time.perf_counter()
        pg = build_postgres(database, args.rows)
        (work / "csv").mkdir()
        csv_rows = args.csv_rows if csv_needed else 0
        if csv_rows:
            write_csv(work / "csv" / "lieferung.csv", csv_rows)
        seconds = time.perf_counter() - started
        print(f"built {args.rows:,} rows in PostgreSQL and {csv_rows:,} CSV rows in {seconds:.0f} s")
        if args.profile:
            source = str(work / "csv") if args.profile == "csv_plantlake" else pg
            profile(args.profile, source, str(work / "profiled"))
            return
        if args.cases:
            run_subset(args.cases, pg, work, args.rows)
            return
        copy = run_case(__file__, "raw COPY", "copy", pg, str(work / "none"), {})
        full = run_case(__file__, "plantlake", "plantlake", pg, str(work / "pl"), {})
        half = run_case(__file__, "plantlake (N/2)", "plantlake", pg, str(work / "pl_half"), {"limit": args.rows // 2})
        dlt_full = run_case(__file__, "dlt connectorx", "dlt", pg, str(work / "dlt"), {})
        assert full["rows"] == dlt_full["rows"] == args.rows, (full["rows"], dlt_full["rows"])
        changed = change_rows(pg, args.rows, spread=False)
        expected = args.rows + changed - changed // 2  # rows changed: half new, half updated (rounded as built)
        incremental = median_of_three("incr", "plantlake", pg, work / "pl", work, expected)
        dlt_incr = median_of_three("incr", "dlt", pg, work / "dlt", work, expected)
        fixed = run_case(__file__, "plantlake, nothing new", "plantlake", pg, str(work / "pl_incr_0"), {})
        spread = change_rows(pg, args.rows, spread=True)
        spread_run = run_case(__file__, "plantlake spread", "plantlake", pg, str(work / "pl_incr_1"), {"run": "spread"})
        for copy_to in ("csv_pl_src", "csv_pd_src"):  # plantlake moves a loaded file to its processed folder
            shutil.copytree(work / "csv", work / copy_to)
        csv = run_case(__file__, "plantlake csv", "csv_plantlake", str(work / "csv_pl_src"), str(work / "csv_pl"), {})
        pandas = run_case(__file__, "pandas + MERGE", "csv_pandas", str(work / "csv_pd_src"), str(work / "csv_pd"), {})
        assert csv["rows"] == pandas["rows"] == args.csv_rows, (csv["rows"], pandas["rows"])
    finally:
        drop(PG_SERVER, database)
        shutil.rmtree(work, ignore_errors=True)
    ratios = {
        "full_vs_dlt": dlt_full["seconds"] / full["seconds"],
        "incr_vs_dlt": dlt_incr["seconds"] / incremental["seconds"],
        "silver_vs_copy": full["seconds"] / copy["seconds"],
        "csv_vs_pandas_merge": pandas["seconds"] / csv["seconds"],
        "incr_share": incremental["seconds"] / full["seconds"],
        "peak_mb": full["peak_mb"],
        "peak_mb_half": half["peak_mb"],
        "fixed_s": fixed["seconds"],
    }
    print(
        f"changed {changed:,} rows (spread evenly: {spread:,}); plantlake to silver "
        f"{full['rows'] / full['seconds']:,.0f} rows/s, CSV {csv['rows'] / csv['seconds']:,.0f} rows/s; "
        f"incr_spread_share={spread_run['seconds'] / full['seconds']:.3f}"
    )
    print(
        " ".join(
            f"{name}={value:.0f}" if name.startswith("peak") else f"{name}={value:.3g}"
            for name, value in ratios.items()
        )
    )


if __name__ == "__main__":
    entry_point(CASES, main)

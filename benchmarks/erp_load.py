"""ERP full and incremental loads: plantlake against dlt and against a raw binary COPY.

    python benchmarks/erp_load.py [--rows 5000000] [--mariadb-rows 1000000]

Needs the `bench` extra (`pip install -e '.[bench]'`, which `make bench-erp` does) and the
PostgreSQL and MariaDB services. It builds a 10-column table of N rows in a scratch
database on each, then, each case in its own child process so its peak memory is its own:
- copy: `COPY ... TO STDOUT (FORMAT binary)` from PostgreSQL, bytes read and dropped;
- plantlake: the bronze asset's load (`assets.erp.load_bronze`, ADBC or connectorx), source to Delta table;
- dlt: `sql_table` into a Delta table on the local filesystem, with its pyarrow backend and with
  its connectorx backend (its fastest for these databases);
- plantlake at N/2 rows (a row filter), to show peak memory does not grow with N;
- incremental: 1% of the PostgreSQL rows updated, then plantlake's load again, three times from
  copies of the lake after the full load; the median counts.
The scratch databases are dropped at the end. The last line holds the ratios.
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
from harness import entry_point, run_case

PG_SERVER = os.environ.get("PLANTLAKE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/")
MYSQL_SERVER = os.environ.get("PLANTLAKE_BENCH_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/")
TABLE = "sale_order_bench"
COLUMNS = (
    "id BIGINT PRIMARY KEY, order_no VARCHAR(24), customer_id INTEGER, product_code VARCHAR(20), "
    "quantity NUMERIC(12,3), unit_price NUMERIC(10,2), status VARCHAR(12), created_at {ts}, updated_at {ts}, note TEXT"
)


def _admin(server: str) -> sa.Engine:
    return sa.create_engine(
        server + ("postgres" if server.startswith("postgresql") else ""), isolation_level="AUTOCOMMIT"
    )


def _build(server: str, database: str, create: str, statements: list[str]) -> str:
    """A scratch database on `server` with the benchmark table filled by `statements`."""
    with _admin(server).connect() as connection:
        connection.execute(sa.text(create))
    url = server + database
    with sa.create_engine(url, isolation_level="AUTOCOMMIT").connect() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))
    return url


def build_postgres(database: str, rows: int) -> str:
    fill = (
        f"INSERT INTO {TABLE} SELECT g, 'SO-' || g, g % 5000, 'P-' || (g % 997), (g % 100000) / 7.0, "
        f"(g % 50000) / 100.0, (ARRAY['draft','sale','done','cancel'])[1 + g % 4], "
        f"TIMESTAMP '2025-01-01' + g * INTERVAL '1 second', TIMESTAMP '2025-01-01' + g * INTERVAL '1 second', "
        f"CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END FROM generate_series(1, {rows}) g"
    )
    return _build(
        PG_SERVER,
        database,
        f"CREATE DATABASE {database}",
        [
            f"CREATE TABLE {TABLE} ({COLUMNS.format(ts='TIMESTAMP')})",
            fill,
            f"CREATE INDEX ON {TABLE} (updated_at)",
            f"VACUUM ANALYZE {TABLE}",
        ],
    )


def build_mariadb(database: str, rows: int) -> str:
    fill = (
        f"INSERT INTO {TABLE} SELECT seq, concat('SO-', seq), seq % 5000, concat('P-', seq % 997), "
        f"(seq % 100000) / 7.0, (seq % 50000) / 100.0, elt(1 + seq % 4, 'draft', 'sale', 'done', 'cancel'), "
        f"TIMESTAMP '2025-01-01 00:00:00' + INTERVAL seq SECOND, "
        f"TIMESTAMP '2025-01-01 00:00:00' + INTERVAL seq SECOND, "
        f"IF(seq % 3 = 0, NULL, concat('note ', seq)) FROM seq_1_to_{rows}"
    )
    return _build(
        MYSQL_SERVER,
        database,
        f"CREATE DATABASE {database} CHARACTER SET utf8mb4",
        [f"CREATE TABLE {TABLE} ({COLUMNS.format(ts='DATETIME(6)')}, INDEX (updated_at))", fill],
    )


def drop(server: str, database: str) -> None:
    force = " WITH (FORCE)" if server.startswith("postgresql") else ""
    with _admin(server).connect() as connection:
        connection.execute(sa.text(f"DROP DATABASE IF EXISTS {database}{force}"))


# --- the cases, each run in a child process; imports happen before the clock starts ----------


def case_copy(url: str, _: str, __: dict) -> Callable[[], int]:
    import psycopg

    def run() -> int:
        size, dsn = 0, sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as conn, conn.cursor().copy(f"COPY {TABLE} TO STDOUT (FORMAT binary)") as copy:
            for block in copy:
                size += len(block)
        return size

    return run


def case_plantlake(url: str, lake_root: str, options: dict) -> Callable[[], int]:
    import adbc_driver_postgresql.dbapi  # noqa: F401  (a nightly run has its code loaded; so does the dlt case)
    import connectorx  # noqa: F401 - the same

    from plantlake.assets.erp import load_bronze
    from plantlake.config import ErpSource, ErpTable, RowFilter
    from plantlake.lake.layout import Lake

    sa.create_engine(url).dialect.loaded_dbapi  # noqa: B018 - loads the driver, as a nightly run has
    where = [RowFilter(column="id", op="<=", value=options["limit"])] if options.get("limit") else []
    table = ErpTable(name=TABLE, primary_key=["id"], cursor="updated_at", where=where, deletes=None)
    source = ErpSource(name="bench", url=url, batch_rows=100_000, tables=[table])
    return lambda: load_bronze(Lake(Path(lake_root)), source, table, options.get("run", "bench")).metadata[
        "rows_inserted"
    ]


def dlt_load(url: str, lake_root: str, backend: str, **table_hints: object) -> int:
    """dlt's `sql_table` with `backend` into a Delta table under `lake_root`; the rows it normalized."""
    import dlt
    from dlt.sources.sql_database import sql_table

    pipeline = dlt.pipeline(
        pipeline_name="bench",
        destination=dlt.destinations.filesystem(Path(lake_root).as_uri()),
        dataset_name="bench",
        pipelines_dir=str(Path(lake_root) / "_dlt"),
    )
    source = sql_table(credentials=url, table=TABLE, backend=backend, chunk_size=100_000, **table_hints)
    pipeline.run(source, table_format="delta").raise_on_failed_jobs()
    return int(pipeline.last_trace.last_normalize_info.row_counts.get(TABLE, 0))


def case_dlt(url: str, lake_root: str, options: dict) -> Callable[[], int]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt  # noqa: F401 - imported before the clock starts

    return lambda: dlt_load(url, lake_root, options["backend"])


CASES = {"copy": case_copy, "plantlake": case_plantlake, "dlt": case_dlt}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows in PostgreSQL")
    parser.add_argument("--mariadb-rows", type=int, default=1_000_000, help="rows in MariaDB")
    args = parser.parse_args()
    database = f"plantlake_bench_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="plantlake-erp-bench-"))
    try:
        started = time.perf_counter()
        pg, my = build_postgres(database, args.rows), build_mariadb(database, args.mariadb_rows)
        print(
            f"built {args.rows:,} rows in PostgreSQL and {args.mariadb_rows:,} in MariaDB "
            f"in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        copy = run_case(__file__, "raw COPY (pg)", "copy", pg, str(work / "none"), {})
        full = run_case(__file__, "plantlake (pg)", "plantlake", pg, str(work / "pg"), {})
        half = run_case(
            __file__, "plantlake (pg, N/2)", "plantlake", pg, str(work / "pg_half"), {"limit": args.rows // 2}
        )
        dlt_pg = run_case(__file__, "dlt pyarrow (pg)", "dlt", pg, str(work / "dlt_pg"), {"backend": "pyarrow"})
        cx_pg = run_case(__file__, "dlt connectorx (pg)", "dlt", pg, str(work / "cx_pg"), {"backend": "connectorx"})
        full_my = run_case(__file__, "plantlake (mariadb)", "plantlake", my, str(work / "my"), {})
        dlt_my = run_case(__file__, "dlt pyarrow (mariadb)", "dlt", my, str(work / "dlt_my"), {"backend": "pyarrow"})
        cx_my = run_case(
            __file__, "dlt connectorx (mariadb)", "dlt", my, str(work / "cx_my"), {"backend": "connectorx"}
        )
        with sa.create_engine(pg, isolation_level="AUTOCOMMIT").connect() as connection:
            changed = connection.execute(
                sa.text(
                    f"UPDATE {TABLE} SET status = 'changed', "
                    f"updated_at = TIMESTAMP '2026-01-01' + id * INTERVAL '1 microsecond' "
                    f"WHERE id % 100 = 0"
                )
            ).rowcount
            connection.execute(sa.text(f"VACUUM ANALYZE {TABLE}"))  # settled, as after the build, not mid-autovacuum
        runs = []  # the same incremental load three times, each from a copy of the lake after the full load
        for attempt in range(3):
            shutil.copytree(work / "pg", work / f"pg_incr_{attempt}")
            runs.append(
                run_case(
                    __file__,
                    f"plantlake incr. (pg) #{attempt + 1}",
                    "plantlake",
                    pg,
                    str(work / f"pg_incr_{attempt}"),
                    {"run": "incremental"},
                )
            )
            assert runs[-1]["rows"] == changed, f"incremental landed {runs[-1]['rows']} rows, {changed} changed"
        incremental = sorted(runs, key=lambda run: run["seconds"])[1]  # the median
    finally:
        for server in (PG_SERVER, MYSQL_SERVER):
            drop(server, database)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"vs_dlt_pg={dlt_pg['seconds'] / full['seconds']:.1f} "
        f"vs_dlt_mariadb={dlt_my['seconds'] / full_my['seconds']:.1f} "
        f"vs_dlt_connectorx_pg={cx_pg['seconds'] / full['seconds']:.1f} "
        f"vs_dlt_connectorx_mariadb={cx_my['seconds'] / full_my['seconds']:.1f} "
        f"vs_copy={full['seconds'] / copy['seconds']:.1f} peak_mb={full['peak_mb']:.0f} "
        f"peak_mb_half={half['peak_mb']:.0f} incr_share={incremental['seconds'] / full['seconds']:.3f}"
    )


if __name__ == "__main__":
    entry_point(CASES, main)

"""`catalog.duckdb`: every lake table as a view a plain DuckDB can query, plus a `catalog` table.

Plain DuckDB reads Parquet without any extension, so each Delta table becomes a view over
the Parquet files of its current version (delta-rs writes no deletion vectors, so the file
list is the table). The file is rebuilt after each run into a temporary file and renamed
into place, so an analyst never opens a half-written catalog.

Every table, view and column carries a comment (`lake.catalog_comments`), and the file is
written in the storage format of DuckDB 1.1, so older DuckDBs (and tools built on them) open it.
The same build writes `catalog/index.html` (`lake.catalog_html`), the page people read.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from plantlake.lake import catalog_comments, catalog_html, catalog_views, delta, drift, locks, runlog, state, storage
from plantlake.lake.drift import SCHEMA_CHANGES
from plantlake.lake.layout import Lake
from plantlake.lake.storage import Location

OWNER = "team:data-engineering"
# DuckDB 2 writes a storage format no older DuckDB reads unless told otherwise; v1.1.0 opens in 1.1 and later.
READABLE_FROM = "v1.1.0"
# Meta tables that monitoring queries read before anything was written to them: created empty.
EMPTY_FROM_THE_START = {runlog.RUN_FAILURES: runlog.SCHEMA, SCHEMA_CHANGES: drift.SCHEMA}


@dataclass(frozen=True)
class TableInfo:
    source: str
    description: str
    upstream: tuple[str, ...] = ()  # tables it is built from ('layer.name'): a stale one makes it stale too
    owner: str = OWNER


@dataclass(frozen=True)
class Freshness:
    """Whether the table's last refresh worked, and if not, why and when it last did."""

    status: str  # fresh | stale
    error: str | None
    last_good_refresh: datetime | None


def freshness(lake: Lake, info: dict[str, TableInfo]) -> dict[str, Freshness]:
    """Per table: stale when its own last refresh failed, or a table it is built from is stale."""
    own: dict[str, Freshness] = {}
    for layer, name, path in lake.tables():
        kept = state.stored(path) or {}  # refreshes are noted in the state file only
        last, good = kept.get(state.LAST_REFRESH) or {}, kept.get(state.LAST_GOOD_REFRESH)
        failed = last.get("status") == "failed"
        own[f"{layer}.{name}"] = Freshness(
            "stale" if failed else "fresh",
            last.get("error") if failed else None,
            datetime.fromisoformat(good) if good else None,
        )

    def resolve(name: str, seen: frozenset[str]) -> Freshness:
        mine = own.get(name, Freshness("fresh", None, None))
        if mine.status == "stale":
            return mine
        for parent in info.get(name, TableInfo("", "")).upstream:
            if parent not in seen and resolve(parent, seen | {name}).status == "stale":
                return Freshness("stale", f"not refreshed: {parent} is stale", mine.last_good_refresh)
        return mine

    return {name: resolve(name, frozenset()) for name in own}


def _last_update(table: DeltaTable) -> datetime | None:
    timestamp = table.history(1)[0].get("timestamp")
    return datetime.fromtimestamp(timestamp / 1000, tz=UTC) if timestamp else None


def _only_warned(details: str | None) -> bool:
    """Whether a failed check failed only rules that warn (`on_fail: warn`), which keep their rows."""
    noted = json.loads(details or "{}")
    failed, warned = noted.get("failed"), noted.get("warned")
    return isinstance(failed, dict) and isinstance(warned, dict) and bool(failed) and failed.keys() <= warned.keys()


def _quality_status(lake: Lake) -> dict[str, str]:
    """Per table: 'passed', 'warned: <checks>' or 'failed: <checks>', from the newest result of each check."""
    results = delta.read(lake.quality_results)
    if results is None or results.num_rows == 0:
        return {}
    connection = duckdb.connect()
    connection.register("results", results)
    rows = connection.execute(
        """
        SELECT table_name, check_name, success, details FROM results
        QUALIFY row_number() OVER (PARTITION BY table_name, check_name ORDER BY checked_at DESC) = 1
        ORDER BY table_name, check_name
        """
    ).fetchall()
    failed: dict[str, list[str]] = {}
    warned: dict[str, list[str]] = {}
    for name, check, success, details in rows:
        failed.setdefault(name, [])
        warned.setdefault(name, [])
        if not success:
            (warned if _only_warned(details) else failed)[name].append(check)
    return {
        name: f"failed: {', '.join(failed[name])}"
        if failed[name]
        else f"warned: {', '.join(warned[name])}"
        if warned[name]
        else "passed"
        for name in failed
    }


def _quarantined_rows(lake: Lake) -> dict[str, int]:
    """Per table: how many distinct rows sit in quarantine."""
    rows = delta.read(lake.quarantine, columns=["table_name", "file", "row_key", "record_hash"])
    if rows is None:
        return {}
    connection = duckdb.connect()
    connection.register("quarantine", rows)
    query = (
        "SELECT table_name, count(DISTINCT coalesce(file || ':' || row_key, record_hash)) FROM quarantine GROUP BY 1"
    )
    return dict(connection.execute(query).fetchall())


def _schema_changes(lake: Lake) -> dict[str, int]:
    """Per table: how many column changes `meta.schema_changes` has noted."""
    changes = delta.read(lake.table("meta", SCHEMA_CHANGES), columns=["table_name"])
    if changes is None:
        return {}
    return Counter(changes.column("table_name").to_pylist())


def column_notes(field: pa.Field) -> dict[str, str]:
    """What the lake knows of a column beyond its type: source type and zone, personal data."""
    return {key.decode(): value.decode() for key, value in (field.metadata or {}).items()}


# The `catalog` table: (column, type, comment)
CATALOG_COLUMNS = (
    ("layer", "VARCHAR", "bronze, silver, gold, quarantine or meta"),
    ("table_name", "VARCHAR", "The table's name in its layer"),
    ("qualified_name", "VARCHAR", "layer.table_name: the view to query"),
    ("source", "VARCHAR", "The source system the rows come from (kind:name), or plantlake"),
    ("description", "VARCHAR", "What the table holds"),
    ("owner", "VARCHAR", "Who answers for the table"),
    ("upstream", "VARCHAR[]", "The tables it is built from (layer.name)"),
    ("columns", "VARCHAR", "JSON: each column's name, type, and its notes (description, unit, source type, ...)"),
    ("row_count", "BIGINT", "Rows of the table's current version"),
    (
        "live_rows",
        "BIGINT",
        "Rows its view shows: without rows deleted in the source (see its _live view), for a gold model the "
        "newest version of each window",
    ),
    ("last_update", "TIMESTAMPTZ", "When the table's current version was committed"),
    ("quality_status", "VARCHAR", "passed, warned: <checks>, failed: <checks> or not checked (newest result each)"),
    ("quarantined_rows", "BIGINT", "Rows of the table kept out of the lake, in quarantine.rows"),
    ("schema_changes", "BIGINT", "Column changes noted in meta.schema_changes"),
    ("location", "VARCHAR", "The Delta table's folder"),
    ("freshness", "VARCHAR", "fresh, or stale: its last refresh, or that of a table it is built from, failed"),
    ("last_error", "VARCHAR", "Why the table is stale"),
    ("last_good_refresh", "TIMESTAMPTZ", "When a refresh of the table last worked"),
    ("unmapped_hosts", "VARCHAR", "JSON: per log source, hosts of the last run's events no machine map names"),
)
CATALOG_NOTE = "One row per lake table: where it comes from, who owns it, its columns, freshness and quality"
# State key of a table built from logs: per source, the hosts of the last run's new events that its
# machine_map does not name, with their event counts ({"plc": {"PLC-9": 13}}); the catalog shows it as JSON.
UNMAPPED_HOSTS = "unmapped_hosts"


def _unmapped_hosts(path: Location) -> str | None:
    noted = (state.stored(path) or {}).get(UNMAPPED_HOSTS)
    return json.dumps(noted, ensure_ascii=False, sort_keys=True) if noted else None


def build_catalog(lake: Lake, info: dict[str, TableInfo]) -> Path:
    """Write `catalog.duckdb` and `catalog/index.html` for the lake's current state; `info` is keyed by 'layer.name'.

    Built into temporary files and renamed into place, one builder at a time.
    """
    target = lake.catalog_file
    target.parent.mkdir(parents=True, exist_ok=True)
    with locks.exclusive(lake.root / "meta" / "catalog"):  # one builder at a time
        create_empty_meta_tables(lake)
        temporary = target.with_suffix(".duckdb.tmp")
        temporary.unlink(missing_ok=True)
        try:
            page = _write_catalog(lake, info, temporary)
            os.replace(temporary, target)
        finally:  # a failed build leaves the last good catalog and nothing else
            temporary.unlink(missing_ok=True)
            temporary.with_suffix(".tmp.wal").unlink(missing_ok=True)
        _replace_text(lake.catalog_page, page)
    return target


def open_catalog(lake: Lake) -> duckdb.DuckDBPyConnection:
    """`catalog.duckdb`, read-only, able to read the tables its views name wherever the lake is.

    A lake on local disk: any DuckDB reads the catalog file alone. A lake in object storage:
    its views read `s3://` files, which this connection reads through Arrow's S3 client (the
    lake's own configuration), so no DuckDB extension is downloaded.
    """
    if not lake.catalog_file.exists():
        raise FileNotFoundError(f"{lake.catalog_file} is not built yet: run `plantlake catalog` (or a night) first")
    connection = duckdb.connect(str(lake.catalog_file), read_only=True)
    storage.attach(connection, lake.root.uri)
    return connection


def create_empty_meta_tables(lake: Lake) -> None:
    """The meta tables written only when something happens, created empty in their schema if absent."""
    for name, schema in EMPTY_FROM_THE_START.items():
        path = lake.table("meta", name)
        if delta.open_table(path) is None:
            delta.merge(path, schema.empty_table(), [schema.names[0]], update=False)  # creates it; a race retries


def _replace_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _write_catalog(lake: Lake, info: dict[str, TableInfo], file: Path) -> str:
    """Views, the `catalog` table and comments into `file`; returns the HTML page of the same catalog."""
    quality = _quality_status(lake)
    quarantined = _quarantined_rows(lake)
    changes = _schema_changes(lake)
    fresh = freshness(lake, info)
    notes: dict[tuple[str, str], str] = {("main", "catalog"): CATALOG_NOTE}
    column_comments: dict[tuple[str, str], dict[str, str]] = {
        ("main", "catalog"): {name: comment for name, _, comment in CATALOG_COLUMNS}
    }
    connection = duckdb.connect(str(file), config={"storage_compatibility_version": READABLE_FROM})
    try:
        connection.execute(
            f"CREATE TABLE catalog ({', '.join(f'{name} {type_}' for name, type_, _ in CATALOG_COLUMNS)})"
        )
        catalog_views.file_moves(connection, lake)
        for layer, name, path in lake.tables():
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {delta.quote(layer)}")
            qualified = f"{layer}.{name}"
            table = delta.load(path)  # once: every figure below is of this version
            schema = pa.schema(table.schema().to_arrow())
            described = info.get(qualified, TableInfo(source="plantlake", description=""))
            about = described.description or f"{qualified}, from {described.source}"
            views = catalog_views.create_views(
                connection, layer, name, path, table, schema, about, described.description
            )
            commented = {f.name: catalog_comments.column_comment(f.name, str(f.type), column_notes(f)) for f in schema}
            for view, note in views.items():
                notes[(layer, view)] = note
                column_comments[(layer, view)] = commented
            columns = json.dumps([{"name": f.name, "type": str(f.type), **column_notes(f)} for f in schema])
            status = fresh.get(qualified, Freshness("fresh", None, None))
            row = {
                "layer": layer,
                "table_name": name,
                "qualified_name": qualified,
                "source": described.source,
                "description": described.description,
                "owner": described.owner,
                "upstream": list(described.upstream),
                "columns": columns,
                "row_count": delta.rows_of(table),
                "live_rows": catalog_views.count_rows(
                    connection, layer, f"{name}_live" if f"{name}_live" in views else name
                ),
                "last_update": _last_update(table),
                "quality_status": quality.get(qualified, "not checked"),
                "quarantined_rows": quarantined.get(qualified, 0),
                "schema_changes": changes.get(qualified, 0),
                "location": str(path),
                "freshness": status.status,
                "last_error": status.error,
                "last_good_refresh": status.last_good_refresh,
                "unmapped_hosts": _unmapped_hosts(path),
            }
            connection.execute(
                f"INSERT INTO catalog ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
            )
        catalog_comments.comment_everything(connection, notes, column_comments)
        return catalog_html.render(connection)
    finally:
        connection.close()

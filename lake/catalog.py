"""`catalog.duckdb`: every lake table as a view a plain DuckDB can query, plus a `catalog` table.

Plain DuckDB reads Parquet without any extension, so each Delta table becomes a view over
the Parquet files of its current version (delta-rs writes no deletion vectors, so the file
list is the table). The file is rebuilt after each run into a temporary file and renamed
into place, so an analyst never opens a half-written catalog.
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

from plantlake.lake import delta, gold, locks, state
from plantlake.lake.drift import SCHEMA_CHANGES
from plantlake.lake.layout import Lake


@dataclass(frozen=True)
class TableInfo:
    source: str
    description: str
    upstream: tuple[str, ...] = ()  # tables it is built from ('layer.name'): a stale one makes it stale too


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


CATALOG_COLUMNS = (
    "layer VARCHAR, table_name VARCHAR, qualified_name VARCHAR, source VARCHAR, description VARCHAR, columns VARCHAR, "
    "row_count BIGINT, last_update TIMESTAMPTZ, quality_status VARCHAR, quarantined_rows BIGINT, "
    "schema_changes BIGINT, location VARCHAR, freshness VARCHAR, last_error VARCHAR, last_good_refresh TIMESTAMPTZ, "
    "unmapped_hosts VARCHAR"
)
# State key of a table built from logs: per source, the hosts of the last run's new events that its
# machine_map does not name, with their event counts ({"plc": {"PLC-9": 13}}); the catalog shows it as JSON.
UNMAPPED_HOSTS = "unmapped_hosts"


def _unmapped_hosts(path: Path) -> str | None:
    noted = (state.stored(path) or {}).get(UNMAPPED_HOSTS)
    return json.dumps(noted, ensure_ascii=False, sort_keys=True) if noted else None


def build_catalog(lake: Lake, info: dict[str, TableInfo]) -> Path:
    """Write `catalog.duckdb` for the lake's current state; `info` is keyed by 'layer.name'.

    Built into a temporary file and renamed into place, one builder at a time.
    """
    target = lake.catalog_file
    target.parent.mkdir(parents=True, exist_ok=True)
    with locks.exclusive(lake.root / "meta" / "catalog"):  # one builder at a time
        temporary = target.with_suffix(".duckdb.tmp")
        temporary.unlink(missing_ok=True)
        try:
            _write_catalog(lake, info, temporary)
            os.replace(temporary, target)
        finally:  # a failed build leaves the last good catalog and nothing else
            temporary.unlink(missing_ok=True)
            temporary.with_suffix(".tmp.wal").unlink(missing_ok=True)
    return target


def _write_catalog(lake: Lake, info: dict[str, TableInfo], file: Path) -> None:
    quality = _quality_status(lake)
    quarantined = _quarantined_rows(lake)
    changes = _schema_changes(lake)
    fresh = freshness(lake, info)
    connection = duckdb.connect(str(file))
    try:
        connection.execute(f"CREATE TABLE catalog ({CATALOG_COLUMNS})")
        for layer, name, path in lake.tables():
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {delta.quote(layer)}")
            qualified = f"{layer}.{name}"
            view = f"{delta.quote(layer)}.{delta.quote(name)}"
            table = delta.load(path)  # once: every figure below is of this version
            schema = pa.schema(table.schema().to_arrow())
            if layer == "gold":  # the newest version of each window; every version beside it
                gold.register_latest(connection, view, f"{delta.quote(layer)}.{delta.quote(name + '_versions')}", path)
            else:
                delta.create_view(connection, view, table)
            described = info.get(qualified, TableInfo(source="plantlake", description=""))
            columns = json.dumps([{"name": f.name, "type": str(f.type), **column_notes(f)} for f in schema])
            status = fresh.get(qualified, Freshness("fresh", None, None))
            connection.execute(
                "INSERT INTO catalog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    layer,
                    name,
                    qualified,
                    described.source,
                    described.description,
                    columns,
                    delta.rows_of(table),
                    _last_update(table),
                    quality.get(qualified, "not checked"),
                    quarantined.get(qualified, 0),
                    changes.get(qualified, 0),
                    str(path),
                    status.status,
                    status.error,
                    status.last_good_refresh,
                    _unmapped_hosts(path),
                ],
            )
    finally:
        connection.close()

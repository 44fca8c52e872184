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

from lake import delta
from lake.drift import SCHEMA_CHANGES
from lake.layout import Lake


@dataclass(frozen=True)
class TableInfo:
    source: str
    description: str


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _empty_view(schema: pa.Schema, connection: duckdb.DuckDBPyConnection, qualified: str) -> None:
    connection.register("empty_source", schema.empty_table())
    connection.execute(f"CREATE TABLE {qualified} AS SELECT * FROM empty_source")
    connection.unregister("empty_source")


def _last_update(path: Path) -> datetime | None:
    table = delta.open_table(path)
    if table is None:
        return None
    timestamp = table.history(1)[0].get("timestamp")
    return datetime.fromtimestamp(timestamp / 1000, tz=UTC) if timestamp else None


def _quality_status(lake: Lake) -> dict[str, str]:
    """Per table: 'passed', or 'failed: <checks>', from the newest result of each check."""
    results = delta.read(lake.quality_results)
    if results is None or results.num_rows == 0:
        return {}
    connection = duckdb.connect()
    connection.register("results", results)
    rows = connection.execute(
        """
        WITH newest AS (
            SELECT * FROM results
            QUALIFY row_number() OVER (PARTITION BY table_name, check_name ORDER BY checked_at DESC) = 1
        )
        SELECT table_name, string_agg(CASE WHEN NOT success THEN check_name END, ', ' ORDER BY check_name)
        FROM newest GROUP BY table_name
        """
    ).fetchall()
    return {name: f"failed: {failed}" if failed else "passed" for name, failed in rows}


def _quarantined_rows(lake: Lake) -> dict[str, int]:
    """Per table: how many distinct rows sit in quarantine."""
    rows = delta.read(lake.quarantine, columns=["table_name", "file", "row_key", "record_hash"])
    if rows is None:
        return {}
    connection = duckdb.connect()
    connection.register("quarantine", rows)
    query = "SELECT table_name, count(DISTINCT coalesce(file || ':' || row_key, record_hash)) FROM quarantine GROUP BY 1"
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


def build_catalog(lake: Lake, info: dict[str, TableInfo]) -> Path:
    """Write `catalog.duckdb` for the lake's current state; `info` is keyed by 'layer.name'."""
    target = lake.catalog_file
    temporary = target.with_suffix(".duckdb.tmp")
    temporary.unlink(missing_ok=True)
    quality = _quality_status(lake)
    quarantined = _quarantined_rows(lake)
    changes = _schema_changes(lake)
    connection = duckdb.connect(str(temporary))
    try:
        connection.execute(
            "CREATE TABLE catalog (layer VARCHAR, table_name VARCHAR, qualified_name VARCHAR, source VARCHAR, "
            "description VARCHAR, columns VARCHAR, row_count BIGINT, last_update TIMESTAMPTZ, "
            "quality_status VARCHAR, quarantined_rows BIGINT, schema_changes BIGINT, location VARCHAR)"
        )
        for layer, name, path in lake.tables():
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {layer}")
            qualified = f"{layer}.{name}"
            schema = delta.schema(path)
            parquet = delta.files(path)
            if parquet:
                listing = ", ".join(_literal(file) for file in parquet)
                connection.execute(
                    f"CREATE VIEW {qualified} AS SELECT * FROM read_parquet([{listing}], union_by_name = true)"
                )
            else:
                _empty_view(schema, connection, qualified)
            described = info.get(qualified, TableInfo(source="plantlake", description=""))
            columns = json.dumps([{"name": f.name, "type": str(f.type), **column_notes(f)} for f in schema])
            connection.execute(
                "INSERT INTO catalog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [layer, name, qualified, described.source, described.description, columns,
                 delta.row_count(path), _last_update(path), quality.get(qualified, "not checked"),
                 quarantined.get(qualified, 0), changes.get(qualified, 0), str(path)],
            )  # fmt: skip
    finally:
        connection.close()
    os.replace(temporary, target)
    return target

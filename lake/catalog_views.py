"""The views `catalog.duckdb` holds for each lake table: the table itself, and beside it what a
reader needs (a gold model's newest versions, a silver table's live rows, where a quarantined
row's file is now)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from plantlake.lake import delta, gold
from plantlake.lake.deletes import DELETED_AT
from plantlake.lake.layout import Lake
from plantlake.lake.storage import Location


def create_views(
    connection: duckdb.DuckDBPyConnection,
    layer: str,
    name: str,
    path: Location,
    table: DeltaTable,
    schema: pa.Schema,
    about: str,
    description: str,
) -> dict[str, str]:
    """The table's views in its layer's schema, by name, each with its comment.

    A gold table: the newest version of each window, and every version beside it. A silver
    table that keeps deleted rows: its live rows beside the full history.
    """
    qualified = f"{layer}.{name}"
    view = f"{delta.quote(layer)}.{delta.quote(name)}"
    if layer == "gold":
        versions = f"{name}_versions"
        gold.register_latest(connection, view, f"{delta.quote(layer)}.{delta.quote(versions)}", path, table)
        return {
            name: f"{about} Newest version of each window; every version is in {layer}.{versions}.",
            versions: f"Every version of each window of {qualified}, with when it became known (known_at).",
        }
    if (layer, name) == ("quarantine", "rows"):
        return _quarantine_views(connection, view, table, about)
    delta.create_view(connection, view, table)
    if layer != "silver" or DELETED_AT not in schema.names:
        return {name: about}
    live = f"{name}_live"
    connection.execute(
        f"CREATE VIEW {delta.quote(layer)}.{delta.quote(live)} AS "
        f"SELECT * EXCLUDE ({delta.quote(DELETED_AT)}) FROM {view} WHERE {delta.quote(DELETED_AT)} IS NULL"
    )
    return {
        name: f"{about} Full history: rows deleted in the source stay, with {DELETED_AT} set.",
        live: f"Live rows of {qualified}: those the source still has ({DELETED_AT} is null). {description}",
    }


FILE_MOVES = "meta.file_moves"


def file_moves(connection: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Where each supplier file went after its run (archive/ or rejected/), by the path it was dropped as."""
    connection.execute("CREATE SCHEMA IF NOT EXISTS meta")
    files = delta.read(lake.table("meta", "supplier_files"), columns=["dropped_as", "run_id", "moved_to"])
    moves = (
        files
        if files is not None
        else pa.table({"dropped_as": [], "run_id": [], "moved_to": []}).cast(
            pa.schema([("dropped_as", pa.string()), ("run_id", pa.string()), ("moved_to", pa.string())])
        )
    )
    connection.register("__moves", moves)
    connection.execute(f"CREATE TABLE {FILE_MOVES} AS SELECT * FROM __moves")
    connection.unregister("__moves")


def _quarantine_views(
    connection: duckdb.DuckDBPyConnection, view: str, table: DeltaTable, about: str
) -> dict[str, str]:
    """`quarantine.rows` with `file_now`, where the row's file is now; the rows as quarantined beside it."""
    landed = f"{delta.quote('quarantine')}.{delta.quote('rows_as_quarantined')}"
    delta.create_view(connection, landed, table)
    connection.execute(
        f"CREATE VIEW {view} AS SELECT q.*, coalesce(m.moved_to, q.file) AS file_now FROM {landed} q "
        f"LEFT JOIN {FILE_MOVES} m ON m.dropped_as = q.file AND m.run_id = q.run_id"
    )
    return {
        "rows": f"{about} file_now: where the file is now (a supplier file is archived or rejected after its run).",
        "rows_as_quarantined": "The quarantined rows as written, with each file's path when it was read.",
    }


def count_rows(connection: duckdb.DuckDBPyConnection, layer: str, view: str) -> int:
    found = connection.execute(f"SELECT count(*) FROM {delta.quote(layer)}.{delta.quote(view)}").fetchone()
    return int(found[0]) if found else 0

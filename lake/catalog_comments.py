"""`COMMENT ON` every table, view and column of `catalog.duckdb`, so any SQL client shows what each holds.

DuckDB keeps the comments in the file, where `duckdb_tables()`, `duckdb_views()` and
`duckdb_columns()` show them. A column the lake knows nothing of still gets a generated note,
so no object is left without one.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from plantlake.lake.deletes import DELETED_AT
from plantlake.lake.delta import literal, quote
from plantlake.lake.layout import INGESTED_AT, RUN_ID, SOURCE

BOOKKEEPING = {
    INGESTED_AT: "When plantlake landed the row (UTC)",
    RUN_ID: "The run that landed the row",
    SOURCE: "The source the row was landed from",
    DELETED_AT: "When plantlake found the row deleted in the source; null while the source has it",
}
_LEADING = ("description", "unit", "personal_data")


def column_comment(name: str, type_: str, notes: Mapping[str, str]) -> str:
    """The column's description (or a generated one), then its unit, personal data and other notes."""
    head = notes.get("description") or BOOKKEEPING.get(name) or f"Column {name} of type {type_}"
    extras = [f"unit: {notes['unit']}"] if notes.get("unit") else []
    extras += ["personal data"] if notes.get("personal_data") == "true" else []
    extras += [f"{key.replace('_', ' ')}: {value}" for key, value in sorted(notes.items()) if key not in _LEADING]
    return "; ".join([head, *extras])


def comment_everything(
    connection: duckdb.DuckDBPyConnection,
    tables: Mapping[tuple[str, str], str],
    columns: Mapping[tuple[str, str], Mapping[str, str]],
) -> int:
    """Comment every table and view of the database, keyed (schema, name), and each of their columns.

    `columns` maps (schema, name) to comments by column name; an object or column without one
    gets a generated comment. Returns how many comments were written.
    """
    here = "database_name = current_database() AND NOT internal"
    objects = connection.execute(
        f"SELECT schema_name, table_name, 'TABLE' FROM duckdb_tables() WHERE {here} UNION ALL "
        f"SELECT schema_name, view_name, 'VIEW' FROM duckdb_views() WHERE {here}"
    ).fetchall()
    fields = connection.execute(
        f"SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() WHERE {here}"
    ).fetchall()
    connection.execute("BEGIN TRANSACTION")
    for schema, name, kind in objects:
        note = tables.get((schema, name)) or f"{schema}.{name}: a {kind.lower()} of the lake catalog"
        connection.execute(f"COMMENT ON {kind} {quote(schema)}.{quote(name)} IS {literal(note)}")
    for schema, name, column, type_ in fields:
        note = columns.get((schema, name), {}).get(column) or column_comment(column, type_, {})
        connection.execute(f"COMMENT ON COLUMN {quote(schema)}.{quote(name)}.{quote(column)} IS {literal(note)}")
    connection.execute("COMMIT")
    return len(objects) + len(fields)

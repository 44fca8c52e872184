"""Whole-table invariants as DuckDB SQL over the current Delta tables.

GX validates batches; what needs the whole table (key uniqueness, references between
tables, the source's row count against the lake's) runs here, in SQL, without copying.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow.dataset as ds

from lake.delta import quote


@dataclass(frozen=True)
class InvariantResult:
    name: str
    success: bool
    observed: int
    description: str


def _connect(**tables: ds.Dataset) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for name, data in tables.items():
        connection.register(name, data)
    return connection


def unique_keys(data: ds.Dataset, keys: list[str], where: str | None = None) -> InvariantResult:
    """No two rows share the key."""
    columns = ", ".join(quote(key) for key in keys)
    condition = f"WHERE {where}" if where else ""
    query = f"SELECT count(*) FROM (SELECT {columns} FROM t {condition} GROUP BY ALL HAVING count(*) > 1)"
    duplicates = _connect(t=data).execute(query).fetchone()[0]
    return InvariantResult(f"unique key ({', '.join(keys)})", duplicates == 0, duplicates,
                           f"{duplicates} key values occur more than once")  # fmt: skip


def references(child: ds.Dataset, column: str, parent: ds.Dataset, parent_column: str, label: str) -> InvariantResult:
    """Every non-null `column` value of the child exists in the parent."""
    query = (
        f"SELECT count(*) FROM child c WHERE c.{quote(column)} IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM parent p WHERE p.{quote(parent_column)} = c.{quote(column)})"
    )
    orphans = _connect(child=child, parent=parent).execute(query).fetchone()[0]
    return InvariantResult(f"{column} references {label}", orphans == 0, orphans,
                           f"{orphans} rows name a {parent_column} that {label} does not have")  # fmt: skip


def row_count_matches(data: ds.Dataset, expected: int, label: str, where: str | None = None) -> InvariantResult:
    """The lake holds as many rows as the source does."""
    condition = f"WHERE {where}" if where else ""
    actual = _connect(t=data).execute(f"SELECT count(*) FROM t {condition}").fetchone()[0]
    return InvariantResult(f"row count equals {label}", actual == expected, actual,
                           f"lake has {actual} rows, {label} has {expected}")  # fmt: skip


def not_empty(data: ds.Dataset) -> InvariantResult:
    rows = data.count_rows()
    return InvariantResult("table is not empty", rows > 0, rows, f"{rows} rows")

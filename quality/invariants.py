"""Whole-table invariants as DuckDB SQL over the current Delta tables.

GX validates batches; what needs the whole table (key uniqueness, references between
tables, the source's row count against the lake's) runs here, in SQL, without copying.

DuckDB gets each table as a stream of the columns the check needs, scanned by
`lake.delta.scan`: DuckDB would otherwise push its own filters (join bounds among them)
into pyarrow, which refuses text predicates on the `string_view` files a MERGE writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from plantlake.lake import delta
from plantlake.lake.delta import quote


@dataclass(frozen=True)
class InvariantResult:
    name: str
    success: bool
    observed: int
    description: str


def _connect(**tables: tuple[ds.Dataset, list[str]]) -> duckdb.DuckDBPyConnection:
    """A connection with each table registered under its name, as its `columns` only."""
    connection = duckdb.connect()
    for name, (data, columns) in tables.items():
        schema = pa.schema([data.schema.field(column) for column in columns])
        connection.register(name, pa.RecordBatchReader.from_batches(schema, delta.scan(data, columns)))
    return connection


def _count(connection: duckdb.DuckDBPyConnection, query: str) -> int:
    """The single count a `SELECT count(*) ...` query returns."""
    row = connection.execute(query).fetchone()
    return int(row[0]) if row else 0


def unique_keys(data: ds.Dataset, keys: list[str]) -> InvariantResult:
    """No two rows share the key."""
    columns = ", ".join(quote(key) for key in keys)
    query = f"SELECT count(*) FROM (SELECT {columns} FROM t GROUP BY ALL HAVING count(*) > 1)"
    duplicates = _count(_connect(t=(data, keys)), query)
    return InvariantResult(
        f"unique key ({', '.join(keys)})", duplicates == 0, duplicates, f"{duplicates} key values occur more than once"
    )


def references(child: ds.Dataset, column: str, parent: ds.Dataset, parent_column: str, label: str) -> InvariantResult:
    """Every non-null `column` value of the child exists in the parent."""
    query = (
        f"SELECT count(*) FROM child c WHERE c.{quote(column)} IS NOT NULL AND NOT EXISTS "
        f"(SELECT 1 FROM parent p WHERE p.{quote(parent_column)} = c.{quote(column)})"
    )
    orphans = _count(_connect(child=(child, [column]), parent=(parent, [parent_column])), query)
    return InvariantResult(
        f"{column} references {label}",
        orphans == 0,
        orphans,
        f"{orphans} rows name a {parent_column} that {label} does not have",
    )


def row_count_matches(
    data: ds.Dataset, expected: int, label: str, live: ds.Expression | None = None
) -> InvariantResult:
    """The lake holds as many rows as the source does (counting only `live` rows when given)."""
    actual = data.count_rows() if live is None else sum(batch.num_rows for batch in delta.scan(data, [], live))
    return InvariantResult(
        f"row count equals {label}", actual == expected, actual, f"lake has {actual} rows, {label} has {expected}"
    )


def not_empty(data: ds.Dataset) -> InvariantResult:
    rows = data.count_rows()
    return InvariantResult("table is not empty", rows > 0, rows, f"{rows} rows")

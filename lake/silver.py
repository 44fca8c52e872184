"""Silver: typed, deduplicated rows merged on their keys.

Silver consumes bronze by ingestion time: each silver commit records, per bronze table,
the newest `_ingested_at` it has taken in. A silver run that fails leaves that mark where
it was, so the next run takes the same bronze rows again and merges them on the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from lake import delta
from lake.delta import quote
from lake.layout import INGESTED_AT

CONSUMED = "consumed"


@dataclass
class Pending:
    """Bronze rows silver has not yet taken in, and the mark to commit once it has."""

    rows: dict[str, pa.Table] = field(default_factory=dict)
    consumed: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return all(table.num_rows == 0 for table in self.rows.values())


def pending(silver_path: Path, bronze_paths: dict[str, Path]) -> Pending:
    """New rows of each bronze table since the silver table last consumed it."""
    marks: dict[str, str] = delta.read_state(silver_path, CONSUMED) or {}
    result = Pending(consumed=dict(marks))
    for name, path in bronze_paths.items():
        data = delta.dataset(path)
        if data is None:
            continue
        condition = None
        if name in marks:
            condition = ds.field(INGESTED_AT) > pa.scalar(datetime.fromisoformat(marks[name]), data.schema.field(INGESTED_AT).type)
        table = data.to_table(filter=condition)
        result.rows[name] = table
        if table.num_rows:
            result.consumed[name] = pc.max(table[INGESTED_AT]).as_py().isoformat()
    return result


def latest_per_key(table: pa.Table, keys: list[str], newest_first: list[str]) -> pa.Table:
    """One row per key: the first by `newest_first` (descending)."""
    if table.num_rows == 0:
        return table
    connection = duckdb.connect()
    connection.register("incoming", table)
    order = ", ".join(f"{quote(column)} DESC NULLS LAST" for column in newest_first)
    partition = ", ".join(quote(key) for key in keys)
    query = f"SELECT * FROM incoming QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1"
    return connection.sql(query).to_arrow_table().cast(table.schema)


def commit(silver_path: Path, rows: pa.Table, keys: list[str], work: Pending) -> dict[str, int]:
    """Upsert `rows` on `keys` and record what bronze was consumed, in one commit."""
    return delta.merge(silver_path, rows, keys, update=True, state={CONSUMED: work.consumed})

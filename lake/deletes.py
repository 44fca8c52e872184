"""Rows deleted in the source, found by comparing primary keys and marked (or removed) in silver.

A cursor only sees rows that still exist, so deletes need a reconciliation: the source's
primary keys (keys only, streamed) against the silver keys not yet marked. A key in silver
but not in the source was deleted; the comparison is valid whenever it runs, because silver
only lags the source, and a row that comes back is merged again with `_deleted_at` cleared.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from plantlake.lake import delta, state
from plantlake.lake.delta import quote
from plantlake.lake.storage import Location

DELETED_AT = "_deleted_at"
DELETED_FIELD = pa.field(DELETED_AT, pa.timestamp("us", tz="UTC"))
RECONCILED_AT = "reconciled_at"


def due(silver_path: Location, every_hours: float, now: datetime) -> bool:
    """Whether the last reconciliation is at least `every_hours` old (or never ran)."""
    last = state.current(silver_path).get(RECONCILED_AT)
    return last is None or (now - datetime.fromisoformat(last)).total_seconds() >= every_hours * 3600


def deleted_keys(
    silver_path: Location, source_keys: Iterator[pa.RecordBatch], schema: pa.Schema, keys: list[str]
) -> pa.Table:
    """Keys live in silver that the source no longer has."""
    data = delta.dataset(silver_path)
    if data is None:
        return schema.empty_table()
    live = (
        data.scanner(columns=keys, filter=ds.field(DELETED_AT).is_null())
        if DELETED_AT in data.schema.names
        else data.scanner(columns=keys)
    )
    connection = duckdb.connect()
    connection.register("silver_keys", live.to_reader())
    connection.register("source_keys", pa.RecordBatchReader.from_batches(schema, source_keys))
    condition = " AND ".join(f"l.{quote(key)} = s.{quote(key)}" for key in keys)
    query = f"SELECT l.* FROM silver_keys l ANTI JOIN source_keys s ON {condition}"
    return connection.sql(query).to_arrow_table()


def apply(silver_path: Location, deleted: pa.Table, keys: list[str], remove: bool, now: datetime | None = None) -> int:
    """Mark (or remove) the `deleted` keys in one commit, then record the reconciliation's time.

    With nothing deleted there is no commit: only the time is recorded.
    """
    now = now or datetime.now(UTC)
    table = delta.open_table(silver_path)
    if table is None:
        return 0
    count = 0
    if deleted.num_rows:
        predicate = " AND ".join(f"t.{quote(key)} = s.{quote(key)}" for key in keys)
        merger = table.merge(source=deleted, predicate=predicate, source_alias="s", target_alias="t")
        if remove:
            count = int(merger.when_matched_delete().execute()["num_target_rows_deleted"])
        else:
            stamp = delta.literal(now.isoformat())
            count = int(
                merger.when_matched_update({quote(DELETED_AT): f"CAST({stamp} AS TIMESTAMP)"}).execute()[
                    "num_target_rows_updated"
                ]
            )
    state.write(silver_path, {RECONCILED_AT: now.isoformat()})
    return count

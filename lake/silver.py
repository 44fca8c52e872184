"""Silver: typed, deduplicated rows merged on their keys.

New bronze rows come in chunks (`lake.silver_chunks`), every version of a key in one. Only the
last chunk's commit advances the mark of what silver has consumed: a run that fails part-way
leaves it where it was, and the rerun merges the same rows again on their keys, which changes
nothing already merged.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from plantlake.lake import delta, keyed
from plantlake.lake.delta import quote
from plantlake.lake.silver_chunks import CHUNK_ROWS, CONSUMED, BronzeInput, Pending, pending_chunks
from plantlake.lake.silver_first_load import FirstLoad, clustered, landed_groups, link_landed
from plantlake.lake.silver_upsert import upsert
from plantlake.lake.storage import Location

__all__ = [
    "CHUNK_ROWS",
    "CONSUMED",
    "BronzeInput",
    "FirstLoad",
    "Pending",
    "clustered",
    "commit",
    "landed_groups",
    "latest_per_key",
    "link_landed",
    "pending_chunks",
]

# rows between two key cuts no bronze file spans, at most, for silver to take bronze's files as
# its own (`clustered`): a change to a key then rewrites a file or two, not a run of overlapping ones
CLEAN_CUT_ROWS = 1_000_000


def latest_per_key(table: pa.Table, keys: list[str], newest_first: list[str]) -> pa.Table:
    """One row per key: the first by `newest_first` (descending)."""
    if table.num_rows == 0 or keyed.unique(table, keys):
        return table
    connection = duckdb.connect()
    connection.register("incoming", table)
    order = ", ".join(f"{quote(column)} DESC NULLS LAST" for column in newest_first)
    partition = ", ".join(quote(key) for key in keys)
    query = f"SELECT * FROM incoming QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1"
    return connection.sql(query).to_arrow_table().cast(table.schema)


def commit(
    silver_path: Location,
    rows: pa.Table,
    keys: list[str],
    work: Pending,
    window_key: str | None = None,
    opened: DeltaTable | None = None,
) -> dict[str, int]:
    """Upsert `rows` on `keys` into the table and record what bronze was consumed, in one commit
    (a new table's first load is `FirstLoad`'s).

    Each chunk holds a range of keys (see `pending_chunks`), so each file it writes does too.

    `window_key` (default: the first key): a key column that orders the rows, such as a
    reading's time or an order's id. The files whose range of it allows an incoming row's value
    are the only ones read (their keys) and, where they hold an incoming key, written again
    (see `silver_upsert`): the nightly cost of a table follows its changes, not its age.
    `opened`: the table, if the caller has it open (a commit meanwhile is found as a lost race).
    """
    silver_path, state, window_key = Location.of(silver_path), {CONSUMED: work.consumed}, window_key or keys[0]
    table = opened if opened is not None else delta.open_table(silver_path)
    if rows.num_rows == 0 or table is None:
        return delta.merge(silver_path, rows, keys, update=True, state=state)
    return upsert(table, silver_path, rows, keys, window_key, state)

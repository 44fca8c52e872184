"""Silver: typed, deduplicated rows merged on their keys.

New bronze rows come in chunks (`lake.silver_chunks`), every version of a key in one. Only the
last chunk's commit advances the mark of what silver has consumed: a run that fails part-way
leaves it where it was, and the rerun merges the same rows again on their keys, which changes
nothing already merged.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from plantlake.lake import delta
from plantlake.lake.delta import quote
from plantlake.lake.parquet_files import ROW_GROUP_ROWS
from plantlake.lake.silver_chunks import CHUNK_ROWS, CONSUMED, BronzeInput, Pending, pending_chunks
from plantlake.lake.silver_first_load import FirstLoad, clean_cuts, clustered, key_ranges, link_landed
from plantlake.lake.storage import Location

__all__ = [
    "CHUNK_ROWS",
    "CONSUMED",
    "BronzeInput",
    "FirstLoad",
    "Pending",
    "clustered",
    "commit",
    "keys_unique",
    "latest_per_key",
    "link_landed",
    "pending_chunks",
]

MERGE_TARGET_ROWS = 1_000_000  # rows of the table one MERGE meets, at most about


def latest_per_key(table: pa.Table, keys: list[str], newest_first: list[str]) -> pa.Table:
    """One row per key: the first by `newest_first` (descending)."""
    if table.num_rows == 0 or keys_unique(table, keys):
        return table
    connection = duckdb.connect()
    connection.register("incoming", table)
    order = ", ".join(f"{quote(column)} DESC NULLS LAST" for column in newest_first)
    partition = ", ".join(quote(key) for key in keys)
    query = f"SELECT * FROM incoming QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1"
    return connection.sql(query).to_arrow_table().cast(table.schema)


def keys_unique(table: pa.Table, keys: list[str]) -> bool:
    """Each key once (the usual case, as in a first load): nothing to choose between. Checked for
    one key column: rising keys (a file or table read in key order) are unique without hashing.

    Otherwise the keys are sorted and neighbours compared (a null counts as a value, so two
    nulls are a duplicate). Not `count_distinct`: its hash table grows in steps, 27 MB for
    262,144 keys and 108 MB just past them.
    """
    if len(keys) != 1 or table.num_rows < 2:
        return len(keys) == 1
    column = table[keys[0]].combine_chunks()
    if column.null_count == 0 and pc.all(pc.greater(column[1:], column[:-1])).as_py():
        return True
    if column.null_count > 1:
        return False
    ordered = column.take(pc.array_sort_indices(column, null_placement="at_end"))
    ordered = ordered.slice(0, len(ordered) - column.null_count)
    return len(ordered) < 2 or bool(pc.all(pc.greater(ordered[1:], ordered[:-1])).as_py())


def commit(
    silver_path: Location,
    rows: pa.Table,
    keys: list[str],
    work: Pending,
    window_key: str | None = None,
) -> dict[str, int]:
    """Upsert `rows` on `keys` into the table and record what bronze was consumed (a new table's
    first load is `FirstLoad`'s).

    Each chunk holds a range of keys (see `pending_chunks`), so each file it writes does too.

    `window_key` (default: the first key): a key column that orders the rows, such as a
    reading's time or an order's id. The table's keys between the incoming rows' lowest and
    highest value of it (files and row groups outside are skipped by their statistics) tell
    which rows are new: those are appended, only the others merged, and each merge meets only
    the files whose range of it holds its keys (see `_merge_by_file_ranges`). A MERGE reads
    every file it meets, so without this the nightly cost of a table would grow with its age.
    A run that fails between the append and the merge leaves the mark where it was; the rerun
    finds the appended rows there and merges them, which changes nothing.
    """
    state, window_key = {CONSUMED: work.consumed}, window_key or keys[0]
    if rows.num_rows == 0:
        return delta.merge(silver_path, rows, keys, update=True, state=state)
    new, existing = _split_new(silver_path, rows, keys, window_key)
    appended = delta.append(silver_path, new, state=None if existing.num_rows else state)
    if not existing.num_rows:
        return appended
    merged = _merge_by_file_ranges(silver_path, existing, keys, window_key, state)
    return {"inserted": appended["inserted"] + merged["inserted"], "updated": merged["updated"]}


def _split_new(path: Location, rows: pa.Table, keys: list[str], window_key: str) -> tuple[pa.Table, pa.Table]:
    """The rows whose keys the table does not hold yet, and those it does.

    The table's keys in the rows' window are scanned a batch at a time and only those among the
    rows' keys are kept, so memory follows the rows, not the table: changes spread over every
    key make the window the whole table (5M keys held and hashed took 300 MB).
    """
    table = delta.open_table(path)
    if table is None:
        return rows, rows.schema.empty_table()
    data = table.to_pyarrow_dataset()
    low, high = pc.min_max(rows[window_key]).values()
    window = (ds.field(window_key) >= low) & (ds.field(window_key) <= high)
    if key_ranges(table, window_key) is None:
        window = None  # delta-rs would prune every file lacking them: read all keys, a batch at a time
    key_schema = pa.schema([rows.schema.field(key) for key in keys])
    incoming = rows.select(keys)
    held = [  # the hash table is built on the right side of a join: the rows' keys, not the table's
        pa.Table.from_batches([batch]).cast(key_schema).join(incoming, keys, join_type="left semi").cast(key_schema)
        for batch in delta.scan(data, keys, window, batch_size=ROW_GROUP_ROWS)
    ]
    landed = pa.concat_tables([key_schema.empty_table(), *held])
    if landed.num_rows == 0:
        return rows, rows.schema.empty_table()
    new = rows.join(landed, keys, join_type="left anti").select(rows.column_names)
    existing = rows.join(landed, keys, join_type="left semi").select(rows.column_names)
    return new.cast(rows.schema), existing.cast(rows.schema)


def _merge_by_file_ranges(
    path: Location, rows: pa.Table, keys: list[str], order_key: str, state: dict
) -> dict[str, int]:
    """MERGE `rows` in slices by `order_key` that each meet about `MERGE_TARGET_ROWS` of the table,
    cut where no file's range spans the cut (then no two slices meet the same file) if one comes
    within twice that.

    delta-rs skips the files whose statistics of `order_key` lie outside a MERGE's source
    range, so a slice meets only the files of its range: memory follows the slice, not the
    table. Files whose ranges overlap widely (a table written before its rows were ordered) would
    be met by many slices; then one MERGE does it all. Only the last slice's commit saves `state`.
    """
    rows = rows.sort_by(order_key)
    slices = _slices_by_files(delta.load(path), rows, order_key)
    totals = {"inserted": 0, "updated": 0}
    for index, part in enumerate(slices):
        merged = delta.merge(path, part, keys, update=True, state=state if index == len(slices) - 1 else None)
        totals = {name: totals[name] + merged[name] for name in totals}
    return totals


def _slices_by_files(table: DeltaTable, rows: pa.Table, order_key: str) -> list[pa.Table]:
    files = pa.table(table.get_add_actions(flatten=True))
    low_name, high_name = f"min.{order_key}", f"max.{order_key}"
    if rows.num_rows < 2 or low_name not in files.column_names or files.num_rows < 2:
        return [rows]
    files = files.filter(pc.and_(pc.is_valid(files[low_name]), pc.is_valid(files[high_name]))).sort_by(low_name)
    if files.num_rows < 2:
        return [rows]  # no file's range is known (keys too long for statistics, say): one MERGE
    lows, highs = files[low_name].to_pylist(), files[high_name].to_pylist()
    counts = files["num_records"].to_pylist()
    overlaps = sum(1 for index in range(len(lows)) for later in lows[index + 1 :] if later <= highs[index])
    if overlaps > 2 * len(lows):
        return [rows]  # ranges overlap widely: every slice would meet most files
    column = rows[order_key].cast(files.schema.field(low_name).type)
    slices, start, met = [], 0, 0
    # a cut a file spans has both slices meet that file (the second its rewrite): cuts wait for a
    # clean one, up to twice the rows a slice should meet (a file spanning the keys has none)
    clean = clean_cuts(lows, highs)
    for index in range(len(lows)):
        met += counts[index]
        if index < len(lows) - 1 and (met < MERGE_TARGET_ROWS or (not clean[index] and met < 2 * MERGE_TARGET_ROWS)):
            continue
        last = index == len(lows) - 1
        end = rows.num_rows if last else _count_below(column, lows[index + 1])
        if end > start:
            slices.append(rows.slice(start, end - start))
        start, met = end, 0
    return slices


def _count_below(column: pa.ChunkedArray, bound: object) -> int:
    """How many of the sorted values lie below `bound`."""
    return pc.sum(pc.less(column, pa.scalar(bound, column.type))).as_py() or 0

"""Silver: typed, deduplicated rows merged on their keys.

Silver consumes bronze by ingestion time: each silver commit records, per bronze table,
the newest `_ingested_at` it has taken in. New bronze rows are processed in chunks split
by a hash of the key, so every version of a key falls in the same chunk and memory is
bounded by the chunk size, not the table. Only the last chunk's commit advances the mark:
a run that fails part-way leaves it where it was, and the rerun merges the same rows
again on their keys, which changes nothing already merged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from plantlake.lake import delta
from plantlake.lake.delta import quote
from plantlake.lake.layout import INGESTED_AT

CONSUMED = "consumed"
CHUNK_ROWS = 250_000


@dataclass
class Pending:
    """One chunk of bronze rows silver has not yet taken in, and the mark to commit with it."""

    rows: dict[str, pa.Table] = field(default_factory=dict)
    consumed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BronzeInput:
    """A bronze table silver reads, and the columns that identify one of its rows' keys."""

    path: Path
    keys: list[str]


def _new_rows_filter(data: ds.Dataset, mark: str | None) -> ds.Expression | None:
    if mark is None:
        return None
    return ds.field(INGESTED_AT) > pa.scalar(datetime.fromisoformat(mark), data.schema.field(INGESTED_AT).type)


def _partition(data: ds.Dataset, condition: ds.Expression | None, keys: list[str], part: int, parts: int) -> pa.Table:
    """The new rows whose key hashes to `part` of `parts`, filtered batch by batch as they are read."""
    scanner = data.scanner(filter=condition, batch_size=64_000, batch_readahead=2, fragment_readahead=1)
    if parts == 1:
        return scanner.to_table()
    connection = duckdb.connect()
    query = f"SELECT * FROM batch WHERE hash({', '.join(quote(key) for key in keys)}) % {parts} = {part}"
    pieces = [data.schema.empty_table()]
    for batch in scanner.to_batches():
        connection.register("batch", pa.Table.from_batches([batch]))
        pieces.append(connection.sql(query).to_arrow_table().cast(data.schema))
        connection.unregister("batch")
    return pa.concat_tables(pieces)


def pending_chunks(
    silver_path: Path, bronze: dict[str, BronzeInput], chunk_rows: int = CHUNK_ROWS
) -> Iterator[Pending]:
    """New rows of each bronze table since silver last consumed it, in key-hash chunks."""
    marks: dict[str, str] = delta.read_state(silver_path, CONSUMED, required=True) or {}
    consumed, inputs, total = dict(marks), {}, 0
    for name, source in bronze.items():
        data = delta.dataset(source.path)
        if data is None:
            continue
        condition = _new_rows_filter(data, marks.get(name))
        count, newest = 0, None
        for batch in data.scanner(columns=[INGESTED_AT], filter=condition).to_batches():
            if batch.num_rows:
                count += batch.num_rows
                batch_newest = pc.max(batch.column(0)).as_py()
                newest = batch_newest if newest is None else max(newest, batch_newest)
        if count and newest is not None:
            inputs[name] = (data, condition, source.keys)
            consumed[name] = newest.isoformat()
            total += count
    if not inputs:
        return
    parts = max(1, math.ceil(total / chunk_rows))
    for part in range(parts):
        rows = {
            name: _partition(data, condition, keys, part, parts) for name, (data, condition, keys) in inputs.items()
        }
        yield Pending(rows=rows, consumed=consumed if part == parts - 1 else dict(marks))


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


def commit(
    silver_path: Path,
    rows: pa.Table,
    keys: list[str],
    work: Pending,
    first_load: bool = False,
    window_key: str | None = None,
) -> dict[str, int]:
    """Upsert `rows` on `keys` and record what bronze was consumed.

    `first_load`: the table did not exist when this run began. Chunks hold disjoint keys,
    so each can be appended; a rerun after a failure finds the table and merges.

    `window_key`: a key column that orders the rows, such as a reading's time. The table's
    keys between the incoming rows' lowest and highest value of it (files and row groups
    outside are skipped by their statistics) tell which rows are new: those are appended,
    only the others merged. A MERGE reads the whole table it merges into, so without this
    the nightly cost of a table of readings would grow with its age. A run that fails
    between the append and the merge leaves the mark where it was; the rerun finds the
    appended rows there and merges them, which changes nothing.
    """
    state = {CONSUMED: work.consumed}
    if first_load:
        return delta.append(silver_path, rows, state=state)
    if window_key is None or rows.num_rows == 0:
        return delta.merge(silver_path, rows, keys, update=True, state=state)
    new, existing = _split_new(silver_path, rows, keys, window_key)
    appended = delta.append(silver_path, new, state=None if existing.num_rows else state)
    if not existing.num_rows:
        return appended
    merged = delta.merge(silver_path, existing, keys, update=True, state=state)
    return {"inserted": appended["inserted"] + merged["inserted"], "updated": merged["updated"]}


def _split_new(path: Path, rows: pa.Table, keys: list[str], window_key: str) -> tuple[pa.Table, pa.Table]:
    """The rows whose keys the table does not hold yet, and those it does."""
    low, high = pc.min_max(rows[window_key]).values()
    window = (ds.field(window_key) >= low) & (ds.field(window_key) <= high)
    landed = delta.read(path, columns=keys, filter=window)
    if landed is None or landed.num_rows == 0:
        return rows, rows.schema.empty_table()
    landed = landed.cast(pa.schema([rows.schema.field(key) for key in keys]))
    new = rows.join(landed, keys, join_type="left anti").select(rows.column_names)
    existing = rows.join(landed, keys, join_type="left semi").select(rows.column_names)
    return new.cast(rows.schema), existing.cast(rows.schema)

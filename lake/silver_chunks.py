"""Silver's input: the bronze rows it has not yet taken in, in chunks that each hold every
version of their keys.

Silver consumes bronze by ingestion time: each silver commit records, per bronze table, the
newest `_ingested_at` it has taken in (`CONSUMED`). The new rows are split by ranges of the
key's first column, so every version of a key falls in one chunk and memory follows the chunk,
not the table; the chunks follow the key's order, so the files silver writes from them hold
narrow key ranges. Only the last chunk carries the new mark.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from plantlake.lake import delta
from plantlake.lake.layout import INGESTED_AT, next_millisecond
from plantlake.lake.storage import Location

CONSUMED = "consumed"
CHUNK_ROWS = 125_000
RUN_ROWS_MAX = 4  # a run may grow to this many chunks' rows while it waits for a cut
SAMPLE_EVERY = 64  # at most one key in this many is sampled to split the new rows into ranges


@dataclass
class Pending:
    """One chunk of bronze rows silver has not yet taken in, and the mark to commit with it."""

    rows: dict[str, pa.Table] = field(default_factory=dict)
    consumed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BronzeInput:
    """A bronze table silver reads, and its columns that hold silver's key (the first splits the
    rows into chunks); `opened`: the table, if the step has it open already."""

    path: Location
    keys: list[str]
    opened: DeltaTable | None = field(default=None, compare=False)


def _new_rows_filter(data: ds.Dataset, mark: str | None) -> ds.Expression | None:
    if mark is None:
        return None
    return ds.field(INGESTED_AT) > pa.scalar(datetime.fromisoformat(mark), data.schema.field(INGESTED_AT).type)


@dataclass
class _NewRows:
    """What one bronze table holds past silver's mark: the scan, how many rows, the newest, per
    batch of the scan its rows and lowest and highest key (None where a key is null), and per
    batch that holds rows a sample of its keys."""

    data: ds.Dataset
    condition: ds.Expression | None
    key: str
    rows: int = 0
    newest: datetime | None = None
    sample: list[pa.Array] = field(default_factory=list)
    batches: list[tuple[int, Any, Any]] = field(default_factory=list)
    held: list[pa.Table] | None = None  # every batch, where the survey kept them

    def scan(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The new rows, a row group at a time (`columns`, else all): the same groups whatever the columns."""
        if columns is None and self.held is not None:
            return iter(list(self.held))
        return delta.row_groups(self.data, columns, self.condition)

    def cuts(self, chunk_rows: int) -> list[Cut] | None:
        """Where to end each run of about `chunk_rows`: before a batch, at the lowest key of that
        batch and every one after it. Rows read nearly in key order (as a database's parallel scan
        returns them) overlap their neighbours a little: the rows already read at or above that
        key wait for the next run. So a run is whole once the batches before its cut are read, and
        only those few rows are held past it; every version of a key falls in one run.

        A run ends before the batch that would take it past `chunk_rows`, so batches of nearly a
        chunk (bronze's row groups of 122,880 rows against chunks of 125,000) make runs of one
        batch, not two. No cut where the run would take less than half a chunk or more than a
        chunk's rows would wait (as the sample tells); None when a run would grow past
        `RUN_ROWS_MAX` chunks, or a key is null: the rows are then split into ranges instead."""
        held = [(index, rows, low) for index, (rows, low, _) in enumerate(self.batches) if rows]
        if any(low is None for _, _, low in held):
            return None
        floors: list[Any] = []  # per batch, the lowest key of it and of every batch after it
        for _, _, low in reversed(held):
            floors.append(low if not floors else min(low, floors[-1]))
        floors.reverse()
        cuts: list[Cut] = []
        waiting: list[pa.Array] = []  # the sampled keys of the rows read and not yet in a run
        size = 0  # those rows
        for (index, rows, _), floor, sample in zip(held, floors, self.sample, strict=True):
            if size and size + rows > chunk_rows and (not cuts or floor > cuts[-1].below):
                left = [values.filter(pc.greater_equal(values, pa.scalar(floor, values.type))) for values in waiting]
                carried = size * sum(map(len, left)) // max(1, sum(map(len, waiting)))
                if size - carried >= max(1, chunk_rows // 2) and carried <= chunk_rows:
                    cuts.append(Cut(index, floor))
                    waiting, size = left, carried
            waiting.append(sample)
            size += rows
            if size > RUN_ROWS_MAX * chunk_rows:
                return None
        return cuts


@dataclass(frozen=True)
class Cut:
    """A run ends before batch `before`: the rows read until then whose key lies below `below`."""

    before: int
    below: Any


def _survey(
    data: ds.Dataset,
    condition: ds.Expression | None,
    key: str,
    chunk_rows: int,
    keep_rows: int,
) -> _NewRows:
    """Count the new rows, note each batch's key range, and keep a sample of the key (16 or more per chunk).

    Where the files hold no more than `keep_rows` (as their footers count them, a night's
    changes, say), the survey reads every column as well and keeps them: the rows are then read
    once, not twice.
    """
    found, every = _NewRows(data, condition, key), max(1, min(SAMPLE_EVERY, chunk_rows // 16))
    kept: list[pa.Table] | None = [] if keep_rows > 0 and data.count_rows() <= keep_rows else None
    for batch in found.scan(None if kept is not None else [INGESTED_AT, key]):
        if kept is not None:
            kept.append(batch)
        if not batch.num_rows:
            found.batches.append((0, None, None))
            continue
        stamps, keys = batch[INGESTED_AT], batch[key]
        found.rows += batch.num_rows
        newest = pc.max(stamps).as_py()
        found.newest = newest if found.newest is None else max(found.newest, newest)
        found.sample.append(keys.take(pa.array(range(0, batch.num_rows, every))))
        low, high = (value.as_py() for value in pc.min_max(keys).values())
        found.batches.append((batch.num_rows, *((None, None) if keys.null_count else (low, high))))
    found.held = kept
    return found


def _range_bounds(inputs: list[_NewRows], parts: int) -> list[pa.Scalar]:
    """Up to `parts - 1` values of the key that split the new rows into ranges of about equal size."""
    values = pa.chunked_array([piece for found in inputs for piece in found.sample]).combine_chunks()
    values = values.filter(values.is_valid()).cast(inputs[0].data.schema.field(inputs[0].key).type)
    if len(values) == 0:
        return []
    ordered = values.take(pc.sort_indices(values))
    picked = [ordered[len(ordered) * index // parts] for index in range(1, parts)]
    return [bound for index, bound in enumerate(picked) if index == 0 or bound != picked[index - 1]]


def _range_of(column: pa.ChunkedArray | pa.Array, bounds: list[pa.Scalar]) -> pa.Array:
    """Per row, the number of the range its key falls in (nulls in the first)."""
    number = pa.array([0] * len(column), pa.int32())
    for bound in bounds:
        above = pc.fill_null(pc.greater_equal(column, bound.cast(column.type)), False)
        number = pc.add(number, pc.cast(above, pa.int32()))
    return number


def _spill_by_range(found: _NewRows, bounds: list[pa.Scalar], folder: Path, name: str) -> list[Path]:
    """Write the new rows to one Arrow file per key range, in one scan; memory holds one batch."""
    files = [folder / f"{name}.{part}.arrow" for part in range(len(bounds) + 1)]
    writers = [pa.ipc.new_file(str(path), found.data.schema) for path in files]
    try:
        for batch in found.scan():
            if not batch.num_rows:
                continue
            ranges = _range_of(batch.column(found.key), bounds)
            order = pc.sort_indices(ranges)
            grouped, counts = batch.take(order), pc.value_counts(ranges)
            offsets = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
            start = 0
            for part in sorted(offsets):
                writers[part].write_table(grouped.slice(start, offsets[part]))
                start += offsets[part]
            del grouped, order, ranges
            pa.default_memory_pool().release_unused()  # give the batch back: peak RSS stays one batch
    finally:
        for writer in writers:
            writer.close()
    return files


def pending_chunks(
    silver_path: Location,
    bronze: dict[str, BronzeInput],
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[Pending]:
    """New rows of each bronze table since silver last consumed it, in chunks by ranges of the first key.

    Every version of a key falls in the same chunk, and the chunks follow the key's order, so
    the files silver writes from them hold narrow key ranges: a later merge finds the few that
    can hold its keys by their statistics. More rows than one chunk that arrive in key order are
    cut into runs as they are read; others are split in one scan into Arrow files on local
    disk, one per range, read back one chunk at a time.
    """
    marks: dict[str, str] = delta.read_state(silver_path, CONSUMED, required=True) or {}
    consumed, inputs = dict(marks), {}
    keep_rows = chunk_rows  # what the surveys may keep, all tables together: memory holds a chunk at most
    for name, source in bronze.items():
        mark = marks.get(name)
        # the files stamped after the mark (stamps are whole milliseconds: see `layout.Ingestion`)
        since = (INGESTED_AT, next_millisecond(datetime.fromisoformat(mark))) if mark else None
        data = delta.dataset(source.path, order_by=source.keys[0], since=since, opened=source.opened)
        if data is None:
            continue
        found = _survey(data, _new_rows_filter(data, mark), source.keys[0], chunk_rows, keep_rows)
        if found.held is not None:
            keep_rows -= found.rows
        if found.rows and found.newest is not None:
            inputs[name] = found
            consumed[name] = found.newest.isoformat()
    if not inputs:
        return
    parts = max(1, math.ceil(sum(found.rows for found in inputs.values()) / chunk_rows))
    if parts == 1:
        rows = {
            name: pa.concat_tables([found.data.schema.empty_table(), *found.scan()]) for name, found in inputs.items()
        }
        yield Pending(rows=rows, consumed=consumed)
        return
    cuts = next(iter(inputs.values())).cuts(chunk_rows) if len(inputs) == 1 else None
    if cuts is not None:
        [(name, found)] = inputs.items()
        seen = 0
        for rows in _runs(found, cuts, found.key):
            seen += rows.num_rows  # the scan reads the snapshot the survey counted: the last run ends at its count
            yield Pending(rows={name: rows}, consumed=consumed if seen == found.rows else dict(marks))
            del rows  # the consumer holds the run now: not this frame too while the next is read
        return
    bounds = _range_bounds(list(inputs.values()), parts)
    with tempfile.TemporaryDirectory(prefix="plantlake-silver-") as folder:
        spilled = {name: _spill_by_range(found, bounds, Path(folder), name) for name, found in inputs.items()}
        for part in range(len(bounds) + 1):
            rows = {name: _read_spilled(files[part]) for name, files in spilled.items()}
            yield Pending(rows=rows, consumed=consumed if part == len(bounds) else dict(marks))
            del rows


def _runs(found: _NewRows, cuts: list[Cut], key: str) -> Iterator[pa.Table]:
    """The new rows in runs as `cuts` plans them (see `_NewRows.cuts`).

    A run is handed on before the batch after its cut is read: what is held while a run is
    merged is the run and the rows read before its cut that belong to a later one.
    """
    waiting: list[pa.Table] = []  # rows read and not yet in a run
    plan = iter(cuts)
    cut = next(plan, None)
    batches = found.scan()  # one batch per batch the survey noted
    for index in range(len(found.batches)):
        while cut is not None and index >= cut.before:
            run = _take_below(waiting, key, cut.below)
            if run:
                yield pa.concat_tables(run)
            del run
            cut = next(plan, None)
        batch = next(batches)
        if batch.num_rows:
            waiting.append(batch)
        del batch
    if waiting:
        yield pa.concat_tables(waiting)


def _take_below(tables: list[pa.Table], key: str, bound: Any) -> list[pa.Table]:
    """Take from `tables` the rows whose `key` lies below `bound`; the others stay in it. A table
    wholly on one side moves or stays as it is, one across it is split a column at a time."""
    below: list[pa.Table] = []
    for _ in range(len(tables)):
        table = tables.pop(0)
        low, high = (value.as_py() for value in pc.min_max(table[key]).values())
        if high < bound:
            below.append(table)
        elif low >= bound:
            tables.append(table)
        else:
            mask = pc.less(table[key], pa.scalar(bound, table.schema.field(key).type))
            schema, columns = table.schema, table.columns
            del table  # its columns are let go one by one as they are split
            part, rest = _split(columns, schema, mask)
            below.append(part)
            tables.append(rest)
            del part, rest
    return below


def _split(columns: list[pa.ChunkedArray], schema: pa.Schema, mask: pa.ChunkedArray) -> tuple[pa.Table, pa.Table]:
    """The rows of a batch's `columns` where `mask` holds, and the others. `columns` is emptied
    as it is split, so a split holds one batch and a column, not two batches."""
    other = pc.invert(mask)
    below, above = [], []
    for position, column in enumerate(columns):
        below.append(column.filter(mask))
        above.append(column.filter(other))
        columns[position] = None  # let go of the column once split
        del column
    return pa.Table.from_arrays(below, schema=schema), pa.Table.from_arrays(above, schema=schema)


def _read_spilled(path: Path) -> pa.Table:
    with pa.ipc.open_file(str(path)) as reader:
        table = reader.read_all()
    path.unlink()
    return table

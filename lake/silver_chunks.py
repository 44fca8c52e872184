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

from plantlake.lake import delta
from plantlake.lake.layout import INGESTED_AT
from plantlake.lake.storage import Location

CONSUMED = "consumed"
CHUNK_ROWS = 125_000
RUN_ROWS_MAX = 4  # a run may grow to this many chunks' rows while it waits for a cut
OVERLAP_BATCHES = 4  # a cut may take rows from this many batches after it
SAMPLE_EVERY = 64  # at most one key in this many is sampled to split the new rows into ranges


@dataclass
class Pending:
    """One chunk of bronze rows silver has not yet taken in, and the mark to commit with it."""

    rows: dict[str, pa.Table] = field(default_factory=dict)
    consumed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BronzeInput:
    """A bronze table silver reads, and its columns that hold silver's key (the first splits the rows into chunks)."""

    path: Location
    keys: list[str]


def _new_rows_filter(data: ds.Dataset, mark: str | None) -> ds.Expression | None:
    if mark is None:
        return None
    return ds.field(INGESTED_AT) > pa.scalar(datetime.fromisoformat(mark), data.schema.field(INGESTED_AT).type)


@dataclass
class _NewRows:
    """What one bronze table holds past silver's mark: the scan, how many rows, the newest, and per
    batch of the scan its rows and lowest and highest key (None where a key is null)."""

    data: ds.Dataset
    condition: ds.Expression | None
    key: str
    rows: int = 0
    newest: datetime | None = None
    sample: list[pa.Array] = field(default_factory=list)
    batches: list[tuple[int, Any, Any]] = field(default_factory=list)

    def scan(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The new rows, a row group at a time: the same groups whatever the columns."""
        return delta.row_groups(self.data, columns, self.condition)

    def cuts(self, chunk_rows: int) -> list[Cut] | None:
        """Where to end each run of about `chunk_rows`: before a batch, taking from the next few
        batches the rows whose keys lie at or below every key already taken (rows read nearly in
        key order, as a database's parallel scan returns them, overlap their neighbours a little).
        None when that would take more than `OVERLAP_BATCHES` batches or a run would grow past
        `RUN_ROWS_MAX` chunks, or a key is null: the rows are then split into ranges instead."""
        held = [(index, rows, low, high) for index, (rows, low, high) in enumerate(self.batches) if rows]
        if any(low is None for _, _, low, _ in held):
            return None
        cuts: list[Cut] = []
        size, high = 0, None
        for position, (index, rows, _, batch_high) in enumerate(held):
            settled = not cuts or cuts[-1].last is None or index > cuts[-1].last  # the last cut has taken its rows
            if size >= chunk_rows and settled:
                reach = [later for later, _, low, _ in held[position:] if low <= high]
                last = max(reach, default=None)
                if last is None or last - index < OVERLAP_BATCHES:
                    cuts.append(Cut(index, high, last))
                    size = 0
            size += rows
            if size > RUN_ROWS_MAX * chunk_rows:
                return None
            high = batch_high if high is None else max(high, batch_high)
        return cuts


@dataclass(frozen=True)
class Cut:
    """A run ends before batch `before`, with every later row whose key is at most `through`
    (found up to batch `last`, None if no later batch holds one)."""

    before: int
    through: Any
    last: int | None


def _survey(data: ds.Dataset, condition: ds.Expression | None, key: str, chunk_rows: int) -> _NewRows:
    """Count the new rows, note each batch's key range, and keep a sample of the key (16 or more per chunk)."""
    found, every = _NewRows(data, condition, key), max(1, min(SAMPLE_EVERY, chunk_rows // 16))
    for batch in found.scan([INGESTED_AT, key]):
        if not batch.num_rows:
            found.batches.append((0, None, None))
            continue
        found.rows += batch.num_rows
        newest = pc.max(batch.column(0)).as_py()
        found.newest = newest if found.newest is None else max(found.newest, newest)
        found.sample.append(batch.column(1).take(pa.array(range(0, batch.num_rows, every))))
        low, high = (value.as_py() for value in pc.min_max(batch.column(1)).values())
        found.batches.append((batch.num_rows, *((None, None) if batch.column(1).null_count else (low, high))))
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
    silver_path: Location, bronze: dict[str, BronzeInput], chunk_rows: int = CHUNK_ROWS
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
    for name, source in bronze.items():
        data = delta.dataset(source.path, order_by=source.keys[0])
        if data is None:
            continue
        found = _survey(data, _new_rows_filter(data, marks.get(name)), source.keys[0], chunk_rows)
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
        return
    bounds = _range_bounds(list(inputs.values()), parts)
    with tempfile.TemporaryDirectory(prefix="plantlake-silver-") as folder:
        spilled = {name: _spill_by_range(found, bounds, Path(folder), name) for name, found in inputs.items()}
        for part in range(len(bounds) + 1):
            rows = {name: _read_spilled(files[part]) for name, files in spilled.items()}
            yield Pending(rows=rows, consumed=consumed if part == len(bounds) else dict(marks))


def _runs(found: _NewRows, cuts: list[Cut], key: str) -> Iterator[pa.Table]:
    """The new rows in runs as `cuts` plans them (see `_NewRows.cuts`)."""
    taken: list[pa.Table] = []  # rows of the run being gathered
    ahead: list[pa.Table] = []  # rows read past a cut that belong to the next run
    plan = iter(cuts)
    cut = next(plan, None)
    for index, batch in enumerate(found.scan()):
        while cut is not None and index >= cut.before and (cut.last is None or index > cut.last):
            yield pa.concat_tables(taken)  # every row at or below the cut's key has been read
            taken, ahead = ahead, []
            cut = next(plan, None)
        if not batch.num_rows:
            continue
        if cut is not None and index >= cut.before:  # past the cut: split off what belongs before it
            before = pc.less_equal(batch[key], pa.scalar(cut.through, batch.schema.field(key).type))
            taken.append(batch.filter(before))
            ahead.append(batch.filter(pc.invert(before)))
        else:
            taken.append(batch)
    while cut is not None:
        yield pa.concat_tables(taken)
        taken, ahead = ahead, []
        cut = next(plan, None)
    if taken:
        yield pa.concat_tables(taken)


def _read_spilled(path: Path) -> pa.Table:
    with pa.ipc.open_file(str(path)) as reader:
        table = reader.read_all()
    path.unlink()
    return table

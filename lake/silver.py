"""Silver: typed, deduplicated rows merged on their keys.

Silver consumes bronze by ingestion time: each silver commit records, per bronze table,
the newest `_ingested_at` it has taken in. New bronze rows are processed in chunks split
by ranges of the key's first column, so every version of a key falls in the same chunk and
memory is bounded by the chunk size, not the table. Only the last chunk's commit advances the mark:
a run that fails part-way leaves it where it was, and the rerun merges the same rows
again on their keys, which changes nothing already merged.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from plantlake.lake import delta
from plantlake.lake.delta import quote
from plantlake.lake.layout import INGESTED_AT

CONSUMED = "consumed"
CHUNK_ROWS = 125_000
MERGE_TARGET_ROWS = 1_000_000  # rows of the table one MERGE meets, at most about
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

    path: Path
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
    silver_path: Path, bronze: dict[str, BronzeInput], chunk_rows: int = CHUNK_ROWS
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


def latest_per_key(table: pa.Table, keys: list[str], newest_first: list[str]) -> pa.Table:
    """One row per key: the first by `newest_first` (descending)."""
    if table.num_rows == 0 or _unique(table, keys):
        return table
    connection = duckdb.connect()
    connection.register("incoming", table)
    order = ", ".join(f"{quote(column)} DESC NULLS LAST" for column in newest_first)
    partition = ", ".join(quote(key) for key in keys)
    query = f"SELECT * FROM incoming QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {order}) = 1"
    return connection.sql(query).to_arrow_table().cast(table.schema)


def _unique(table: pa.Table, keys: list[str]) -> bool:
    """Each key once (the usual case, as in a first load): nothing to choose between. Checked for
    one key column: rising keys (a file or table read in key order) are unique without hashing."""
    if len(keys) != 1 or table.num_rows < 2:
        return len(keys) == 1
    column = table[keys[0]].combine_chunks()
    if column.null_count == 0 and pc.all(pc.greater(column[1:], column[:-1])).as_py():
        return True
    return pc.count_distinct(column, mode="all").as_py() == table.num_rows


def commit(
    silver_path: Path,
    rows: pa.Table,
    keys: list[str],
    work: Pending,
    first_load: bool = False,
    window_key: str | None = None,
) -> dict[str, int]:
    """Upsert `rows` on `keys` and record what bronze was consumed.

    Each chunk holds a range of keys (see `pending_chunks`), so each file it writes does too.

    `first_load`: the table did not exist when this run began. Chunks hold disjoint keys,
    so each can be appended; a rerun after a failure finds the table and merges.

    `window_key` (default: the first key): a key column that orders the rows, such as a
    reading's time or an order's id. The table's keys between the incoming rows' lowest and
    highest value of it (files and row groups outside are skipped by their statistics) tell
    which rows are new: those are appended, only the others merged, and each merge meets only
    the files whose range of it holds its keys (see `_merge_by_file_ranges`). A MERGE reads
    every file it meets, so without this the nightly cost of a table would grow with its age.
    A run that fails between the append and the merge leaves the mark where it was; the rerun
    finds the appended rows there and merges them, which changes nothing.
    """
    state = {CONSUMED: work.consumed}
    if first_load:
        return delta.append(silver_path, rows, state=state)
    if rows.num_rows == 0:
        return delta.merge(silver_path, rows, keys, update=True, state=state)
    new, existing = _split_new(silver_path, rows, keys, window_key or keys[0])
    appended = delta.append(silver_path, new, state=None if existing.num_rows else state)
    if not existing.num_rows:
        return appended
    merged = _merge_by_file_ranges(silver_path, existing, keys, window_key or keys[0], state)
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


def _merge_by_file_ranges(path: Path, rows: pa.Table, keys: list[str], order_key: str, state: dict) -> dict[str, int]:
    """MERGE `rows` in slices by `order_key` that each meet about `MERGE_TARGET_ROWS` of the table.

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
    files = files.filter(pc.is_valid(files[low_name])).sort_by(low_name)
    lows, highs = files[low_name].to_pylist(), files[high_name].to_pylist()
    counts = files["num_records"].to_pylist()
    overlaps = sum(1 for index in range(len(lows)) for later in lows[index + 1 :] if later <= highs[index])
    if overlaps > 2 * len(lows):
        return [rows]  # ranges overlap widely: every slice would meet most files
    column = rows[order_key].cast(files.schema.field(low_name).type)
    slices, start, met = [], 0, 0
    for index in range(len(lows)):
        met += counts[index]
        if met < MERGE_TARGET_ROWS and index < len(lows) - 1:
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

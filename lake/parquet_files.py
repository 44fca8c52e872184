"""Parquet data files for a Delta table, written from a batch stream in bounded memory.

Why not `write_deltalake` for streams: delta-rs pulls batches from a reader faster than it
encodes them when the producer is fast (a local file, a spool), so its buffered batches and
the peak memory grow with the input. Here the consumer sets the pace: batches are gathered
into a row group in one thread while the previous group is encoded in another, so memory
holds about two row groups whatever the input size. The files are then committed as add
actions (see `lake.delta.append`), with the statistics delta-rs itself would write, read
back from the Parquet footers.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import Schema
from deltalake.transaction import AddAction

from plantlake.lake.prefetch import prefetched
from plantlake.lake.storage import Location, Where

# DuckDB's own row group size: small enough that a group of wide text rows stays in tens of
# MB while it forms and is encoded, large enough for column statistics to prune well.
ROW_GROUP_ROWS = 122_880
FILE_BYTES = 256 * 1024 * 1024


def delta_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` as Delta stores it: timestamps in microseconds (UTC or naive), no large or dictionary types.

    Field metadata is kept. A type Delta has no equivalent for fails with the field's name.
    """
    fields = []
    for field in schema:
        kind = field.type
        if pa.types.is_timestamp(kind):
            kind = pa.timestamp("us", "UTC" if kind.tz else None)
        elif pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_large_binary(kind):
            kind = pa.binary()
        field = field.with_type(kind)
        try:
            Schema.from_arrow(pa.schema([field]))
        except Exception as exc:
            raise TypeError(
                f"column {field.name!r} has type {field.type}, which a Delta table cannot hold; "
                "cast it to a Delta type (string, numbers, decimal, date, timestamp) first"
            ) from exc
        fields.append(field)
    return pa.schema(fields, metadata=schema.metadata)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with the columns of `schema`, in its order and types; columns it lacks are null.

    A value the table's type cannot hold fails with the column's name and both types.
    """
    columns = [
        _cast(batch.column(field.name), field)
        if field.name in batch.schema.names
        else pa.nulls(batch.num_rows, field.type)
        for field in schema
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _cast(column: pa.Array, field: pa.Field) -> pa.Array:
    try:
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise TypeError(
            f"column {field.name!r}: values of type {column.type} do not fit the table's {field.type} ({error}); "
            "give the column one type wherever it comes from"
        ) from error


def _row_groups(batches: Iterable[pa.RecordBatch], schema: pa.Schema, rows: int) -> Iterator[pa.Table]:
    """The batches, cast to `schema`, regrouped into tables of `rows` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if not batch.num_rows:
            continue
        pending.append(conform(batch, schema))
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending, schema)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending, schema)


DICTIONARY_SAMPLE_ROWS = 8_192


def _dictionary_columns(group: pa.Table) -> list[str]:
    """The columns worth dictionary-encoding, judged on a file's first row group.

    Dictionary encoding pays off for repeated text (codes, statuses, constants). For numbers,
    dates and timestamps, and for text that hardly repeats (order numbers, free notes), the
    writer hashes every value only to fall back to plain pages: a fifth of the write time for
    files no smaller. Text counts as repeated when a sample holds at most half distinct values.
    """
    sample = group.slice(0, DICTIONARY_SAMPLE_ROWS)
    chosen = []
    for field in group.schema:
        if pa.types.is_dictionary(field.type):
            chosen.append(field.name)
        elif pa.types.is_string(field.type):
            values = sample[field.name]
            present = len(values) - values.null_count
            if present == 0 or pc.count_distinct(values).as_py() <= present // 2:
                chosen.append(field.name)
    return chosen


_TEXT_CONSTANT = pa.dictionary(pa.int32(), pa.string())


def _writer_schema(schema: pa.Schema, constants: dict[str, pa.Scalar]) -> pa.Schema:
    """`schema` with text constants dictionary-encoded: the Parquet writer then hashes the one
    value and takes its statistics once per row group, not once per row. The file's schema is
    plain text all the same (Parquet has no dictionary type; the Arrow schema is not stored)."""
    return pa.schema(
        [
            field.with_type(_TEXT_CONSTANT) if field.name in constants and pa.types.is_string(field.type) else field
            for field in schema
        ]
    )


def _with_constants(group: pa.Table, constants: dict[str, pa.Scalar], schema: pa.Schema) -> pa.Table:
    """The row group with each constant as a column of its one value, in the columns of `schema`."""
    rows = group.num_rows
    first_entry = pa.array(np.zeros(rows, np.int32))  # every row points at the dictionary's one value
    columns = []
    for field in schema:
        if field.name not in constants:
            columns.append(group.column(field.name))
        elif field.type == _TEXT_CONSTANT:
            columns.append(
                pa.DictionaryArray.from_arrays(first_entry, pa.array([constants[field.name].as_py()], pa.string()))
            )
        else:
            columns.append(pa.repeat(constants[field.name].cast(field.type), rows))
    return pa.Table.from_arrays(columns, schema=schema)


def write_files(
    folder: Where,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    constants: dict[str, pa.Scalar] | None = None,
    file_rows: int | None = None,
) -> list[AddAction]:
    """Write the batches as Parquet files into the table `folder`; the add actions that would commit them.

    `schema` is the table's; its columns named in `constants` hold that one value on every
    row and are not in the batches. A file is closed once it passes `FILE_BYTES` or holds
    `file_rows` rows (a multiple of `ROW_GROUP_ROWS`; None: no limit). Until the
    actions are committed the files are invisible to readers, and a failed run leaves only
    unreferenced files (`vacuum` removes them).
    """
    folder = Location.of(folder)
    folder.make_folder()
    constants = constants or {}
    writer_schema = _writer_schema(schema, constants)
    rows_schema = pa.schema([field for field in schema if field.name not in constants])
    actions: list[AddAction] = []
    grouped = (
        _with_constants(group, constants, writer_schema) for group in _row_groups(batches, rows_schema, ROW_GROUP_ROWS)
    )
    groups = prefetched(grouped, depth=1)  # the next row group forms while one is encoded
    for first in groups:
        name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        with (folder / name).open_output() as sink:
            writer = pq.ParquetWriter(
                sink,
                writer_schema,
                compression="snappy",
                store_schema=False,
                use_dictionary=_dictionary_columns(first),
            )
            writer.write_table(first, row_group_size=ROW_GROUP_ROWS)
            rows = first.num_rows
            while _room(sink.tell(), rows, file_rows) and (group := next(groups, None)) is not None:
                writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
                rows += group.num_rows
                pa.default_memory_pool().release_unused()  # give freed groups back: peak RSS then stays flat
            writer.close()
            size = sink.tell()
        actions.append(AddAction(name, size, {}, int(time.time() * 1000), True, file_stats(writer.writer.metadata)))
    return actions


def absent_as_null(action: AddAction, held: Collection[str], schema: pa.Schema) -> AddAction:
    """The file's action with statistics that count every row null in each column of `schema`
    it does not hold (`held`: its columns), as it reads. Without them delta-rs takes such a
    column for one without nulls and prunes `IS NULL` on it to nothing."""
    stats = json.loads(action.stats)
    absent = [name for name in schema.names if name not in held]
    if not absent:
        return action
    stats["nullCount"].update(dict.fromkeys(absent, stats["numRecords"]))
    return AddAction(
        action.path,
        action.size,
        action.partition_values,
        action.modification_time,
        action.data_change,
        json.dumps(stats),
    )


def _room(size: int, rows: int, file_rows: int | None) -> bool:
    """Whether a file of `size` bytes and `rows` rows takes another row group."""
    return size < FILE_BYTES and (file_rows is None or rows < file_rows)


def link_files(folder: Where, sources: list[Location], schema: pa.Schema) -> list[AddAction]:
    """Give the table `folder` the Parquet files `sources` of another table, as they are: the add actions.

    Each file is linked or copied by the store (`Location.copy_to`), not read and written again.
    Its statistics, read from its footer, cover only the columns of `schema`, the table's: a
    column the file holds beyond them is never read (Delta reads a file by the table's schema),
    and one it lacks reads as null.
    """
    folder = Location.of(folder)
    actions = []
    for source in sources:
        name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        source.copy_to(folder / name)
        with source.open_input() as stream:
            size, metadata = stream.size(), pq.read_metadata(stream)
        action = AddAction(name, size, {}, int(time.time() * 1000), True, file_stats(metadata, set(schema.names)))
        actions.append(absent_as_null(action, metadata.schema.to_arrow_schema().names, schema))
    return actions


def _stat_value(value: Any) -> Any:
    """A Parquet statistic in the JSON form delta-rs writes (timestamps to the millisecond)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _put(tree: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {})
    tree[path[-1]] = value


def _usable(value: Any) -> bool:
    """Infinities are left out of the statistics (as delta-rs does)."""
    return not (isinstance(value, float) and not math.isfinite(value))


def _leaf_paths(schema: pa.Schema) -> list[list[str]]:
    """Each Parquet leaf column's path as names, in Parquet's order: a name may hold a dot."""

    def walk(field: pa.Field, prefix: list[str]) -> list[list[str]]:
        path = [*prefix, field.name]
        if pa.types.is_struct(field.type):
            return [leaf for child in field.type for leaf in walk(child, path)]
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            return walk(field.type.value_field, [*path, "list"])
        if pa.types.is_map(field.type):
            return [
                *walk(field.type.key_field, [*path, "key_value"]),
                *walk(field.type.item_field, [*path, "key_value"]),
            ]
        return [path]

    return [leaf for field in schema for leaf in walk(field, [])]


def file_stats(metadata: pq.FileMetaData, columns: set[str] | None = None) -> str:
    """numRecords, and min, max and null count per column (nested struct fields as nested keys),
    of every top-level column or those named in `columns`.

    A column gets min and max only when every row group holding values has them; binary
    and list columns get no statistics (as with delta-rs). A column with values but no usable
    min and max (text too long for Parquet's statistics, an infinity) gets no null count either:
    delta-rs takes a null count without them for a range that excludes every value, and prunes
    every comparison on the column to nothing.
    """
    stats: dict[str, Any] = {"numRecords": metadata.num_rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    groups = [metadata.row_group(i) for i in range(metadata.num_row_groups)]
    paths = _leaf_paths(metadata.schema.to_arrow_schema())
    for index in range(metadata.num_columns):
        column = metadata.schema.column(index)
        path = paths[index]
        if columns is not None and path[0] not in columns:
            continue
        binary = column.physical_type == "BYTE_ARRAY" and column.logical_type.type == "NONE"
        chunks = [group.column(index) for group in groups]
        if binary or "list" in path[1:] or not all(chunk.is_stats_set for chunk in chunks):
            continue
        nulls = sum(chunk.statistics.null_count for chunk in chunks)
        valued = [
            chunk.statistics
            for chunk, group in zip(chunks, groups, strict=True)
            if chunk.statistics.null_count < group.num_rows
        ]
        if not valued:
            _put(stats["nullCount"], path, nulls)  # every value null
            continue
        if not all(stat.has_min_max for stat in valued):
            continue  # values without a range: no null count either (see above)
        low, high = min(stat.min for stat in valued), max(stat.max for stat in valued)
        if _usable(low) and _usable(high):
            _put(stats["nullCount"], path, nulls)
            _put(stats["minValues"], path, _stat_value(low))
            _put(stats["maxValues"], path, _stat_value(high))
    return json.dumps(stats)

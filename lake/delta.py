"""Delta tables on disk or in object storage: idempotent writes, one schema whatever wrote them, state apart.

How reruns and failures stay safe:
- Every write is a single Delta commit (one `MERGE`, one `write_deltalake`, or the Parquet
  files of an append committed together as add actions; an append that brings new columns
  first adds them, nullable, in a commit of their own). Until the commit file lands,
  readers see the previous version; a run that dies before it leaves only unreferenced
  Parquet files, which the maintenance job's full vacuum removes. Nothing is half-visible.
- A write that adds no rows to an existing table commits nothing, so an idle night leaves
  every table at its version.
- The state a later run needs (a source watermark, the bronze position silver has consumed)
  is written to the table's state file right after the commit (see `lake.state` for why
  there and how it holds through checkpoints, log cleanup, OPTIMIZE and VACUUM).
- Rows are written on the table's keys (a MERGE inserts if absent for bronze and quarantine;
  silver upserts by rewriting the files that hold its keys, `lake.silver_upsert`, in one commit
  of added and removed files), so re-reading rows a previous run already committed adds nothing.
- One writer per table at a time: the steps hold `lake.locks.exclusive` around read, write
  and state; the quarantine and meta tables, written by many steps, retry a lost commit race.

Types: a MERGE through delta-rs writes string columns as `string_view` in its Parquet files
(a known upstream issue), and pyarrow has no kernels that compare `string_view` with
`string`. Reads therefore go through `dataset` (whose schema is the table's, `string`, so
scanned batches come out normalized), `scan` (which applies a string predicate after the
scan where the files would refuse it) and `register` (DuckDB reads the Parquet files
itself, where every text column is VARCHAR).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable, WriterProperties, write_deltalake
from deltalake import Field as DeltaField
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import create_table_with_add_actions

if TYPE_CHECKING:
    from deltalake.transaction import AddAction, RemoveAction

from plantlake.lake import parquet_files, state, storage
from plantlake.lake.storage import Location, Where

T = TypeVar("T")
# Opening a table replays every commit since its last checkpoint; a checkpoint every 10 commits
# (delta-rs writes one every 100 by default) keeps that cost small for tables committed to often,
# such as the quality results (a commit per check per night).
TABLE_PROPERTIES = {"delta.checkpointInterval": "10"}

# For rewrites through delta-rs (widening): half its default row group of 1M rows bounds the
# memory of a large rewrite (about 80 MB less at 5M rows), for ~5% larger files.
STREAM_WRITER = WriterProperties(max_row_group_size=524_288, compression="SNAPPY")


def quote(identifier: str) -> str:
    """A column name as a quoted SQL identifier, safe for any name the source uses."""
    return '"' + identifier.replace('"', '""') + '"'


def open_table(path: Where, version: int | None = None) -> DeltaTable | None:
    """The table at `path` (at `version`, else its current one), or None if there is none."""
    path = Location.of(path)
    try:
        return load(path, version)
    except TableNotFoundError:
        return None


def load(path: Where, version: int | None = None) -> DeltaTable:
    """The table at `path`, which must exist (one listed by `Lake.tables`, say)."""
    path = Location.of(path)
    return DeltaTable(path.uri, version=version, storage_options=path.storage_options)


def read_state(path: Where, key: str, *, required: bool = False) -> Any:
    """The table's state value for `key` (see `lake.state`), or None.

    `required`: the key must exist whenever the table holds rows; a missing one means the
    state was lost, and reading everything again would duplicate or reload, so stop instead.
    """
    path = Location.of(path)
    value = state.current(path).get(key)
    if value is None and required and row_count(path):
        raise state.missing(path, key)
    return value


def _save_state(path: Location, updates: dict[str, Any] | None) -> None:
    if updates:
        state.write(path, updates)


def _key_predicate(keys: list[str], null_safe: bool) -> str:
    operator = "IS NOT DISTINCT FROM" if null_safe else "="
    return " AND ".join(f"(t.{quote(key)} {operator} s.{quote(key)})" for key in keys)


def _lost_race(error: Exception) -> bool:
    """Another writer committed first, or created the table first: the action runs again and finds its work."""
    return isinstance(error, CommitFailedError) or "already exists" in str(error)


def retry(action: Callable[[], T], attempts: int = 8) -> T:
    """Concurrent writers to one table (e.g. the shared quarantine) retry a lost commit race."""
    for attempt in range(attempts):
        try:
            return action()
        except (CommitFailedError, DeltaError) as error:
            if attempt == attempts - 1 or not _lost_race(error):
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _peek(data: pa.Table | pa.RecordBatchReader) -> pa.Table | pa.RecordBatchReader | None:
    """`data`, or None when it holds no rows; a reader is given back whole after its first batch."""
    if isinstance(data, pa.Table):
        return data if data.num_rows else None
    for batch in data:
        if batch.num_rows:
            return pa.RecordBatchReader.from_batches(data.schema, itertools.chain([batch], data))
    return None


def merge(
    path: Where,
    data: pa.Table | pa.RecordBatchReader,
    keys: list[str],
    *,
    update: bool,
    state: dict[str, Any] | None = None,
    null_safe_keys: bool = False,
) -> dict[str, int]:
    """Upsert (`update=True`) or insert-if-absent `data` on `keys` in one commit, then save `state`.

    The first write creates the table (even with no rows). New source columns are added to
    the table schema. No rows for an existing table: no commit, only the state is saved.
    """
    path = Location.of(path)
    opened = [open_table(path)]  # the first attempt uses this one; a retry after a lost race opens it anew
    data = _peek(data) if opened[0] is not None else data
    if data is None:
        _save_state(path, state)
        return {"inserted": 0, "updated": 0}

    def run() -> dict[str, int]:
        table = opened.pop() if opened else open_table(path)
        if table is None:
            write_deltalake(
                path.uri, data, mode="error", configuration=TABLE_PROPERTIES, storage_options=path.storage_options
            )
            added = load(path).history(1)[0].get("operationMetrics", {}).get("num_added_rows", 0)
            return {"inserted": int(added), "updated": 0}
        merger = table.merge(
            source=data,
            predicate=_key_predicate(keys, null_safe_keys),
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            # a table in memory: delta-rs then skips the target files outside its keys' min/max
            # (streamed, it cannot know them); a stream keeps its memory to a batch
            streamed_exec=not isinstance(data, pa.Table),
        )
        if update:
            merger = merger.when_matched_update_all()
        metrics = merger.when_not_matched_insert_all().execute()
        return {"inserted": metrics["num_target_rows_inserted"], "updated": metrics["num_target_rows_updated"]}

    result = retry(run)
    _save_state(path, state)
    return result


def append(
    path: Where,
    data: pa.Table | pa.RecordBatchReader,
    state: dict[str, Any] | None = None,
    constants: dict[str, pa.Scalar] | None = None,
    file_rows: int | None = None,
    opened: DeltaTable | None = None,
) -> dict[str, int]:
    """Add rows without looking for matches in one commit, then save `state`; a reader is written as it streams.

    `constants` are columns with one value on every row (who landed the rows, from which
    file), added by the writer, which stores each value once per row group. `file_rows`
    limits the rows of a file (see `parquet_files.write_files`).

    Only for rows whose keys cannot be in the table yet: a MERGE joins against the whole
    target, so its memory grows with the table, while an append costs only its own rows.
    New columns are added to the table; columns the rows lack are null. Memory holds about
    two row groups, however long the stream (see `lake.parquet_files`). No rows for an
    existing table: no commit, only the state is saved. `opened`: as for `add_files`.
    """
    path = Location.of(path)
    reader = data.to_reader() if isinstance(data, pa.Table) else data
    fixed = [pa.field(name, value.type, nullable=not value.is_valid) for name, value in (constants or {}).items()]
    table = opened if opened is not None else open_table(path)
    target = widened_schema(table, pa.schema([*reader.schema, *fixed]))
    actions = parquet_files.write_files(path, reader, target, constants, file_rows)
    return add_files(path, actions, target, state, opened=table)


def widened_schema(table: DeltaTable | None, incoming: pa.Schema) -> pa.Schema:
    """The schema rows of `incoming` are written in: the table's, with the columns only they
    have added (nullable), or theirs as Delta stores it for a new table."""
    target = parquet_files.delta_schema(incoming)
    if table is None:
        return target
    landed = pa.schema(table.schema().to_arrow())
    return pa.schema([*landed, *(field.with_nullable(True) for field in target if field.name not in landed.names)])


def add_files(
    path: Where,
    actions: list[AddAction],
    schema: pa.Schema,
    state: dict[str, Any] | None = None,
    removes: Sequence[RemoveAction] = (),
    opened: DeltaTable | None = None,
) -> dict[str, int]:
    """Commit Parquet files already in the table's folder (`actions`), and the removal of the
    files `removes` names, creating the table with `schema` if there is none, then save `state`.

    Columns of `schema` the table lacks are added first. No rows for an existing table: no
    commit, only the state is saved. `opened`: the table as the caller opened it for this
    write, which the first attempt commits on (delta-rs commits after any newer version). A
    commit that removes files is not retried here: what it removes was read from one version,
    so its caller must read again (`retry` the whole).
    """
    path = Location.of(path)
    inserted = sum(json.loads(action.stats)["numRecords"] for action in actions)
    tables = [opened if opened is not None else open_table(path)]  # a retry after a lost race opens it anew
    if tables[0] is not None and inserted == 0 and not removes:
        _save_state(path, state)
        return {"inserted": 0, "updated": 0}

    def commit() -> None:
        current = tables.pop() if tables else open_table(path)
        held = [] if current is None else current.schema().to_arrow().names
        missing = [field for field in schema if current is not None and field.name not in held]
        # nullable columns first: harmless to readers if the data commit fails; a retry finds them there
        if current is not None and missing:
            current.alter.add_columns([DeltaField.from_arrow(field) for field in missing])
            current = open_table(path)
        if current is None:
            create_table_with_add_actions(
                path.uri,
                DeltaSchema.from_arrow(schema),
                actions,
                mode="error",
                configuration=TABLE_PROPERTIES,
                storage_options=path.storage_options,
            )
        else:
            _refuse_removed(current, removes)
            changes: list[AddAction | RemoveAction] = [*actions, *removes]
            current.create_write_transaction(changes, mode="append", schema=schema)

    retry(commit, attempts=1 if removes else 8)
    _save_state(path, state)
    return {"inserted": inserted, "updated": 0}


def _refuse_removed(table: DeltaTable, removes: Sequence[RemoveAction]) -> None:
    """A lost race: a file to remove is gone from the current version (compacted, rewritten by
    another writer), so what replaces it was read from an older one. delta-rs would commit the
    removal anyway; the caller must read again. The table's lock keeps writers apart in the
    first place; this catches a writer that did not take it."""
    if not removes:
        return
    live = set(pa.table(table.get_add_actions(flatten=True))["path"].to_pylist())
    gone = [remove.path for remove in removes if remove.path not in live]
    if gone:
        raise CommitFailedError(
            f"{len(gone)} file(s) to remove are gone from version {table.version()}, e.g. {gone[0]}"
        )


def widen(path: Where, fields: dict[str, pa.Field]) -> None:
    """Rewrite the table with the given columns cast to wider fields, in one commit.

    The old files stay readable until the commit replaces them, so the rewrite streams.
    """
    path = Location.of(path)
    data = dataset(path)
    if data is None:
        return
    schema = pa.schema([fields.get(field.name, field) for field in data.schema])
    batches = (batch.cast(schema) for batch in data.to_batches(batch_size=64_000))
    reader = pa.RecordBatchReader.from_batches(schema, batches)
    write_deltalake(
        path.uri,
        reader,
        mode="overwrite",
        schema_mode="overwrite",
        writer_properties=STREAM_WRITER,
        storage_options=path.storage_options,
    )


def overwrite(path: Where, data: pa.Table) -> bool:
    """Replace the whole table in one commit (for small tables recomputed each run).

    Data equal to what the table holds commits nothing, so an unchanged recompute leaves
    the table at its version; returns whether it committed.
    """
    path = Location.of(path)
    table = open_table(path)
    if table is not None:
        current = table.to_pyarrow_dataset().to_table()
        if current.schema.equals(data.schema) and current.equals(data):
            return False
    write_deltalake(
        path.uri,
        data,
        mode="overwrite",
        schema_mode="overwrite",
        configuration=TABLE_PROPERTIES if table is None else None,
        storage_options=path.storage_options,
    )
    return True


def dataset(
    path: Where,
    order_by: str | None = None,
    since: tuple[str, Any] | None = None,
    opened: DeltaTable | None = None,
) -> ds.Dataset | None:
    """The current version as a pyarrow dataset (scanned lazily, in batches), in the table's own schema.

    `order_by`: a column whose statistics order the files, lowest first, so that a table
    written in that column's order is scanned in it (a table's file list has no order).
    `since`: (column, lowest value): only the files whose statistics allow a value at or above
    it (see `_files_since`); rows are not filtered, the scan's filter does that. `opened`: the
    table as the caller has just opened it, read instead of opening it again.
    """
    path = Location.of(path)
    table = opened if opened is not None else open_table(path)
    if table is None:
        return None
    data = _files_since(table, since)
    if order_by is None or not isinstance(data, ds.FileSystemDataset):
        return data
    files = pa.table(table.get_add_actions(flatten=True))
    if f"min.{order_by}" not in files.column_names:
        return data
    files = files.sort_by([(f"min.{order_by}", "ascending")])  # files without statistics last
    rank = {unquote(name): index for index, name in enumerate(files["path"].to_pylist())}
    fragments = sorted(data.get_fragments(), key=lambda fragment: rank.get(unquote(fragment.path), len(rank)))
    return ds.FileSystemDataset(fragments, data.schema, data.format, data.filesystem)


def _files_since(table: DeltaTable, since: tuple[str, Any] | None) -> ds.Dataset:
    """The table's dataset of the files that may hold `since`'s column at or above its value.

    Building a dataset costs about 2 ms a file (delta-rs turns each file's statistics into a
    pyarrow expression); pruning first makes a nightly read of the newest rows cost the same
    on night 1000 as on night 1. delta-rs reads a timestamp's maximum as up to a millisecond
    higher (Delta keeps them truncated to the millisecond), so a file of the millisecond below
    the bound is kept too. A value delta-rs cannot put in a predicate prunes nothing.
    """
    if since is None:
        return table.to_pyarrow_dataset()
    column, value = since
    value = value.as_py() if isinstance(value, pa.Scalar) else value
    try:
        return table.to_pyarrow_dataset(file_pruning_predicate=[(column, ">=", value)])
    except (DeltaError, ValueError, TypeError):
        return table.to_pyarrow_dataset()


def row_groups(
    data: ds.Dataset, columns: list[str] | None = None, filter: ds.Expression | None = None
) -> Iterator[pa.Table]:
    """The rows of `data` one Parquet row group at a time, in file order, in the dataset's schema.

    Row groups whose statistics rule out `filter` are skipped. Unlike a dataset scanner, whose
    read-ahead runs on while a slow consumer works (several hundred MB for a table of a few
    million rows), this holds one row group: memory follows the row group, not the table.
    """
    for fragment in data.get_fragments():
        for group in fragment.split_by_row_group(filter=filter, schema=data.schema):
            yield group.to_table(schema=data.schema, columns=columns, filter=filter)


def _refuses_predicate(error: pa.ArrowNotImplementedError) -> bool:
    return "string_view" in str(error) or "binary_view" in str(error)


def scan(
    data: ds.Dataset, columns: list[str] | None = None, filter: ds.Expression | None = None, batch_size: int = 64_000
) -> Iterator[pa.RecordBatch]:
    """The dataset's batches, filtered; a predicate the view-typed files refuse is applied after the scan.

    The scan casts every batch to the dataset's schema, so the late filter sees `string`.
    """
    try:
        yield from data.scanner(columns=columns, filter=filter, batch_size=batch_size).to_batches()
        return
    except pa.ArrowNotImplementedError as error:
        if filter is None or not _refuses_predicate(error):
            raise
    for batch in data.scanner(batch_size=batch_size).to_batches():
        kept = batch.filter(filter)
        if kept.num_rows:
            yield kept.select(columns) if columns is not None else kept


def read(
    path: Where,
    columns: list[str] | None = None,
    filter: ds.Expression | None = None,
    since: tuple[str, Any] | None = None,
    opened: DeltaTable | None = None,
) -> pa.Table | None:
    """The rows `filter` keeps (of the files `since` keeps, see `dataset`), of `columns` or all."""
    path = Location.of(path)
    data = dataset(path, since=since, opened=opened)
    if data is None:
        return None
    schema = data.schema if columns is None else pa.schema([data.schema.field(name) for name in columns])
    return pa.Table.from_batches(list(scan(data, columns, filter)), schema=schema)


def register(connection: duckdb.DuckDBPyConnection, name: str, path: Where) -> bool:
    """Make the table's current version a DuckDB view `name`, read by DuckDB's own Parquet reader.

    delta-rs writes no deletion vectors, so the current file list is the table; DuckDB reads
    every text column as VARCHAR whatever Arrow type the file's writer stored. Returns
    whether the table exists (a table not yet written registers nothing).
    """
    table = open_table(path)
    if table is None:
        return False
    create_view(connection, quote(name), table)
    return True


def create_view(connection: duckdb.DuckDBPyConnection, identifier: str, table: DeltaTable) -> None:
    """A DuckDB view over the Parquet files of `table`'s version (an empty table if it has none).

    `identifier` is quoted SQL (`quote`), so it can name a schema too.
    """
    files = table.file_uris()
    if not files:
        register_empty(connection, identifier, pa.schema(table.schema().to_arrow()))
        return
    storage.attach(connection, table.table_uri)
    # delta-rs gives local files as percent-encoded paths (a space is %20); DuckDB opens the path as it is
    listing = ", ".join(literal(unquote(file)) for file in files)
    scan = f"read_parquet([{listing}], union_by_name = true)"
    columns = _columns_of(connection, scan, pa.schema(table.schema().to_arrow()))
    connection.execute(f"CREATE OR REPLACE VIEW {identifier} AS SELECT {columns} FROM {scan}")


def _columns_of(connection: duckdb.DuckDBPyConnection, scan: str, schema: pa.Schema) -> str:
    """The select list that gives the table's columns from its files.

    A file may hold columns the table has not (a file silver linked from bronze keeps bronze's
    bookkeeping) and lack columns the table has (added after it was written); Delta reads a file
    by the table's schema, so the view does too: the first left out, the second null.
    """
    present = {row[0] for row in connection.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
    if present == set(schema.names):
        return "*"
    connection.register("__table_schema", schema.empty_table())
    try:
        kinds = dict(connection.execute("SELECT column_name, column_type FROM (DESCRIBE __table_schema)").fetchall())
    finally:
        connection.unregister("__table_schema")
    return ", ".join(
        quote(name) if name in present else f"CAST(NULL AS {kinds[name]}) AS {quote(name)}" for name in schema.names
    )


def register_empty(connection: duckdb.DuckDBPyConnection, identifier: str, schema: pa.Schema) -> None:
    """An empty DuckDB table with the columns of `schema`; `identifier` is quoted SQL (`quote`)."""
    connection.register("__empty", schema.empty_table())
    connection.execute(f"CREATE OR REPLACE TABLE {identifier} AS SELECT * FROM __empty")
    connection.unregister("__empty")


def literal(text: str) -> str:
    """A text as a quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def row_count(path: Where) -> int:
    path = Location.of(path)
    table = open_table(path)
    return 0 if table is None else rows_of(table)


def rows_of(table: DeltaTable) -> int:
    """The rows of the table's current version, from the file statistics its log holds (no file is read)."""
    counts = pa.table(table.get_add_actions(flatten=True)).column("num_records")
    if counts.null_count:  # a file committed without statistics: count its rows
        return table.to_pyarrow_dataset().count_rows()
    return int(pc.sum(counts).as_py() or 0)


def newest(table: DeltaTable, column: str) -> Any:
    """The highest value of `column` in the file statistics of the table (to the millisecond for
    a timestamp, as Delta keeps them), or None when no file has one; no file is read."""
    files = pa.table(table.get_add_actions(flatten=True))
    name = f"max.{column}"
    return pc.max(files[name]).as_py() if name in files.column_names else None


def schema(path: Where, opened: DeltaTable | None = None) -> pa.Schema | None:
    """The table's schema, or None if there is no table; `opened`: as the caller has just opened it."""
    table = opened if opened is not None else open_table(Location.of(path))
    return None if table is None else pa.schema(table.schema().to_arrow())


def files(path: Where) -> list[str]:
    path = Location.of(path)
    table = open_table(path)
    return [] if table is None else list(table.file_uris())

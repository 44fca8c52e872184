"""Delta tables on local disk: idempotent writes whose bookkeeping commits with the data.

How reruns and failures stay safe:
- Every write is a single Delta commit (one `MERGE`, one `write_deltalake`, or the Parquet
  files of an append committed together as add actions; an append that brings new columns
  first adds them, nullable, in a commit of their own). Until the commit file lands,
  readers see the previous version; a run that dies before it leaves only unreferenced
  Parquet files, which `vacuum` removes. Nothing is half-visible.
- The state a later run needs (a source watermark, the bronze position silver has consumed)
  is written into that same commit as custom commit metadata (`plantlake.*` keys). Data and
  watermark therefore become visible together or not at all: no run can see a watermark
  whose rows are missing, or rows whose watermark was lost.
- Rows are written by MERGE on the table's keys (insert-if-absent for bronze and quarantine,
  upsert for silver), so re-reading rows a previous run already committed adds nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake import Field as DeltaField
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import create_table_with_add_actions

from lake import parquet_files

STATE_PREFIX = "plantlake."
# For rewrites through delta-rs (widening): half its default row group of 1M rows bounds the
# memory of a large rewrite (about 80 MB less at 5M rows), for ~5% larger files.
STREAM_WRITER = WriterProperties(max_row_group_size=524_288, compression="SNAPPY")


def quote(identifier: str) -> str:
    """A column name as a quoted SQL identifier, safe for any name the source uses."""
    return '"' + identifier.replace('"', '""') + '"'


def open_table(path: Path) -> DeltaTable | None:
    try:
        return DeltaTable(str(path))
    except TableNotFoundError:
        return None


def read_state(path: Path, key: str) -> Any:
    """The newest value of `plantlake.<key>` committed to the table, or None."""
    return current_state(path).get(key)


def current_state(path: Path) -> dict[str, Any]:
    """The newest value of every `plantlake.*` key committed to the table."""
    table = open_table(path)
    if table is None:
        return {}
    state: dict[str, Any] = {}
    for entry in table.history():
        for name, raw in entry.items():
            if name.startswith(STATE_PREFIX) and name[len(STATE_PREFIX) :] not in state:
                state[name[len(STATE_PREFIX) :]] = json.loads(raw)
    return state


def commit_properties(state: dict[str, Any] | None) -> CommitProperties | None:
    if not state:
        return None
    return CommitProperties(custom_metadata={STATE_PREFIX + key: json.dumps(value) for key, value in state.items()})


def _key_predicate(keys: list[str], null_safe: bool) -> str:
    operator = "IS NOT DISTINCT FROM" if null_safe else "="
    return " AND ".join(f"(t.{quote(key)} {operator} s.{quote(key)})" for key in keys)


def _retry(action, attempts: int = 5):  # noqa: ANN001, ANN202
    """Concurrent writers to one table (e.g. the shared quarantine) retry a lost commit race."""
    for attempt in range(attempts):
        try:
            return action()
        except CommitFailedError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return None


def merge(
    path: Path,
    data: pa.Table | pa.RecordBatchReader,
    keys: list[str],
    *,
    update: bool,
    state: dict[str, Any] | None = None,
    null_safe_keys: bool = False,
) -> dict[str, int]:
    """Upsert (`update=True`) or insert-if-absent `data` on `keys`, as one commit with `state`.

    The first write creates the table. New source columns are added to the table schema.
    """
    path.parent.mkdir(parents=True, exist_ok=True)

    def run() -> dict[str, int]:
        table = open_table(path)
        if table is None:
            write_deltalake(str(path), data, mode="error", commit_properties=commit_properties(state))
            added = DeltaTable(str(path)).history(1)[0].get("operationMetrics", {}).get("num_added_rows", 0)
            return {"inserted": int(added), "updated": 0}
        merger = table.merge(
            source=data,
            predicate=_key_predicate(keys, null_safe_keys),
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            commit_properties=commit_properties(state),
        )
        if update:
            merger = merger.when_matched_update_all()
        metrics = merger.when_not_matched_insert_all().execute()
        return {"inserted": metrics["num_target_rows_inserted"], "updated": metrics["num_target_rows_updated"]}

    return _retry(run)


def append(path: Path, data: pa.Table | pa.RecordBatchReader, state: dict[str, Any] | None = None,
           constants: dict[str, pa.Scalar] | None = None) -> dict[str, int]:  # fmt: skip
    """Add rows without looking for matches, as one commit with `state`; a reader is written as it streams.

    `constants` are columns with one value on every row (who landed the rows, from which
    file), added by the writer, which stores each value once per row group.

    Only for rows whose keys cannot be in the table yet: a MERGE joins against the whole
    target, so its memory grows with the table, while an append costs only its own rows.
    New columns are added to the table; columns the rows lack are null. Memory holds about
    two row groups, however long the stream (see `lake.parquet_files`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    reader = data.to_reader() if isinstance(data, pa.Table) else data
    table = open_table(path)
    fixed = [pa.field(name, value.type, nullable=not value.is_valid) for name, value in (constants or {}).items()]
    target = parquet_files.delta_schema(pa.schema([*reader.schema, *fixed]))
    added: list[pa.Field] = []
    if table is not None:
        landed = pa.schema(table.schema().to_arrow())
        added = [field.with_nullable(True) for field in target if field.name not in landed.names]
        target = pa.schema([*landed, *added])
    actions = parquet_files.write_files(path, reader, target, constants)

    def commit() -> None:
        current = open_table(path)
        missing = [] if current is None else [field for field in added if field.name not in current.schema().to_arrow().names]
        if missing:  # nullable columns first: harmless to readers if the data commit fails; a retry finds them there
            current.alter.add_columns([DeltaField.from_arrow(field) for field in missing])
            current = open_table(path)
        if current is None:
            create_table_with_add_actions(str(path), DeltaSchema.from_arrow(target), actions, mode="error",
                                          commit_properties=commit_properties(state))  # fmt: skip
        else:
            current.create_write_transaction(actions, mode="append", schema=target, commit_properties=commit_properties(state))

    _retry(commit)
    return {"inserted": sum(json.loads(action.stats)["numRecords"] for action in actions), "updated": 0}


def widen(path: Path, fields: dict[str, pa.Field]) -> None:
    """Rewrite the table with the given columns cast to wider fields, in one commit that keeps its state.

    The old files stay readable until the commit replaces them, so the rewrite streams.
    """
    data = dataset(path)
    if data is None:
        return
    schema = pa.schema([fields.get(field.name, field) for field in data.schema])
    batches = (batch.cast(schema) for batch in data.to_batches(batch_size=64_000))
    reader = pa.RecordBatchReader.from_batches(schema, batches)
    write_deltalake(str(path), reader, mode="overwrite", schema_mode="overwrite", writer_properties=STREAM_WRITER,
                    commit_properties=commit_properties(current_state(path)))  # fmt: skip


def overwrite(path: Path, data: pa.Table, state: dict[str, Any] | None = None) -> None:
    """Replace the whole table in one commit (for tables recomputed from silver)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(str(path), data, mode="overwrite", schema_mode="overwrite", commit_properties=commit_properties(state))


def dataset(path: Path) -> ds.Dataset | None:
    """The current version as a pyarrow dataset (scanned lazily, in batches)."""
    table = open_table(path)
    return None if table is None else table.to_pyarrow_dataset()


def read(path: Path, columns: list[str] | None = None, filter: ds.Expression | None = None) -> pa.Table | None:
    data = dataset(path)
    return None if data is None else data.to_table(columns=columns, filter=filter)


def row_count(path: Path) -> int:
    data = dataset(path)
    return 0 if data is None else data.count_rows()


def schema(path: Path) -> pa.Schema | None:
    table = open_table(path)
    return None if table is None else pa.schema(table.schema().to_arrow())


def files(path: Path) -> list[str]:
    table = open_table(path)
    return [] if table is None else list(table.file_uris())

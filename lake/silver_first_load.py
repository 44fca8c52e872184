"""A new silver table's first load: its chunks' files committed once, after the last, or bronze's
files linked when silver would take its rows as landed.

One commit, not one per chunk: a run that fails part-way leaves no table (its files unreferenced,
for `vacuum`), and the rerun loads from the start; and each commit would open and extend a log
that grows with the chunks (a third of a 2M-row CSV's silver step went to them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as ds

from plantlake.lake import delta, parquet_files
from plantlake.lake.silver_chunks import CONSUMED, Pending
from plantlake.lake.storage import Location

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction


class FirstLoad:
    """Writes a new table's chunks as they come (their keys are disjoint: each is appended) and
    commits them, with the mark of the last chunk, in `finish`.

    The table's schema is the first chunk's, widened as `delta.append` widens an existing
    table's: a column a later chunk adds joins it, and a column some chunk lacks or leaves null
    becomes nullable. Every chunk is written in the schema so far (a value its type cannot hold
    fails the step before anything is committed); files written before a column joined count
    it null in their statistics.
    """

    def __init__(self, path: Location) -> None:
        self.path = path
        self.files: list[tuple[AddAction, list[str]]] = []  # each file and the columns it holds
        self.schema: pa.Schema | None = None
        self.consumed: dict[str, str] | None = None

    def write(self, rows: pa.Table, work: Pending) -> dict[str, int]:
        """Write the chunk's rows as files of the table-to-be; nothing is visible until `finish`."""
        incoming = parquet_files.delta_schema(rows.schema)
        schema = incoming if self.schema is None else _widened(self.schema, incoming)
        written = parquet_files.write_files(self.path, rows.to_reader(), schema)
        self.files += [(action, schema.names) for action in written]
        self.schema, self.consumed = schema, work.consumed
        return {"inserted": rows.num_rows, "updated": 0}

    def finish(self) -> None:
        """Commit the files written, and the mark; a load of no chunk commits nothing."""
        schema = self.schema
        if self.consumed is None or schema is None:
            return
        actions = [parquet_files.absent_as_null(action, held, schema) for action, held in self.files]
        delta.add_files(self.path, actions, schema, {CONSUMED: self.consumed})


def _widened(schema: pa.Schema, incoming: pa.Schema) -> pa.Schema:
    """`schema` with the columns `incoming` adds, nullable, and those it lacks or may leave null made nullable."""
    fields = [
        field.with_nullable(field.nullable or incoming.field(field.name).nullable)
        if field.name in incoming.names
        else field.with_nullable(True)
        for field in schema
    ]
    added = [field.with_nullable(True) for field in incoming if field.name not in schema.names]
    return pa.schema([*fields, *added], metadata=schema.metadata)


def link_landed(
    silver_path: Location, bronze_path: Location, landed: DeltaTable, schema: pa.Schema, consumed: dict[str, str]
) -> int:
    """Make a new silver table of the files of the bronze table at `bronze_path` as they are in
    its version `landed`, and record what bronze was consumed; the rows committed.

    For a first load whose rows silver would take unchanged: each key once, every row valid.
    Writing them again would cost as much as landing them did; a link costs nothing (see
    `parquet_files.link_files`). The files keep bronze's bookkeeping columns, which silver's
    schema leaves out and no reader sees, and lack silver's own (`_deleted_at`), which read as
    null; a later merge or compaction rewrites them in silver's schema.
    """
    schema = parquet_files.delta_schema(schema)  # as a written first load would store it
    files = pa.table(landed.get_add_actions(flatten=True))
    sources = [bronze_path / unquote(name) for name in files["path"].to_pylist()]
    actions = parquet_files.link_files(silver_path, sources, schema)
    return delta.add_files(silver_path, actions, schema, state={CONSUMED: consumed})["inserted"]


def clustered(table: DeltaTable, key: str, span_rows: int) -> bool:
    """Whether the table's files hold narrow ranges of `key`: sorted by their lowest key, each
    overlaps at most the next one, and a cut that no file spans comes at least every
    `span_rows` rows (as a table read in key order, or nearly, lands).

    Silver's upsert rewrites every file whose range holds a changed key (`silver_upsert`): with
    narrow ranges a change meets a file or two, not a run of overlapping ones. Files without
    statistics of `key` count as spanning everything.
    """
    files = key_ranges(table, key)
    if files is None:
        return False
    if files.num_rows == 0:
        return True  # a table of no file (every row of its first file quarantined, say) spans nothing
    lows, highs = files[f"min.{key}"].to_pylist(), files[f"max.{key}"].to_pylist()
    counts = files["num_records"].to_pylist()
    if any(highs[index] >= lows[index + 2] for index in range(len(lows) - 2)):
        return False
    span = 0
    for count, clean in zip(counts, [*clean_cuts(lows, highs), True], strict=True):
        span += count
        if span > span_rows:
            return False
        span = 0 if clean else span
    return True


def landed_groups(table: DeltaTable, key: str, columns: list[str], group_rows: int) -> Iterator[pa.Table]:
    """The rows of a `clustered` table (`columns` of them), a group of files at a time in the key's
    order, each file read once: a group ends only at a cut no file spans, so no key lies in two
    groups, and holds at most `group_rows` rows, or the files up to the next such cut.

    A first load that checks bronze's rows before it links them reads them this way, in one
    pass, where the chunks of `pending_chunks` would first survey the keys and then read again.
    """
    files = key_ranges(table, key)
    if files is None:
        raise ValueError(f"the files of {table.table_uri} lack statistics of {key!r}: check `clustered` first")
    data = table.to_pyarrow_dataset()
    fragments = {unquote(fragment.path): fragment for fragment in data.get_fragments()}
    counts = files["num_records"].to_pylist()
    ends = [*clean_cuts(files[f"min.{key}"].to_pylist(), files[f"max.{key}"].to_pylist()), True]
    group: list[ds.Fragment] = []
    rows = 0
    for index, name in enumerate(files["path"].to_pylist()):
        group.append(fragments[unquote(name)])
        rows += counts[index]
        if ends[index] and (index + 1 == len(counts) or rows + counts[index + 1] > group_rows):
            yield ds.FileSystemDataset(group, data.schema, data.format, data.filesystem).to_table(columns=columns)
            group, rows = [], 0


def key_ranges(table: DeltaTable, key: str) -> pa.Table | None:
    """The table's files (its add actions, flattened) sorted by their lowest `key`, or None when
    a file's statistics lack its lowest or highest value of `key` (its range is then unknown,
    and delta-rs's pyarrow dataset prunes that file from every filter on `key`)."""
    files = pa.table(table.get_add_actions(flatten=True))
    if files.num_rows == 0:
        return files
    names = [f"min.{key}", f"max.{key}"]
    if any(name not in files.column_names or files[name].null_count for name in names):
        return None
    return files.sort_by(names[0])


def clean_cuts(lows: list[Any], highs: list[Any]) -> list[bool]:
    """For files sorted by their lowest key (`lows`, their highest `highs`), whether a cut between
    each file and the next is spanned by no file: every file before it ends below the next's start."""
    reach, clean = lows[0] if lows else None, []
    for index in range(len(lows) - 1):
        reach = max(reach, highs[index])
        clean.append(reach < lows[index + 1])
    return clean

"""Bronze: rows as landed from each source, stamped with the run that landed them."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from plantlake.lake import delta, keyed, progress
from plantlake.lake.layout import INGESTED_AT, INGESTION_FIELDS, Ingestion
from plantlake.lake.parquet_files import ROW_GROUP_ROWS
from plantlake.lake.storage import Location


@dataclass(frozen=True)
class Landed:
    table: Location
    rows_read: int
    rows_inserted: int


def encode_watermark(value: Any) -> dict[str, Any] | None:
    """A cursor value as JSON that `decode_watermark` turns back into the same Python value."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return {"kind": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"kind": "date", "value": value.isoformat()}
    if isinstance(value, int | float | str):
        return {"kind": type(value).__name__, "value": value}
    return {"kind": "str", "value": str(value)}


def decode_watermark(stored: dict[str, Any] | None) -> Any:
    if not stored:
        return None
    kind, value = stored["kind"], stored["value"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    return value


class _Counted:
    """Counts the rows of a batch stream as it is consumed (and, with `table`, reports them as progress)."""

    def __init__(self, batches: Iterable[pa.RecordBatch], table: Location | None = None) -> None:
        self.batches, self.rows, self.table = batches, 0, table

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self.batches:
            self.rows += batch.num_rows
            if self.table is not None:
                progress.add(self.table, batch.num_rows)
            yield batch


STAMPED = "stamped"  # state: the newest ingestion stamp the table holds


def stamped_after_newest(path: Location, table: DeltaTable | None, ingestion: Ingestion) -> Ingestion:
    """`ingestion`, stamped after the newest stamp the table holds (see `Ingestion.after`): the
    one its state recorded, or its statistics show (delta-rs shows those of the first 32 columns
    only, and a bronze table's stamp comes after the source's columns)."""
    if table is None:
        return ingestion
    recorded = delta.read_state(path, STAMPED)
    known = [datetime.fromisoformat(recorded) if recorded else None, delta.newest(table, INGESTED_AT)]
    return ingestion.after(max((moment for moment in known if moment is not None), default=None))


def stamp_state(ingestion: Ingestion) -> dict[str, str]:
    """The state that records the stamp, saved with the rows' commit."""
    return {STAMPED: ingestion.ingested_at.isoformat()}


def _landed(
    path: Location,
    ingestion: Ingestion,
    keys: list[str],
    source_schema: pa.Schema,
    window: ds.Expression | None,
    since: tuple[str, Any] | None,
) -> tuple[DeltaTable | None, Ingestion, pa.Table | None]:
    """What `land` needs of the table: the table, if any; `ingestion` stamped after its newest
    stamp; and, with a `window`, the keys landed within it, in the source's types."""
    table = delta.open_table(path)
    ingestion = stamped_after_newest(path, table, ingestion)
    if table is None or window is None:
        return table, ingestion, None
    landed = delta.read(path, columns=keys, filter=window, since=since, opened=table)
    if landed is None:
        return table, ingestion, None
    return table, ingestion, landed.cast(pa.schema([source_schema.field(key) for key in keys]))


def _not_landed(batches: Iterable[pa.RecordBatch], landed: pa.Table, keys: list[str]) -> Iterator[pa.RecordBatch]:
    """The rows of each batch whose `keys` are not among the `landed` keys."""
    for batch in batches:
        yield batch.filter(pc.invert(keyed.holding(pa.Table.from_batches([batch]), landed, keys)))


# A file per row group: silver's first load links bronze's files (`silver.link_landed`), and a
# later merge rewrites each file it touches, so a file is as small as a chunk silver merges.
FILE_ROWS = ROW_GROUP_ROWS

SPOOL_ROWS = 16_384  # read back in small batches: what is held while the rows are written stays small
# Compressed: repeated node ids, file ids and hosts shrink several times over. A run killed
# before its `finally` leaves its spool behind; the maintenance job removes old ones.
SPOOL_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


@contextmanager
def spooled(batches: Iterable[pa.RecordBatch], schema: pa.Schema, folder: Path) -> Iterator[Iterator[pa.RecordBatch]]:
    """The batches written to a scratch Arrow file, then read back one at a time.

    For sources whose state (how far each file was read) is known only once everything has
    been read: spooling first lets that state go into the same commit as the rows, while
    memory holds one batch, not the whole read.
    """
    folder.mkdir(parents=True, exist_ok=True)
    spool = folder / f"spool-{uuid.uuid4().hex}.arrow"
    try:
        with pa.OSFile(str(spool), "wb") as sink, pa.ipc.new_stream(sink, schema, options=SPOOL_OPTIONS) as writer:
            for batch in batches:
                if batch.num_rows:
                    writer.write_table(pa.Table.from_batches([batch]), max_chunksize=SPOOL_ROWS)
        with pa.OSFile(str(spool), "rb") as source:
            yield iter(pa.ipc.open_stream(source))
    finally:
        spool.unlink(missing_ok=True)


def land(
    path: Location,
    batches: Iterator[pa.RecordBatch],
    source_schema: pa.Schema,
    keys: list[str],
    ingestion: Ingestion,
    source: str,
    state: dict[str, Any] | None = None,
    window: ds.Expression | None = None,
    since: tuple[str, Any] | None = None,
) -> Landed:
    """Add the rows not yet in bronze (by `keys`), streaming, as one commit carrying `state`.

    `window` bounds where already-landed rows can be: for a cursor read, the rows at or past
    the look-back start. Only their keys are loaded to drop re-read rows, and the new rows
    are appended, so the cost follows the window and not the table (`since`, the lowest value of
    a column the window implies, also skips the files below it: see `delta.dataset`). Without a window the
    rows are merged on `keys` against the whole table. A read that returns nothing commits
    nothing, so an idle source leaves the table as it is.
    """
    # what the lake holds is read while the source answers its query (both wait on I/O or run
    # without the GIL); a read that returns nothing lets it end on its own: it writes nothing
    lake_side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plantlake-bronze-landed")
    ahead = lake_side.submit(_landed, path, ingestion, keys, source_schema, window, since)
    lake_side.shutdown(wait=False)
    first = next(batches, None)
    if first is None:
        return Landed(path, 0, 0)
    table, ingestion, landed = ahead.result()
    read = _Counted(itertools.chain([first], batches), path)
    state = {**(state or {}), **stamp_state(ingestion)}
    if table is not None and window is None:
        schema = pa.schema([*source_schema, *INGESTION_FIELDS])
        reader = pa.RecordBatchReader.from_batches(schema, ingestion.stamp_all(read, source))
        result = delta.merge(path, reader, keys, update=False, state=state, null_safe_keys=True)
        return Landed(path, read.rows, result["inserted"])
    fresh: Iterable[pa.RecordBatch] = read
    if landed is not None and landed.num_rows:
        fresh = _not_landed(read, landed, keys)
    inserted = _Counted(fresh)
    delta.append(
        path,
        pa.RecordBatchReader.from_batches(source_schema, iter(inserted)),
        state=state,
        constants=ingestion.constants(source),
        file_rows=FILE_ROWS,
        opened=table,
    )
    return Landed(path, read.rows, inserted.rows)

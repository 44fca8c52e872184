"""Bronze: rows as landed from each source, stamped with the run that landed them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from lake import delta
from lake.layout import INGESTION_FIELDS, Ingestion


@dataclass(frozen=True)
class Landed:
    table: Path
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
    """Counts the rows of a batch stream as delta-rs consumes it."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self.batches, self.rows = batches, 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        for batch in self.batches:
            self.rows += batch.num_rows
            yield batch


def land(
    path: Path,
    batches: Iterator[pa.RecordBatch],
    source_schema: pa.Schema,
    keys: list[str],
    ingestion: Ingestion,
    source: str,
    state: dict[str, Any] | None = None,
) -> Landed:
    """Insert the rows not yet in bronze (by `keys`), streaming, as one commit carrying `state`.

    A read that returns nothing commits nothing, so an idle source leaves the table as it is.
    """
    first = next(batches, None)
    if first is None:
        return Landed(path, 0, 0)
    schema = pa.schema([*source_schema, *INGESTION_FIELDS])
    counted = _Counted(ingestion.stamp_all(itertools.chain([first], batches), source))
    reader = pa.RecordBatchReader.from_batches(schema, iter(counted))
    result = delta.merge(path, reader, keys, update=False, state=state, null_safe_keys=True)
    return Landed(path, counted.rows, result["inserted"])

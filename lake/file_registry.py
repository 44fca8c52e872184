"""The registry of supplier files: one row per file content (SHA-256), what became of it.

A file is known by its content, not its name: the same bytes dropped again, under any
name, are not loaded again; a corrected file under the same name has new content and is
loaded as the next version of that name. For every file the registry keeps the rows read,
loaded, quarantined and skipped (blank and totals rows), so that loaded plus quarantined
equals read can be checked file by file, and the catalog shows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TypedDict

import pyarrow as pa
import pyarrow.dataset as ds

from plantlake.lake import delta
from plantlake.lake.layout import Lake

LOADED, PARTLY_QUARANTINED, REJECTED = "loaded", "loaded_with_quarantine", "rejected"
SCHEMA = pa.schema(
    [
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("file_name", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("rows_read", pa.int64(), nullable=False),
        pa.field("rows_loaded", pa.int64(), nullable=False),
        pa.field("rows_quarantined", pa.int64(), nullable=False),
        pa.field("rows_skipped", pa.int64(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("layout", pa.string()),
        pa.field("size_bytes", pa.int64(), nullable=False),
        pa.field("modified_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("dropped_as", pa.string(), nullable=False),
        pa.field("moved_to", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("registered_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class RowCounts(TypedDict):
    """What became of a file's rows."""

    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_skipped: int


@dataclass
class FileEntry:
    sha256: str
    source: str
    file_name: str
    version: int
    status: str
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_skipped: int
    reason: str | None
    layout: str | None
    size_bytes: int
    modified_at: datetime
    dropped_as: str
    moved_to: str
    run_id: str
    registered_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def registry_path(lake: Lake):
    return lake.table("meta", "supplier_files")


def entries(lake: Lake, source: str) -> dict[str, FileEntry]:
    """Every file of `source` registered so far, by content hash."""
    rows = delta.read(registry_path(lake), filter=ds.field("source") == source)
    if rows is None:
        return {}
    return {row["sha256"]: FileEntry(**row) for row in rows.to_pylist()}


def next_version(known: dict[str, FileEntry], file_name: str) -> int:
    return 1 + max((entry.version for entry in known.values() if entry.file_name == file_name), default=0)


def record(lake: Lake, entry: FileEntry) -> None:
    """Register one file (a rerun of the same content replaces its row rather than adding one)."""
    table = pa.Table.from_pylist([asdict(entry)], schema=SCHEMA)
    delta.merge(registry_path(lake), table, ["sha256", "source"], update=True)

"""The registry of supplier files: one row per file content (SHA-256) and name, what became of it.

A file is known by its content, not its name: the same bytes dropped again, under any
name, are not loaded again (each renamed copy gets a row of its own, status `duplicate`);
a corrected file under the same name has new content and is loaded as the next version of
that name. A file that was never read (a link out of the drop folder, a file that could not
be opened) is registered under a hash of what is known of it instead of its content.

For every file the registry keeps the rows read, loaded, quarantined and skipped (blank and
totals rows), so that loaded plus quarantined equals read can be checked file by file, and
the catalog shows it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TypedDict

import pyarrow as pa
import pyarrow.dataset as ds

from plantlake.lake import delta
from plantlake.lake.layout import Lake

LOADED, PARTLY_QUARANTINED, REJECTED, DUPLICATE = "loaded", "loaded_with_quarantine", "rejected", "duplicate"
KEY = ["sha256", "source", "file_name"]
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


class Known:
    """The files of one source registered so far: by content, and by content and name."""

    def __init__(self, lake: Lake, source: str) -> None:
        rows = delta.read(registry_path(lake), filter=ds.field("source") == source)
        self.originals: dict[str, FileEntry] = {}  # by content: the file that was taken in, not a duplicate
        self.named: dict[tuple[str, str], FileEntry] = {}
        for row in sorted([] if rows is None else rows.to_pylist(), key=lambda row: row["registered_at"]):
            self.add(FileEntry(**row))

    def add(self, entry: FileEntry) -> None:
        self.named[(entry.sha256, entry.file_name)] = entry
        if entry.status != DUPLICATE:
            self.originals.setdefault(entry.sha256, entry)

    def next_version(self, file_name: str) -> int:
        """Versions count the contents taken in under a name; duplicates are not versions."""
        versions = [entry.version for entry in self.originals.values() if entry.file_name == file_name]
        return 1 + max(versions, default=0)


def record(lake: Lake, entry: FileEntry) -> None:
    """Register one file (a rerun of the same content under the same name replaces its row)."""
    table = pa.Table.from_pylist([asdict(entry)], schema=SCHEMA)
    delta.merge(registry_path(lake), table, KEY, update=True)

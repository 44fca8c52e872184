"""Housekeeping that keeps the lake lean over years: compaction, vacuum, checkpoints, log cleanup.

Each night appends a few small files and commits to many tables. Without housekeeping the
files and the log grow without bound and reads slow down with the lake's age. Per table:

- compaction rewrites small files into files of about `target_file_bytes` (OPTIMIZE);
- a full vacuum removes files no version within the retention needs, including Parquet
  files that runs killed before their commit left behind;
- a checkpoint, then log cleanup past the retention, keeps the log short.

Time travel keeps working within the retention: the log retention and the vacuum retention
are the same duration. The retention never goes below the longest run still going, so a
run reading an older version never loses its files. State lives outside the Delta log
(`lake.state`), so nothing here can lose it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import pyarrow as pa
from deltalake import DeltaTable

from plantlake.lake import delta, locks, state
from plantlake.lake.layout import Lake
from plantlake.lake.storage import Location, Where

TARGET_FILE_BYTES = 128 * 1024 * 1024
SMALL_FILE_SHARE = 0.5  # a file under half the target counts as small


@dataclass(frozen=True)
class Footprint:
    """A table's live files (those its current version reads) and everything under its folder."""

    live_files: int
    live_bytes: int
    disk_files: int
    disk_bytes: int


def _live_sizes(table: DeltaTable) -> list[int]:
    return pa.table(table.get_add_actions(flatten=True)).column("size_bytes").to_pylist()


def footprint(path: Where) -> Footprint:
    path = Location.of(path)
    sizes = _live_sizes(delta.load(path))
    disk = list(path.file_sizes())
    return Footprint(len(sizes), sum(sizes), len(disk), sum(disk))


def _log_retention(table: DeltaTable, retention: timedelta) -> None:
    """The log keeps as long as the files do, so every version within the retention can be read."""
    wanted = f"interval {int(retention.total_seconds())} seconds"
    settings = {
        "delta.logRetentionDuration": wanted,
        "delta.deletedFileRetentionDuration": wanted,
        **delta.TABLE_PROPERTIES,
    }  # tables from before these were set at creation
    if any(table.metadata().configuration.get(key) != value for key, value in settings.items()):
        table.alter.set_table_properties(settings)


def _checkpointed_version(path: Location) -> int | None:
    try:
        return int(json.loads((path / "_delta_log" / "_last_checkpoint").read_text())["version"])
    except FileNotFoundError:
        return None


def _small_files(table: DeltaTable, target_file_bytes: int) -> int:
    sizes = _live_sizes(table)
    return sum(1 for size in sizes if size < target_file_bytes * SMALL_FILE_SHARE)


def maintain_table(path: Where, retention: timedelta, target_file_bytes: int = TARGET_FILE_BYTES) -> dict[str, int]:
    """Compact, checkpoint, clean the log and vacuum one table; its footprint before and after."""
    path = Location.of(path)
    before = footprint(path)
    table = delta.load(path)
    _log_retention(table, retention)
    compacted = 0
    if _small_files(table, target_file_bytes) > 1:
        compacted = int(table.optimize.compact(target_size=target_file_bytes)["numFilesRemoved"])
    table = delta.load(path)
    hours = int(retention.total_seconds() // 3600)
    removed = table.vacuum(retention_hours=hours, dry_run=True, enforce_retention_duration=False, full=True)
    if removed:  # a vacuum commits twice (start and end): only when it has files to remove
        table.vacuum(retention_hours=hours, dry_run=False, enforce_retention_duration=False, full=True)
        table = delta.load(path)
    if _checkpointed_version(path) != table.version():
        table.create_checkpoint()
    table.cleanup_metadata()
    after = footprint(path)
    return {
        "files_before": before.live_files,
        "files_after": after.live_files,
        "bytes_before": before.disk_bytes,
        "bytes_after": after.disk_bytes,
        "live_bytes": after.live_bytes,
        "files_compacted": compacted,
        "files_vacuumed": len(removed),
    }


def remove_leftovers(lake: Lake, older_than: timedelta) -> int:
    """Spool files, half-written state files and catalog builds that killed runs left behind."""
    cutoff = time.time() - older_than.total_seconds()
    candidates = [*lake.spool.glob("spool-*.arrow"), *lake.local.glob("catalog.duckdb.tmp*")]
    if lake.root.is_local:  # in object storage a state document is one upload: nothing is left half-written
        candidates.extend((lake.root.path / state.FOLDER).glob("*/.*.json.*"))
    removed = 0
    for path in candidates:
        try:
            if path.stat().st_mtime < cutoff:
                os.unlink(path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def maintain_lake(
    lake: Lake, retention: timedelta, target_file_bytes: int = TARGET_FILE_BYTES
) -> dict[str, dict[str, int]]:
    """Every table, each under its writer lock so no run's commit meets an OPTIMIZE halfway."""
    report = {}
    for layer, name, path in lake.tables():
        with locks.exclusive(path):
            report[f"{layer}.{name}"] = maintain_table(path, retention, target_file_bytes)
    return report

"""Logs rotated and compressed between runs: no entry lost, none read twice, multi-line entries whole."""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from plantlake.assets.logs import build_silver, load_bronze
from plantlake.config import parse_config
from plantlake.lake import delta
from plantlake.lake.layout import Lake

pytestmark = pytest.mark.integration

CONFIG = """
lake: {root: lake}
sources:
  logs:
    - {name: plc, path: logs, glob: "app.log*", format: syslog, machine_map: {cnc-101: M-101}, fingerprint_bytes: 128}
"""


class Writer:
    """Appends entries to logs/app.log the way a controller does; every third has a stack trace."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.count, self.messages = folder, 0, []
        folder.mkdir(parents=True, exist_ok=True)

    def write(self, entries: int) -> None:
        with (self.folder / "app.log").open("a", encoding="utf-8") as handle:
            for _ in range(entries):
                moment = datetime(2026, 1, 11, tzinfo=UTC) + timedelta(seconds=self.count)
                message = f"event {self.count}" + (
                    "".join(f"\n  at frame {k}" for k in range(3)) if self.count % 3 == 0 else ""
                )
                handle.write(f"<134>1 {moment:%Y-%m-%dT%H:%M:%SZ} cnc-101 plc 1 - - {message}\n")
                self.messages.append(message)
                self.count += 1

    def rotate(self, compress_older: bool) -> None:
        """logrotate: app.log.1 -> app.log.2.gz (compressed), app.log -> app.log.1, a new app.log."""
        if compress_older and (self.folder / "app.log.1").exists():
            (self.folder / "app.log.2.gz").write_bytes(gzip.compress((self.folder / "app.log.1").read_bytes()))
            (self.folder / "app.log.1").unlink()
        (self.folder / "app.log").rename(self.folder / "app.log.1")
        (self.folder / "app.log").touch()


def _landed(lake: Lake) -> list[str]:
    table = delta.read(lake.table("bronze", "plc_events"))
    return [] if table is None else table.column("message").to_pylist()


def test_rotation_and_compression_between_runs_lose_nothing_and_read_nothing_twice(tmp_path: Path) -> None:
    config = parse_config(CONFIG, tmp_path)
    source, lake = config.sources.logs[0], Lake(config.lake.root)
    writer = Writer(source.path)
    soon = datetime.now(UTC) + timedelta(seconds=1)  # the live file is still being written

    writer.write(40)
    load_bronze(lake, source, "run-1", now=soon)
    assert Counter(_landed(lake)) == Counter(writer.messages[:-1])  # the newest entry may still grow

    writer.write(25)
    writer.rotate(compress_older=False)
    writer.write(10)
    load_bronze(lake, source, "run-2", now=soon)
    assert Counter(_landed(lake)) == Counter(writer.messages[:-1])  # the rotated file was read to its end

    writer.rotate(compress_older=True)
    writer.write(15)
    stats = load_bronze(lake, source, "run-3", now=soon).metadata
    assert Counter(_landed(lake)) == Counter(writer.messages[:-1])
    assert (
        stats["events_inserted"] == 1 + 15 - 1
    )  # the held-back entry of the file now rotated, and the new file but its newest

    stats = load_bronze(lake, source, "run-4", now=soon).metadata
    assert stats["events_inserted"] == 0  # nothing new: the .gz, the .1 and the live file are known

    later = datetime.now(UTC) + timedelta(hours=1)  # the live file has been quiet: its last entry is complete
    load_bronze(lake, source, "run-5", now=later)
    landed = _landed(lake)
    assert Counter(landed) == Counter(writer.messages) and len(landed) == writer.count
    assert "event 3\n  at frame 0\n  at frame 1\n  at frame 2" in landed

    build_silver(lake, config.sources.logs, "run-5")
    events = delta.read(lake.table("silver", "machine_events")).to_pylist()
    assert len(events) == writer.count and {event["machine_id"] for event in events} == {"M-101"}
    assert len({(event["file_id"], event["line_number"]) for event in events}) == writer.count

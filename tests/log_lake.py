"""A log source in a lake of its own, run through the log assets' own steps (for the log tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from plantlake.assets.logs import build_silver, load_bronze
from plantlake.config import LogSource, parse_config
from plantlake.lake import delta
from plantlake.lake.layout import Lake

LATER = datetime.now(UTC) + timedelta(hours=1)  # every file has been quiet long enough: read to its end


class Logs:
    """One log source in a lake of its own under tmp_path."""

    def __init__(self, tmp_path: Path, **source: Any) -> None:
        settings = {"name": "plc", "path": "logs", "glob": "*.log*", "format": "syslog", "fingerprint_bytes": 64}
        settings |= source  # the tests' files are short: a fingerprint of 64 bytes, unless a test says otherwise
        text = json.dumps({"lake": {"root": "lake"}, "sources": {"logs": [settings]}})
        config = parse_config(text, tmp_path)
        self.source: LogSource = config.sources.logs[0]
        self.lake = Lake(config.lake.root)
        self.folder = self.source.path
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, content: bytes | str) -> Path:
        path = self.folder / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    def land(self, run: str = "run-1", now: datetime = LATER) -> dict[str, Any]:
        return load_bronze(self.lake, self.source, run, now=now).metadata

    def refine(self, run: str = "run-1") -> dict[str, Any]:
        return build_silver(self.lake, [self.source], run).metadata

    def bronze(self) -> list[dict]:
        table = delta.read(self.lake.table("bronze", f"{self.source.name}_events"))
        return [] if table is None else sorted(table.to_pylist(), key=lambda row: (row["file_id"], row["line_number"]))

    def silver(self) -> list[dict]:
        table = delta.read(self.lake.table("silver", "machine_events"))
        return [] if table is None else sorted(table.to_pylist(), key=lambda row: row["line_number"])

    def quarantined(self) -> list[dict]:
        table = delta.read(self.lake.quarantine)
        return [] if table is None else table.to_pylist()

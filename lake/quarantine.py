"""Quarantine: every row that did not make it into silver, with where it came from and why.

Rows are merged on (table, record hash, check, field), so a rerun that rejects the same
row again does not add it twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from plantlake.lake import delta
from plantlake.lake.layout import Lake

SCHEMA = pa.schema(
    [
        pa.field("table_name", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("file", pa.string()),
        pa.field("row_key", pa.string()),
        pa.field("field", pa.string()),
        pa.field("value", pa.string()),
        pa.field("check_name", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("record", pa.string(), nullable=False),
        pa.field("record_hash", pa.string(), nullable=False),
        pa.field("run_id", pa.string()),
        pa.field("quarantined_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
KEYS = ["table_name", "record_hash", "check_name", "field"]


@dataclass
class Rejection:
    """One reason one row was kept out."""

    table_name: str
    check: str
    reason: str
    record: dict[str, Any]
    source: str | None = None
    file: str | None = None
    row: str | None = None
    field: str | None = None
    value: str | None = None


def _record_json(record: dict[str, Any]) -> str:
    return json.dumps(record, default=str, ensure_ascii=False, sort_keys=True)


def write(lake: Lake, rejections: Sequence[Rejection], run_id: str) -> int:
    """Add rejections to the quarantine table; returns how many were new."""
    if not rejections:
        return 0
    now = datetime.now(UTC)
    rows = []
    for rejection in rejections:
        record = _record_json(rejection.record)
        rows.append(
            {
                "table_name": rejection.table_name,
                "source": rejection.source,
                "file": rejection.file,
                "row_key": rejection.row,
                "field": rejection.field or "",
                "value": rejection.value,
                "check_name": rejection.check,
                "reason": rejection.reason,
                "record": record,
                "record_hash": hashlib.sha256(record.encode("utf-8")).hexdigest(),
                "run_id": run_id,
                "quarantined_at": now,
            }
        )
    unique = {tuple(row[key] for key in KEYS): row for row in rows}
    table = pa.Table.from_pylist(list(unique.values()), schema=SCHEMA)
    return delta.merge(lake.quarantine, table, KEYS, update=False)["inserted"]

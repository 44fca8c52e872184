"""The newest result of every check, kept in the lake so the catalog can show each table's quality.

The history of every evaluation stays in Dagster; here one row per table and check.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from plantlake.lake import delta
from plantlake.lake.layout import Lake

SCHEMA = pa.schema(
    [
        pa.field("table_name", pa.string(), nullable=False),
        pa.field("check_name", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("success", pa.bool_(), nullable=False),
        pa.field("details", pa.string()),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("checked_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def record(
    lake: Lake, table_name: str, check_name: str, kind: str, success: bool, details: dict[str, Any], run_id: str
) -> None:
    row = {
        "table_name": table_name,
        "check_name": check_name,
        "kind": kind,
        "success": success,
        "details": json.dumps(details, default=str),
        "run_id": run_id,
        "checked_at": datetime.now(UTC),
    }
    delta.merge(
        lake.quality_results, pa.Table.from_pylist([row], schema=SCHEMA), ["table_name", "check_name"], update=True
    )

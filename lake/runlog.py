"""Failed runs, kept in the lake next to the data they failed to refresh."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa

from plantlake.lake import delta
from plantlake.lake.layout import Lake

RUN_FAILURES = "run_failures"
SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("job_name", pa.string(), nullable=False),
        pa.field("failed_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("failed_steps", pa.string(), nullable=False),
        pa.field("errors", pa.string(), nullable=False),
        pa.field("message", pa.string()),
    ]
)


def record_failure(lake: Lake, run_id: str, job_name: str, step_errors: dict[str, str], message: str) -> None:
    """One row per failed run (merged on run_id, so a repeated report adds nothing)."""
    row = {
        "run_id": run_id,
        "job_name": job_name,
        "failed_at": datetime.now(UTC),
        "failed_steps": ", ".join(sorted(step_errors)),
        "errors": json.dumps(step_errors, ensure_ascii=False),
        "message": message,
    }
    delta.merge(lake.table("meta", RUN_FAILURES), pa.Table.from_pylist([row], schema=SCHEMA), ["run_id"], update=True)

"""A lake whose log tables and positions were written before dst_flag, invalid_bytes and file
identity by device and inode: it reads on where it stopped, and its tables take the new columns."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from log_lake import Logs

from plantlake.connectors import logs as log_parsing
from plantlake.lake import bronze, delta, drift, state, transforms
from plantlake.lake.layout import INGESTED_AT, Ingestion

pytestmark = pytest.mark.unit

NEW_COLUMNS = ("dst_flag", "invalid_bytes")


def _line(second: int) -> str:
    return f"<134>1 2026-01-11T08:00:{second:02d}Z cnc-7 plc 1 - - event {second}\n"


def _old(schema: pa.Schema) -> pa.Schema:
    return pa.schema([field for field in schema if field.name not in NEW_COLUMNS])


def test_a_lake_from_before_reads_on_and_takes_the_new_columns(tmp_path: Path) -> None:
    logs = Logs(tmp_path, fingerprint_bytes=1024)
    first = "".join(_line(second) for second in range(30))
    log = logs.write("plc.log", first)
    head = first.encode()[:1024]
    legacy_id = f"{hashlib.sha256(head).hexdigest()[:24]}-{len(head)}"  # how a file was known before
    rows = [
        {"file_id": legacy_id, "source_file": str(log), "line_number": n + 1, "raw": _line(n).strip(), "message": ""}
        for n in range(30)
    ]
    landed = pa.Table.from_pylist(rows, schema=_old(log_parsing.EVENTS_SCHEMA))
    positions = {legacy_id: {"file_id": legacy_id, "prefix": len(head), "offset": len(first), "lines": 30}}
    bronze_path = logs.lake.table("bronze", "plc_events")
    bronze.land(
        bronze_path, iter(landed.to_batches()), landed.schema, ["file_id", "line_number"], Ingestion.now("old"), "plc"
    )
    state.write(bronze_path, {"positions": positions})
    silver_path = logs.lake.table("silver", "machine_events")
    old_silver = pa.Table.from_pylist(
        [{**row, "source": "plc", "machine_id": "cnc-7", INGESTED_AT: datetime.now(UTC)} for row in rows],
        schema=_old(transforms.EVENT_SCHEMA),
    )
    newest = delta.read(bronze_path, [INGESTED_AT]).column(0)[0].as_py()
    delta.append(silver_path, old_silver, state={"consumed": {"plc_events": newest.isoformat()}})

    with log.open("a", encoding="utf-8") as handle:
        handle.write("".join(_line(second) for second in range(30, 40)))
    metadata = logs.land("new")
    assert metadata["events_inserted"] == 10  # read on from the old position, not from the start
    assert [name for name in delta.schema(bronze_path).names if name in NEW_COLUMNS] == list(NEW_COLUMNS)
    logs.refine("new")
    events = logs.silver()
    assert len(events) == 40 and len({(event["file_id"], event["line_number"]) for event in events}) == 40
    assert [event["invalid_bytes"] for event in events] == [None] * 30 + [0] * 10
    changes = delta.read(logs.lake.table("meta", drift.SCHEMA_CHANGES)).to_pylist()
    assert {(change["table_name"], change["column_name"]) for change in changes} == {
        (table, column) for table in ("bronze.plc_events", "silver.machine_events") for column in NEW_COLUMNS
    }
    kept = state.stored(bronze_path)["positions"][legacy_id]
    assert (kept["inode"], kept["offset"]) == (log.stat().st_ino, log.stat().st_size)

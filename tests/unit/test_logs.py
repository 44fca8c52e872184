from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.logs import parse_json_line, parse_syslog, read_log_file

pytestmark = pytest.mark.unit


def test_rfc5424_line() -> None:
    event = parse_syslog("<131>1 2026-01-11T10:15:00Z cnc-101 plc 4711 A-17 - Spindle vibration above limit", 2026)
    assert event["timestamp"] == datetime(2026, 1, 11, 10, 15, tzinfo=UTC)
    assert (event["host"], event["severity"], event["code"]) == ("cnc-101", "error", "A-17")
    assert event["message"] == "Spindle vibration above limit"


def test_rfc3164_line_takes_the_year_given() -> None:
    event = parse_syslog("<134>Jan  5 06:00:01 press-7 hydraulics[88]: E-204 pressure low", 2026)
    assert event["timestamp"] == datetime(2026, 1, 5, 6, 0, 1, tzinfo=UTC)
    assert (event["host"], event["severity"], event["code"]) == ("press-7", "info", "E-204")


def test_json_line_keeps_unknown_fields_as_extra() -> None:
    event = parse_json_line('{"time": "2026-01-11T10:15:00+01:00", "machine": "M-101", "level": "ALARM", '
                            '"code": "25050", "message": "overload", "program": "O1234"}')
    assert event["timestamp"] == datetime(2026, 1, 11, 9, 15, tzinfo=UTC)
    assert (event["host"], event["severity"], event["code"]) == ("M-101", "error", "25050")
    assert event["extra"] == '{"program": "O1234"}'


def test_unparseable_lines_are_kept_with_file_line_and_reason(tmp_path: Path) -> None:
    log = tmp_path / "plc.log"
    log.write_text("<134>1 2026-01-11T06:00:00Z cnc-101 plc 1 S-01 - start\ngarbage here\n\n", encoding="utf-8")
    rows = [row for batch in read_log_file(log, "syslog") for row in batch.to_pylist()]
    assert [row["line_number"] for row in rows] == [1, 2]
    assert rows[0]["parse_error"] is None
    assert rows[1]["raw"] == "garbage here"
    assert "plc.log line 2" in rows[1]["parse_error"] and "not a syslog line" in rows[1]["parse_error"]

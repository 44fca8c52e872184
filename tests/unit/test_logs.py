import gzip
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from plantlake.connectors.log_files import read_new
from plantlake.connectors.log_identity import Position, plan
from plantlake.connectors.logs import LogFormat, json_record

pytestmark = pytest.mark.unit

WRITTEN = datetime(2026, 1, 20, tzinfo=UTC)


def _events(
    path: Path, log_format: LogFormat, final: bool = True, start: Position | None = None
) -> tuple[list[dict], Position]:
    start = start or _identify(path, {})
    rows, position = [], start
    for batch, reached in read_new(path, start, log_format, final, WRITTEN, block_bytes=64):
        rows += batch.to_pylist()
        position = reached  # the position after the last batch
    return rows, position


def _identify(path: Path, known: dict[str, Position]) -> Position:
    [(_, position)] = plan([path], known, fingerprint_bytes=16).reads
    return position


def test_syslog_lines_of_both_rfcs(tmp_path: Path) -> None:
    log = tmp_path / "plc.log"
    log.write_text(
        "<131>1 2026-01-11T10:15:00.250+01:00 cnc-101 plc 4711 A-17 - Spindle vibration above limit\n"
        "<134>Jan  5 06:00:01 press-7 hydraulics[88]: E-204 pressure low\n"
        "<134>Dec 31 23:59:59 press-7 hydraulics: year end\n",
        encoding="utf-8",
    )
    modern, legacy, december = _events(log, LogFormat("syslog"))[0]
    assert modern["timestamp"] == datetime(2026, 1, 11, 9, 15, 0, 250000, tzinfo=UTC)
    assert (modern["host"], modern["severity"], modern["code"], modern["message"]) == (
        "cnc-101",
        "error",
        "A-17",
        "Spindle vibration above limit",
    )
    assert legacy["timestamp"] == datetime(2026, 1, 5, 6, 0, 1, tzinfo=UTC)
    assert (legacy["host"], legacy["severity"], legacy["code"], legacy["extra"]) == (
        "press-7",
        "info",
        "E-204",
        '{"app": "hydraulics"}',
    )
    assert december["timestamp"] == datetime(
        2025, 12, 31, 23, 59, 59, tzinfo=UTC
    )  # no year in RFC 3164: before the file was written


def test_multi_line_entries_stay_whole_and_lines_keep_their_numbers(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "stray line before any entry\n"
        "<134>1 2026-01-11T06:00:00Z cnc-101 plc 1 - - start\n"
        "<131>1 2026-01-11T06:00:01Z cnc-101 plc 1 E-9 - crash\n"
        'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad\n'
        "\n"
        "<134>1 2026-01-11T06:00:02Z cnc-101 plc 1 - - restarted\n",
        encoding="utf-8",
    )
    rows, position = _events(log, LogFormat("syslog"))
    assert [row["line_number"] for row in rows] == [1, 2, 3, 8]
    assert (
        "a continuation line with no entry above it" in rows[0]["parse_error"]
        and rows[0]["raw"] == "stray line before any entry"
    )
    assert rows[2]["message"] == 'crash\nTraceback (most recent call last):\n  File "x.py", line 1\nValueError: bad'
    assert (rows[2]["code"], rows[3]["message"]) == ("E-9", "restarted")
    assert (position.offset, position.lines) == (log.stat().st_size, 8)


def test_a_live_file_holds_back_its_newest_entry_until_the_next_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("<131>1 2026-01-11T06:00:01Z cnc-101 plc 1 E-9 - crash\n  at first\n", encoding="utf-8")
    rows, position = _events(log, LogFormat("syslog"), final=False)
    assert rows == [] and position.offset == 0
    with log.open("a", encoding="utf-8") as handle:
        handle.write(
            "  at second\n<134>1 2026-01-11T06:00:05Z cnc-101 plc 1 - - ok\n"
            "<134>1 2026-01-11T06:00:06Z cnc-101 plc 1 - - part"
        )
    rows, position = _events(log, LogFormat("syslog"), final=False, start=position)
    assert [row["message"] for row in rows] == ["crash\n  at first\n  at second"]
    rows, position = _events(log, LogFormat("syslog"), final=True, start=position)
    assert [(row["line_number"], row["message"]) for row in rows] == [(4, "ok"), (5, "part")]


def test_vendor_pattern_with_its_own_time_format_zone_and_levels(tmp_path: Path) -> None:
    log = tmp_path / "fanuc.txt"
    log.write_text(
        "11.01.2026 07:15:00 M-101 ALM SV0401 servo alarm axis=X\n"
        "11.01.2026 07:16:00 M-101 W OT0500 overtravel axis=Z\n"
        "   continued detail\n"
        "not an entry at all\n",
        encoding="latin-1",
    )
    style = LogFormat(
        "regex",
        r"^(?P<timestamp>\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d) (?P<host>\S+) (?P<severity>\S+) "
        r"(?P<code>\S+) (?P<message>.*?)(?: axis=(?P<axis>\w))?$",
        "%d.%m.%Y %H:%M:%S",
        "Europe/Berlin",
        {"ALM": "critical"},
    )
    first, second = _events(log, style)[0]
    assert first["timestamp"] == datetime(2026, 1, 11, 6, 15, tzinfo=UTC)
    assert (first["host"], first["severity"], first["code"], first["extra"]) == (
        "M-101",
        "critical",
        "SV0401",
        '{"axis": "X"}',
    )
    assert second["severity"] == "warning"
    assert second["raw"].endswith("not an entry at all") and second["parse_error"] is None


def test_identity_follows_rotation_and_compression(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("<134>1 2026-01-11T06:00:00Z h plc 1 - - one\n", encoding="utf-8")
    _, first = _events(log, LogFormat("syslog"))
    known = {first.file_id: first}
    with log.open("a", encoding="utf-8") as handle:
        handle.write("<134>1 2026-01-11T06:00:01Z h plc 1 - - two\n" * 40)
    rotated = tmp_path / "app.log.1.gz"
    rotated.write_bytes(gzip.compress(log.read_bytes()))
    log.unlink()
    assert _identify(rotated, known).file_id == first.file_id
    other = tmp_path / "other.log"
    other.write_text("<134>1 2026-01-12T06:00:00Z h plc 1 - - fresh\n", encoding="utf-8")
    assert _identify(other, known).file_id != first.file_id


def test_json_line_keeps_unknown_fields_as_extra() -> None:
    event = json_record(
        '{"time": "2026-01-11T10:15:00+01:00", "machine": "M-101", "level": "ALARM", '
        '"code": "25050", "message": "overload", "program": "O1234"}'
    )
    assert event["stamp"] == "2026-01-11T10:15:00+01:00"  # read with the source's rules, as a column
    assert (event["host"], event["severity"], event["code"]) == ("M-101", "error", "25050")
    assert event["extra"] == '{"program": "O1234"}'


def test_json_lines_each_line_its_own_entry(tmp_path: Path) -> None:
    log = tmp_path / "cnc.jsonl"
    log.write_text('{"time": "2026-01-11T10:15:00Z", "machine": "M-1", "message": "a"}\nnot json\n', encoding="utf-8")
    rows, _ = _events(log, LogFormat("jsonl"))
    assert [row["message"] for row in rows] == ["a", None]
    assert "cnc.jsonl line 2" in rows[1]["parse_error"]
    assert pa.array([rows[0]["timestamp"]]).type == pa.timestamp("us", tz="UTC")

"""Logs from real machines, through the log assets' own steps: hosts as written, encodings,
timestamps of every kind, multi-line entries byte for byte (issue: logs from real machines)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from log_lake import Logs

from plantlake.lake import catalog

pytestmark = pytest.mark.unit

STOCKHOLM = "Europe/Stockholm"
VENDOR = r"^(?P<timestamp>\d\d\.\d\d\.\d{4} \d\d:\d\d:\d\d) (?P<host>\S+) (?P<severity>\S+) (?P<message>.*)$"


def _syslog(host: str, second: int, message: str = "Druck niedrig") -> str:
    return f"<134>1 2026-01-11T08:00:{second:02d}Z {host} plc 4711 E-204 - {message} {second}\n"


# --- hosts ---------------------------------------------------------------------------------------


def test_hosts_match_the_machine_map_whatever_their_case(tmp_path: Path) -> None:
    logs = Logs(tmp_path, machine_map={"plc-press7": "M-307"})
    logs.write("plc.log", "".join(_syslog("PLC-PRESS7", second) for second in range(13)))
    logs.land()
    metadata = logs.refine()
    assert [row["machine_id"] for row in logs.silver()] == ["M-307"] * 13
    assert metadata["unmapped_hosts"] == "none"


def test_exact_host_matching_counts_hosts_the_map_does_not_name_and_the_catalog_shows_them(tmp_path: Path) -> None:
    logs = Logs(tmp_path, machine_map={"plc-press7": "M-307"}, host_match="exact")
    logs.write("plc.log", "".join(_syslog("PLC-PRESS7", s) for s in range(13)) + _syslog("plc-press7", 14))
    logs.land()
    metadata = logs.refine()
    assert sorted({row["machine_id"] for row in logs.silver()}) == ["M-307", "PLC-PRESS7"]
    assert metadata["unmapped_hosts"] == "plc: PLC-PRESS7 (13 events)"
    catalog.build_catalog(logs.lake, {})
    with duckdb.connect(str(logs.lake.catalog_file), read_only=True) as connection:
        shown = connection.execute(
            "select unmapped_hosts from catalog where qualified_name = 'silver.machine_events'"
        ).fetchone()
    assert shown is not None and json.loads(shown[0]) == {"plc": {"PLC-PRESS7": 13}}


def test_a_machine_map_with_two_spellings_of_one_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="machine_map: 'plc-7' and 'PLC-7' are one host"):
        Logs(tmp_path, machine_map={"plc-7": "M-7", "PLC-7": "M-8"})


# --- encodings -----------------------------------------------------------------------------------

SWEDISH = "Övertemperatur i styrskåpet"


def test_a_cp1252_log_is_detected_and_read_with_its_swedish_letters(tmp_path: Path) -> None:
    logs = Logs(tmp_path, format="regex", pattern=VENDOR, timestamp_format="%d.%m.%Y %H:%M:%S", timezone=STOCKHOLM)
    lines = [f"11.01.2026 07:{minute:02d}:00 cnc-7 ALM {SWEDISH} {minute}\r\n" for minute in range(30)]
    logs.write("vendor.log", "".join(lines).encode("cp1252"))
    metadata = logs.land()
    events = logs.bronze()
    assert [event["message"] for event in events] == [f"{SWEDISH} {minute}" for minute in range(30)]
    assert {event["invalid_bytes"] for event in events} == {0} and metadata["invalid_bytes"] == 0
    assert events[0]["timestamp"] == datetime(2026, 1, 11, 6, 0, tzinfo=UTC)


def test_bytes_the_declared_encoding_cannot_read_are_escaped_and_counted(tmp_path: Path) -> None:
    logs = Logs(tmp_path, encoding="utf-8")
    logs.write("plc.log", (_syslog("cnc-7", 1, SWEDISH) + _syslog("cnc-7", 2, "ok")).encode("cp1252"))
    metadata = logs.land()
    first, second = logs.bronze()
    assert first["message"] == "\\xd6vertemperatur i styrsk\\xe5pet 1"
    assert (first["invalid_bytes"], second["invalid_bytes"]) == (2, 0)
    assert (metadata["invalid_bytes"], metadata["entries_with_invalid_bytes"]) == (2, 1)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-16-le", "utf-8-sig"])
def test_a_utf16_log_with_or_without_a_byte_order_mark_is_read(tmp_path: Path, encoding: str) -> None:
    logs = Logs(tmp_path)
    text = "".join(_syslog("cnc-7", second, SWEDISH) for second in range(20))
    logs.write("plc.log", text.encode(encoding))
    logs.land()
    events = logs.bronze()
    assert [event["message"] for event in events] == [f"{SWEDISH} {second}" for second in range(20)]
    assert events[0]["raw"].startswith("<134>1") and {event["invalid_bytes"] for event in events} == {0}


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16-le"])
def test_a_growing_log_keeps_the_encoding_its_first_letters_showed(tmp_path: Path, encoding: str) -> None:
    logs = Logs(tmp_path)
    log = logs.write("plc.log", "".join(_syslog("cnc-7", second, "ok") for second in range(10)).encode(encoding))
    logs.land("run-1", now=datetime.now(UTC))  # a live file: its newest entry waits
    with log.open("ab") as handle:
        handle.write("".join(_syslog("cnc-7", second, SWEDISH) for second in range(10, 20)).encode(encoding))
    logs.land("run-2")
    events = logs.bronze()
    assert [event["line_number"] for event in events] == list(range(1, 21))
    assert [event["message"] for event in events][9:] == ["ok 9"] + [f"{SWEDISH} {s}" for s in range(10, 20)]


def test_an_unknown_or_unusable_encoding_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="encoding"):
        Logs(tmp_path, encoding="klingon")
    with pytest.raises(ValueError, match="encoding"):
        Logs(tmp_path, encoding="cp500")  # EBCDIC: a line does not end in the byte 0x0A


# --- timestamps ----------------------------------------------------------------------------------


def test_an_impossible_date_goes_to_quarantine_with_its_reason(tmp_path: Path) -> None:
    logs = Logs(tmp_path, format="regex", pattern=VENDOR, timestamp_format="%d.%m.%Y %H:%M:%S")
    logs.write(
        "vendor.log",
        "30.09.2026 08:00:00 cnc-7 I fine\n31.09.2026 08:00:00 cnc-7 I impossible\n30.09.2026 24:30:00 cnc-7 I late\n",
    )
    logs.land()
    fine, impossible, late = logs.bronze()
    assert fine["timestamp"] == datetime(2026, 9, 30, 8, tzinfo=UTC) and fine["parse_error"] is None
    assert impossible["timestamp"] is None
    assert "31.09.2026 08:00:00" in impossible["parse_error"] and "day is out of range" in impossible["parse_error"]
    assert late["timestamp"] is None and "30.09.2026 24:30:00" in late["parse_error"]
    logs.refine()
    assert [event["message"] for event in logs.silver()] == ["fine"]
    reasons = sorted(row["reason"] for row in logs.quarantined())
    assert len(reasons) == 2 and "day is out of range" in reasons[0] + reasons[1]


def test_epoch_milliseconds_as_a_number_and_as_a_string(tmp_path: Path) -> None:
    logs = Logs(tmp_path, format="jsonl", glob="*.jsonl")
    logs.write(
        "cnc.jsonl",
        '{"ts": 1767225600123, "machine": "M-1", "message": "number"}\n'
        '{"ts": "1767225600456", "machine": "M-1", "message": "string"}\n'
        '{"ts": 1767225600, "machine": "M-1", "message": "seconds"}\n'
        '{"ts": "1767225600000789", "machine": "M-1", "message": "microseconds"}\n',
    )
    logs.land()
    stamps = [(event["message"], event["timestamp"], event["parse_error"]) for event in logs.bronze()]
    new_year = datetime(2026, 1, 1, tzinfo=UTC)
    assert stamps == [
        ("number", new_year + timedelta(milliseconds=123), None),
        ("string", new_year + timedelta(milliseconds=456), None),
        ("seconds", new_year, None),
        ("microseconds", new_year + timedelta(microseconds=789), None),
    ]


def test_a_declared_epoch_format_reads_a_vendor_log(tmp_path: Path) -> None:
    pattern = r"^(?P<timestamp>\S+) (?P<host>cnc-\d+) (?P<message>.*)$"
    logs = Logs(tmp_path, format="regex", pattern=pattern, timestamp_format="epoch_ms", fingerprint_bytes=16)
    logs.write("vendor.log", "1767225600123 cnc-7 start\n99 cnc-7 early\nsoon cnc-7 never\n")
    logs.land()
    start, early, never = logs.bronze()
    assert start["timestamp"] == datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    assert early["timestamp"] == datetime(1970, 1, 1, 0, 0, 0, 99000, tzinfo=UTC)
    assert never["timestamp"] is None and "'soon'" in never["parse_error"] and "epoch_ms" in never["parse_error"]


def test_a_naive_json_timestamp_takes_the_source_timezone(tmp_path: Path) -> None:
    logs = Logs(tmp_path, format="jsonl", glob="*.jsonl", timezone=STOCKHOLM)
    logs.write(
        "cnc.jsonl",
        '{"time": "2026-01-11T10:15:00", "machine": "M-1", "message": "winter"}\n'
        '{"time": "2026-07-01 10:15:00.5", "machine": "M-1", "message": "summer"}\n'
        '{"time": "2026-07-01T10:15:00Z", "machine": "M-1", "message": "zoned"}\n',
    )
    logs.land()
    assert [event["timestamp"] for event in logs.bronze()] == [
        datetime(2026, 1, 11, 9, 15, tzinfo=UTC),
        datetime(2026, 7, 1, 8, 15, 0, 500000, tzinfo=UTC),
        datetime(2026, 7, 1, 10, 15, tzinfo=UTC),
    ]


# Stockholm 2026: clocks go from 02:00 to 03:00 on 29 March and from 03:00 back to 02:00 on 25 October.
DST_LOG = (
    "29.03.2026 01:59:59 cnc-7 I before spring\n"
    "29.03.2026 02:30:00 cnc-7 I skipped\n"
    "29.03.2026 03:00:00 cnc-7 I after spring\n"
    "25.10.2026 01:59:59 cnc-7 I before autumn\n"
    "25.10.2026 02:30:00 cnc-7 I repeated\n"
    "25.10.2026 03:00:00 cnc-7 I after autumn\n"
)


def _utc(day: int, month: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("dst", "skipped", "repeated", "flags"),
    [
        ("earlier", _utc(29, 3, 0, 30), _utc(25, 10, 0, 30), ("nonexistent_earlier", "ambiguous_earlier")),
        ("later", _utc(29, 3, 1, 30), _utc(25, 10, 1, 30), ("nonexistent_later", "ambiguous_later")),
        ("quarantine", None, None, ("nonexistent", "ambiguous")),
    ],
)
def test_both_dst_changes_follow_the_dst_setting_and_flag_the_event(
    tmp_path: Path, dst: str, skipped: datetime | None, repeated: datetime | None, flags: tuple[str, str]
) -> None:
    logs = Logs(
        tmp_path, format="regex", pattern=VENDOR, timestamp_format="%d.%m.%Y %H:%M:%S", timezone=STOCKHOLM, dst=dst
    )
    logs.write("vendor.log", DST_LOG)
    logs.land()
    events = logs.bronze()
    assert [event["timestamp"] for event in events] == [
        _utc(29, 3, 0, 59, 59),
        skipped,
        _utc(29, 3, 1),
        _utc(24, 10, 23, 59, 59),
        repeated,
        _utc(25, 10, 2),
    ]
    assert [event["dst_flag"] for event in events] == [None, flags[0], None, None, flags[1], None]
    logs.refine()
    kept = {event["message"]: event["dst_flag"] for event in logs.silver()}
    if dst == "quarantine":
        assert "skipped" not in kept and "repeated" not in kept
        reasons = " ".join(row["reason"] for row in logs.quarantined())
        assert "does not exist in Europe/Stockholm" in reasons and "occurs twice in Europe/Stockholm" in reasons
    else:
        assert (kept["skipped"], kept["repeated"]) == flags


def test_naive_iso_syslog_timestamps_follow_the_dst_setting_too(tmp_path: Path) -> None:
    logs = Logs(tmp_path, timezone=STOCKHOLM, dst="later")
    log = logs.write(
        "plc.log", "<134>1 2026-10-25T02:30:00 cnc-7 plc 1 - - repeated\n<134>Oct 25 02:30:00 cnc-7 a: old\n"
    )
    written = datetime(2026, 10, 26, tzinfo=UTC).timestamp()  # RFC 3164 has no year: the file's gives it
    os.utime(log, (written, written))
    logs.land(now=datetime(2026, 10, 27, tzinfo=UTC))
    assert [(event["timestamp"], event["dst_flag"]) for event in logs.bronze()] == [
        (_utc(25, 10, 1, 30), "ambiguous_later"),
        (_utc(25, 10, 1, 30), "ambiguous_later"),
    ]


# --- multi-line entries --------------------------------------------------------------------------

TRACEBACK = (
    "<131>1 2026-01-11T06:00:01Z cnc-7 mes 1 E-9 - cycle failed\n"
    "Traceback (most recent call last):\n"
    '  File "cycle.py", line 12, in run\n'
    "    load()\n"
    "ValueError: overload\n"
    "\n"
    "During handling of the above exception, another exception occurred:\n"
    "\n"
    "Traceback (most recent call last):\n"
    '  File "cycle.py", line 14, in run\n'
    "RuntimeError: cycle aborted\n"
    "\n"
    "<134>1 2026-01-11T06:00:02Z cnc-7 mes 1 - - restarted\r\n"
    "<134>1 2026-01-11T06:00:03Z cnc-7 mes 1 - - windows line\r\n"
    "  and its continuation\r\n"
)


def test_a_traceback_with_blank_lines_is_kept_byte_for_byte(tmp_path: Path) -> None:
    logs = Logs(tmp_path)
    path = logs.write("mes.log", TRACEBACK)
    logs.land()
    events = logs.bronze()
    first, second, third = (event["raw"] for event in events)  # each without its last line's end, \n or \r\n
    assert f"{first}\n{second}\r\n{third}\r\n" == path.read_bytes().decode("utf-8")
    assert events[0]["message"] == TRACEBACK.split("\n", 1)[0].split(" - ")[1] + "\n" + "\n".join(
        TRACEBACK.split("\n")[1:11]
    )
    assert [event["line_number"] for event in events] == [1, 13, 14]
    assert events[1]["message"] == "restarted" and events[2]["message"] == "windows line\r\n  and its continuation"

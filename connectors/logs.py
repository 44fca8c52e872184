"""Parse machine and application logs into events.

Formats: syslog (RFC 5424, and RFC 3164 whose lines carry no year) and JSON lines.
A line that cannot be parsed is kept with its raw text and the reason, never dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line_number", pa.int64(), nullable=False),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("host", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("code", pa.string()),
        pa.field("message", pa.string()),
        pa.field("extra", pa.string()),
        pa.field("parse_error", pa.string()),
    ]
)

SYSLOG_SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
_JSON_LEVELS = {"ALARM": "error", "FATAL": "critical", "ERROR": "error", "WARN": "warning", "WARNING": "warning",
                "INFO": "info", "NOTICE": "notice", "DEBUG": "debug"}  # fmt: skip
_RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<pid>\S+) (?P<msgid>\S+) "
    r"(?P<sd>-|(?:\[.*?\])+) ?(?P<msg>.*)$"
)
_RFC3164 = re.compile(
    r"^<(?P<pri>\d{1,3})>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) (?P<tag>[^:\[]+)(?:\[\d+\])?: (?P<msg>.*)$"
)
_ALARM_CODE = re.compile(r"\b([A-Z]{1,3}-\d{1,5})\b")


def _event(ts: datetime | None, host: str | None, severity: str | None, code: str | None,
           message: str | None, extra: dict | None = None) -> dict:  # fmt: skip
    return {"timestamp": ts, "host": host, "severity": severity, "code": code, "message": message,
            "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None, "parse_error": None}  # fmt: skip


def _severity(pri: str) -> str:
    return SYSLOG_SEVERITIES[int(pri) % 8]


def parse_syslog(line: str, year: int) -> dict:
    """One syslog line into event fields; `year` completes RFC 3164 timestamps."""
    match = _RFC5424.match(line)
    if match:
        ts = datetime.fromisoformat(match["ts"].replace("Z", "+00:00")).astimezone(UTC)
        code = None if match["msgid"] == "-" else match["msgid"]
        return _event(ts, match["host"], _severity(match["pri"]), code, match["msg"], {"app": match["app"]})
    match = _RFC3164.match(line)
    if match:
        ts = datetime.strptime(f"{year} {match['ts']}", "%Y %b %d %H:%M:%S").replace(tzinfo=UTC)
        code_match = _ALARM_CODE.search(match["msg"])
        return _event(ts, match["host"], _severity(match["pri"]), code_match and code_match[1], match["msg"],
                      {"app": match["tag"].strip()})  # fmt: skip
    raise ValueError("not a syslog line (RFC 5424 or RFC 3164)")


def parse_json_line(line: str) -> dict:
    """One JSON object per line; the usual field names of controllers and applications."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("JSON line is not an object")
    stamp = record.pop("time", None) or record.pop("timestamp", None) or record.pop("ts", None)
    if stamp is None:
        raise ValueError("JSON line has no time, timestamp or ts field")
    ts = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    host = record.pop("machine", None) or record.pop("host", None)
    level = str(record.pop("level", None) or record.pop("severity", "") or "info")
    return _event(ts, host, _JSON_LEVELS.get(level.upper(), level.lower()), record.pop("code", None),
                  record.pop("message", None) or record.pop("msg", None), record)  # fmt: skip


def read_log_file(path: Path, log_format: str, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
    """Events of one file in batches; unparseable lines carry `parse_error` and their raw text."""
    year = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).year
    parse = (lambda text: parse_syslog(text, year)) if log_format == "syslog" else parse_json_line
    rows: list[dict] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                row = parse(text)
            except (ValueError, KeyError, TypeError) as exc:
                row = _event(None, None, None, None, None)
                row["parse_error"] = f"{path.name} line {number}: {exc}"
            row.update(source_file=str(path), line_number=number, raw=text)
            rows.append(row)
            if len(rows) >= batch_rows:
                yield pa.RecordBatch.from_pylist(rows, schema=EVENTS_SCHEMA)
                rows = []
    if rows:
        yield pa.RecordBatch.from_pylist(rows, schema=EVENTS_SCHEMA)

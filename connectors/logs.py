"""Parse machine and application logs into events.

Formats: syslog (RFC 5424, and RFC 3164 whose lines carry no year; see `log_syslog`), JSON
lines, and vendor formats given as a regular expression with named groups. Entries (a start
line and its continuation lines, joined by `connectors.log_files`) are parsed a block at a
time with Arrow's regular expressions (RE2), not a Python loop per line; timestamps of every
kind are read by `log_times`. An entry that cannot be parsed is kept with its raw text and
the reason, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plantlake.connectors.log_fields import Fields, json_object
from plantlake.connectors.log_syslog import ALARM_CODE, RFC3164, RFC5424, SYSLOG_SEVERITIES, syslog_fields
from plantlake.connectors.log_times import TimeRules, parse_timestamps

__all__ = ["ALARM_CODE", "EVENTS_SCHEMA", "RFC3164", "RFC5424", "SYSLOG_SEVERITIES", "LogFormat", "parse_entries"]

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("file_id", pa.string(), nullable=False),
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
        # added later, so null in rows landed before: how DST was resolved, and bytes the encoding could not read
        pa.field("dst_flag", pa.string()),
        pa.field("invalid_bytes", pa.int64()),
    ]
)
LEVELS = {
    "ALARM": "error",
    "FATAL": "critical",
    "CRIT": "critical",
    "CRITICAL": "critical",
    "ERROR": "error",
    "ERR": "error",
    "E": "error",
    "WARN": "warning",
    "WARNING": "warning",
    "W": "warning",
    "INFO": "info",
    "I": "info",
    "NOTICE": "notice",
    "DEBUG": "debug",
    "D": "debug",
    "TRACE": "debug",
}
_STARTS = {"syslog": r"^<\d{1,3}>", "jsonl": r"\S"}  # JSON lines: every line with text is an entry


@dataclass(frozen=True)
class LogFormat:
    """How entries of one log folder look; `pattern` (named groups) for vendor formats."""

    kind: str
    pattern: str | None = None
    timestamp_format: str | None = None
    timezone: str = "UTC"
    severity_map: dict[str, str] = field(default_factory=dict)
    dst: str = "earlier"
    encoding: str = "auto"

    @property
    def start(self) -> str:
        """A line matching this starts an entry; any other line continues the entry above."""
        return _STARTS.get(self.kind) or (self.pattern or "")

    @property
    def rules(self) -> TimeRules:
        return TimeRules(self.timezone, self.timestamp_format, self.dst)


def empty_events() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], field.type) for field in EVENTS_SCHEMA], schema=EVENTS_SCHEMA)


def _severity(values: pa.Array, severity_map: dict[str, str]) -> pa.Array:
    levels = {**LEVELS, **{key.upper(): value for key, value in severity_map.items()}}
    keys, names = pa.array(list(levels)), pa.array(list(levels.values()))
    upper = pc.utf8_upper(pc.utf8_trim_whitespace(values))
    return pc.coalesce(pc.take(names, pc.index_in(upper, value_set=keys)), pc.utf8_lower(values))


def _vendor(entries: pa.Array, log_format: LogFormat) -> Fields:
    groups = pc.extract_regex(entries, "(?s)" + (log_format.pattern or ""))
    names = [field.name for field in groups.type]

    def group(name: str) -> pa.Array:
        return pc.struct_field(groups, name) if name in names else pa.nulls(len(entries), pa.string())

    standard = ("timestamp", "host", "machine", "severity", "level", "code", "message")
    return Fields(
        parsed=pc.is_valid(groups),
        times=parse_timestamps(group("timestamp"), log_format.rules),
        host=pc.coalesce(group("host"), group("machine")),
        severity=_severity(pc.coalesce(group("severity"), group("level")), log_format.severity_map),
        code=group("code"),
        message=group("message"),
        extra=json_object({name: pc.struct_field(groups, name) for name in names if name not in standard}),
        reason="does not match the declared pattern",
    )


def _json_lines(entries: pa.Array, rules: TimeRules) -> Fields:
    rows = []
    for text in entries.to_pylist():
        try:
            rows.append(json_record(text))
        except (ValueError, TypeError) as exc:
            rows.append({"error": str(exc)})

    def column(name: str) -> pa.Array:
        return pa.array([row.get(name) for row in rows], pa.string())

    return Fields(
        parsed=pa.array(["error" not in row for row in rows]),
        times=parse_timestamps(column("stamp"), rules),
        host=column("host"),
        severity=column("severity"),
        code=column("code"),
        message=column("message"),
        extra=column("extra"),
        reason=column("error"),
    )


def json_record(line: str) -> dict[str, Any]:
    """One JSON object per line, with the usual field names of controllers and applications; the
    timestamp as text (a number is written out in full), read later with the source's rules."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("JSON line is not an object")
    stamp = record.pop("time", None) or record.pop("timestamp", None) or record.pop("ts", None)
    if stamp is None:
        raise ValueError("JSON line has no time, timestamp or ts field")
    if isinstance(stamp, bool) or not isinstance(stamp, str | int | float):
        raise ValueError(f"JSON line's timestamp {stamp!r} is neither text nor a number")
    host = record.pop("machine", None) or record.pop("host", None)
    level = str(record.pop("level", None) or record.pop("severity", "") or "info")
    message = record.pop("message", None) or record.pop("msg", None)
    return {
        "stamp": format(stamp, "f") if isinstance(stamp, float) else str(stamp),
        "host": None if host is None else str(host),
        "severity": LEVELS.get(level.upper(), level.lower()),
        "code": None if record.get("code") is None else str(record.pop("code")),
        "message": message if message is None or isinstance(message, str) else json.dumps(message, ensure_ascii=False),
        "extra": json.dumps(record, ensure_ascii=False, sort_keys=True) if record else None,
    }


def _errors(
    parsed: pa.Array, missing_time: pa.Array, fields: Fields, orphans: np.ndarray, numbers: pa.Array, path: Path
) -> pa.Array:
    """`<file> line <n>: <reason>` for the entries that did not parse or whose time cannot be read, else null."""
    if not pc.any(pc.or_(pc.invert(parsed), missing_time)).as_py():
        return pa.nulls(len(parsed), pa.string())
    reason = fields.reason if isinstance(fields.reason, pa.Array) else pa.scalar(fields.reason)
    reason = pc.if_else(pa.array(orphans), "a continuation line with no entry above it", reason)
    where = pc.binary_join_element_wise(f"{path.name} line ", pc.cast(numbers, pa.string()), ": ", "")
    error = pc.if_else(parsed, pa.scalar(None, pa.string()), pc.binary_join_element_wise(where, reason, ""))
    unreadable = pc.coalesce(fields.times.problems, "no readable timestamp")
    return pc.if_else(missing_time, pc.binary_join_element_wise(where, unreadable, ""), error)


def parse_entries(
    entries: pa.Array,
    lines: np.ndarray,
    orphans: np.ndarray,
    invalid_bytes: np.ndarray,
    path: Path,
    file_id: str,
    log_format: LogFormat,
    reference: datetime,
) -> pa.RecordBatch:
    """Events of whole entries; an entry that does not parse, or whose time cannot be read, keeps its
    raw text and a reason (`parse_error`), which sends it to quarantine from silver."""
    count = len(entries)
    if count == 0:
        return empty_events()
    if log_format.kind == "syslog":
        fields = syslog_fields(entries, log_format.rules, reference)
    elif log_format.kind == "jsonl":
        fields = _json_lines(entries, log_format.rules)
    else:
        fields = _vendor(entries, log_format)
    parsed = pc.and_(fields.parsed, pa.array(~orphans))
    numbers = pa.array(lines, pa.int64())
    times = fields.times
    missing_time = pc.and_(parsed, pc.is_null(times.values))
    error = _errors(parsed, missing_time, fields, orphans, numbers, path)

    def only_parsed(values: pa.Array) -> pa.Array:
        return pc.if_else(parsed, values, pa.scalar(None, values.type))

    message = pc.utf8_rtrim(fields.message.cast(pa.string()), characters="\r\n")  # the blank lines ending an entry
    columns = {
        "file_id": pa.array([file_id] * count, pa.string()),
        "source_file": pa.array([str(path)] * count, pa.string()),
        "line_number": numbers,
        "raw": entries,
        "timestamp": only_parsed(times.values),
        **{name: only_parsed(getattr(fields, name).cast(pa.string())) for name in ("host", "severity", "code")},
        "message": only_parsed(message),
        "extra": only_parsed(fields.extra if len(fields.extra) == count else pa.nulls(count, pa.string())),
        "parse_error": error,
        "dst_flag": only_parsed(times.flags),
        "invalid_bytes": pa.array(invalid_bytes, pa.int64()),
    }
    return pa.RecordBatch.from_arrays([columns[field.name] for field in EVENTS_SCHEMA], schema=EVENTS_SCHEMA)

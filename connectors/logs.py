"""Parse machine and application logs into events.

Formats: syslog (RFC 5424, and RFC 3164 whose lines carry no year), JSON lines, and
vendor formats given as a regular expression with named groups. Entries (a start line
and its continuation lines, joined by `connectors.log_files`) are parsed a block at a time
with Arrow's regular expressions (RE2), not a Python loop per line. An entry that cannot
be parsed is kept with its raw text and the reason, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    ]
)
SYSLOG_SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
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
RFC5424 = (
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<pid>\S+) (?P<msgid>\S+) "
    r"(?P<sd>-|(?:\[.*?\])+) ?(?P<msg>.*)$"
)
RFC3164 = (
    r"^<(?P<pri>\d{1,3})>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
    r"(?P<tag>[^:\[]+)(?:\[\d+\])?: (?P<msg>.*)$"
)
ALARM_CODE = r"\b(?P<code>[A-Z]{1,3}-\d{1,5})\b"
_ISO = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d(:?\d\d)?)?$"
_ZONED = r"(Z|[+-]\d\d(:?\d\d)?)$"
_STARTS = {"syslog": r"^<\d{1,3}>", "jsonl": r"\S"}  # JSON lines: every line is an entry


@dataclass(frozen=True)
class LogFormat:
    """How entries of one log folder look; `pattern` (named groups) for vendor formats."""

    kind: str
    pattern: str | None = None
    timestamp_format: str | None = None
    timezone: str = "UTC"
    severity_map: dict[str, str] = field(default_factory=dict)

    @property
    def start(self) -> str:
        """A line matching this starts an entry; any other line continues the entry above."""
        return _STARTS.get(self.kind) or (self.pattern or "")


def empty_events() -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], field.type) for field in EVENTS_SCHEMA], schema=EVENTS_SCHEMA)


def _json_text(values: pa.Array) -> pa.Array:
    """Strings as JSON string literals (null stays null)."""
    escaped = values
    if pc.any(pc.match_substring_regex(values, r'["\\\n\r\t]')).as_py():
        for old, new in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            escaped = pc.replace_substring(escaped, old, new)
    return pc.binary_join_element_wise('"', escaped, '"', "")


def _extra(fields: dict[str, pa.Array]) -> pa.Array:
    """Other named fields of an entry as one JSON object (fields without a value left out)."""
    if not fields:
        return pa.nulls(0, pa.string())
    parts = [
        pc.binary_join_element_wise(f'"{name}": ', _json_text(values), "") for name, values in sorted(fields.items())
    ]
    if all(values.null_count == 0 for values in fields.values()):
        body = pc.binary_join_element_wise(*parts, ", ") if len(parts) > 1 else parts[0]
        return pc.binary_join_element_wise("{", body, "}", "")
    parts = [pc.if_else(pc.is_valid(part), part, "") for part in parts]
    body = pc.binary_join_element_wise(*parts, ", ") if len(parts) > 1 else parts[0]
    body = pc.replace_substring_regex(pc.replace_substring_regex(body, r"^(, )+|(, )+$", ""), r"(, ){2,}", ", ")
    return pc.if_else(pc.equal(body, ""), pa.scalar(None, pa.string()), pc.binary_join_element_wise("{", body, "}", ""))


def parse_timestamps(text: pa.Array, timezone: str, timestamp_format: str | None = None) -> pa.Array:
    """Timestamps as UTC; values without an offset are local times of `timezone`. Unparseable: null."""
    target = pa.timestamp("us", tz="UTC")
    if timestamp_format:
        parsed = pc.strptime(text, format=timestamp_format, unit="us", error_is_null=True)
        zoned = parsed.type.tz is not None
        return parsed.cast(target) if zoned else _local(parsed, timezone)
    try:  # the usual case: every value ISO 8601 with an offset
        return pc.cast(text, target)
    except pa.ArrowInvalid:
        pass
    iso = pc.fill_null(pc.match_substring_regex(text, _ISO), False)
    zoned = pc.and_(iso, pc.fill_null(pc.match_substring_regex(text, _ZONED), False))
    naive = pc.and_(iso, pc.invert(zoned))
    try:
        with_zone = pc.cast(pc.if_else(zoned, text, pa.scalar(None, pa.string())), target)
        without = _local(
            pc.cast(
                pc.if_else(naive, pc.replace_substring(text, "T", " "), pa.scalar(None, pa.string())),
                pa.timestamp("us"),
            ),
            timezone,
        )
    except pa.ArrowInvalid:  # a value shaped like a timestamp but impossible (month 13): one by one
        return pa.array([_one_timestamp(value, timezone) for value in text.to_pylist()], target)
    return pc.coalesce(with_zone, without)


def _local(naive: pa.Array, timezone: str) -> pa.Array:
    if timezone != "UTC":
        naive = pc.assume_timezone(naive, timezone, ambiguous="earliest", nonexistent="earliest")
    return naive.cast(pa.timestamp("us", tz="UTC"))


def _one_timestamp(value: str | None, timezone: str) -> datetime | None:
    from zoneinfo import ZoneInfo

    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    if moment is None:
        return None
    return (
        moment.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    )


def _severity(values: pa.Array, severity_map: dict[str, str]) -> pa.Array:
    levels = {**LEVELS, **{key.upper(): value for key, value in severity_map.items()}}
    keys, names = pa.array(list(levels)), pa.array(list(levels.values()))
    upper = pc.utf8_upper(pc.utf8_trim_whitespace(values))
    return pc.coalesce(pc.take(names, pc.index_in(upper, value_set=keys)), pc.utf8_lower(values))


def _scatter(values: pa.Array, mask: pa.Array, length: int) -> pa.Array:
    """`values` placed at the rows where `mask` is true, null elsewhere."""
    return pc.replace_with_mask(pa.nulls(length, values.type), mask, values)


def _syslog(entries: pa.Array, log_format: LogFormat, reference: datetime) -> dict[str, pa.Array]:
    count = len(entries)
    modern = pc.extract_regex(entries, "(?s)" + RFC5424)
    is_modern = pc.is_valid(modern)
    rest = pc.invert(is_modern)
    legacy = pc.extract_regex(entries.filter(rest), "(?s)" + RFC3164)
    is_legacy = _scatter(pc.is_valid(legacy), rest, count)
    is_legacy = pc.fill_null(is_legacy, False)

    def pick(modern_field: str, legacy_field: str) -> pa.Array:
        return pc.coalesce(
            pc.struct_field(modern, modern_field), _scatter(pc.struct_field(legacy, legacy_field), rest, count)
        )

    pri = pc.cast(pick("pri", "pri"), pa.int64())
    severity = pc.take(pa.array(SYSLOG_SEVERITIES), pc.bit_wise_and(pri, 7))
    message = pick("msg", "msg")
    msgid = pc.struct_field(modern, "msgid")
    legacy_message = pc.struct_field(legacy, "msg")
    legacy_code = _scatter(pc.struct_field(pc.extract_regex(legacy_message, ALARM_CODE), "code"), rest, count)
    code = pc.if_else(is_modern, pc.if_else(pc.equal(msgid, "-"), pa.scalar(None, pa.string()), msgid), legacy_code)
    legacy_time = _scatter(_rfc3164_time(pc.struct_field(legacy, "ts"), log_format.timezone, reference), rest, count)
    timestamp = pc.coalesce(parse_timestamps(pc.struct_field(modern, "ts"), log_format.timezone), legacy_time)
    app = pc.utf8_trim_whitespace(pick("app", "tag"))
    parsed = pc.or_(is_modern, is_legacy)
    return {
        "parsed": parsed,
        "timestamp": timestamp,
        "host": pick("host", "host"),
        "severity": severity,
        "code": code,
        "message": message,
        "extra": _extra({"app": app}),
        "reason": "not a syslog line (RFC 5424 or RFC 3164)",
    }


def _rfc3164_time(text: pa.Array, timezone: str, reference: datetime) -> pa.Array:
    """RFC 3164 has no year: the file's year, or the one before for dates after the file was written."""
    squeezed = pc.replace_substring(text, "  ", " ")
    this_year = parse_timestamps(
        pc.binary_join_element_wise(str(reference.year), squeezed, " "), timezone, "%Y %b %d %H:%M:%S"
    )
    last_year = parse_timestamps(
        pc.binary_join_element_wise(str(reference.year - 1), squeezed, " "), timezone, "%Y %b %d %H:%M:%S"
    )
    future = pc.greater(this_year, pa.scalar(reference + timedelta(days=1), pa.timestamp("us", tz="UTC")))
    return pc.if_else(pc.fill_null(future, False), last_year, this_year)


def _vendor(entries: pa.Array, log_format: LogFormat) -> dict[str, pa.Array]:
    groups = pc.extract_regex(entries, "(?s)" + (log_format.pattern or ""))
    names = [field.name for field in groups.type]

    def group(name: str) -> pa.Array:
        return pc.struct_field(groups, name) if name in names else pa.nulls(len(entries), pa.string())

    standard = ("timestamp", "host", "machine", "severity", "level", "code", "message")
    return {
        "parsed": pc.is_valid(groups),
        "timestamp": parse_timestamps(group("timestamp"), log_format.timezone, log_format.timestamp_format),
        "host": pc.coalesce(group("host"), group("machine")),
        "severity": _severity(pc.coalesce(group("severity"), group("level")), log_format.severity_map),
        "code": group("code"),
        "message": group("message"),
        "extra": _extra({name: pc.struct_field(groups, name) for name in names if name not in standard}),
        "reason": "does not match the declared pattern",
    }


def _json_lines(entries: pa.Array) -> dict[str, pa.Array]:
    rows = []
    for text in entries.to_pylist():
        try:
            rows.append(parse_json_line(text))
        except (ValueError, KeyError, TypeError) as exc:
            rows.append({"error": str(exc)})
    columns = {
        name: [row.get(name) for row in rows] for name in ("timestamp", "host", "severity", "code", "message", "extra")
    }
    arrays = {name: pa.array(values, EVENTS_SCHEMA.field(name).type) for name, values in columns.items()}
    return {
        **arrays,
        "parsed": pa.array(["error" not in row for row in rows]),
        "reason": pa.array([row.get("error") for row in rows], pa.string()),
    }


def parse_entries(
    entries: pa.Array,
    lines: np.ndarray,
    orphans: np.ndarray,
    path: Path,
    file_id: str,
    log_format: LogFormat,
    reference: datetime,
) -> pa.RecordBatch:
    """Events of whole entries; an entry that does not parse keeps its raw text and a reason."""
    count = len(entries)
    if count == 0:
        return empty_events()
    if log_format.kind == "syslog":
        fields = _syslog(entries, log_format, reference)
    elif log_format.kind == "jsonl":
        fields = _json_lines(entries)
    else:
        fields = _vendor(entries, log_format)
    parsed = pc.and_(fields["parsed"], pa.array(~orphans))
    numbers = pa.array(lines, pa.int64())
    reason = fields["reason"] if isinstance(fields["reason"], pa.Array) else pa.scalar(fields["reason"])
    reason = pc.if_else(pa.array(orphans), "a continuation line with no entry above it", reason)
    where = pc.binary_join_element_wise(f"{path.name} line ", pc.cast(numbers, pa.string()), ": ", "")
    missing_time = pc.and_(parsed, pc.is_null(fields["timestamp"]))
    error = pc.if_else(parsed, pa.scalar(None, pa.string()), pc.binary_join_element_wise(where, reason, ""))
    error = pc.if_else(missing_time, pc.binary_join_element_wise(where, "no readable timestamp", ""), error)

    def only_parsed(values: pa.Array) -> pa.Array:
        return pc.if_else(parsed, values, pa.scalar(None, values.type))

    columns = {
        "file_id": pa.array([file_id] * count, pa.string()),
        "source_file": pa.array([str(path)] * count, pa.string()),
        "line_number": numbers,
        "raw": entries,
        "timestamp": only_parsed(fields["timestamp"]),
        **{name: only_parsed(fields[name].cast(pa.string())) for name in ("host", "severity", "code", "message")},
        "extra": only_parsed(fields["extra"] if len(fields["extra"]) == count else pa.nulls(count, pa.string())),
        "parse_error": error,
    }
    return pa.RecordBatch.from_arrays([columns[field.name] for field in EVENTS_SCHEMA], schema=EVENTS_SCHEMA)


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
    return {
        "timestamp": ts,
        "host": host,
        "severity": LEVELS.get(level.upper(), level.lower()),
        "code": None if record.get("code") is None else str(record.pop("code")),
        "message": record.pop("message", None) or record.pop("msg", None),
        "extra": json.dumps(record, ensure_ascii=False, sort_keys=True) if record else None,
    }

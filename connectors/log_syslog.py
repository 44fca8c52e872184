"""Syslog entries: RFC 5424 to the letter, and RFC 3164, whose lines carry no year.

RFC 5424 (section 6): the header, then STRUCTURED-DATA (`-` or one or more SD-ELEMENTs, with
`"`, `\\` and `]` escaped by a backslash inside a PARAM-VALUE), then an optional MSG that may
begin with a byte-order mark saying it is UTF-8. The mark is not text and is dropped; the
structured data is kept in `extra` as JSON, `{"sd": {SD-ID: {PARAM-NAME: value}}}`, a name
given more than once inside one element holding a list of its values.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from plantlake.connectors.log_fields import Fields, json_object, scatter
from plantlake.connectors.log_times import UTC_US, TimeRules, Times, parse_timestamps

SYSLOG_SEVERITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
_SD_NAME = r'[^\s=\]"]+'  # SD-NAME: printable US-ASCII but '=', SP, ']' and '"'
_SD_VALUE = r'"(?:[^"\\]|\\.)*"'  # a backslash escapes the character after it
_SD_ELEMENT = rf"\[{_SD_NAME}(?: {_SD_NAME}={_SD_VALUE})*\]"
RFC5424 = (
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<pid>\S+) (?P<msgid>\S+) "
    rf"(?P<sd>-|(?:{_SD_ELEMENT})+)(?: (?P<msg>.*))?$"
)
RFC3164 = (
    r"^<(?P<pri>\d{1,3})>(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
    r"(?P<tag>[^:\[]+)(?:\[\d+\])?: (?P<msg>.*)$"
)
ALARM_CODE = r"\b(?P<code>[A-Z]{1,3}-\d{1,5})\b"
_VERSION_1 = r"^<\d{1,3}>1 "
_HEADER = (None, "ts", "host", "app", "pid", "msgid")  # the fields before STRUCTURED-DATA, after "<PRI>1"
_SD_AND_MSG = rf"(?s)^(?P<sd>(?:{_SD_ELEMENT})+)(?: (?P<msg>.*))?$"
_ELEMENT = re.compile(rf"\[({_SD_NAME})((?: {_SD_NAME}={_SD_VALUE})*)\]", re.DOTALL)
_PARAM = re.compile(rf" ({_SD_NAME})=({_SD_VALUE})", re.DOTALL)
_ESCAPED = re.compile(r'\\(["\\\]])')  # only these three are escapes; any other backslash stays as written


def structured_data(text: str) -> dict[str, dict[str, str | list[str]]]:
    """RFC 5424 STRUCTURED-DATA as {SD-ID: {PARAM-NAME: value}}; an SD-ID given twice (which the RFC
    forbids) has its parameters merged, a PARAM-NAME given twice becomes a list of its values."""
    elements: dict[str, dict[str, str | list[str]]] = {}
    for sd_id, params in _ELEMENT.findall(text):
        element = elements.setdefault(sd_id, {})
        for name, quoted in _PARAM.findall(params):
            value = _ESCAPED.sub(r"\1", quoted[1:-1])
            before = element.get(name)
            element[name] = (
                value if before is None else [*before, value] if isinstance(before, list) else [before, value]
            )
    return elements


def _with_structured_data(extra: pa.Array, app: pa.Array, sd: pa.Array) -> pa.Array:
    """`extra` of the entries that carry structured data rebuilt with it, as JSON."""
    carrying = pc.fill_null(pc.not_equal(sd, "-"), False)
    if not pc.any(carrying).as_py():
        return extra
    rows = pc.indices_nonzero(carrying)
    texts = [
        json.dumps({"app": name, "sd": structured_data(data)}, ensure_ascii=False)
        for name, data in zip(app.take(rows).to_pylist(), sd.take(rows).to_pylist(), strict=True)
    ]
    return pc.replace_with_mask(extra, carrying, pa.array(texts, pa.string()))


def syslog_fields(entries: pa.Array, rules: TimeRules, reference: datetime) -> Fields:
    """Fields of RFC 5424 and RFC 3164 entries; `reference` (when the file was written) gives 3164 its year."""
    count = len(entries)
    is_modern, modern = _rfc5424(entries)
    rest = pc.invert(is_modern)
    legacy = pc.extract_regex(entries.filter(rest), "(?s)" + RFC3164)
    is_legacy = pc.fill_null(scatter(pc.is_valid(legacy), rest, count), False)

    def pick(modern_field: str, legacy_field: str) -> pa.Array:
        return pc.coalesce(modern[modern_field], scatter(pc.struct_field(legacy, legacy_field), rest, count))

    pri = pc.cast(pick("pri", "pri"), pa.int64())
    msgid = modern["msgid"]
    modern_message = pc.replace_substring_regex(modern["msg"], "^\ufeff", "", max_replacements=1)
    modern_message = pc.if_else(pc.equal(modern_message, ""), pa.scalar(None, pa.string()), modern_message)
    legacy_message = pc.struct_field(legacy, "msg")
    legacy_code = scatter(pc.struct_field(pc.extract_regex(legacy_message, ALARM_CODE), "code"), rest, count)
    modern_stamp = modern["ts"]
    modern_times = parse_timestamps(
        pc.if_else(pc.equal(modern_stamp, "-"), pa.scalar(None, pa.string()), modern_stamp), rules
    )
    legacy_times = _rfc3164_times(pc.struct_field(legacy, "ts"), rules, reference)
    app = pc.utf8_trim_whitespace(pick("app", "tag"))
    extra = _with_structured_data(json_object({"app": app}), app, modern["sd"])
    parsed = pc.or_(is_modern, is_legacy)
    return Fields(
        parsed=parsed,
        times=Times(
            pc.coalesce(modern_times.values, scatter(legacy_times.values, rest, count)),
            pc.coalesce(modern_times.flags, scatter(legacy_times.flags, rest, count)),
            pc.coalesce(modern_times.problems, scatter(legacy_times.problems, rest, count)),
        ),
        host=pick("host", "host"),
        severity=pc.take(pa.array(SYSLOG_SEVERITIES), pc.bit_wise_and(pri, 7)),
        code=pc.if_else(is_modern, pc.if_else(pc.equal(msgid, "-"), pa.scalar(None, pa.string()), msgid), legacy_code),
        message=pc.coalesce(modern_message, scatter(legacy_message, rest, count)),
        extra=extra,
        reason=_reason(entries, parsed),
    )


def _reason(entries: pa.Array, parsed: pa.Array) -> pa.Array | str:
    """Why an entry is not syslog (read only where one is not)."""
    if pc.all(parsed).as_py():
        return "not a syslog line"
    return pc.if_else(
        pc.fill_null(pc.match_substring_regex(entries, _VERSION_1), False),
        "an RFC 5424 line whose header or structured data is not as the RFC writes them",
        "not a syslog line (RFC 5424 or RFC 3164)",
    )


def _rfc5424(entries: pa.Array) -> tuple[pa.Array, dict[str, pa.Array]]:
    """Which entries are RFC 5424 lines, and their fields (null for the others).

    Capturing groups cost RE2 several times what a plain match does, so the line is only matched
    against the whole grammar, then split at its single spaces: the header has six fields without
    any. Only where structured data is given is its end found by a regular expression.
    """
    count = len(entries)
    valid = pc.fill_null(pc.match_substring_regex(entries, "(?s)" + RFC5424), False)
    parts = pc.split_pattern(entries.filter(valid), " ", max_splits=6)
    head, tail = pc.list_element(parts, 0), pc.list_element(parts, 6)
    fields = {name: pc.list_element(parts, index) for index, name in enumerate(_HEADER) if name}
    fields["pri"] = pc.utf8_slice_codeunits(head, 1, -2)  # "<165>1"
    fields["sd"] = pc.if_else(pc.starts_with(tail, "-"), "-", pa.scalar(None, pa.string()))
    fields["msg"] = pc.utf8_slice_codeunits(tail, 2)  # after "- "
    given = pc.is_null(fields["sd"])
    if pc.any(given).as_py():
        found = pc.extract_regex(tail.filter(given), _SD_AND_MSG)
        fields["sd"] = pc.replace_with_mask(fields["sd"], given, pc.struct_field(found, "sd"))
        fields["msg"] = pc.replace_with_mask(fields["msg"], given, pc.struct_field(found, "msg"))
    if pc.all(valid).as_py():
        return valid, fields
    return valid, {name: scatter(values, valid, count) for name, values in fields.items()}


def _rfc3164_times(text: pa.Array, rules: TimeRules, reference: datetime) -> Times:
    """RFC 3164 has no year: the file's year, or the one before for dates after the file was written
    (or that only the year before had, such as 29 February)."""
    padded = pc.replace_substring(text, "  ", " 0")  # "Jan  5" -> "Jan 05"
    year_rules = TimeRules(rules.timezone, "%Y %b %d %H:%M:%S", rules.dst)
    this_year = parse_timestamps(pc.binary_join_element_wise(str(reference.year), padded, " "), year_rules)
    future = pc.greater(this_year.values, pa.scalar(reference + timedelta(days=1), UTC_US))
    doubtful = pc.or_(pc.fill_null(future, False), pc.and_(pc.is_null(this_year.values), pc.is_valid(text)))
    if not pc.any(doubtful).as_py():
        return this_year
    year_before = parse_timestamps(
        pc.binary_join_element_wise(
            str(reference.year - 1), pc.if_else(doubtful, padded, pa.scalar(None, pa.string())), " "
        ),
        year_rules,
    )
    earlier = pc.and_(doubtful, pc.is_valid(year_before.values))
    return Times(
        pc.if_else(earlier, year_before.values, this_year.values),
        pc.if_else(earlier, year_before.flags, this_year.flags),
        pc.if_else(earlier, year_before.problems, this_year.problems),
    )

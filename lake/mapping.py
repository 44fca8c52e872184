"""Supplier rows from text to typed columns, as the YAML mapping declares them.

Typing is done a batch at a time in Arrow: numbers are cleaned of thousands separators and
spaces, checked against a pattern and cast; dates are parsed with the declared format. A
value that does not parse, or a required value that is missing, is a `Problem` naming the
line, the column, the value and the reason; its row goes to quarantine, and the rows
without problems go on. Only the few failing values are looked at one by one, to word the
reason. Decimals are rounded half away from zero, as in commerce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plantlake.config import ColumnMapping
from plantlake.connectors.files import LINE, text_bytes

ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
_PATTERNS = {
    "int": r"^[+-]?\d{1,18}(\.0*)?$",
    "decimal": r"^[+-]?\d{1,20}(\.\d{0,18})?$|^[+-]?\.\d{1,18}$",
    "float": r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$",
}
_COMMA_DECIMALS = r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$|^[+-]?\d+,\d+$"
_POINT_DECIMALS = r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$|^[+-]?\d+\.\d+$"


@dataclass(frozen=True)
class Problem:
    """One value that kept its row out of the lake."""

    line: int
    column: str
    value: str | None
    reason: str


@dataclass(frozen=True)
class NumberFormat:
    decimal: str = "."
    thousands: str = ","


def arrow_type(kind: str, scale: int) -> pa.DataType:
    return pa.decimal128(18, scale) if kind == "decimal" else ARROW_TYPES[kind]


def lake_schema(columns: Mapping[str, ColumnMapping]) -> pa.Schema:
    """The typed columns under their lake names; each notes its source column and unit."""
    fields = []
    for source_name, spec in columns.items():
        notes = {"source_column": source_name, **({"unit": spec.unit} if spec.unit else {})}
        fields.append(pa.field(spec.name, arrow_type(spec.type, spec.scale), metadata=notes))
    return pa.schema(fields)


def number_format(
    decimal: str | None, thousands: str | None, sample: pa.RecordBatch | None, numeric_columns: list[str]
) -> NumberFormat:
    """The declared marks, or the decimal mark most numbers in `sample` are written with."""
    if decimal is None:
        comma = point = 0
        for name in numeric_columns:
            if sample is not None and name in sample.schema.names:
                values = sample.column(name)
                comma += pc.sum(pc.fill_null(pc.match_substring_regex(values, _COMMA_DECIMALS), False)).as_py() or 0
                point += pc.sum(pc.fill_null(pc.match_substring_regex(values, _POINT_DECIMALS), False)).as_py() or 0
        decimal = "," if comma > point else "."
    if thousands is None:
        thousands = "." if decimal == "," else ","
    return NumberFormat(decimal, thousands)


def _marks_replaced(text: pa.Array, fmt: NumberFormat) -> pa.Array:
    """The numbers with thousands marks removed and a decimal comma made a point."""
    if all(len(mark.encode()) == 1 for mark in (fmt.thousands, fmt.decimal) if mark):
        return _bytes_replaced(text, fmt.thousands.encode() if fmt.thousands else None, fmt.decimal.encode())
    cleaned = pc.replace_substring(text, fmt.thousands, "") if fmt.thousands else text
    return pc.replace_substring(cleaned, ",", ".") if fmt.decimal == "," else cleaned


def _bytes_replaced(text: pa.Array, dropped: bytes | None, decimal: bytes) -> pa.Array:
    """`_marks_replaced` for one-byte marks, on the UTF-8 bytes at once.

    Arrow's `replace_substring` copies each value piece by piece: two of them took longer
    than parsing the whole CSV. Dropping and swapping ASCII bytes keeps the text valid UTF-8.
    """
    if not len(text):
        return text
    offsets, data = text_bytes(text)
    if dropped is not None:
        keep = data != dropped[0]
        removed = np.concatenate(([0], np.cumsum(~keep, dtype=np.int32)))
        data, offsets = data[keep], offsets - removed[offsets]
    if decimal != b".":
        data = data.copy() if dropped is None else data  # a view of Arrow's buffer until then
        data[data == decimal[0]] = ord(".")
    validity = pc.is_valid(text).buffers()[1] if text.null_count else None
    return pa.Array.from_buffers(
        pa.string(),
        len(text),
        [validity, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)],
        null_count=text.null_count,
    )


def _normalise_number(text: pa.Array, fmt: NumberFormat) -> pa.Array:
    if pc.any(pc.match_substring_regex(text, r"[ \x{00a0}\x{202f}]")).as_py():  # groups written with spaces
        text = pc.replace_substring_regex(text, r"[ \x{00a0}\x{202f}]", "")
    return _marks_replaced(text, fmt)


def _decimals(cleaned: pa.Array, valid: pa.Array, spec: ColumnMapping) -> tuple[pa.Array, pa.Array]:
    """Decimals of the declared scale; values with more places are rounded half away from zero."""
    target = pa.decimal128(18, spec.scale)
    # 256-bit intermediates: room for 20 digits, 18 places and a unit factor
    wide = pc.cast(pc.if_else(valid, cleaned, pa.scalar(None, pa.string())), pa.decimal256(60, 18))
    if spec.factor is not None:
        factor = Decimal(str(spec.factor))
        wide = pc.multiply(wide, pa.scalar(factor).cast(pa.decimal256(38, max(0, -int(factor.as_tuple().exponent)))))
    rounded = pc.round(wide, ndigits=spec.scale, round_mode="half_towards_infinity")
    fits = pc.fill_null(pc.less(pc.abs(rounded), pa.scalar(Decimal(10) ** (18 - spec.scale)).cast(rounded.type)), True)
    return pc.cast(pc.if_else(fits, rounded, pa.scalar(None, rounded.type)), target), pc.and_(valid, fits)


def _numbers(text: pa.Array, spec: ColumnMapping, fmt: NumberFormat) -> tuple[pa.Array, pa.Array]:
    if spec.factor is None and spec.type == "decimal":
        try:  # the usual case: every value as written is a number that fits, and Arrow's cast says so
            return pc.cast(_marks_replaced(text, fmt), arrow_type(spec.type, spec.scale)), _none(len(text))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # find which values do not (or are grouped with spaces), below
    cleaned = _normalise_number(text, fmt)
    valid = pc.fill_null(pc.match_substring_regex(cleaned, _PATTERNS[spec.type]), False)
    if spec.type == "decimal":
        values, valid = _decimals(cleaned, valid, spec)
        return values, pc.and_(pc.is_valid(text), pc.invert(valid))
    usable = pc.if_else(valid, cleaned, pa.scalar(None, pa.string()))
    if spec.type == "int":
        values = pc.cast(pc.replace_substring_regex(usable, r"\.0*$", ""), pa.int64())
    else:
        values = pc.cast(usable, pa.float64())
        values = values if spec.factor is None else pc.multiply(values, spec.factor)
        valid = pc.and_(valid, pc.fill_null(pc.is_finite(values), True))
    return values, pc.and_(pc.is_valid(text), pc.invert(valid))


def _dates(text: pa.Array, date_format: str) -> tuple[pa.Array, pa.Array]:
    """Each distinct value parsed once: a batch holds few dates many times (a year has 365), and
    hashing a value costs a third of parsing it."""
    encoded = pc.dictionary_encode(text)
    distinct = encoded.dictionary
    parsed = _strict_dates(distinct, date_format)
    if date_format != "%Y-%m-%d" and parsed.null_count:
        parsed = pc.coalesce(parsed, _strict_dates(distinct, "%Y-%m-%d"))
    dates = parsed.take(encoded.indices)
    return dates, pc.and_(pc.is_valid(text), pc.is_null(dates))


def _strict_dates(text: pa.Array, date_format: str) -> pa.Array:
    """The values as dates of `date_format`, null where they are none. Arrow's parser takes a day
    the month lacks into the first days of the next month (31.02. as 03.03.), and a year of two
    digits for `%Y` as one of the first century: a value parsed as such a day or year that does
    not read back as it was written is parsed again by Python's, which refuses both and takes
    "1.3." as 01.03."""
    parsed = pc.cast(pc.strptime(text, format=date_format, unit="s", error_is_null=True), pa.date32())
    odd = pc.or_(pc.less_equal(pc.day(parsed), 3), pc.less(pc.year(parsed), 1000))
    suspect = pc.indices_nonzero(pc.fill_null(odd, False))
    if not len(suspect):
        return parsed
    differs = pc.not_equal(pc.strftime(parsed.take(suspect), format=date_format), text.take(suspect))
    again = suspect.filter(differs).to_pylist()
    if not again:
        return parsed
    dates = parsed.to_pylist()
    for index in again:
        try:
            dates[index] = datetime.strptime(text[index].as_py(), date_format).date()  # noqa: DTZ007 - no zone
        except ValueError:
            dates[index] = None
    return pa.array(dates, pa.date32())


def _one_by_one(text: pa.Array, spec: ColumnMapping, fmt: NumberFormat, date_format: str) -> tuple[pa.Array, pa.Array]:
    """For types with many spellings (timestamps): each value parsed in Python."""
    values, invalid = [], []
    for item in text.to_pylist():
        try:
            value = (
                None
                if item is None
                else parse_value(item, spec.type, spec.scale, fmt.decimal, date_format, fmt.thousands)
            )
            values.append(_converted(value, spec))
            invalid.append(False)
        except ValueError:
            values.append(None)
            invalid.append(True)
    return pa.array(values, arrow_type(spec.type, spec.scale)), pa.array(invalid, pa.bool_())


def _converted(value: Any, spec: ColumnMapping) -> Any:
    if value is None or spec.factor is None:
        return value
    if spec.type == "float":
        return value * spec.factor
    return (value * Decimal(str(spec.factor))).quantize(Decimal(1).scaleb(-spec.scale), ROUND_HALF_UP)


_FALSE = pa.repeat(pa.scalar(False), 1 << 17)


def _none(count: int) -> pa.Array:
    """`count` times False (a slice of one array made once: batches ask for it many times)."""
    return _FALSE.slice(0, count) if count <= len(_FALSE) else pa.repeat(pa.scalar(False), count)


def type_column(text: pa.Array, spec: ColumnMapping, fmt: NumberFormat, date_format: str) -> tuple[pa.Array, pa.Array]:
    """(typed values, mask of values that did not parse)."""
    if spec.type == "string":
        return text, _none(len(text))
    if spec.type in _PATTERNS:
        try:
            return _numbers(text, spec, fmt)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return _one_by_one(text, spec, fmt, date_format)  # the odd value Arrow cannot cast, found and named
    if spec.type == "date":
        return _dates(text, date_format)
    return _one_by_one(text, spec, fmt, date_format)


def type_batch(
    batch: pa.RecordBatch, columns: Mapping[str, ColumnMapping], fmt: NumberFormat, date_format: str
) -> tuple[pa.RecordBatch, list[Problem]]:
    """The rows whose every mapped value parses, typed under the lake names, and the problems of the others."""
    schema = lake_schema(columns)
    typed, problems = [], []
    bad_rows = _none(batch.num_rows)
    lines = batch.column(LINE)
    for source_name, spec in columns.items():
        text = batch.column(source_name) if source_name in batch.schema.names else pa.nulls(batch.num_rows, pa.string())
        values, invalid = type_column(text, spec, fmt, date_format)
        missing = pc.is_null(text) if spec.required else _none(batch.num_rows)
        failed = pc.or_(invalid, missing)
        if not pc.any(failed).as_py():
            typed.append(values)
            continue
        for index in pc.indices_nonzero(failed).to_pylist():
            value = text[index].as_py()
            problems.append(
                Problem(lines[index].as_py(), source_name, value, _reason(source_name, value, spec, fmt, date_format))
            )
        bad_rows = pc.or_(bad_rows, failed)
        typed.append(values)
    typed.append(lines)
    result = pa.RecordBatch.from_arrays(typed, schema=pa.schema([*schema, pa.field(LINE, pa.int64())]))
    return (result.filter(pc.invert(bad_rows)) if problems else result), problems


def _reason(column: str, value: str | None, spec: ColumnMapping, fmt: NumberFormat, date_format: str) -> str:
    if value is None:
        return "required value is missing"
    try:
        parse_value(value, spec.type, spec.scale, fmt.decimal, date_format, fmt.thousands)
    except ValueError as exc:
        return f"column {column!r} as {spec.type}: {exc}"
    return f"column {column!r} as {spec.type}: {value!r} does not fit"


def _number(text: str, decimal_mark: str, thousands: str) -> str:
    cleaned = text.replace(" ", "").replace("\u00a0", "").replace("\u202f", "")
    cleaned = cleaned.replace(thousands, "") if thousands else cleaned
    cleaned = cleaned.replace(",", ".") if decimal_mark == "," else cleaned
    try:
        Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number (decimal mark {decimal_mark!r})") from None
    return cleaned


def parse_value(
    text: str, kind: str, scale: int, decimal_mark: str, date_format: str, thousands: str | None = None
) -> Any:
    """One text value as the declared type; raises ValueError naming the value."""
    thousands = ("." if decimal_mark == "," else ",") if thousands is None else thousands
    if kind == "string":
        return text
    if kind in ("int", "decimal", "float"):
        number = Decimal(_number(text, decimal_mark, thousands))
        if kind == "int" and number != number.to_integral_value():
            raise ValueError(f"{text!r} is not a whole number")
        if kind == "decimal" and abs(number) >= Decimal(10) ** (18 - scale):
            raise ValueError(f"{text!r} does not fit a decimal of 18 digits with {scale} places")
        return (
            int(number)
            if kind == "int"
            else float(number)
            if kind == "float"
            else number.quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP)
        )
    if kind == "date":
        for pattern in (date_format, "%Y-%m-%d"):
            try:
                return datetime.strptime(text, pattern).date()  # noqa: DTZ007 - a date has no zone
            except ValueError:
                continue
        raise ValueError(f"{text!r} is not a date in the form {date_format}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 timestamp") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

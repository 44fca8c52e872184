"""Supplier rows from text to typed columns, as the YAML mapping declares them.

A value that does not parse, or a required value that is missing, sends its row to
quarantine with the file, the line, the column, the value and the reason.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import pyarrow as pa

from connectors.files import LINE
from lake.quarantine import Rejection

_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")
ARROW_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32(),
               "timestamp": pa.timestamp("us", tz="UTC")}  # fmt: skip


class ColumnSpec(Protocol):
    """How one source column lands: the config's ColumnMapping has this shape."""

    name: str
    type: str
    required: bool
    scale: int


def arrow_type(kind: str, scale: int) -> pa.DataType:
    return pa.decimal128(18, scale) if kind == "decimal" else ARROW_TYPES[kind]


def _number(text: str, decimal_mark: str) -> str:
    thousands = "." if decimal_mark == "," else ","
    cleaned = text.replace(" ", "").replace("\u00a0", "").replace(thousands, "")
    if decimal_mark == ",":
        cleaned = cleaned.replace(",", ".")
    if not _NUMBER.match(cleaned):
        raise ValueError(f"{text!r} is not a number (decimal mark {decimal_mark!r})")
    return cleaned


def parse_value(text: str, kind: str, scale: int, decimal_mark: str, date_format: str) -> Any:
    """One text value as the declared type; raises ValueError naming the value."""
    if kind == "string":
        return text
    if kind == "int":
        number = _number(text, decimal_mark)
        if "." in number and Decimal(number) != Decimal(number).to_integral_value():
            raise ValueError(f"{text!r} is not a whole number")
        return int(Decimal(number))
    if kind == "decimal":
        try:
            return Decimal(_number(text, decimal_mark)).quantize(Decimal(1).scaleb(-scale))
        except InvalidOperation:
            raise ValueError(f"{text!r} does not fit a decimal with {scale} places") from None
    if kind == "float":
        return float(_number(text, decimal_mark))
    if kind == "date":
        for pattern in (date_format, "%Y-%m-%d"):
            try:
                return datetime.strptime(text, pattern).date()
            except ValueError:
                continue
        raise ValueError(f"{text!r} is not a date in the form {date_format}")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def apply_mapping(
    rows: list[dict[str, Any]],
    columns: dict[str, ColumnSpec],
    *,
    table_name: str,
    source: str,
    decimal_mark: str,
    date_format: str,
    file_column: str,
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """Typed rows under the lake's column names, and a rejection per bad value."""
    good: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    for row in rows:
        typed: dict[str, Any] = {}
        problems: list[Rejection] = []
        for source_name, spec in columns.items():
            text = row.get(source_name)
            if text is None:
                if spec.required:
                    problems.append(_rejection(row, table_name, source, file_column, source_name, None,
                                               "required value is missing"))  # fmt: skip
                typed[spec.name] = None
                continue
            try:
                typed[spec.name] = parse_value(text, spec.type, spec.scale, decimal_mark, date_format)
            except ValueError as exc:
                problems.append(_rejection(row, table_name, source, file_column, source_name, text,
                                           f"column {source_name!r} as {spec.type}: {exc}"))  # fmt: skip
        if problems:
            rejected.extend(problems)
        else:
            typed.update({key: value for key, value in row.items() if key.startswith("_")})
            good.append(typed)
    return good, rejected


def _rejection(row: dict[str, Any], table_name: str, source: str, file_column: str, column: str,
               value: str | None, reason: str) -> Rejection:  # fmt: skip
    record = {key: value for key, value in row.items() if not key.startswith("_") or key in (LINE, file_column)}
    return Rejection(
        table_name=table_name, check="mapping", reason=reason, record=record, source=source,
        file=row.get(file_column), row=str(row.get(LINE)), field=column, value=value,
    )  # fmt: skip

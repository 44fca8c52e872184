"""Check an ERP table's declaration against the live source before anything lands.

A key, cursor or filter column that does not exist, or a look-back that does not fit the
cursor's type, would otherwise land bronze and fail later (in silver, or on the next run),
with a message that does not point at the YAML. Every problem names its config key.
"""

from __future__ import annotations

import difflib

import pyarrow as pa
import sqlalchemy as sa

from plantlake.config import ConfigError, ErpTable
from plantlake.connectors import sql


def _missing(
    key: str, names: list[str], present: list[str], table: str, absent: str = "does not exist in"
) -> list[str]:
    problems = []
    for name in names:
        if name not in present:
            close = difflib.get_close_matches(name, present, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            problems.append(f'{key}: column "{name}" {absent} "{table}"{hint}')
    return problems


def _lookback_problem(key: str, table: ErpTable, cursor_type: pa.DataType) -> str | None:
    """A duration for a time cursor, a number for a numeric one, nothing for any other."""
    value = table.lookback
    if value is None:
        return None
    timed = pa.types.is_timestamp(cursor_type) or pa.types.is_date(cursor_type)
    numeric = pa.types.is_integer(cursor_type) or pa.types.is_floating(cursor_type) or pa.types.is_decimal(cursor_type)
    if timed and isinstance(value, str):
        return None
    if numeric and not isinstance(value, str):
        return None
    kind = "a time" if timed else "a numeric" if numeric else f"a {cursor_type} (neither time nor number)"
    wanted = (
        "a duration such as '15m', '2h' or '1d'"
        if timed
        else "a number"
        if numeric
        else "no look-back (leave it out, or choose a time or numeric cursor)"
    )
    return f"{key}.lookback: {value!r} does not fit the cursor {table.cursor!r}, {kind} column; give {wanted}"


def check_table(source_table: sa.Table, table: ErpTable, columns: list[str]) -> None:
    """Raise a ConfigError naming every config key that does not fit the source table.

    `columns` are those that will land (after include and exclude): expectations and
    references must name one of them.
    """
    key, present = table.config_key, list(source_table.c.keys())
    problems = _missing(f"{key}.primary_key", table.primary_key, present, table.name)
    problems += _missing(f"{key}.cursor", [table.cursor] if table.cursor else [], present, table.name)
    for field in ("include", "exclude", "personal_data"):
        problems += _missing(f"{key}.{field}", getattr(table, field), present, table.name)
    problems += _missing(f"{key}.where", [condition.column for condition in table.where], present, table.name)
    landed = [name for name in columns if name in present]
    not_landed = "is not a landed column of"
    expected = list(dict.fromkeys(table.expect.columns()))
    problems += _missing(f"{key}.expect", expected, landed, table.name, not_landed)
    problems += _missing(f"{key}.references", list(table.references), landed, table.name, not_landed)
    if table.cursor in present:
        problem = _lookback_problem(key, table, sql.arrow_type(source_table.c[table.cursor].type))
        problems += [problem] if problem else []
    if problems:
        raise ConfigError("; ".join(problems) + f"; the columns of {table.name!r} are {present}")

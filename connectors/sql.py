"""Read database tables into Arrow record batches through SQLAlchemy.

Rows stream from a server-side cursor in batches of `batch_rows`, so memory stays bounded
by the batch size and not by the table. Identifiers come from reflection and are always
quoted by the dialect; values such as the watermark are bound parameters, never pasted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa


class SourceTableError(LookupError):
    """The table or column named in the configuration does not exist in the source."""


def reflect_table(engine: sa.Engine, name: str) -> sa.Table:
    try:
        return sa.Table(name, sa.MetaData(), autoload_with=engine)
    except sa.exc.NoSuchTableError:
        raise SourceTableError(
            f"table {name!r} not found in {engine.url.render_as_string(hide_password=True)}; "
            "check the table name in the config (names are case-sensitive on some databases)"
        ) from None


def arrow_type(sql_type: sa.types.TypeEngine) -> pa.DataType:
    """The Arrow type that holds a column's values without loss."""
    if isinstance(sql_type, sa.Boolean):
        return pa.bool_()
    if isinstance(sql_type, sa.Integer):
        return pa.int64()
    if isinstance(sql_type, sa.Numeric) and not isinstance(sql_type, sa.Float):
        precision = sql_type.precision or 38
        scale = sql_type.scale if sql_type.scale is not None else 9
        return pa.decimal128(precision, scale)
    if isinstance(sql_type, sa.Float):
        return pa.float64()
    if isinstance(sql_type, sa.DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(sql_type, sa.Date):
        return pa.date32()
    if isinstance(sql_type, sa.LargeBinary):
        return pa.binary()
    return pa.string()


def arrow_schema(table: sa.Table) -> pa.Schema:
    return pa.schema([pa.field(column.name, arrow_type(column.type)) for column in table.columns])


def _as_utc(value: Any) -> Any:
    """Naive timestamps from the ERP are taken as UTC; aware ones are converted to UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


def _column(values: list[Any], field: pa.Field) -> pa.Array:
    if pa.types.is_timestamp(field.type):
        values = [_as_utc(value) for value in values]
    elif pa.types.is_string(field.type):
        values = [value if value is None or isinstance(value, str) else str(value) for value in values]
    return pa.array(values, type=field.type)


def _cursor_column(table: sa.Table, cursor: str) -> sa.Column:
    if cursor not in table.c:
        raise SourceTableError(
            f"cursor column {cursor!r} not found in table {table.name!r}; it has {list(table.c.keys())}"
        )
    return table.c[cursor]


def max_cursor(engine: sa.Engine, table: sa.Table, cursor: str) -> Any:
    """The newest cursor value now; a read bounded by it has a known end before it starts."""
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.max(_cursor_column(table, cursor)))).scalar_one()


def read_batches(
    engine: sa.Engine,
    table: sa.Table,
    cursor: str | None = None,
    since: Any = None,
    until: Any = None,
    batch_rows: int = 50_000,
) -> Iterator[pa.RecordBatch]:
    """Stream `table` in batches; with `cursor`, only rows with since <= cursor <= until.

    The lower bound is inclusive so rows committed late with the watermark's own cursor
    value are read again; the lake merges on the key, so a re-read row is not doubled.
    """
    schema = arrow_schema(table)
    query = sa.select(table)
    if cursor is not None:
        column = _cursor_column(table, cursor)
        if since is not None:
            query = query.where(column >= since)
        if until is not None:
            query = query.where(column <= until)
        query = query.order_by(column)
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=batch_rows).execute(query)
        for rows in result.partitions(batch_rows):
            columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
            yield pa.RecordBatch.from_arrays(
                [_column(list(values), field) for values, field in zip(columns, schema, strict=True)], schema=schema
            )


def count_rows(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

"""Read database tables into Arrow record batches.

PostgreSQL is read through ADBC (binary COPY decoded to Arrow in C) and MariaDB/MySQL through
connectorx (its binary protocol decoded to Arrow in Rust; see `connectors.sql_fast`); every other SQLAlchemy
dialect streams rows from a server-side cursor. Either way rows arrive in batches, so memory
is bounded by the batch size and not by the table, and every batch is conformed to one
schema derived from the reflected table.

Queries are built with SQLAlchemy: identifiers come from reflection and are quoted by the
dialect; values from the configuration (row filters, watermarks) are bound parameters, or,
for the fast paths, literals rendered by the dialect's own escaping.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import CITEXT

from plantlake.connectors import sql_fast
from plantlake.connectors.arrow_types import conform, unscale

# The largest scale connectorx decodes exactly; wider decimals travel as text and are parsed in Arrow.
_FAST_DECIMAL_SCALE, _DEFAULT_DECIMAL = 10, (38, 10)
_OPERATORS: dict[str, Callable[[sa.ColumnElement, Any], sa.ColumnElement]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda column, value: column.in_(value),
    "not in": lambda column, value: column.not_in(value),
    "is null": lambda column, _: column.is_(None),
    "is not null": lambda column, _: column.is_not(None),
}

Condition = tuple[str, str, Any]
"""(column, operator, value) of a row filter."""


class SourceTableError(LookupError):
    """The table or column named in the configuration does not exist in the source."""


PRIMARY_KEY = "plantlake_primary_key"  # where a reflected table keeps its primary key's columns


def reflect_table(engine: sa.Engine, name: str) -> sa.Table:
    """The table's columns, their types and its primary key (only those: two catalog queries
    instead of a full reflection)."""
    inspector = sa.inspect(engine)
    try:
        columns = inspector.get_columns(name)
    except sa.exc.NoSuchTableError:
        raise SourceTableError(
            f"table {name!r} not found in {engine.url.render_as_string(hide_password=True)}; "
            "check the table name in the config (names are case-sensitive on some databases)"
        ) from None
    key = inspector.get_pk_constraint(name).get("constrained_columns") or []
    table = sa.Table(name, sa.MetaData(), *[sa.Column(c["name"], c["type"], nullable=c["nullable"]) for c in columns])
    table.info[PRIMARY_KEY] = list(key)  # in the order of its index
    return table


def arrow_type(sql_type: sa.types.TypeEngine) -> pa.DataType:
    """The Arrow type that holds a column's values without loss; unknown types become text."""
    if isinstance(sql_type, sa.Boolean):
        return pa.bool_()
    if isinstance(sql_type, sa.Integer):
        return pa.int64()
    if isinstance(sql_type, sa.Numeric) and not isinstance(sql_type, sa.Float):
        if sql_type.precision is None:
            return pa.decimal128(*_DEFAULT_DECIMAL)
        return pa.decimal128(sql_type.precision, sql_type.scale or 0)
    if isinstance(sql_type, sa.Float):
        return pa.float64()
    if isinstance(sql_type, sa.DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(sql_type, sa.Date):
        return pa.date32()
    if isinstance(sql_type, sa.LargeBinary):
        return pa.binary()
    return pa.string()


def _scaled_decimal(column: sa.Column) -> pa.DataType | None:
    """Decimals of up to 18 digits travel as integers scaled by 10**scale: exact, and far cheaper
    to decode than the database's own decimal format. Returns the decimal type they stand for."""
    target = arrow_type(column.type)
    if (
        pa.types.is_decimal(target)
        and isinstance(column.type, sa.Numeric)
        and column.type.precision is not None
        and target.precision <= 18
    ):
        return target
    return None


def _travels_as_text(column: sa.ColumnElement[Any]) -> bool:
    """Types the fast paths cannot decode exactly (JSON, UUID, arrays, wide decimals...) are read as
    text, and so are text types of the database's own making (an enum, an extension's such as
    citext), which ADBC's table of PostgreSQL's built-in types does not name (see `sql_fast`)."""
    target = arrow_type(column.type)
    if pa.types.is_decimal(target):
        return target.scale > _FAST_DECIMAL_SCALE
    if pa.types.is_string(target):
        return not isinstance(column.type, sa.String) or isinstance(column.type, sa.Enum | CITEXT)
    return False


@dataclass(frozen=True)
class TableRead:
    """What to read of one source table: which columns, which rows, which cursor window."""

    table: sa.Table
    columns: list[str]
    conditions: list[Condition] = field(default_factory=list)
    cursor: str | None = None
    since: Any = None
    until: Any = None
    key: list[str] = field(default_factory=list)  # rows in this order, if it is the table's primary key

    def column(self, name: str) -> sa.Column:
        if name not in self.table.c:
            raise SourceTableError(
                f"column {name!r} not found in table {self.table.name!r}; it has {list(self.table.c.keys())}"
            )
        return self.table.c[name]

    def scaled(self) -> dict[str, pa.DataType]:
        """Columns the fast path reads as scaled integers, and the decimal type of each."""
        found = {name: _scaled_decimal(self.column(name)) for name in self.columns}
        return {name: decimal for name, decimal in found.items() if decimal is not None}

    def select(self, fast: bool = False) -> sa.Select:
        """The query; `fast` reads small decimals as scaled integers and what the fast paths cannot decode as text.

        Rows come in `key` order where the source's primary key is that key: its index serves the
        order at little cost (a scan of a table in insertion order returns rows out of key order
        wherever rows were updated), and files landed in key order hold narrow key ranges, which
        silver needs to link them and merges need to find few files. Other keys are not ordered
        by: the database would sort the whole read.
        """
        selected: list[sa.ColumnElement] = [self.column(name) for name in self.columns]
        if fast:
            scaled = self.scaled()
            selected = [
                sa.cast(c * 10 ** scaled[c.name].scale, sa.BigInteger).label(c.name)
                if c.name in scaled
                else sa.cast(c, sa.Text).label(c.name)
                if _travels_as_text(c)
                else c
                for c in selected
            ]
        query = sa.select(*selected)
        for name, op, value in self.conditions:
            query = query.where(_OPERATORS[op](self.column(name), value))
        if self.cursor is not None:
            cursor = self.column(self.cursor)
            if self.since is not None:
                query = query.where(cursor >= self.since)
            if self.until is not None:
                query = query.where(cursor <= self.until)
        if self.key and self.key == self.table.info.get(PRIMARY_KEY):
            query = query.order_by(*(self.column(name) for name in self.key))
        return query


def source_schema(table: sa.Table, columns: list[str], timezone: str) -> pa.Schema:
    """The lake schema of the selected columns; each field notes its source type (and zone)."""
    fields = []
    for name in columns:
        column = table.c[name]
        metadata = {"source_type": str(column.type)}
        if isinstance(column.type, sa.DateTime):
            metadata["source_timezone"] = "as stored" if column.type.timezone else timezone
        fields.append(pa.field(name, arrow_type(column.type), metadata=metadata))
    return pa.schema(fields)


def max_cursor(engine: sa.Engine, table: sa.Table, cursor: str) -> Any:
    """The newest cursor value now; a read bounded by it has a known end before it starts."""
    read = TableRead(table, [cursor])
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.max(read.column(cursor)))).scalar_one()


def count_rows(engine: sa.Engine, table: sa.Table, conditions: list[Condition] | None = None) -> int:
    query = TableRead(table, [], conditions or []).select().with_only_columns(sa.func.count()).select_from(table)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def read_batches(
    engine: sa.Engine, read: TableRead, schema: pa.Schema, timezone: str, batch_rows: int = 100_000, fast: bool = True
) -> Iterator[pa.RecordBatch]:
    """Stream the rows of `read` as record batches of `schema`.

    The cursor's lower bound is inclusive, so rows committed late with the watermark's own
    value are read again; the lake drops rows it already holds.
    """
    batches: Iterator[pa.RecordBatch]
    if fast and sql_fast.supports(engine):
        query = sql_fast.render(read.select(fast=True), engine)
        batches = (unscale(batch, read.scaled()) for batch in sql_fast.stream(engine, query, batch_rows))
    else:
        batches = _stream_rows(engine, read.select(), schema, batch_rows)
    for batch in batches:
        yield conform(batch, schema, timezone, read.table.name)


def _raw_type(values: list[Any], target: pa.DataType) -> pa.DataType:
    """Timestamps arrive naive or zoned as the database keeps them; `conform` makes them UTC."""
    if pa.types.is_timestamp(target):
        first = next((value for value in values if value is not None), None)
        zoned = isinstance(first, datetime) and first.tzinfo is not None
        return pa.timestamp("us", tz="UTC") if zoned else pa.timestamp("us")
    return target


def _as_text(values: list[Any]) -> list[Any]:
    """Values of text columns as text; JSON documents the driver parsed are written back as JSON."""
    return [
        value
        if value is None or isinstance(value, str)
        else json.dumps(value, ensure_ascii=False)
        if isinstance(value, dict | list)
        else str(value)
        for value in values
    ]


def _stream_rows(engine: sa.Engine, query: sa.Select, schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=batch_rows).execute(query)
        for rows in result.partitions(batch_rows):
            columns = [list(values) for values in zip(*rows, strict=True)] if rows else [[] for _ in schema]
            arrays = []
            for values, target in zip(columns, schema, strict=True):
                values = _as_text(values) if pa.types.is_string(target.type) else values
                arrays.append(pa.array(values, type=_raw_type(values, target.type)))
            yield pa.RecordBatch.from_arrays(arrays, names=schema.names)

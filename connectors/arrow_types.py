"""Bring a batch as a driver delivered it to the schema the lake keeps.

Drivers differ: connectorx widens decimals to (38, 10), ADBC hands out PostgreSQL's numeric as
text, both give naive timestamps,
SQLAlchemy rows give Python objects. `conform` casts each column to its target type, turns
timestamps into UTC (naive ones are read in the source's zone), checks text is valid UTF-8,
and names the table and column when a value does not fit.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


class ConversionError(ValueError):
    """A source value does not fit the type the lake keeps for its column."""


def to_utc(column: pa.Array | pa.ChunkedArray, timezone: str) -> pa.Array | pa.ChunkedArray:
    """Timestamps as UTC; naive values are local times of `timezone` (a DST gap or overlap takes the earlier)."""
    if column.type.tz is None and timezone != "UTC":
        column = pc.assume_timezone(column, timezone, ambiguous="earliest", nonexistent="earliest")
    return column.cast(pa.timestamp("us", tz="UTC"))


def unscale(batch: pa.RecordBatch, decimals: dict[str, pa.DataType]) -> pa.RecordBatch:
    """Integers that stand for decimals scaled by 10**scale, as those decimals (no arithmetic:
    a 128-bit decimal is its unscaled integer, so the integer's bits are reinterpreted)."""
    for name, decimal in decimals.items():
        index = batch.schema.get_field_index(name)
        unscaled = batch.column(index).cast(pa.decimal128(38, 0))
        value = pa.Array.from_buffers(decimal, len(unscaled), unscaled.buffers(), offset=unscaled.offset)
        batch = batch.set_column(index, name, value)
    return batch


def _conform_column(column: pa.Array, target: pa.Field, timezone: str) -> pa.Array:
    if pa.types.is_timestamp(target.type) and pa.types.is_timestamp(column.type):
        return to_utc(column, timezone)
    if column.type != target.type:
        column = column.cast(target.type, safe=True)
    if pa.types.is_string(target.type):
        column.validate(full=True)  # raises on invalid UTF-8
    return column


def conform(batch: pa.RecordBatch, schema: pa.Schema, timezone: str, table: str) -> pa.RecordBatch:
    """`batch` with the columns of `schema`, in its order and types."""
    columns = []
    for target in schema:
        try:
            columns.append(_conform_column(batch.column(target.name), target, timezone))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ConversionError(
                f"table {table!r}, column {target.name!r}: values of type {batch.column(target.name).type} "
                f"do not fit {target.type} ({exc}); check the column's type in the source"
            ) from exc
    return pa.RecordBatch.from_arrays(columns, schema=schema)

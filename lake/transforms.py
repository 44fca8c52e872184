"""From bronze rows to silver rows, per kind of source. Pure functions over Arrow tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from plantlake.config import ColumnMapping
from plantlake.config.sources import SUPPLIER_COLUMN
from plantlake.connectors.files import LINE
from plantlake.lake.deletes import DELETED_FIELD
from plantlake.lake.layout import INGESTED_AT, RUN_ID, SOURCE, constant
from plantlake.lake.mapping import lake_schema
from plantlake.lake.quarantine import Rejection
from plantlake.lake.silver import latest_per_key

FILE, FILE_HASH, FILE_MODIFIED = "_file", "_file_hash", "_file_modified"
SUPPLIER = SUPPLIER_COLUMN

SENSOR_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("node_id", pa.string(), nullable=False),
        pa.field("machine_id", pa.string()),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("value_int", pa.int64()),
        pa.field("value_bool", pa.bool_()),
        pa.field("value_text", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("status_code", pa.int64(), nullable=False),
        pa.field("server_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
SENSOR_KEYS = ["source", "node_id", "timestamp"]

EVENT_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("file_id", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line_number", pa.int64(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("machine_id", pa.string()),
        pa.field("host", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("code", pa.string()),
        pa.field("message", pa.string()),
        pa.field("extra", pa.string()),
        pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("dst_flag", pa.string()),  # added later: null in rows merged before
        pa.field("invalid_bytes", pa.int64()),
    ]
)
EVENT_KEYS = ["source", "file_id", "line_number"]


def erp_rows(bronze: pa.Table, primary_key: list[str], cursor: str | None) -> pa.Table:
    """The newest version of each row by primary key, without the bronze bookkeeping."""
    table = bronze.drop_columns([RUN_ID, SOURCE])
    newest = latest_per_key(table, primary_key, [column for column in (cursor, INGESTED_AT) if column])
    return newest.append_column(DELETED_FIELD, pa.nulls(newest.num_rows, DELETED_FIELD.type))


def with_missing_columns(table: pa.Table, schema: pa.Schema, derived: tuple[str, ...] = ()) -> pa.Table:
    """`table` with the columns of `schema` it lacks added as nulls: bronze landed before a column
    existed (a reading's value_int, an event's dst_flag). Columns in `derived` are made later."""
    for field in schema:
        if field.name not in table.column_names and field.name not in derived:
            table = table.append_column(field.name, pa.nulls(table.num_rows, field.type))
    return table


def sensor_rows(bronze: dict[str, pa.Table]) -> pa.Table:
    """Long-form readings of every OPC-UA source: one row per tag and timestamp."""
    parts = []
    for table in bronze.values():
        if table.num_rows == 0:
            continue
        renamed = table.rename_columns({"source_timestamp": "timestamp", SOURCE: "source"})
        parts.append(with_missing_columns(renamed, SENSOR_SCHEMA).select(SENSOR_SCHEMA.names).cast(SENSOR_SCHEMA))
    combined = pa.concat_tables(parts) if parts else SENSOR_SCHEMA.empty_table()
    return latest_per_key(combined, SENSOR_KEYS, [INGESTED_AT])


@dataclass(frozen=True)
class Machines:
    """A log source's `machine_map`: host as the log writes it -> machine id of ERP and OPC-UA."""

    names: dict[str, str]
    ignore_case: bool = True

    def of(self, hosts: pa.Array) -> tuple[pa.Array, pa.Array]:
        """The machine id of each host (the host itself where the map names none), and where that was.
        Without a map every host is its own machine id, and none is counted as unmapped."""
        if not self.names:
            return hosts, pa.repeat(pa.scalar(False), len(hosts))
        keys = [host.lower() for host in self.names] if self.ignore_case else list(self.names)
        found = pc.index_in(pc.utf8_lower(hosts) if self.ignore_case else hosts, value_set=pa.array(keys, pa.string()))
        machines = pc.take(pa.array(list(self.names.values()), pa.string()), found)
        return pc.coalesce(machines, hosts), pc.and_(pc.is_valid(hosts), pc.is_null(found))


def event_rows(
    bronze: dict[str, pa.Table], machines: dict[str, Machines], unmapped: Counter[tuple[str, str]] | None = None
) -> tuple[pa.Table, list[Rejection]]:
    """Parsed log events with the machine id the ERP and OPC-UA use; unparsed entries rejected.

    `unmapped` counts, per bronze table and host, the events whose host the source's map does not name.
    """
    parts, rejections = [], []
    for name, table in bronze.items():
        table = with_missing_columns(table, EVENT_SCHEMA, derived=("source", "machine_id"))
        failed = pc.is_valid(table["parse_error"])
        for row in (
            table.filter(failed).select([SOURCE, "source_file", "line_number", "raw", "parse_error"]).to_pylist()
        ):
            rejections.append(
                Rejection(
                    table_name="silver.machine_events",
                    check="parse",
                    reason=row["parse_error"],
                    record={"raw": row["raw"]},
                    source=row[SOURCE],
                    file=row["source_file"],
                    row=str(row["line_number"]),
                    field="raw",
                    value=row["raw"][:500],
                )
            )
        good = table.filter(pc.invert(failed))
        hosts = good["host"].combine_chunks()
        machine, missing = machines.get(name, Machines({})).of(hosts)
        if unmapped is not None and pc.any(missing).as_py():
            for counted in pc.value_counts(hosts.filter(missing)).to_pylist():
                unmapped[(name, counted["values"])] += counted["counts"]
        good = good.rename_columns({SOURCE: "source"}).append_column("machine_id", machine)
        parts.append(good.select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA))
    table = pa.concat_tables(parts) if parts else EVENT_SCHEMA.empty_table()
    return latest_per_key(table, EVENT_KEYS, [INGESTED_AT]), rejections


def supplier_schema(columns: Mapping[str, ColumnMapping]) -> pa.Schema:
    return pa.schema(
        [
            *lake_schema(columns),
            pa.field(SUPPLIER, pa.string()),
            pa.field(FILE, pa.string()),
            pa.field(LINE, pa.int64()),
            pa.field(FILE_MODIFIED, pa.timestamp("us", tz="UTC")),
            pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC")),
        ]
    )


def supplier_rows(bronze: pa.Table, columns: Mapping[str, ColumnMapping], source: str) -> pa.Table:
    """One supplier's typed bronze rows in the target's columns, named by the supplier."""
    schema = supplier_schema(columns)
    landed = bronze.drop_columns([SUPPLIER]) if SUPPLIER in bronze.column_names else bronze  # null in older files
    named = landed.append_column(SUPPLIER, constant(source, pa.string(), bronze.num_rows))
    return named.select(schema.names).cast(schema)


def combine_suppliers(parts: list[pa.Table], key: list[str], schema: pa.Schema) -> pa.Table:
    """All suppliers of one target in one table; per key, the row of the newest file wins."""
    parts = [part for part in parts if part.num_rows]
    if not parts:
        return schema.empty_table()
    combined = pa.concat_tables(parts, promote_options="default")
    return latest_per_key(combined, key, [INGESTED_AT, FILE_MODIFIED, LINE])

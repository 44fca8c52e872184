"""A small lake shaped like the demo's, for the catalog tests: an ERP table in bronze and silver (one
row deleted in the source), sensor readings, a gold model with units and two versions of a window,
a quarantined row and two quality checks; and the table infos the assets would give."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from plantlake.lake import delta, quarantine
from plantlake.lake.catalog import TableInfo
from plantlake.lake.gold import DEFINITION, FEATURE_TIME, KNOWN_AT, ROW_HASH, SHAPE, VERSION_NOTES
from plantlake.lake.layout import Lake
from plantlake.quality import results

GOLD = "gold.machine_hour_features"
UNIT = "degC"
HOUR = datetime(2026, 1, 11, 10, tzinfo=UTC)
UTC_US = pa.timestamp("us", tz="UTC")


def _customers(deleted: bool) -> pa.Table:
    fields = [
        pa.field("id", pa.int64(), metadata={"source_type": "INTEGER"}),
        pa.field("name", pa.string(), metadata={"source_type": "VARCHAR(120)", "personal_data": "true"}),
        pa.field("_ingested_at", UTC_US),
    ]
    columns: list[list[object]] = [[1, 2], ["Ada", "Bob"], [HOUR, HOUR]]
    if deleted:
        fields.append(pa.field("_deleted_at", UTC_US))
        columns.append([None, HOUR])
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, fields, strict=True)], schema=pa.schema(fields)
    )


def _features() -> pa.Table:
    notes = {"model": "machine_hour_features"}
    temperature = {**notes, "description": "Mean temperature of the hour", "unit": UNIT, "from": "sensor_readings"}
    fields = [
        pa.field("machine_id", pa.string(), metadata={**notes, "description": "Machine"}),
        pa.field("hour", UTC_US, metadata={**notes, "description": "Start of the hour"}),
        pa.field("temperature_mean", pa.float64(), metadata=temperature),
        *[
            pa.field(name, UTC_US, metadata={**notes, "description": VERSION_NOTES[name]})
            for name in (FEATURE_TIME, KNOWN_AT)
        ],
        pa.field(ROW_HASH, pa.int64(), metadata={**notes, "description": VERSION_NOTES[ROW_HASH]}),
        pa.field(DEFINITION, pa.string(), metadata={**notes, "description": VERSION_NOTES[DEFINITION]}),
    ]
    end = datetime(2026, 1, 11, 11, tzinfo=UTC)
    rows = [["M-1", "M-1"], [HOUR, HOUR], [55.0, 56.5], [end, end], [end, datetime(2026, 1, 12, tzinfo=UTC)], [1, 2]]
    rows.append(["d1", "d1"])
    return pa.Table.from_arrays(
        [pa.array(r, f.type) for r, f in zip(rows, fields, strict=True)], schema=pa.schema(fields)
    )


def build_small_lake(lake: Lake) -> dict[str, TableInfo]:
    """Write the tables under `lake` and return their infos, keyed 'layer.name'."""
    delta.merge(lake.table("bronze", "erp_customers"), _customers(False), ["id"], update=False)
    delta.merge(lake.table("silver", "erp_customers"), _customers(True), ["id"], update=True)
    readings = pa.table({"machine_id": ["M-1"], "timestamp": pa.array([HOUR], UTC_US), "value": [55.0]})
    delta.merge(lake.table("silver", "sensor_readings"), readings, ["machine_id", "timestamp"], update=False)
    shape = {SHAPE: {"key": ["machine_id"], "time": "hour", "grain": "hour"}}
    delta.merge(lake.table("gold", "machine_hour_features"), _features(), [ROW_HASH], update=False, state=shape)
    rejected = quarantine.Rejection("silver.erp_customers", "mapping", "bad id", {"id": "x"}, file="f.csv", row="3")
    quarantine.write(lake, [rejected], "run-1")
    for check, success in (("expectations", True), ("invariants", False)):
        results.record(lake, "silver.erp_customers", check, "gx", success, {"failed": {}}, "run-1")
    return {
        "bronze.erp_customers": TableInfo("erp:erp", "Rows of ERP table customers as landed. Customers who order."),
        "silver.erp_customers": TableInfo(
            "erp:erp", "ERP table customers, newest version per key.", ("bronze.erp_customers",)
        ),
        "silver.sensor_readings": TableInfo("opcua:plant", "Sensor history in long form."),
        GOLD: TableInfo(
            "silver",
            "Per machine and hour: sensor aggregates.",
            ("silver.erp_customers", "silver.sensor_readings"),
            owner="team:process-engineering",
        ),
    }

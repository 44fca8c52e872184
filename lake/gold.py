"""Gold: curated feature tables computed from silver with DuckDB."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa

from plantlake.lake import delta

# Means and deviations sum in time order: floating-point sums depend on their order, and the
# files' row order changes when maintenance compacts silver, which would change the last digit
# of a feature (and commit a new gold) although no reading changed.
MACHINE_HOUR_FEATURES = """
WITH readings AS (
    SELECT machine_id, date_trunc('hour', "timestamp") AS hour, "timestamp", tag, value, status
    FROM sensor_readings
    WHERE machine_id IS NOT NULL AND tag IN ('Temperature', 'Vibration', 'SpindleSpeed', 'State', 'PartCounter')
),
sensors AS (
    SELECT
        machine_id,
        hour,
        avg(value ORDER BY "timestamp") FILTER (WHERE tag = 'Temperature' AND status = 'Good') AS temperature_mean,
        max(value) FILTER (WHERE tag = 'Temperature' AND status = 'Good') AS temperature_max,
        avg(value ORDER BY "timestamp") FILTER (WHERE tag = 'Vibration' AND status = 'Good') AS vibration_mean,
        max(value) FILTER (WHERE tag = 'Vibration' AND status = 'Good') AS vibration_max,
        stddev_samp(value ORDER BY "timestamp") FILTER (WHERE tag = 'Vibration' AND status = 'Good') AS vibration_std,
        avg(value ORDER BY "timestamp") FILTER (WHERE tag = 'SpindleSpeed' AND status = 'Good') AS spindle_speed_mean,
        avg(CASE WHEN value = 2 THEN 1.0 ELSE 0.0 END) FILTER (WHERE tag = 'State') AS running_share,
        avg(CASE WHEN value = 3 THEN 1.0 ELSE 0.0 END) FILTER (WHERE tag = 'State') AS fault_share,
        coalesce(max(value) FILTER (WHERE tag = 'PartCounter') - min(value) FILTER (WHERE tag = 'PartCounter'), 0)
            AS parts_produced,
        count(*) FILTER (WHERE status <> 'Good') AS readings_not_good,
        count(*) AS readings
    FROM readings
    GROUP BY machine_id, hour
),
alarms AS (
    SELECT machine_id, date_trunc('hour', "timestamp") AS hour, count(*) AS alarm_count
    FROM machine_events
    WHERE severity IN ('emergency', 'alert', 'critical', 'error')
    GROUP BY machine_id, hour
),
orders AS (
    SELECT s.machine_id, s.hour, o.id AS production_order_id, o.material_lot,
           row_number() OVER (PARTITION BY s.machine_id, s.hour ORDER BY o.actual_start DESC) AS pick
    FROM sensors s
    JOIN production_orders o
      ON o.machine_id = s.machine_id
     AND o.actual_start < s.hour + INTERVAL 1 HOUR
     AND o.actual_end > s.hour
)
SELECT
    s.machine_id,
    s.hour,
    s.temperature_mean, s.temperature_max,
    s.vibration_mean, s.vibration_max, s.vibration_std,
    s.spindle_speed_mean, s.running_share, s.fault_share,
    CAST(s.parts_produced AS BIGINT) AS parts_produced,
    s.readings, s.readings_not_good,
    o.production_order_id,
    o.material_lot,
    l.supplier AS material_supplier,
    l.material AS material_grade,
    CAST(coalesce(a.alarm_count, 0) AS BIGINT) AS alarm_count
FROM sensors s
LEFT JOIN orders o ON o.machine_id = s.machine_id AND o.hour = s.hour AND o.pick = 1
LEFT JOIN material_lots l ON l.lot_id = o.material_lot
LEFT JOIN alarms a ON a.machine_id = s.machine_id AND a.hour = s.hour
ORDER BY s.machine_id, s.hour
"""

_EMPTY = {
    "sensor_readings": pa.schema(
        [
            ("machine_id", pa.string()),
            ("timestamp", pa.timestamp("us", tz="UTC")),
            ("tag", pa.string()),
            ("value", pa.float64()),
            ("status", pa.string()),
        ]
    ),
    "machine_events": pa.schema(
        [("machine_id", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")), ("severity", pa.string())]
    ),
    "production_orders": pa.schema(
        [
            ("id", pa.int64()),
            ("machine_id", pa.string()),
            ("material_lot", pa.string()),
            ("actual_start", pa.timestamp("us", tz="UTC")),
            ("actual_end", pa.timestamp("us", tz="UTC")),
        ]
    ),
    "material_lots": pa.schema([("lot_id", pa.string()), ("supplier", pa.string()), ("material", pa.string())]),
}


def machine_hour_features(inputs: Mapping[str, Path | None]) -> pa.Table:
    """Per machine and hour: sensor aggregates, the order then running, its lot's supplier, alarms.

    `inputs` maps sensor_readings, machine_events, production_orders and material_lots to
    their silver tables; one not configured (None) or not yet written counts as empty, so
    features still come out. DuckDB reads the tables' Parquet files itself (`delta.register`).
    """
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for name, empty in _EMPTY.items():
        path = inputs.get(name)
        if path is None or not delta.register(connection, name, path):
            delta.register_empty(connection, delta.quote(name), empty)
    return connection.sql(MACHINE_HOUR_FEATURES).to_arrow_table()

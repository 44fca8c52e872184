"""The plant-independent views gold models read: `signals`, `events` and `machine_alias`.

`signals` maps the plant's tags to declared signals (by browse-path pattern), with one machine
id and the declared unit, converted from the unit the server declares (EUInformation).
Counters get `increment`: the rise since the previous good reading, a drop counted as a reset
(the counter restarted from zero). `events` marks, per machine and code, the first report of
an occurrence that several sources may report (`first_report`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from functools import cache
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from plantlake.config.gold import GoldConfig, duration

SENSOR_READINGS, OPCUA_TAGS, MACHINE_EVENTS = "sensor_readings", "opcua_tags", "machine_events"
SIGNAL_NODES = pa.schema(
    [
        ("node_id", pa.string()),
        ("machine_id", pa.string()),
        ("signal", pa.string()),
        ("kind", pa.string()),
        ("unit", pa.string()),
        ("scale", pa.float64()),
        ("offset", pa.float64()),
    ]
)


class UnitError(ValueError):
    """A tag's declared unit cannot be converted to the signal's."""


@cache
def _units() -> Any:
    import pint  # imported here: only gold's unit conversion needs it

    return pint.UnitRegistry()


def conversion(source_unit: str | None, target_unit: str | None, where: str) -> tuple[float, float]:
    """(scale, offset) so that value * scale + offset is in `target_unit`; (1, 0) when either
    is unknown or both agree."""
    if not source_unit or not target_unit or source_unit.strip() == target_unit.strip():
        return 1.0, 0.0
    registry = _units()
    try:
        zero = registry.Quantity(0.0, source_unit).to(target_unit).magnitude
        one = registry.Quantity(1.0, source_unit).to(target_unit).magnitude
    except Exception as exc:
        raise UnitError(
            f"{where}: the server declares unit {source_unit!r}, which does not convert to {target_unit!r} "
            f"({exc}); set gold.signals.<name>.unit to a unit of the same dimension, or leave it out"
        ) from None
    return float(one - zero), float(zero)


def signal_nodes(tags: pa.Table, config: GoldConfig) -> pa.Table:
    """Per tag that a declared signal matches: its machine (aliases applied), signal, unit and conversion.

    `tags` has node_id, browse_path, machine_id, tag and unit (silver.opcua_tags). A pattern with
    a '/' is matched on the browse path without its root folder; one without on the tag name.
    The first signal whose pattern matches takes the tag.
    """
    rows: dict[str, list] = {name: [] for name in SIGNAL_NODES.names}
    for tag in tags.to_pylist():
        path = tag["browse_path"].split("/", 1)[-1]
        for name, signal in config.signals.items():
            subject = path if "/" in signal.tag else tag["tag"]
            if fnmatch.fnmatchcase(subject, signal.tag):
                scale, offset = conversion(
                    tag.get("unit"), signal.unit, f"gold.signals.{name}, tag {tag['browse_path']}"
                )
                machine = config.machines.get(tag["machine_id"], tag["machine_id"])
                for column, value in zip(
                    SIGNAL_NODES.names,
                    [tag["node_id"], machine, name, signal.kind, signal.unit or tag.get("unit"), scale, offset],
                    strict=True,
                ):
                    rows[column].append(value)
                break
    return pa.table(rows, schema=SIGNAL_NODES)


def _signal_states(config: GoldConfig) -> pa.Table:
    """(signal, code, name) of every state code the signals declare."""
    rows = [
        (signal, float(code), name) for signal, spec in config.signals.items() for name, code in spec.states.items()
    ]
    return pa.table(
        {"signal": [r[0] for r in rows], "code": [r[1] for r in rows], "name": [r[2] for r in rows]},
        schema=pa.schema([("signal", pa.string()), ("code", pa.float64()), ("name", pa.string())]),
    )


def register_views(connection: duckdb.DuckDBPyConnection, silver: Mapping[str, DeltaTable], config: GoldConfig) -> None:
    """`machine_alias`, and `signals` and `events` where their silver tables (already views of
    `connection` by their names, as `silver` holds them) exist.

    The views read between `getvariable('read_from')` and `getvariable('window_end')` and show
    rows from `getvariable('window_start')` on, so a counter's first increment has its predecessor.
    """
    aliases = pa.table(
        {"alias": list(config.machines), "machine_id": list(config.machines.values())},
        schema=pa.schema([("alias", pa.string()), ("machine_id", pa.string())]),
    )
    connection.register("machine_alias", aliases)
    if SENSOR_READINGS in silver:
        tags = silver.get(OPCUA_TAGS)
        tag_table = tags.to_pyarrow_table() if tags is not None else None
        if tag_table is None:
            tag_table = connection.sql(
                f"SELECT DISTINCT node_id, machine_id || '/' || tag AS browse_path, machine_id, tag, NULL::VARCHAR "
                f"AS unit FROM {SENSOR_READINGS}"
            ).to_arrow_table()
        connection.register("signal_nodes", signal_nodes(tag_table, config))
        connection.register("signal_states", _signal_states(config))
        connection.execute(SIGNALS_VIEW)
    else:
        connection.execute(EMPTY_SIGNALS)
    within = duration(config.events.within, "gold.events.within")
    same_source = "" if not config.events.keep_sources_apart else ", source"
    if MACHINE_EVENTS in silver:
        connection.execute(EVENTS_VIEW.format(seconds=within.total_seconds(), apart=same_source))
    else:
        connection.execute(EMPTY_EVENTS)


SIGNALS_VIEW = """
CREATE OR REPLACE VIEW signals AS
WITH readings AS (
    SELECT n.machine_id, n.signal, n.kind, n.unit, r.node_id, r."timestamp", r.status,
           r.value * n.scale + n."offset" AS value
    FROM sensor_readings r JOIN signal_nodes n ON n.node_id = r.node_id
    WHERE r."timestamp" >= getvariable('read_from') AND r."timestamp" < getvariable('window_end')
),
stepped AS (
    SELECT *,
        lag(value) OVER (PARTITION BY node_id, status = 'Good' ORDER BY "timestamp") AS previous
    FROM readings
)
SELECT machine_id, stepped.signal, "timestamp", value, status, unit,
    states.name AS state,
    CASE WHEN kind <> 'counter' OR status <> 'Good' OR previous IS NULL THEN NULL
         WHEN value >= previous THEN value - previous
         ELSE value END AS increment
FROM stepped
LEFT JOIN signal_states states ON states.signal = stepped.signal AND states.code = stepped.value
WHERE "timestamp" >= getvariable('window_start')
"""

EMPTY_SIGNALS = """
CREATE OR REPLACE VIEW signals AS
SELECT NULL::VARCHAR AS machine_id, NULL::VARCHAR AS signal, NULL::TIMESTAMPTZ AS "timestamp",
       NULL::DOUBLE AS value, NULL::VARCHAR AS status, NULL::VARCHAR AS unit, NULL::VARCHAR AS state,
       NULL::DOUBLE AS increment
WHERE false
"""

EVENTS_VIEW = """
CREATE OR REPLACE VIEW events AS
WITH reported AS (
    SELECT coalesce(a.machine_id, e.machine_id) AS machine_id, e.source, e.code, e.severity, e."timestamp", e.message
    FROM machine_events e LEFT JOIN machine_alias a ON a.alias = e.machine_id
    WHERE e."timestamp" >= getvariable('read_from') AND e."timestamp" < getvariable('window_end')
),
ordered AS (
    SELECT *,
        lag("timestamp") OVER same AS previous_at,
        lag(source) OVER same AS previous_source
    FROM reported
    WINDOW same AS (PARTITION BY machine_id, code{apart} ORDER BY "timestamp", source)
)
SELECT machine_id, source, code, severity, "timestamp", message,
    code IS NULL OR previous_at IS NULL OR previous_source = source
        OR "timestamp" - previous_at > INTERVAL '{seconds} seconds' AS first_report
FROM ordered
WHERE "timestamp" >= getvariable('window_start')
"""

EMPTY_EVENTS = """
CREATE OR REPLACE VIEW events AS
SELECT NULL::VARCHAR AS machine_id, NULL::VARCHAR AS source, NULL::VARCHAR AS code, NULL::VARCHAR AS severity,
       NULL::TIMESTAMPTZ AS "timestamp", NULL::VARCHAR AS message, NULL::BOOLEAN AS first_report
WHERE false
"""

"""Source truth of a `PlantClock` at its current night, to compare the lake with after loading.

Computed from the clock's model, not read back from the files or servers, so a comparison
also catches a source written wrongly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from plantlake.simulator.clock import PlantClock

_MOMENT = pa.timestamp("us", tz="UTC")


def expected_sensor_readings(clock: PlantClock) -> pa.Table:
    """Every value the OPC-UA server serves at the current night: machine_id, tag, timestamp (UTC),
    value (as a double, as silver's `value` holds it; State and PartCounter are whole numbers)
    and status_code. The demo size (6 machines x 5 tags, 1-minute samples) is 43,200 rows a day."""
    plant = clock.plant()
    moments = pa.array(plant.timestamps * 1_000_000, pa.int64()).cast(_MOMENT)
    parts = []
    for machine in plant.machines:
        for tag, (values, status) in plant.signals(machine).items():
            parts.append(
                pa.table(
                    {
                        "machine_id": pa.array([machine.machine_id] * len(moments), pa.string()),
                        "tag": pa.array([tag] * len(moments), pa.string()),
                        "timestamp": moments,
                        "value": pa.array(np.asarray(values, dtype=np.float64)),
                        "status_code": pa.array(np.asarray(status, dtype=np.int64)),
                    }
                )
            )
    return pa.concat_tables(parts)


def expected_machine_events(clock: PlantClock) -> pa.Table:
    """Every log event written so far, once per log folder it is in (each event is a line in the
    PLC syslog and one in the CNC JSON lines): log (plc, cnc), machine_id, host, timestamp,
    severity, code; ordered by log, timestamp and machine."""
    hosts = {machine.machine_id: machine.host for machine in clock.plant(0).machines}
    events = sorted(clock.sources().events, key=lambda event: (event.moment, event.machine_id, event.code))
    columns = {
        "machine_id": pa.array([event.machine_id for event in events], pa.string()),
        "host": pa.array([hosts[event.machine_id] for event in events], pa.string()),
        "timestamp": pa.array([event.moment for event in events], _MOMENT),
        "severity": pa.array([event.severity for event in events], pa.string()),
        "code": pa.array([event.code for event in events], pa.string()),
    }
    return pa.concat_tables(
        pa.table({"log": pa.array([log] * len(events), pa.string()), **columns}) for log in ("plc", "cnc")
    )


def expected_material_lots(clock: PlantClock) -> dict[str, tuple[str, str, float]]:
    """lot_id -> (material, supplier, quantity_kg) as the newest file of each lot says (after
    corrections). Acme's night-0 row with quantity "k.A." is no lot: the loader quarantines it."""
    return {lot.lot_id: (lot.material, lot.supplier, lot.quantity_kg) for lot in clock.sources().lots.values()}


def expected_erp_rows(clock: PlantClock) -> dict[str, list[dict]]:
    """Every ERP table's rows at the current night, ordered by primary key; timestamps naive UTC as
    the ERP stores them. (The database itself is the truth; this is what it should hold.)"""
    return {table: [dict(rows[key]) for key in sorted(rows)] for table, rows in clock.sources().erp.items()}

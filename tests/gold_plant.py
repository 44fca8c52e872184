"""A small plant written straight into silver, to test gold models against exact expectations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from plantlake.config.gold import GoldConfig
from plantlake.config.models import ModelSpec, load_models
from plantlake.lake import delta, gold
from plantlake.lake.layout import INGESTED_AT, Lake

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 6, tzinfo=UTC)
TS = pa.timestamp("us", "UTC")

DEMO_GOLD = GoldConfig.model_validate(
    {
        "models": REPO / "models",
        "signals": {
            "temperature": {"tag": "*/Temperature", "unit": "degC"},
            "vibration": {"tag": "*/Vibration", "unit": "mm/s"},
            "spindle_speed": {"tag": "*/SpindleSpeed", "unit": "rpm"},
            "state": {"tag": "*/State", "kind": "state", "states": {"off": 0, "idle": 1, "running": 2, "fault": 3}},
            "part_counter": {"tag": "*/PartCounter", "kind": "counter"},
        },
        "events": {"within": "5s"},
    }
)


def demo_model(name: str) -> ModelSpec:
    return next(model for model in load_models(REPO / "models") if model.name == name)


@dataclass
class Plant:
    """Silver tables of a plant, added night by night with the night's ingestion time."""

    lake: Lake
    tags: list[dict] = field(default_factory=list)

    def table(self, name: str) -> Path:
        return self.lake.table("silver", name)

    def add_tags(self, machine: str, units: dict[str, str | None]) -> None:
        rows = [
            {
                "node_id": f"ns=2;s={machine}.{tag}",
                "browse_path": f"Plant/Line1/{machine}/{tag}",
                "machine_id": machine,
                "tag": tag,
                "unit": unit,
            }
            for tag, unit in units.items()
        ]
        self.tags += rows
        delta.overwrite(self.table("opcua_tags"), pa.Table.from_pylist(self.tags))

    def add_readings(self, rows: list[tuple[str, str, datetime, float, str]], at: datetime) -> None:
        """(machine, tag, time, value, status) rows, ingested at `at`."""
        delta.append(
            self.table("sensor_readings"),
            pa.table(
                {
                    "source": ["plant"] * len(rows),
                    "node_id": [f"ns=2;s={m}.{t}" for m, t, *_ in rows],
                    "machine_id": [m for m, *_ in rows],
                    "tag": [t for _, t, *_ in rows],
                    "timestamp": pa.array([r[2] for r in rows], TS),
                    "value": pa.array([float(r[3]) for r in rows], pa.float64()),
                    "status": [r[4] for r in rows],
                    INGESTED_AT: pa.array([at] * len(rows), TS),
                }
            ),
        )

    def add_events(self, rows: list[tuple[str, str, str, datetime, str]], at: datetime) -> None:
        """(machine, source, code, time, severity) rows."""
        delta.append(
            self.table("machine_events"),
            pa.table(
                {
                    "source": [r[1] for r in rows],
                    "machine_id": [r[0] for r in rows],
                    "code": [r[2] for r in rows],
                    "timestamp": pa.array([r[3] for r in rows], TS),
                    "severity": [r[4] for r in rows],
                    "message": ["alarm"] * len(rows),
                    INGESTED_AT: pa.array([at] * len(rows), TS),
                }
            ),
        )

    def set_orders(self, rows: list[tuple[int, str, str, datetime, datetime | None]], at: datetime) -> None:
        """(id, machine, lot, start, end) rows, as silver holds them after a merge: the table is replaced."""
        self._replace(
            "erp_production_orders",
            pa.table(
                {
                    "id": pa.array([r[0] for r in rows], pa.int64()),
                    "machine_id": [r[1] for r in rows],
                    "material_lot": [r[2] for r in rows],
                    "actual_start": pa.array([r[3] for r in rows], TS),
                    "actual_end": pa.array([r[4] for r in rows], TS),
                    "_deleted_at": pa.array([None] * len(rows), TS),
                    INGESTED_AT: pa.array([at] * len(rows), TS),
                }
            ),
        )

    def set_lots(self, rows: list[tuple[str, str, str, datetime]], at: datetime) -> None:
        """(lot, supplier, material, delivered) rows."""
        self._replace(
            "material_lots",
            pa.table(
                {
                    "lot_id": [r[0] for r in rows],
                    "supplier": [r[1] for r in rows],
                    "material": [r[2] for r in rows],
                    "delivered_on": pa.array([r[3] for r in rows], TS),
                    INGESTED_AT: pa.array([at] * len(rows), TS),
                }
            ),
        )

    def _replace(self, name: str, rows: pa.Table) -> None:
        delta.overwrite(self.table(name), rows)

    def inputs(self, model: ModelSpec) -> gold.Inputs:
        found, _ = gold.inputs_of(
            model, {"signals", "events", "machine_alias", "erp_production_orders", "material_lots"}
        )
        tables = {"signals": ("sensor_readings", "opcua_tags"), "events": ("machine_events",)}
        silver = {t: self.table(t) for name in found for t in tables.get(name, (name,)) if name != "machine_alias"}
        return gold.Inputs(silver)

    def refresh(self, model: ModelSpec, now: datetime, config: GoldConfig = DEMO_GOLD) -> gold.Refresh:
        return gold.refresh(self.lake.table("gold", model.name), model, config, self.inputs(model), now)

    def latest(self, model: ModelSpec) -> pa.Table:
        return gold.latest(self.lake.table("gold", model.name))


def minutes(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=index) for index in range(count)]

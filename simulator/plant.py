"""A deterministic plant: machines, their sensor signals, alarms, orders and material lots.

Everything derives from the seed and an anchor time, so the ERP rows, the OPC-UA history,
the machine logs and the supplier files agree with each other and are identical on rerun.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

TAGS = ("Temperature", "Vibration", "SpindleSpeed", "State", "PartCounter")
STATE_STOPPED, STATE_IDLE, STATE_RUNNING, STATE_FAULT = 0, 1, 2, 3
STATUS_GOOD, STATUS_UNCERTAIN, STATUS_BAD = 0x00000000, 0x40000000, 0x80000000
MATERIALS = ("S235JR", "S355J2", "42CrMo4", "C45", "X5CrNi18-10")


@dataclass(frozen=True)
class Machine:
    machine_id: str
    line: str
    host: str
    index: int


@dataclass(frozen=True)
class Anomaly:
    machine_id: str
    start: datetime
    end: datetime
    code: str
    message: str


@dataclass(frozen=True)
class MaterialLot:
    lot_id: str
    supplier: str
    material: str
    quantity_kg: float
    delivered_on: date
    certificate: str


@dataclass(frozen=True)
class Order:
    order_id: int
    machine_id: str
    product_id: int
    customer_id: int
    material_lot: str
    quantity: int
    start: datetime
    end: datetime


@dataclass
class Plant:
    seed: int
    start: datetime
    end: datetime
    sample_seconds: int
    machines: list[Machine]
    anomalies: list[Anomaly] = field(default_factory=list)
    lots: list[MaterialLot] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    extra_tags: int = 0
    day_by_day: bool = False
    idle_days: frozenset[date] = frozenset()

    @property
    def tags(self) -> tuple[str, ...]:
        """The five tags every machine has, then `extra_tags` process sensors (Sensor06, Sensor07, ...)."""
        return TAGS + tuple(f"Sensor{number:02d}" for number in range(len(TAGS) + 1, len(TAGS) + 1 + self.extra_tags))

    @property
    def timestamps(self) -> np.ndarray:
        """Sample times as seconds since the Unix epoch (none on `idle_days`)."""
        first = int(self.start.timestamp())
        count = int((self.end - self.start).total_seconds()) // self.sample_seconds
        seconds = first + self.sample_seconds * np.arange(count, dtype=np.int64)
        if not self.idle_days:
            return seconds
        idle = [(day - date(1970, 1, 1)).days for day in self.idle_days]
        return seconds[~np.isin(seconds // 86_400, idle)]

    def signals(self, machine: Machine) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per tag: (values, status codes) aligned with `timestamps`."""
        if self.day_by_day:
            from plantlake.simulator.daily import daily_signals  # daily builds on this module's types

            return daily_signals(self, machine)
        return _signals(self, machine)


def default_anchor(now: datetime | None = None) -> datetime:
    """Midnight UTC of today: history ends there, so reruns on the same day see the same data."""
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def build_plant(
    seed: int = 42,
    lines: int = 2,
    machines_per_line: int = 3,
    history_days: float = 2,
    sample_seconds: int = 60,
    anchor: datetime | None = None,
    tags_per_machine: int = len(TAGS),
    day_by_day: bool = False,
    idle_days: Iterable[date] = (),
) -> Plant:
    """The plant with `history_days` of history up to `anchor`.

    `day_by_day`: anomalies and signals come day by day from generators seeded by (seed,
    machine, UTC day), so the plant of a later anchor extends this one without changing a
    value of it, as a historian's past never changes (see `simulator.clock`). `idle_days`
    (with `day_by_day`): UTC days the plant stood still and recorded nothing.
    """
    end = anchor or default_anchor()
    start = end - timedelta(days=history_days)
    machines = [
        Machine(f"M-{line}{slot:02d}", f"L{line}", f"cnc-{line}{slot:02d}", index)
        for index, (line, slot) in enumerate(
            (line, slot) for line in range(1, lines + 1) for slot in range(1, machines_per_line + 1)
        )
    ]
    plant = Plant(
        seed,
        start,
        end,
        sample_seconds,
        machines,
        extra_tags=max(0, tags_per_machine - len(TAGS)),
        day_by_day=day_by_day,
        idle_days=frozenset(idle_days),
    )
    rng = np.random.default_rng(seed)
    plant.lots = _lots(rng, start)
    if day_by_day:
        from plantlake.simulator.daily import daily_anomalies

        plant.anomalies = daily_anomalies(plant)
    else:
        plant.anomalies = _anomalies(plant, rng)
    plant.orders = _orders(plant, rng)
    return plant


def _running_hours(ts: np.ndarray) -> np.ndarray:
    """Two shifts, 06:00 to 22:00; the machine stops at night."""
    hour = (ts % 86_400) // 3_600
    return (hour >= 6) & (hour < 22)


def _anomalies(plant: Plant, rng: np.random.Generator) -> list[Anomaly]:
    result = []
    days = max(1, int((plant.end - plant.start).total_seconds() // 86_400))
    for machine in plant.machines:
        for day in range(days):
            if rng.random() < 0.35:
                continue
            offset = timedelta(days=day, hours=float(rng.integers(7, 20)), minutes=float(rng.integers(0, 59)))
            begin = plant.start + offset
            length = timedelta(minutes=float(rng.integers(15, 45)))
            result.append(Anomaly(machine.machine_id, begin, begin + length, "A-17", "Spindle vibration above limit"))
    return result


def _lots(rng: np.random.Generator, start: datetime) -> list[MaterialLot]:
    lots = []
    for supplier, prefix, count in (("Acme Stahlhandel GmbH", "AC", 12), ("Stahlwerk Süd AG", "SW", 10)):
        for number in range(1, count + 1):
            lots.append(
                MaterialLot(
                    lot_id=f"LOT-{prefix}-{number:04d}",
                    supplier=supplier,
                    material=MATERIALS[int(rng.integers(0, len(MATERIALS)))],
                    quantity_kg=round(float(rng.uniform(500, 5000)), 3),
                    delivered_on=(start - timedelta(days=int(rng.integers(3, 40)))).date(),
                    certificate=f"3.1 EN 10204 Nr. {int(rng.integers(10000, 99999))}",
                )
            )
    return lots


def _orders(plant: Plant, rng: np.random.Generator) -> list[Order]:
    orders: list[Order] = []
    for machine in plant.machines:
        cursor = plant.start
        while cursor < plant.end:
            length = timedelta(hours=float(rng.integers(4, 11)))
            lot = plant.lots[int(rng.integers(0, len(plant.lots)))]
            orders.append(
                Order(
                    order_id=len(orders) + 1,
                    machine_id=machine.machine_id,
                    product_id=int(rng.integers(1, 16)),
                    customer_id=int(rng.integers(1, 21)),
                    material_lot=lot.lot_id,
                    quantity=int(rng.integers(20, 400)),
                    start=cursor,
                    end=min(cursor + length, plant.end),
                )
            )
            cursor += length
    return orders


def _signals(plant: Plant, machine: Machine) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    ts = plant.timestamps
    rng = np.random.default_rng([plant.seed, machine.index])
    running = _running_hours(ts)
    fault = np.zeros(ts.shape, dtype=bool)
    for anomaly in plant.anomalies:
        if anomaly.machine_id == machine.machine_id:
            fault |= (ts >= anomaly.start.timestamp()) & (ts < anomaly.end.timestamp())
    state = np.where(running, STATE_RUNNING, STATE_STOPPED)
    idle = running & (rng.random(ts.shape) < 0.05)
    state = np.where(idle, STATE_IDLE, state)
    state = np.where(fault, STATE_FAULT, state).astype(np.int32)
    active = state == STATE_RUNNING
    drift = np.linspace(0, 3, ts.size)
    temperature = 38 + 24 * active + drift + rng.normal(0, 0.8, ts.size) + 15 * fault
    vibration = np.abs(1.2 + 2.0 * active + rng.normal(0, 0.3, ts.size) + 9 * fault)
    spindle = np.where(active, 12_000 + rng.normal(0, 150, ts.size), 0.0)
    parts = np.cumsum(active & (rng.random(ts.size) < plant.sample_seconds / 120)).astype(np.int64)
    good = np.full(ts.shape, STATUS_GOOD, dtype=np.uint32)
    vibration_status = good.copy()
    dropouts = rng.random(ts.size) < 0.002
    vibration_status[dropouts] = STATUS_BAD
    vibration_status[fault & ~dropouts] = STATUS_UNCERTAIN
    signals = {
        "Temperature": (np.round(temperature, 3), good),
        "Vibration": (np.round(vibration, 4), vibration_status),
        "SpindleSpeed": (np.round(spindle, 1), good),
        "State": (state, good),
        "PartCounter": (parts, good),
    }
    for name in plant.tags[len(TAGS) :]:  # process sensors: a level per state, slow drift, noise, a jump in a fault
        level, spread = rng.uniform(10, 200), rng.uniform(0.5, 5)
        values = (
            level * (0.6 + 0.4 * active)
            + rng.uniform(-1, 1) * drift
            + rng.normal(0, spread * 0.1, ts.size)
            + spread * 4 * fault
        )
        signals[name] = (np.round(values, 3), good)
    return signals

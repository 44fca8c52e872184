"""Anomalies and sensor signals made day by day, so a longer history extends a shorter one.

`simulator.plant`'s original generator draws each machine's whole history from one random
stream, so one more day of history changes every value before it (the drift is spread over
the whole span, the stream is consumed in another order). A historian never rewrites its
past, so for a plant that advances night after night (`simulator.clock`) every UTC day gets
generators of its own, seeded by (seed, machine, day), and each day is drawn on its whole
sample grid whatever part of it is served. Only the part counter carries over from day to day,
and it sums values that never change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from plantlake.simulator.plant import (
    STATE_FAULT,
    STATE_IDLE,
    STATE_RUNNING,
    STATE_STOPPED,
    STATUS_BAD,
    STATUS_GOOD,
    STATUS_UNCERTAIN,
    TAGS,
    Anomaly,
    Machine,
    Plant,
)

DAY_SECONDS = 86_400
EPOCH = date(1970, 1, 1)
_WEEK_SECONDS = 7 * DAY_SECONDS
_ANOMALY_STREAM, _SENSOR_STREAM = 1, 2


def utc_days(plant: Plant) -> list[int]:
    """Days since the Unix epoch that overlap the plant's history, idle days left out."""
    first = int(plant.start.timestamp()) // DAY_SECONDS
    last = -(-int(plant.end.timestamp()) // DAY_SECONDS)
    idle = {(day - EPOCH).days for day in plant.idle_days}
    return [day for day in range(first, last) if day not in idle]


def daily_anomalies(plant: Plant) -> list[Anomaly]:
    """At most one spindle alarm per machine and day, from a generator of that machine and day."""
    result = []
    for machine in plant.machines:
        for day in utc_days(plant):
            rng = np.random.default_rng([plant.seed, machine.index, day, _ANOMALY_STREAM])
            if rng.random() < 0.35:
                continue
            begin = datetime.fromtimestamp(day * DAY_SECONDS, UTC) + timedelta(
                hours=float(rng.integers(7, 20)), minutes=float(rng.integers(0, 59))
            )
            length = timedelta(minutes=float(rng.integers(15, 45)))
            if plant.start <= begin and begin + length <= plant.end:
                result.append(
                    Anomaly(machine.machine_id, begin, begin + length, "A-17", "Spindle vibration above limit")
                )
    return sorted(result, key=lambda anomaly: (anomaly.start, anomaly.machine_id))


def _day_grid(first: int, step: int, day: int) -> np.ndarray:
    """Every sample time of the plant's grid (first + k * step) inside the UTC day."""
    low = -(-(day * DAY_SECONDS - first) // step)
    high = -(-((day + 1) * DAY_SECONDS - first) // step)
    return first + step * np.arange(low, high, dtype=np.int64)


def daily_signals(plant: Plant, machine: Machine) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per tag: (values, status codes) aligned with `plant.timestamps`."""
    seconds = plant.timestamps
    first = int(plant.start.timestamp())
    faults = [(a.start.timestamp(), a.end.timestamp()) for a in plant.anomalies if a.machine_id == machine.machine_id]
    sensors = []
    for name in plant.tags[len(TAGS) :]:  # process sensors keep their level and spread for good
        fixed = np.random.default_rng([plant.seed, machine.index, _SENSOR_STREAM, int(name.removeprefix("Sensor"))])
        sensors.append((name, fixed.uniform(10, 200), fixed.uniform(0.5, 5), fixed.uniform(-1, 1)))
    parts: dict[str, list[np.ndarray]] = {}
    for day in np.unique(seconds // DAY_SECONDS).tolist():
        grid = _day_grid(first, plant.sample_seconds, day)
        served = seconds[(seconds >= day * DAY_SECONDS) & (seconds < (day + 1) * DAY_SECONDS)]
        keep = (grid >= served[0]) & (grid <= served[-1])
        rng = np.random.default_rng([plant.seed, machine.index, day])
        for tag, series in _day_values(plant, grid, rng, faults, sensors).items():
            parts.setdefault(tag, []).append(series[keep])
    joined = {tag: np.concatenate(chunks) for tag, chunks in parts.items()}
    good = np.full(seconds.shape, STATUS_GOOD, dtype=np.uint32)
    vibration_status = good.copy()
    vibration_status[joined.pop("_fault")] = STATUS_UNCERTAIN
    vibration_status[joined.pop("_dropout")] = STATUS_BAD
    signals = {
        "Temperature": (joined["Temperature"], good),
        "Vibration": (joined["Vibration"], vibration_status),
        "SpindleSpeed": (joined["SpindleSpeed"], good),
        "State": (joined["State"], good),
        "PartCounter": (np.cumsum(joined["PartCounter"]).astype(np.int64), good),
    }
    for name, *_ in sensors:
        signals[name] = (joined[name], good)
    return signals


def _day_values(
    plant: Plant,
    grid: np.ndarray,
    rng: np.random.Generator,
    faults: list[tuple[float, float]],
    sensors: list[tuple[str, float, float, float]],
) -> dict[str, np.ndarray]:
    """One day's values on its whole grid; the part counter as increments."""
    hour = (grid % DAY_SECONDS) // 3_600
    running = (hour >= 6) & (hour < 22)  # two shifts; the machine stops at night
    fault = np.zeros(grid.shape, dtype=bool)
    for begin, end in faults:
        fault |= (grid >= begin) & (grid < end)
    state = np.where(running, STATE_RUNNING, STATE_STOPPED)
    state = np.where(running & (rng.random(grid.size) < 0.05), STATE_IDLE, state)
    state = np.where(fault, STATE_FAULT, state).astype(np.int32)
    active = state == STATE_RUNNING
    drift = 1.5 * (1 - np.cos(2 * np.pi * (grid % _WEEK_SECONDS) / _WEEK_SECONDS))  # a weekly swing of 0..3 K
    temperature = 38 + 24 * active + drift + rng.normal(0, 0.8, grid.size) + 15 * fault
    vibration = np.abs(1.2 + 2.0 * active + rng.normal(0, 0.3, grid.size) + 9 * fault)
    spindle = np.where(active, 12_000 + rng.normal(0, 150, grid.size), 0.0)
    increments = (active & (rng.random(grid.size) < plant.sample_seconds / 120)).astype(np.int64)
    dropout = rng.random(grid.size) < 0.002
    values = {
        "Temperature": np.round(temperature, 3),
        "Vibration": np.round(vibration, 4),
        "SpindleSpeed": np.round(spindle, 1),
        "State": state,
        "PartCounter": increments,
        "_fault": fault & ~dropout,
        "_dropout": dropout,
    }
    for name, level, spread, slope in sensors:
        noise = rng.normal(0, spread * 0.1, grid.size)
        values[name] = np.round(level * (0.6 + 0.4 * active) + slope * drift + noise + spread * 4 * fault, 3)
    return values

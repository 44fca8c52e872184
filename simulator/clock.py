"""The bundled plant advanced one night at a time, for tests and benchmarks of the nightly job.

Night 0 is what `simulator.__main__.generate_sources` writes for a day-by-day plant (see
`simulator.daily`). Each later night adds the UTC day before it to every source: ERP bookings
(`simulator.erp_nights`), log lines and supplier files (`simulator.file_nights`), and that
day's sensor history. An idle night adds nothing anywhere: the plant stood still that day,
and its historian recorded nothing, so the served history keeps a gap there and ends where
it ended (`anchor`) while the calendar (`now`) moves on.

Everything derives from the seed, the night numbers and the idle nights, so a clock made
again with the same fields knows what its sources hold (it replays the nights in memory,
without writing) and what the lake should hold after loading them (`expected_*`).

Run the nightly job with `now` as its present. The OPC-UA loader reads up to its present and
marks that as read, so a later present would skip the start of the next night's day. Every file
carries the simulated time it was written as its modification time (`simulator.file_nights`),
so at `now` the logs are settled and the supplier files in the order they came.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np

from plantlake.simulator import erp_nights, file_nights
from plantlake.simulator.__main__ import generate_sources
from plantlake.simulator.erp import erp_rows
from plantlake.simulator.expected import (
    expected_erp_rows,
    expected_machine_events,
    expected_material_lots,
    expected_sensor_readings,
)
from plantlake.simulator.file_nights import Delivery
from plantlake.simulator.files import LogEvent, plant_log_events
from plantlake.simulator.plant import TAGS, MaterialLot, Plant, build_plant
from plantlake.simulator.process import serve_command, serving

__all__ = [
    "NightChanges",
    "PlantClock",
    "expected_erp_rows",
    "expected_machine_events",
    "expected_material_lots",
    "expected_sensor_readings",
]

_FILES_STREAM = 0x46494C4553  # seeds the night's supplier files, with the seed and the night


@dataclass(frozen=True)
class NightChanges:
    """What one night changed in the sources; all zero and empty for an idle night."""

    night: int
    day: date  # the UTC day the changes happened on
    erp_inserted: dict[str, int] = field(default_factory=dict)
    erp_updated: dict[str, int] = field(default_factory=dict)
    erp_deleted: dict[str, int] = field(default_factory=dict)
    late_rows: int = 0  # rows whose updated_at lies before the ERP's newest updated_at of the night before
    log_lines: dict[str, int] = field(default_factory=dict)  # lines appended per log folder (plc, cnc)
    rotated_logs: tuple[str, ...] = ()  # logs/... paths the live logs were rotated to
    supplier_files: tuple[str, ...] = ()  # suppliers/... paths written
    new_lots: int = 0
    corrected_lots: tuple[str, ...] = ()
    sensor_values: int = 0  # values the OPC-UA history grew by

    @property
    def changed(self) -> bool:
        return bool(
            self.erp_inserted
            or self.erp_updated
            or self.erp_deleted
            or self.log_lines
            or self.rotated_logs
            or self.supplier_files
            or self.sensor_values
        )


@dataclass
class SourceState:
    """What every source holds after a night, as the clock's model says."""

    erp: erp_nights.ErpState
    lots: dict[str, MaterialLot]  # as the newest file of each lot says
    deliveries: list[Delivery]  # originals only; a re-send corrects the newest delivery of its supplier
    events: list[LogEvent]


@dataclass
class _Night:
    """One night's changes, computed before anything is written."""

    erp: erp_nights.ErpChanges
    deliveries: list[tuple[Delivery, list[MaterialLot], Delivery | None]]  # file, its lots, the original it corrects
    corrected_lots: list[str]
    events: list[LogEvent]
    rotate: bool


@dataclass
class PlantClock:
    """The bundled plant advanced one night at a time: night 0 is what generate_sources writes."""

    seed: int
    lines: int
    machines_per_line: int
    history_days: float
    sample_seconds: int
    anchor0: datetime  # midnight UTC: where night 0's history ends
    output: Path
    erp_url: str | None = None  # default: SQLite in `output`, as generate_sources does
    night: int = 0
    idle_nights: set[int] = field(default_factory=set)
    tags_per_machine: int = len(TAGS)
    rotate_every: int = 3  # nights between log rotations
    _sources: SourceState | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.anchor0.tzinfo is None or self.anchor0.utcoffset() or self.anchor0.time() != time(0):
            raise ValueError(f"anchor0 must be midnight UTC, not {self.anchor0!r}")
        if self.rotate_every < 1:
            raise ValueError(f"rotate_every must be at least 1, not {self.rotate_every}")
        self.anchor0 = self.anchor0.astimezone(UTC)
        self.erp_url = self.erp_url or f"sqlite:///{self.output / 'erp.sqlite'}"

    @property
    def now(self) -> datetime:
        """The simulated present: the midnight that ends the current night's day."""
        return self.anchor0 + timedelta(days=self.night)

    @property
    def anchor(self) -> datetime:
        """End of the OPC-UA history served for the current night (the end of its last day with changes)."""
        return self._history_end(self.night)

    def _history_end(self, night: int) -> datetime:
        active = [k for k in range(1, night + 1) if k not in self.idle_nights]
        return self.anchor0 + timedelta(days=max(active, default=0))

    def day_of(self, night: int) -> datetime:
        """The UTC day whose changes night `night` (1, 2, ...) brings."""
        return self.anchor0 + timedelta(days=night - 1)

    def plant(self, night: int | None = None) -> Plant:
        """The plant as served on `night` (default: the current one); its orders matter for night 0 only."""
        night = self.night if night is None else night
        end = self._history_end(night)
        idle = frozenset(self.day_of(k).date() for k in self.idle_nights if k <= night)
        return build_plant(
            self.seed,
            self.lines,
            self.machines_per_line,
            self.history_days + (end - self.anchor0).days,
            self.sample_seconds,
            end,
            self.tags_per_machine,
            day_by_day=True,
            idle_days=idle,
        )

    def start(self) -> None:
        """Night 0: write the ERP, logs and supplier files as generate_sources does (and date the files)."""
        if self.night != 0:
            raise RuntimeError(f"the clock is at night {self.night}; start() writes night 0")
        earlier = [
            path for folder in ("logs", "suppliers") for path in (self.output / folder).rglob("*") if path.is_file()
        ]
        if earlier:  # rotation and re-sends would build on them
            raise FileExistsError(
                f"{self.output} holds files of an earlier plant ({earlier[0]}); start on an empty folder"
            )
        plant = self.plant(0)
        generate_sources(plant, self.output, self.erp_url)
        self._sources = _initial(plant)
        for delivery in self._sources.deliveries:  # delivered the day before
            file_nights.set_modified(
                self.output / "suppliers" / delivery.supplier / delivery.file_name, self.anchor0 - timedelta(hours=12)
            )
        for kind, suffix in file_nights.LOG_FOLDERS.items():
            for line in sorted({machine.line for machine in plant.machines}):
                moment = file_nights.last_moment(plant, self._sources.events, line)
                if moment is not None:
                    file_nights.set_modified(self.output / "logs" / kind / f"{line.lower()}{suffix}", moment)

    def advance(self, changes: bool = True) -> NightChanges:
        """Move to the next night and write that day's changes to every source (none if not `changes`)."""
        sources, night = self.sources(), self.night + 1
        day = self.day_of(night)
        if not changes:
            self.idle_nights.add(night)
            self.night = night
            return NightChanges(night, day.date())
        if self.erp_url is None:  # __post_init__ sets it; only a later assignment clears it
            raise RuntimeError("PlantClock.erp_url is None; give the ERP database URL")
        plant = self.plant(night)
        work = self._plan(sources, night, plant)
        erp_nights.apply_to_database(self.erp_url, work.erp)
        written = [
            file_nights.write_delivery(self.output / "suppliers", delivery, lots, day + timedelta(hours=hour))
            for hour, (delivery, lots, _) in enumerate(work.deliveries, start=10)
        ]  # a re-send comes last
        rotate_at = day + timedelta(hours=12) if work.rotate else None  # the morning's lines go with the rotated file
        rotated = file_nights.append_logs(plant, self.output / "logs", work.events, rotate_at)
        _apply(sources, work)
        self.night = night
        inserted, updated, deleted = work.erp.counts()
        samples = plant.timestamps
        in_day = int(np.count_nonzero((samples >= day.timestamp()) & (samples < (day + timedelta(days=1)).timestamp())))
        return NightChanges(
            night,
            day.date(),
            erp_inserted=inserted,
            erp_updated=updated,
            erp_deleted=deleted,
            late_rows=work.erp.late_rows,
            log_lines={kind: len(work.events) for kind in file_nights.LOG_FOLDERS},
            rotated_logs=tuple(path.relative_to(self.output).as_posix() for path in rotated),
            supplier_files=tuple(path.relative_to(self.output).as_posix() for path in written),
            new_lots=sum(len(lots) for _, lots, corrects in work.deliveries if corrects is None),
            corrected_lots=tuple(work.corrected_lots),
            sensor_values=in_day * len(plant.machines) * len(plant.tags),
        )

    @contextmanager
    def opcua_server(self, port: int, timeout_s: float = 60) -> Iterator[str]:
        """A simulator OPC-UA server process serving the history from the start up to `anchor`; yields its endpoint."""
        with serving(self.serve_command(port), port, timeout_s) as endpoint:
            yield endpoint

    def serve_command(self, port: int, night: int | None = None) -> list[str]:
        """The command line of the server `opcua_server` runs, for `night` (default: the current one).

        A later night's server may be started ahead, while the current night runs; an idle
        night must then already be in `idle_nights`.
        """
        plant = self.plant(night)
        days = (plant.end - plant.start) / timedelta(days=1)
        return serve_command(
            port,
            plant.end,
            self.seed,
            self.lines,
            self.machines_per_line,
            days,
            self.sample_seconds,
            self.tags_per_machine,
            day_by_day=True,
            idle_days=plant.idle_days,
        )

    def sources(self) -> SourceState:
        """What the sources hold at the current night, replayed in memory if this clock did not write it."""
        if self._sources is None:
            sources, plant = _initial(self.plant(0)), self.plant()
            for night in range(1, self.night + 1):
                if night not in self.idle_nights:
                    _apply(sources, self._plan(sources, night, plant))
            self._sources = sources
        return self._sources

    def _plan(self, sources: SourceState, night: int, plant: Plant) -> _Night:
        """Night `night`'s changes to `sources`, nothing written; `plant`: any plant served on or after that night."""
        rng = np.random.default_rng([self.seed, _FILES_STREAM, night])
        day = self.day_of(night)
        deliveries: list[tuple[Delivery, list[MaterialLot], Delivery | None]] = []
        known = dict(sources.lots)
        for supplier, (low, high) in (("acme", (2, 5)), ("stahlwerk", (1, 4))):
            lots = file_nights.new_lots(rng, known, supplier, int(rng.integers(low, high)), day)
            known.update((lot.lot_id, lot) for lot in lots)
            name = file_nights.delivery_name(supplier, day)
            deliveries.append((Delivery(night, supplier, name, tuple(lot.lot_id for lot in lots)), lots, None))
        corrected: list[str] = []
        resent = {2: "acme", 0: "stahlwerk"}.get(night % 3) if night >= 2 else None
        if resent is not None:
            original = [delivery for delivery in sources.deliveries if delivery.supplier == resent][-1]
            lots = file_nights.correct_one(rng, [sources.lots[lot_id] for lot_id in original.lot_ids])
            corrected = [lot.lot_id for lot in lots if lot != sources.lots[lot.lot_id]]
            name = file_nights.delivery_name(resent, day, corrects=original)
            deliveries.append((Delivery(night, resent, name, original.lot_ids), lots, original))
        new_ids = [lot_id for delivery, _, corrects in deliveries if corrects is None for lot_id in delivery.lot_ids]
        erp = erp_nights.day_changes(sources.erp, self.seed, night, day, new_ids, sorted(sources.lots))
        return _Night(
            erp, deliveries, corrected, file_nights.day_log_events(plant, day), night % self.rotate_every == 0
        )


def _initial(plant: Plant) -> SourceState:
    """The sources as generate_sources writes them; the bad row of Acme's file never makes a lot."""
    deliveries = [
        Delivery(0, supplier, name, tuple(lot.lot_id for lot in plant.lots if lot.lot_id.startswith(f"LOT-{prefix}-")))
        for supplier, prefix, name in (
            ("acme", "AC", f"lieferung_{plant.start:%Y%m%d}.csv"),
            ("stahlwerk", "SW", f"deliveries_{plant.start:%Y%m%d}.xlsx"),
        )
    ]
    return SourceState(
        erp_nights.erp_state(erp_rows(plant)),
        {lot.lot_id: lot for lot in plant.lots},
        deliveries,
        plant_log_events(plant),
    )


def _apply(sources: SourceState, night: _Night) -> None:
    erp_nights.apply_to_state(sources.erp, night.erp)
    for delivery, lots, corrects in night.deliveries:
        sources.lots.update((lot.lot_id, lot) for lot in lots)
        if corrects is None:
            sources.deliveries.append(delivery)
    sources.events += night.events

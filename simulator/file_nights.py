"""One day of machine logs and supplier files for the plant that advances night by night.

Every file carries the simulated time it was last written as its modification time (a log
its last line's moment, a delivery the hour it arrived), so a loader that runs at the
simulated present finds logs settled and orders files as they came.

Logs grow by appending, and on some nights are rotated as logrotate does (with compress and
delaycompress): `l1.log.N.gz` -> `l1.log.N+1.gz`, `l1.log.1` -> `l1.log.2.gz`, `l1.log` ->
`l1.log.1`, and the next line starts a new `l1.log`. Suppliers drop new files only: a
delivery of new lots, and now and then a corrected re-send of an earlier delivery (same
lots, one quantity changed), newer than the original so it lands after it. The loader moves
what it took to an archive, so nothing here reads an earlier file back.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from plantlake.simulator.files import (
    LogEvent,
    alarm_events,
    log_lines,
    shift_events,
    write_acme_csv,
    write_stahlwerk_xlsx,
)
from plantlake.simulator.plant import MATERIALS, MaterialLot, Plant

LOG_FOLDERS = {"plc": ".log", "cnc": ".jsonl"}  # folder under logs/ and the suffix of its live files
SUPPLIERS = {"acme": ("Acme Stahlhandel GmbH", "AC"), "stahlwerk": ("Stahlwerk Süd AG", "SW")}


def day_log_events(plant: Plant, day: datetime) -> list[LogEvent]:
    """The shifts of the day and the alarms of the plant's anomalies that start in it."""
    anomalies = [anomaly for anomaly in plant.anomalies if day <= anomaly.start < day + timedelta(days=1)]
    return shift_events(plant, day) + alarm_events(anomalies)


def append_logs(plant: Plant, folder: Path, events: list[LogEvent], rotate_at: datetime | None) -> list[Path]:
    """Append the events to each line's live log in logs/plc and logs/cnc; with `rotate_at`, the
    logs are rotated at that moment, so the entries before it end up in the rotated file.
    Returns the rotated files."""
    early = [event for event in events if rotate_at is not None and event.moment < rotate_at]
    late = [event for event in events if rotate_at is None or event.moment >= rotate_at]
    rotated = []
    for (kind, suffix), before, after in zip(
        LOG_FOLDERS.items(), log_lines(plant, early), log_lines(plant, late), strict=True
    ):
        for line in sorted({machine.line for machine in plant.machines}):
            live = folder / kind / f"{line.lower()}{suffix}"
            _append(live, before.get(line, []), last_moment(plant, early, line))
            if rotate_at is not None and live.exists():
                rotated.append(rotate(live))
            _append(live, after.get(line, []), last_moment(plant, late, line))
    return rotated


def last_moment(plant: Plant, events: list[LogEvent], line: str) -> datetime | None:
    """When the last of `events` on production line `line` was logged."""
    machines = {machine.machine_id for machine in plant.machines if machine.line == line}
    return max((event.moment for event in events if event.machine_id in machines), default=None)


def set_modified(path: Path, moment: datetime) -> None:
    stamp = int(moment.timestamp() * 1_000_000_000)
    os.utime(path, ns=(stamp, stamp))


def _append(path: Path, texts: list[str], moment: datetime | None) -> None:
    if texts and moment is not None:
        with path.open("a", encoding="utf-8", newline="\n") as handle:
            handle.write("\n".join(texts) + "\n")
        set_modified(path, moment)


def rotate(live: Path) -> Path:
    """Rotate one log as logrotate does; returns the name the live file has now (`.1`)."""
    pattern = re.compile(re.escape(live.name) + r"\.(\d+)\.gz")
    matches = [(pattern.fullmatch(path.name), path) for path in live.parent.iterdir()]
    compressed = sorted((int(match.group(1)), path) for match, path in matches if match)
    for number, path in reversed(compressed):
        path.rename(live.with_name(f"{live.name}.{number + 1}.gz"))
    first = live.with_name(f"{live.name}.1")
    if first.exists():
        compressed_first = live.with_name(f"{live.name}.2.gz")
        compressed_first.write_bytes(gzip.compress(first.read_bytes(), mtime=0))  # the same bytes on a rerun
        modified = first.stat().st_mtime_ns
        os.utime(compressed_first, ns=(modified, modified))  # as gzip keeps it
        first.unlink()
    live.rename(first)
    return first


@dataclass(frozen=True)
class Delivery:
    """A file a supplier dropped: the original of a delivery, or a corrected re-send of one."""

    night: int
    supplier: str  # a key of SUPPLIERS, the drop folder under suppliers/
    file_name: str
    lot_ids: tuple[str, ...]


def delivery_name(supplier: str, day: datetime, corrects: Delivery | None = None) -> str:
    if corrects is not None:
        stem, suffix = corrects.file_name.rsplit(".", 1)
        return f"{stem}_{'korrektur' if supplier == 'acme' else 'corrected'}_{day:%Y%m%d}.{suffix}"
    return f"lieferung_{day:%Y%m%d}.csv" if supplier == "acme" else f"deliveries_{day:%Y%m%d}.xlsx"


def new_lots(
    rng: np.random.Generator, known: dict[str, MaterialLot], supplier: str, count: int, day: datetime
) -> list[MaterialLot]:
    """`count` lots numbered on from the supplier's highest lot number, delivered on `day`."""
    name, prefix = SUPPLIERS[supplier]
    numbers = [int(lot_id.rsplit("-", 1)[1]) for lot_id in known if lot_id.startswith(f"LOT-{prefix}-")]
    first = max(numbers, default=0) + 1
    return [
        MaterialLot(
            lot_id=f"LOT-{prefix}-{first + offset:04d}",
            supplier=name,
            material=MATERIALS[int(rng.integers(0, len(MATERIALS)))],
            quantity_kg=round(float(rng.uniform(500, 5000)), 3),
            delivered_on=day.date(),
            certificate=f"3.1 EN 10204 Nr. {int(rng.integers(10000, 99999))}",
        )
        for offset in range(count)
    ]


def correct_one(rng: np.random.Generator, lots: list[MaterialLot]) -> list[MaterialLot]:
    """The same lots with the quantity of one of them corrected by 5 to 80 kg."""
    index = int(rng.integers(0, len(lots)))
    change = float(rng.uniform(5, 80)) * (1 if rng.random() < 0.5 else -1)
    corrected = replace(lots[index], quantity_kg=round(max(lots[index].quantity_kg + change, 1.0), 3))
    return [*lots[:index], corrected, *lots[index + 1 :]]


def write_delivery(folder: Path, delivery: Delivery, lots: list[MaterialLot], arrived: datetime) -> Path:
    """Drop a delivery file as its supplier writes it, modified when it `arrived`; never over an existing file."""
    path = folder / delivery.supplier / delivery.file_name
    if path.exists():
        raise FileExistsError(
            f"{path} exists; the plant clock writes new files only, start it on an empty output folder"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if delivery.supplier == "acme":
        write_acme_csv(lots, path)
    else:
        write_stahlwerk_xlsx(lots, path)
    set_modified(path, arrived)
    return path

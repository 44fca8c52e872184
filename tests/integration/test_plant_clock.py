"""The plant clock: every source advances night by night as reported, the sensor history's past
never changes, an idle night changes nothing, and the ERP advances alike on PostgreSQL and MariaDB."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pyarrow as pa
import pytest
import sqlalchemy as sa

from plantlake.connectors.opcua_stream import read_history_blocking
from plantlake.simulator.clock import (
    NightChanges,
    PlantClock,
    expected_erp_rows,
    expected_machine_events,
    expected_material_lots,
    expected_sensor_readings,
)
from plantlake.simulator.erp import metadata
from plantlake.simulator.process import free_port

pytestmark = pytest.mark.integration

ANCHOR0 = datetime(2026, 1, 10, tzinfo=UTC)  # fixed: nothing the clock writes depends on the wall clock
_SYSLOG = re.compile(r"^<\d+>1 (\S+) (\S+) plc \d+ (\S+) - ")


def _clock(folder: Path, erp_url: str | None = None, **fields: Any) -> PlantClock:
    """A small plant: 2 lines of 2 machines, 5-minute samples, a day of history, logs rotated every 2nd night."""
    return PlantClock(
        seed=7,
        lines=2,
        machines_per_line=2,
        history_days=1,
        sample_seconds=300,
        anchor0=ANCHOR0,
        output=folder,
        erp_url=erp_url,
        rotate_every=2,
        **fields,
    )


def _erp(url: str) -> dict[str, dict[object, dict]]:
    """Every ERP table's rows by primary key, as the database holds them."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = {}
            for name, table in metadata.tables.items():
                key = table.primary_key.columns.values()[0].name
                tables[name] = {row[key]: dict(row) for row in connection.execute(sa.select(table)).mappings()}
            return tables
    finally:
        engine.dispose()


def _as_keyed(rows: dict[str, list[dict]]) -> dict[str, dict[object, dict]]:
    return {
        name: {row[metadata.tables[name].primary_key.columns.values()[0].name]: row for row in table_rows}
        for name, table_rows in rows.items()
    }


def _diff(before: dict[str, dict], after: dict[str, dict]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    inserted, updated, deleted = {}, {}, {}
    for name in after:
        old, new = before[name], after[name]
        counts = (
            len(new.keys() - old.keys()),
            sum(old[k] != new[k] for k in old.keys() & new.keys()),
            len(old.keys() - new.keys()),
        )
        for found, count in zip((inserted, updated, deleted), counts, strict=True):
            if count:
                found[name] = count
    return inserted, updated, deleted


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below `folder`: its bytes and its modification time."""
    return {
        path.relative_to(folder).as_posix(): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _log_events(logs: Path, hosts: dict[str, str]) -> Counter:
    """(log, machine, timestamp, code) of every line in every log file, rotated and gzipped ones too."""
    found: Counter = Counter()
    for path in sorted(p for p in logs.rglob("*") if p.is_file()):
        text = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for line in text.decode("utf-8").splitlines():
            if path.parent.name == "plc":
                stamp, host, code = _SYSLOG.match(line).groups()
                found["plc", hosts[host], datetime.fromisoformat(stamp), code] += 1
            else:
                record = json.loads(line)
                found["cnc", record["machine"], datetime.fromisoformat(record["time"]), record["code"]] += 1
    return found


def _line_count(logs: Path, kind: str) -> int:
    return sum(
        len((gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()).splitlines())
        for p in (logs / kind).iterdir()
    )


def _lots_in(path: Path) -> dict[str, tuple[str, str, float]]:
    """lot_id -> (material, supplier, quantity_kg) as a supplier file says; rows without a number left out."""
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(path.read_bytes().decode("cp1252")), delimiter=";"))[1:]
    else:
        rows = [
            list(row)
            for row in openpyxl.load_workbook(path, read_only=True)["Lots"].iter_rows(min_row=2, values_only=True)
        ]
    lots = {}
    for lot_id, material, supplier, quantity, *_ in rows:
        try:
            lots[lot_id] = (material, supplier, float(str(quantity).replace(",", ".")))
        except ValueError:
            continue  # "k.A.": the loader quarantines it
    return lots


def _archive(suppliers: Path) -> None:
    """Take every dropped file to the folder's archive, as the loader does."""
    for path in [p for p in suppliers.glob("*/*") if p.is_file()]:
        (path.parent / "archive").mkdir(exist_ok=True)
        shutil.move(path, path.parent / "archive" / path.name)


def _check_erp(clock: PlantClock, changes: NightChanges, before: dict[str, dict], day: datetime) -> None:
    """The database moved exactly as reported, as the clock expects, and still makes sense."""
    after = _erp(clock.erp_url)
    assert _diff(before, after) == (changes.erp_inserted, changes.erp_updated, changes.erp_deleted)
    assert {
        "production_orders",
        "work_orders",
        "stock_moves",
    } <= changes.erp_inserted.keys() & changes.erp_updated.keys()
    assert changes.erp_updated.keys() & {"customers", "products"} and changes.erp_deleted["production_orders"] >= 1
    assert after == _as_keyed(expected_erp_rows(clock))
    start, end = day.replace(tzinfo=None), (day + timedelta(days=1)).replace(tzinfo=None)
    for name in changes.erp_updated:  # every changed row carries the new day in updated_at
        bumped = [
            row["updated_at"] for key, row in after[name].items() if key in before[name] and row != before[name][key]
        ]
        assert all(start < stamp <= end for stamp in bumped), name
    old, orders = before["production_orders"], after["production_orders"]
    assert {old[key]["status"] for key in old.keys() - orders.keys()} == {
        "planned"
    }  # never ran: nothing refers to them
    newest_before = max(row["updated_at"] for row in old.values())
    late = [row for key, row in orders.items() if key not in old and row["updated_at"] < newest_before]
    assert len(late) == changes.late_rows == 1 and late[0]["updated_at"] >= newest_before - timedelta(minutes=30)
    ran = [row for key, row in orders.items() if old.get(key, {}).get("status") == "planned"]
    assert ran and all(start <= row["actual_start"] < (row["actual_end"] or end) <= end for row in ran)
    assert all((row["actual_end"] is None) == (row["status"] == "in_progress") for row in ran)  # running: no end
    assert {row["status"] for row in ran} <= {"done", "in_progress"}
    referenced = {row["production_order_id"] for name in ("work_orders", "stock_moves") for row in after[name].values()}
    assert referenced <= orders.keys() and {row["machine_id"] for row in orders.values()} <= after["machines"].keys()
    lots = expected_material_lots(clock)
    assert {row["material_lot"] for row in orders.values()} <= lots.keys()
    planned = {row["material_lot"] for key, row in orders.items() if key not in old and row["status"] == "planned"}
    assert planned <= {lot for lot, _ in _delivered(clock, changes)}  # tomorrow's plan runs on today's lots


def _delivered(clock: PlantClock, changes: NightChanges) -> set[tuple[str, tuple]]:
    """(lot, its values) in the night's new deliveries (not its re-sends)."""
    return {
        (lot, values)
        for path in changes.supplier_files
        if not re.search(r"_(korrektur|corrected)_", path)
        for lot, values in _lots_in(clock.output / path).items()
    }


def _check_logs(
    clock: PlantClock, changes: NightChanges, lines_before: dict[str, int], live_before: dict[str, bytes], day: datetime
) -> None:
    """The day's lines appended, rotated every 2nd night; the files hold the expected events,
    the alarms the anomalies."""
    logs = clock.output / "logs"
    assert changes.log_lines == {kind: _line_count(logs, kind) - lines_before[kind] for kind in ("plc", "cnc")}
    hosts = {machine.host: machine.machine_id for machine in clock.plant().machines}
    found, events = _log_events(logs, hosts), expected_machine_events(clock)
    columns = (events[name].to_pylist() for name in ("log", "machine_id", "timestamp", "code"))
    assert found == Counter(zip(*columns, strict=True))
    alarms = {(log, machine, moment) for log, machine, moment, code in found if code == "A-17" and moment >= day}
    assert alarms == {
        (log, a.machine_id, a.start) for a in clock.plant().anomalies if a.start >= day for log in ("plc", "cnc")
    }
    if changes.night % 2:
        assert changes.rotated_logs == ()
        return
    live = [f"logs/{kind}/l{line}.{suffix}" for kind, suffix in (("plc", "log"), ("cnc", "jsonl")) for line in (1, 2)]
    assert sorted(changes.rotated_logs) == sorted(f"{path}.1" for path in live)
    for rotated in changes.rotated_logs:  # yesterday's live file, grown by the morning's lines
        assert (clock.output / rotated).read_bytes().startswith(live_before[Path(rotated).stem])
    if changes.night >= 4:  # the rotation before was compressed
        assert gzip.decompress((logs / "plc" / "l1.log.2.gz").read_bytes()).startswith(b"<")


def _check_suppliers(clock: PlantClock, changes: NightChanges, lots_before: dict[str, tuple]) -> None:
    """New files only: a delivery of new lots, on nights 2 and 3 a corrected re-send newer than its original."""
    suppliers = clock.output / "suppliers"
    assert sorted(p.relative_to(clock.output).as_posix() for p in suppliers.glob("*/*") if p.is_file()) == sorted(
        changes.supplier_files
    )
    new = dict(_delivered(clock, changes))
    assert len(new) == changes.new_lots and not new.keys() & lots_before.keys()
    resent = [path for path in changes.supplier_files if re.search(r"_(korrektur|corrected)_", path)]
    assert len(resent) == (1 if changes.night in (2, 3) else 0)
    for path in resent:
        resend = clock.output / path
        original = resend.parent / "archive" / re.sub(r"_(korrektur|corrected)_\d+", "", resend.name)
        old, corrected = _lots_in(original), _lots_in(resend)
        assert old.keys() == corrected.keys() and [lot for lot in old if old[lot] != corrected[lot]] == list(
            changes.corrected_lots
        )
        assert resend.stat().st_mtime_ns > original.stat().st_mtime_ns
    _archive(suppliers)
    archived = sorted(suppliers.glob("*/archive/*"), key=lambda path: (path.stat().st_mtime_ns, path.name))
    assert {lot: values for path in archived for lot, values in _lots_in(path).items()} == expected_material_lots(clock)


def test_each_night_changes_every_source_as_reported(tmp_path: Path) -> None:
    clock = _clock(tmp_path / "sources")
    clock.start()
    logs = clock.output / "logs"
    assert _as_keyed(expected_erp_rows(clock)) == _erp(clock.erp_url)
    _archive(clock.output / "suppliers")  # the loader takes every file away; the clock must not need them
    for night in range(1, 5):
        erp_before, lots_before = _erp(clock.erp_url), expected_material_lots(clock)
        lines_before = {kind: _line_count(logs, kind) for kind in ("plc", "cnc")}
        live_before = {path.name: path.read_bytes() for path in logs.rglob("*") if path.suffix in (".log", ".jsonl")}
        readings_before = expected_sensor_readings(clock).num_rows

        changes = clock.advance()
        day = ANCHOR0 + timedelta(days=night - 1)
        assert (changes.night, changes.day) == (night, day.date()) and clock.anchor == clock.now == day + timedelta(
            days=1
        )
        _check_erp(clock, changes, erp_before, day)
        _check_logs(clock, changes, lines_before, live_before, day)
        _check_suppliers(clock, changes, lots_before)
        dated = [
            path for folder in ("logs", "suppliers") for path in (clock.output / folder).rglob("*") if path.is_file()
        ]
        assert (
            max(path.stat().st_mtime for path in dated) <= clock.now.timestamp()
        )  # written in simulated time: settled at `now`
        assert changes.sensor_values == expected_sensor_readings(clock).num_rows - readings_before == 4 * 5 * 288


def test_an_idle_night_changes_nothing_and_the_next_night_goes_on(tmp_path: Path) -> None:
    clock = _clock(tmp_path / "sources")
    clock.start()
    for _ in range(3):
        clock.advance()
    erp, files, anchor = _erp(clock.erp_url), _files(clock.output), clock.anchor
    readings, lots, events = (
        expected_sensor_readings(clock),
        expected_material_lots(clock),
        expected_machine_events(clock),
    )

    idle = clock.advance(changes=False)  # night 4: a rotation night, too
    assert not idle.changed and idle.night == 4 and clock.idle_nights == {4}
    assert _erp(clock.erp_url) == erp
    assert _files(clock.output) == files  # logs, supplier folders, the ERP's file: same names, bytes and times
    assert clock.anchor == anchor and clock.now == anchor + timedelta(
        days=1
    )  # the calendar moves, the history does not
    assert expected_sensor_readings(clock).equals(readings)
    assert expected_material_lots(clock) == lots and expected_machine_events(clock).equals(events)

    newest_before = max(row["updated_at"] for row in erp["production_orders"].values())
    night = clock.advance()  # night 5 brings day 5; day 4 stays a gap in every source
    assert night.changed and night.day == (ANCHOR0 + timedelta(days=4)).date() and clock.anchor == clock.now
    after = _erp(clock.erp_url)
    orders = after["production_orders"]
    late = [
        row for key, row in orders.items() if key not in erp["production_orders"] and row["updated_at"] < newest_before
    ]
    assert len(late) == 1 and late[0]["updated_at"] >= newest_before - timedelta(minutes=30)
    gap = (ANCHOR0 + timedelta(days=3), ANCHOR0 + timedelta(days=4))
    stamps = expected_sensor_readings(clock)["timestamp"].to_pylist()
    assert not [t for t in stamps if gap[0] <= t < gap[1]] and max(stamps) == clock.anchor - timedelta(seconds=300)
    assert not [e for e in expected_machine_events(clock)["timestamp"].to_pylist() if gap[0] <= e < gap[1]]

    replayed = _clock(tmp_path / "sources", night=clock.night, idle_nights={4})  # a new process knows the same truth
    assert expected_erp_rows(replayed) == expected_erp_rows(clock)
    assert expected_material_lots(replayed) == expected_material_lots(clock)


def _served(endpoint: str, clock: PlantClock) -> dict[tuple[str, str, datetime], tuple[float, int]]:
    _tags, batches = read_history_blocking(
        endpoint, ["2:Plant"], ANCHOR0 - timedelta(days=30), clock.now, exclude=["*/SerialNumber"]
    )
    served = {}
    for row in pa.Table.from_batches(list(batches)).to_pylist():
        value = row["value"] if row["value"] is not None else float(row["value_int"])
        served[row["machine_id"], row["tag"], row["source_timestamp"]] = (value, row["status_code"])
    return served


def test_the_history_of_earlier_nights_never_changes(tmp_path: Path) -> None:
    clock = _clock(tmp_path / "sources", night=5, idle_nights={3})  # nothing written: the history is the model's
    for night in range(1, 6):  # generated: each night's plant extends the one before without touching it
        earlier, later = clock.plant(night - 1), clock.plant(night)
        shared = np.isin(later.timestamps, earlier.timestamps)
        assert shared.sum() == len(earlier.timestamps)
        for machine in later.machines:
            old, new = earlier.signals(machine), later.signals(machine)
            for tag in later.tags:
                assert np.array_equal(new[tag][0][shared], old[tag][0]) and np.array_equal(
                    new[tag][1][shared], old[tag][1]
                )
        assert set(earlier.anomalies) <= set(later.anomalies)

    first = _clock(tmp_path / "sources", night=1)  # served: night 1's server and night 5's agree on night 1's history
    with first.opcua_server(free_port()) as endpoint:
        before = _served(endpoint, first)
    with clock.opcua_server(free_port()) as endpoint:
        after = _served(endpoint, clock)
    assert before and {key: after[key] for key in before} == before
    expected = expected_sensor_readings(clock)
    assert len(after) == expected.num_rows == 4 * 5 * 288 * 5  # the first day, nights 1, 2, 4 and 5; night 3 was idle
    assert all(
        after[m, t, s] == (v, c)
        for m, t, s, v, c in zip(
            *(expected[n].to_pylist() for n in ("machine_id", "tag", "timestamp", "value", "status_code")), strict=True
        )
    )
    assert max(s for _, _, s in after) == clock.anchor - timedelta(seconds=300)


def test_the_erp_advances_alike_on_postgresql_and_mariadb(erp_database_url: str, tmp_path: Path) -> None:
    server = _clock(tmp_path / "server", erp_database_url)
    reference = _clock(tmp_path / "sqlite")
    server.start()
    reference.start()
    for changes in (True, True, False, True):
        reported = server.advance(changes)
        assert reported == reference.advance(changes)
        rows = _erp(erp_database_url)
        assert rows == _as_keyed(expected_erp_rows(server)) == _erp(reference.erp_url)
    assert reported.erp_deleted and reported.late_rows == 1

"""Machine logs and supplier files of the plant, written as real plants' systems write them."""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl

from plantlake.simulator.plant import Anomaly, MaterialLot, Plant

# syslog priority = facility * 8 + severity; facility 16 (local0) as PLCs commonly use
_LOCAL0 = 16
_SEVERITY = {"error": 3, "notice": 5, "info": 6}


def _syslog_5424(moment: datetime, host: str, severity: str, msgid: str, message: str) -> str:
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"<{_LOCAL0 * 8 + _SEVERITY[severity]}>1 {stamp} {host} plc 4711 {msgid} - {message}"


@dataclass(frozen=True)
class LogEvent:
    """One event a machine logs; both its PLC (syslog) and its CNC controller (JSON lines) write it."""

    machine_id: str
    moment: datetime
    severity: str
    code: str
    message: str


def shift_events(plant: Plant, day: datetime) -> list[LogEvent]:
    """Shift start at 06:00 and shift end at 22:00 after `day` on every machine."""
    return [
        event
        for machine in plant.machines
        for event in (
            LogEvent(machine.machine_id, day + timedelta(hours=6), "info", "S-01", "Shift start, program O1234 loaded"),
            LogEvent(machine.machine_id, day + timedelta(hours=22), "info", "S-02", "Shift end, spindle stopped"),
        )
    ]


def alarm_events(anomalies: list[Anomaly]) -> list[LogEvent]:
    """The alarm when an anomaly starts and its clearing when it ends."""
    events = []
    for anomaly in anomalies:
        events.append(LogEvent(anomaly.machine_id, anomaly.start, "error", anomaly.code, anomaly.message))
        events.append(
            LogEvent(anomaly.machine_id, anomaly.end, "notice", "A-17C", "Alarm cleared: spindle vibration normal")
        )
    return events


def plant_log_events(plant: Plant) -> list[LogEvent]:
    """The events of the whole history: the shifts of each day from the start, and every anomaly."""
    events, day = [], plant.start
    while day < plant.end:
        events += shift_events(plant, day)
        day += timedelta(days=1)
    return events + alarm_events(plant.anomalies)


def log_lines(plant: Plant, events: list[LogEvent]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per production line, in time order: the PLC's syslog lines and the CNC controllers' JSON lines."""
    hosts = {m.machine_id: m for m in plant.machines}
    syslog_lines: dict[str, list[tuple[datetime, str]]] = {}
    json_lines: dict[str, list[tuple[datetime, str]]] = {}
    for event in events:
        machine = hosts[event.machine_id]
        syslog_lines.setdefault(machine.line, []).append(
            (event.moment, _syslog_5424(event.moment, machine.host, event.severity, event.code, event.message))
        )
        record = {
            "time": event.moment.isoformat().replace("+00:00", "Z"),
            "machine": event.machine_id,
            "level": {"error": "ALARM", "notice": "INFO", "info": "INFO"}[event.severity],
            "code": event.code,
            "message": event.message,
            "controller": "Sinumerik 840D",
        }
        json_lines.setdefault(machine.line, []).append((event.moment, json.dumps(record, ensure_ascii=False)))
    return (
        {line: [text for _, text in sorted(entries)] for line, entries in syslog_lines.items()},
        {line: [text for _, text in sorted(entries)] for line, entries in json_lines.items()},
    )


def write_machine_logs(plant: Plant, folder: Path) -> list[Path]:
    """PLC syslog (RFC 5424) per line and CNC controller JSON lines; alarms match the anomalies."""
    syslog_dir, json_dir = folder / "plc", folder / "cnc"
    syslog_dir.mkdir(parents=True, exist_ok=True)
    json_dir.mkdir(parents=True, exist_ok=True)
    syslog_lines, json_lines = log_lines(plant, plant_log_events(plant))
    written = []
    for line, texts in syslog_lines.items():
        path = syslog_dir / f"{line.lower()}.log"
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
        written.append(path)
    for line, texts in json_lines.items():
        path = json_dir / f"{line.lower()}.jsonl"
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _decimal_comma(value: float) -> str:
    return f"{value:.3f}".replace(".", ",")


def write_supplier_files(plant: Plant, folder: Path, bad_row: bool = True) -> list[Path]:
    """Acme sends a semicolon CSV in cp1252 with decimal commas; Stahlwerk Süd sends an .xlsx."""
    acme_dir, steel_dir = folder / "acme", folder / "stahlwerk"
    acme_dir.mkdir(parents=True, exist_ok=True)
    steel_dir.mkdir(parents=True, exist_ok=True)
    acme = [lot for lot in plant.lots if lot.lot_id.startswith("LOT-AC")]
    steel = [lot for lot in plant.lots if lot.lot_id.startswith("LOT-SW")]
    csv_path = acme_dir / f"lieferung_{plant.start:%Y%m%d}.csv"
    write_acme_csv(acme, csv_path, bad_row)
    xlsx_path = steel_dir / f"deliveries_{plant.start:%Y%m%d}.xlsx"
    write_stahlwerk_xlsx(steel, xlsx_path)
    delivered = plant.start.timestamp()  # long since whole: a run need not wait for them to settle
    for path in (csv_path, xlsx_path):
        os.utime(path, (delivered, delivered))
    return [csv_path, xlsx_path]


def write_acme_csv(lots: list[MaterialLot], path: Path, bad_row: bool = False) -> None:
    """Acme's delivery note; `bad_row` adds a lot whose quantity reads "k.A." (not known)."""
    lines = ["Charge;Werkstoff;Lieferant;Menge kg;Lieferdatum;Zeugnis"]
    for lot in lots:
        lines.append(
            ";".join(
                [
                    lot.lot_id,
                    lot.material,
                    lot.supplier,
                    _decimal_comma(lot.quantity_kg),
                    lot.delivered_on.strftime("%d.%m.%Y"),
                    lot.certificate,
                ]
            )
        )
    if bad_row:
        lines.append("LOT-AC-9999;S235JR;Acme Stahlhandel GmbH;k.A.;01.01.2026;fehlt")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))


def write_stahlwerk_xlsx(lots: list[MaterialLot], path: Path) -> None:
    """Stahlwerk Süd's delivery workbook, one sheet "Lots"; the same lots give the same bytes."""
    workbook = openpyxl.Workbook()
    sheet = workbook.worksheets[0]  # the new workbook's one sheet
    sheet.title = "Lots"
    sheet.append(["Lot", "Material", "Supplier", "Quantity (kg)", "Delivered", "Certificate"])
    for lot in lots:
        sheet.append([lot.lot_id, lot.material, lot.supplier, lot.quantity_kg, lot.delivered_on, lot.certificate])
    workbook.save(path)
    _pin_xlsx_timestamps(path)


def _pin_xlsx_timestamps(path: Path) -> None:
    """openpyxl stamps the save time into the file; pin it so the same plant gives the same bytes."""
    fixed = (2020, 1, 1, 0, 0, 0)
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in members:
            if info.filename == "docProps/core.xml":
                text = data.decode("utf-8")
                text = re.sub(r"(<dcterms:(created|modified)[^>]*>)[^<]*", r"\g<1>2020-01-01T00:00:00Z", text)
                data = text.encode("utf-8")
            info.date_time = fixed
            target.writestr(info, data)

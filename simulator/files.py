"""Machine logs and supplier files of the plant, written as real plants' systems write them."""

from __future__ import annotations

import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl

from simulator.plant import Plant

# syslog priority = facility * 8 + severity; facility 16 (local0) as PLCs commonly use
_LOCAL0 = 16
_SEVERITY = {"error": 3, "notice": 5, "info": 6}


def _syslog_5424(moment: datetime, host: str, severity: str, msgid: str, message: str) -> str:
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"<{_LOCAL0 * 8 + _SEVERITY[severity]}>1 {stamp} {host} plc 4711 {msgid} - {message}"


def write_machine_logs(plant: Plant, folder: Path) -> list[Path]:
    """PLC syslog (RFC 5424) per line and CNC controller JSON lines; alarms match the anomalies."""
    syslog_dir, json_dir = folder / "plc", folder / "cnc"
    syslog_dir.mkdir(parents=True, exist_ok=True)
    json_dir.mkdir(parents=True, exist_ok=True)
    hosts = {m.machine_id: m for m in plant.machines}
    syslog_lines: dict[str, list[tuple[datetime, str]]] = {}
    json_lines: dict[str, list[tuple[datetime, str]]] = {}

    def add(machine_id: str, moment: datetime, severity: str, code: str, message: str) -> None:
        machine = hosts[machine_id]
        syslog_lines.setdefault(machine.line, []).append(
            (moment, _syslog_5424(moment, machine.host, severity, code, message))
        )
        record = {
            "time": moment.isoformat().replace("+00:00", "Z"),
            "machine": machine_id,
            "level": {"error": "ALARM", "notice": "INFO", "info": "INFO"}[severity],
            "code": code,
            "message": message,
            "controller": "Sinumerik 840D",
        }
        json_lines.setdefault(machine.line, []).append((moment, json.dumps(record, ensure_ascii=False)))

    day = plant.start
    while day < plant.end:
        for machine in plant.machines:
            add(machine.machine_id, day + timedelta(hours=6), "info", "S-01", "Shift start, program O1234 loaded")
            add(machine.machine_id, day + timedelta(hours=22), "info", "S-02", "Shift end, spindle stopped")
        day += timedelta(days=1)
    for anomaly in plant.anomalies:
        add(anomaly.machine_id, anomaly.start, "error", anomaly.code, anomaly.message)
        add(anomaly.machine_id, anomaly.end, "notice", "A-17C", "Alarm cleared: spindle vibration normal")

    written = []
    for line, entries in syslog_lines.items():
        path = syslog_dir / f"{line.lower()}.log"
        path.write_text("\n".join(text for _, text in sorted(entries)) + "\n", encoding="utf-8")
        written.append(path)
    for line, entries in json_lines.items():
        path = json_dir / f"{line.lower()}.jsonl"
        path.write_text("\n".join(text for _, text in sorted(entries)) + "\n", encoding="utf-8")
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

    lines = ["Charge;Werkstoff;Lieferant;Menge kg;Lieferdatum;Zeugnis"]
    for lot in acme:
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
    csv_path = acme_dir / f"lieferung_{plant.start:%Y%m%d}.csv"
    csv_path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Lots"
    sheet.append(["Lot", "Material", "Supplier", "Quantity (kg)", "Delivered", "Certificate"])
    for lot in steel:
        sheet.append([lot.lot_id, lot.material, lot.supplier, lot.quantity_kg, lot.delivered_on, lot.certificate])
    xlsx_path = steel_dir / f"deliveries_{plant.start:%Y%m%d}.xlsx"
    workbook.save(xlsx_path)
    _pin_xlsx_timestamps(xlsx_path)
    return [csv_path, xlsx_path]


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

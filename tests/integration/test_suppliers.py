"""Supplier drop folders: good rows load, bad rows go to quarantine with their reason, no file twice."""

import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from plantlake.assets.suppliers import build_silver, load_bronze
from plantlake.config import parse_config
from plantlake.lake import delta
from plantlake.lake.layout import Lake
from plantlake.simulator.files import write_supplier_files

pytestmark = pytest.mark.integration

CONFIG = """
lake: {root: lake}
sources:
  suppliers:
    - name: acme
      path: drop/acme
      glob: "*.csv"
      format: csv
      csv: {delimiter: ";", decimal: ",", encoding: cp1252, date_format: "%d.%m.%Y"}
      key: [lot_id]
      columns:
        Charge: {name: lot_id, required: true}
        Werkstoff: {name: material, required: true}
        Lieferant: {name: supplier, required: true}
        Menge kg: {name: quantity_kg, type: decimal, scale: 3, required: true}
        Lieferdatum: {name: delivered_on, type: date}
        Zeugnis: {name: certificate}
    - name: stahlwerk
      path: drop/stahlwerk
      glob: "*.xlsx"
      format: xlsx
      sheet: Lots
      key: [lot_id]
      columns:
        Lot: {name: lot_id, required: true}
        Material: {name: material, required: true}
        Supplier: {name: supplier, required: true}
        Quantity (kg): {name: quantity_kg, type: decimal, scale: 3, required: true}
        Delivered: {name: delivered_on, type: date}
        Certificate: {name: certificate}
"""


def _run(config, lake: Lake, run_id: str) -> dict:
    stats = {source.name: load_bronze(lake, source, run_id).metadata for source in config.sources.suppliers}
    stats["silver"] = build_silver(lake, "material_lots", config.sources.suppliers, run_id)
    return stats


def _quarantine(lake: Lake) -> list[dict]:
    table = delta.read(lake.quarantine)
    return [] if table is None else table.to_pylist()


def test_bad_row_goes_to_quarantine_with_its_reason_while_good_rows_load(tmp_path: Path, plant) -> None:
    config = parse_config(CONFIG, tmp_path)
    lake = Lake(config.lake.root)
    csv_file, xlsx_file = write_supplier_files(plant, tmp_path / "drop", bad_row=True)

    stats = _run(config, lake, "run-1")
    lots = {row["lot_id"]: row for row in delta.read(lake.table("silver", "material_lots")).to_pylist()}
    assert len(lots) == len(plant.lots)
    expected = {lot.lot_id: lot for lot in plant.lots}
    for lot_id, row in lots.items():
        assert row["quantity_kg"] == Decimal(f"{expected[lot_id].quantity_kg:.3f}")
        assert row["supplier"] == expected[lot_id].supplier
        assert row["delivered_on"] == expected[lot_id].delivered_on

    [bad] = _quarantine(lake)
    assert (bad["table_name"], bad["file"], bad["field"], bad["value"]) == (
        "bronze.acme_rows",
        str(csv_file),
        "Menge kg",
        "k.A.",
    )
    assert bad["row_key"] == str(len([lot for lot in plant.lots if lot.lot_id.startswith("LOT-AC")]) + 2)
    assert "'k.A.' is not a number" in bad["reason"]
    assert (stats["acme"]["rows_read"], stats["acme"]["rows_quarantined"]) == (stats["acme"]["rows_loaded"] + 1, 1)
    assert stats["silver"].validation.success
    # both files were registered and moved to their archive
    assert not csv_file.exists() and not xlsx_file.exists()
    assert (
        len(list((csv_file.parent / "archive").iterdir())) == 1
        and len(list((xlsx_file.parent / "archive").iterdir())) == 1
    )


def test_a_wrong_header_is_rejected_whole_and_moved_aside_with_a_report(tmp_path: Path, plant) -> None:
    config = parse_config(CONFIG, tmp_path)
    lake = Lake(config.lake.root)
    write_supplier_files(plant, tmp_path / "drop", bad_row=True)
    wrong = tmp_path / "drop" / "acme" / "wrong.csv"
    wrong.write_bytes("Lot;Qty\r\nX;1\r\n".encode("cp1252"))
    os.utime(wrong, (time.time() - 60, time.time() - 60))  # dropped a minute ago: settled
    stats = _run(config, lake, "run-1")

    assert stats["acme"]["files_loaded"] == 1 and stats["acme"]["files_rejected"] == 1
    [rejected] = [row for row in _quarantine(lake) if row["check_name"] == "file"]
    assert rejected["file"] == str(wrong)
    assert "missing ['Charge', 'Werkstoff'" in rejected["reason"] and "found ['Lot', 'Qty']" in rejected["reason"]
    [report] = (wrong.parent / "rejected").glob("wrong.*.csv.txt")
    assert "found ['Lot', 'Qty']" in report.read_text(encoding="utf-8") and not wrong.exists()

from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from connectors.files import FileRejected, check_header, read_csv, read_xlsx
from lake.mapping import apply_mapping
from pipelines.config import ColumnMapping

pytestmark = pytest.mark.unit

COLUMNS = {
    "Charge": ColumnMapping(name="lot_id", required=True),
    "Menge kg": ColumnMapping(name="quantity_kg", type="decimal", scale=3, required=True),
    "Lieferdatum": ColumnMapping(name="delivered_on", type="date"),
    "Werkstoff": ColumnMapping(name="material"),
}


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "lieferung.csv"
    path.write_bytes(body.replace("\n", "\r\n").encode("cp1252"))
    return path


def test_cp1252_semicolon_csv_with_decimal_commas_types_exactly(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Charge;Werkstoff;Menge kg;Lieferdatum\nL-1;Stahl Güte C45;1.234,567;03.01.2026\n")
    table = read_csv(path, ";", "cp1252")
    good, bad = apply_mapping(table.to_pylist(), COLUMNS, table_name="silver.lots", source="acme",
                              decimal_mark=",", date_format="%d.%m.%Y", file_column="_file")
    assert bad == []
    assert good[0]["lot_id"] == "L-1"
    assert good[0]["quantity_kg"] == Decimal("1234.567")
    assert good[0]["delivered_on"] == date(2026, 1, 3)
    assert good[0]["material"] == "Stahl Güte C45"
    assert good[0]["_line"] == 2


def test_bad_values_are_rejected_naming_line_column_value_and_reason(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Charge;Werkstoff;Menge kg;Lieferdatum\nL-1;C45;10,5;01.01.2026\nL-2;C45;k.A.;01.01.2026\n;C45;3;x\n")
    rows = [dict(row, _file=str(path)) for row in read_csv(path, ";", "cp1252").to_pylist()]
    good, bad = apply_mapping(rows, COLUMNS, table_name="silver.lots", source="acme",
                              decimal_mark=",", date_format="%d.%m.%Y", file_column="_file")
    assert [row["lot_id"] for row in good] == ["L-1"]
    by_field = {(r.row, r.field): r for r in bad}
    assert set(by_field) == {("3", "Menge kg"), ("4", "Charge"), ("4", "Lieferdatum")}
    quantity = by_field[("3", "Menge kg")]
    assert quantity.value == "k.A." and quantity.file == str(path)
    assert "'k.A.' is not a number" in quantity.reason
    assert by_field[("4", "Charge")].reason == "required value is missing"


def test_header_mismatch_lists_expected_and_found(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Lot;Qty\nL-1;3\n")
    with pytest.raises(FileRejected, match=r"missing \['Charge', 'Menge kg'.*found \['Lot', 'Qty'\]"):
        check_header(read_csv(path, ";", "cp1252"), list(COLUMNS), path)


def test_wrong_encoding_and_empty_files_are_rejected_whole(tmp_path: Path) -> None:
    path = tmp_path / "utf16.csv"
    path.write_bytes("Charge\nL-1\n".encode("utf-16"))
    with pytest.raises(FileRejected, match="not readable as utf-8"):
        read_csv(path, ";", "utf-8")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(FileRejected, match="empty"):
        read_csv(empty)


def test_xlsx_rows_carry_their_sheet_row_numbers(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Lots"
    sheet.append(["Lot", "Quantity (kg)", "Delivered"])
    sheet.append([])
    sheet.append(["SW-1", 1200.5, date(2026, 1, 2)])
    path = tmp_path / "lots.xlsx"
    workbook.save(path)
    table = read_xlsx(path, "Lots")
    assert table.to_pylist() == [{"Lot": "SW-1", "Quantity (kg)": "1200.5", "Delivered": "2026-01-02", "_line": 3}]
    with pytest.raises(FileRejected, match="no sheet 'Deliveries'"):
        read_xlsx(path, "Deliveries")

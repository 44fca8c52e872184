"""A corpus of awkward supplier files, made here: each is loaded, partly quarantined or rejected whole,
and for every file rows loaded plus rows quarantined equals rows read."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from plantlake.assets.suppliers import build_silver, files_accounted, load_bronze
from plantlake.config import PlantlakeConfig, parse_config
from plantlake.lake import delta, file_registry
from plantlake.lake.layout import Lake

pytestmark = pytest.mark.integration

COLUMNS = {
    "Charge": {"name": "lot_id", "required": True},
    "Werkstoff": {"name": "material"},
    "Menge kg": {"name": "quantity_kg", "type": "decimal", "scale": 3, "required": True, "unit": "kg"},
    "Lieferdatum": {"name": "delivered_on", "type": "date"},
}
SOURCES = [
    {"name": "auto_csv", "path": "drop/auto_csv", "glob": "*.csv", "format": "csv", "csv": {"date_format": "%d.%m.%Y"}},
    {
        "name": "strict_csv",
        "path": "drop/strict_csv",
        "glob": "*.csv",
        "format": "csv",
        "csv": {"delimiter": ";", "encoding": "utf-8", "decimal": ",", "date_format": "%d.%m.%Y"},
    },
    {"name": "sheets", "path": "drop/sheets", "glob": "*.xlsx", "format": "xlsx", "sheet": "Lots"},
    {"name": "portal", "path": "drop/portal", "glob": "*.json", "format": "json"},
    {"name": "stream", "path": "drop/stream", "glob": "*.jsonl", "format": "jsonl"},
    {"name": "columnar", "path": "drop/columnar", "glob": "*.parquet", "format": "parquet"},
]


def _config(root: Path, sources: list[dict]) -> PlantlakeConfig:
    document = {
        "lake": {"root": "lake"},
        "sources": {
            "suppliers": [
                {**source, "key": ["lot_id"], "columns": COLUMNS, "settle_seconds": 0}  # the files are written whole
                for source in sources
            ]
        },
    }
    return parse_config(yaml.safe_dump(document, sort_keys=False), root)


HEADER = ["Charge", "Werkstoff", "Menge kg", "Lieferdatum"]


def _lots(tag: str, count: int = 3) -> list[tuple[str, str, Decimal, date]]:
    return [
        (f"{tag}-{i}", f"Stahl Güte C4{i}", Decimal(f"{1000 + i}.{i:03d}"), date(2026, 1, 1 + i)) for i in range(count)
    ]


def _csv_text(rows: list[tuple], delimiter: str = ";", comma: bool = True, header: list[str] = HEADER) -> str:
    def number(value: Decimal) -> str:
        text = f"{value:,.3f}"
        return text.replace(",", "X").replace(".", ",").replace("X", ".") if comma else f"{value:.3f}"

    lines = [delimiter.join(header)]
    lines += [
        delimiter.join([lot, material, number(qty), day.strftime("%d.%m.%Y")]) for lot, material, qty, day in rows
    ]
    return "\r\n".join(lines) + "\r\n"


@dataclass
class Case:
    folder: str
    name: str
    make: Callable[[Path], None]
    status: str
    loaded: int = 0
    quarantined: int = 0
    skipped: int = 0
    reason: str = ""


def _write(text: str, encoding: str) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(text.encode(encoding))


def _xlsx(rows: list[list], sheet: str = "Lots") -> Callable[[Path], None]:
    def make(path: Path) -> None:
        workbook = openpyxl.Workbook()
        workbook.active.title = sheet
        for row in rows:
            workbook.active.append(row)
        workbook.save(path)

    return make


def _parquet(path: Path) -> None:
    lots = _lots("PQ")
    pq.write_table(
        pa.table(
            {
                "Charge": [lot[0] for lot in lots],
                "Werkstoff": [lot[1] for lot in lots],
                "Menge kg": pa.array([lot[2] for lot in lots], pa.decimal128(10, 3)),
                "Lieferdatum": [lot[3] for lot in lots],
            }
        ),
        path,
    )


def _json_records(tag: str) -> list[dict]:
    return [
        {"Charge": lot, "Werkstoff": material, "Menge kg": float(qty), "Lieferdatum": day.isoformat()}
        for lot, material, qty, day in _lots(tag)
    ]


BAD_VALUES = (
    _csv_text(_lots("BV", 2)) + "BV-8;C45;k.A.;01.01.2026\r\n;C45;5,000;02.01.2026\r\nBV-9;C45;7,000;32.13.2026\r\n"
)
CASES = [
    Case(
        "auto_csv",
        "utf8_comma.csv",
        _write(_csv_text(_lots("U8"), ",", comma=False).replace("Güte", "Güte"), "utf-8"),
        "loaded",
        3,
    ),
    Case("auto_csv", "utf8_bom.csv", _write("\ufeff" + _csv_text(_lots("BOM")), "utf-8"), "loaded", 3),
    Case(
        "auto_csv", "cp1252_euro.csv", _write(_csv_text(_lots("CP")).replace("Stahl", "Stahl €"), "cp1252"), "loaded", 3
    ),
    Case("auto_csv", "latin1.csv", _write(_csv_text(_lots("L1")).replace("C4", "Größe C4"), "latin-1"), "loaded", 3),
    Case("auto_csv", "utf16.csv", _write(_csv_text(_lots("U16")), "utf-16"), "loaded", 3),
    Case("auto_csv", "utf16_le_no_bom.csv", _write(_csv_text(_lots("U16L")), "utf-16-le"), "loaded", 3),
    Case("auto_csv", "utf16_be_no_bom.csv", _write(_csv_text(_lots("U16B")), "utf-16-be"), "loaded", 3),
    Case("auto_csv", "tabs.csv", _write(_csv_text(_lots("TAB"), "\t"), "utf-8"), "loaded", 3),
    Case(
        "auto_csv",
        "quoted.csv",
        _write(_csv_text(_lots("QU")).replace("Stahl Güte C40", '"Stahl; kalt, gewalzt"'), "utf-8"),
        "loaded",
        3,
    ),
    Case(
        "auto_csv",
        "title_above.csv",
        _write("Lieferschein 4711;;;\r\nAcme GmbH;;;\r\n\r\n" + _csv_text(_lots("TI")), "cp1252"),
        "loaded",
        3,
    ),
    Case(
        "auto_csv",
        "totals.csv",
        _write(_csv_text(_lots("TO")) + "Summe;;3.003,003;\r\n", "cp1252"),
        "loaded",
        3,
        skipped=1,
    ),
    Case(
        "auto_csv",
        "summa.csv",
        _write(_csv_text(_lots("SV")) + "Summa;;3.003,003;\r\nTotalt;;3.003,003;\r\n", "utf-8"),
        "loaded",
        3,
        skipped=2,
    ),
    Case(
        "auto_csv",
        "blank_lines.csv",
        _write(_csv_text(_lots("BL")).replace("\r\nBL-1", "\r\n\r\n;;;\r\nBL-1"), "utf-8"),
        "loaded",
        3,
        skipped=2,
    ),
    Case(
        "auto_csv",
        "truncated.csv",
        _write(_csv_text(_lots("TR")) + "TR-9;Stah", "utf-8"),
        "loaded_with_quarantine",
        3,
        1,
    ),
    Case(
        "auto_csv",
        "extra_fields.csv",
        _write(_csv_text(_lots("EX")) + "EX-9;C45;1,0;01.01.2026;surplus\r\n", "utf-8"),
        "loaded_with_quarantine",
        3,
        1,
    ),
    Case("auto_csv", "bad_values.csv", _write(BAD_VALUES, "cp1252"), "loaded_with_quarantine", 2, 3),
    Case("auto_csv", "empty.csv", _write("", "utf-8"), "rejected", reason="the file is empty"),
    Case("auto_csv", "header_only.csv", _write(";".join(HEADER) + "\r\n", "utf-8"), "loaded", 0),
    Case(
        "auto_csv",
        "wrong_header.csv",
        _write("Lot;Qty\r\nX;1\r\n", "utf-8"),
        "rejected",
        reason="missing ['Charge', 'Werkstoff', 'Menge kg', 'Lieferdatum']; expected",
    ),
    Case(
        "strict_csv",
        "declared_utf8_but_cp1252.csv",
        _write(_csv_text(_lots("NU")), "cp1252"),
        "rejected",
        reason="not readable as utf-8",
    ),
    Case("strict_csv", "declared.csv", _write(_csv_text(_lots("DE")), "utf-8"), "loaded", 3),
    Case(
        "sheets",
        "title_totals.xlsx",
        _xlsx(
            [
                ["Lieferung Stahlwerk Süd"],
                [],
                HEADER,
                *[[lot, m, float(q), d] for lot, m, q, d in _lots("XL")],
                [],
                ["Gesamt", None, 3003.003, None],
            ]
        ),
        "loaded",
        3,
        skipped=2,
    ),
    Case("sheets", "wrong_sheet.xlsx", _xlsx([HEADER], sheet="Tabelle1"), "rejected", reason="no sheet 'Lots'"),
    Case("portal", "array.json", _write(json.dumps(_json_records("JA")), "utf-8"), "loaded", 3),
    Case("portal", "wrapped.json", _write(json.dumps({"count": 3, "data": _json_records("JW")}), "utf-8"), "loaded", 3),
    Case("portal", "broken.json", _write('[{"Charge": "JB-1",', "utf-8"), "rejected", reason="not valid JSON"),
    Case(
        "stream",
        "lines.jsonl",
        _write("\n".join(json.dumps(r) for r in _json_records("JL")) + "\n{not json}\n\n[1, 2]\n", "utf-8"),
        "loaded_with_quarantine",
        3,
        2,
        skipped=1,
    ),
    Case("columnar", "lots.parquet", _parquet, "loaded", 3),
]


def _drop(root: Path, case: Case) -> Path:
    folder = root / "drop" / case.folder
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / case.name
    case.make(path)
    return path


def _run(config, lake: Lake, run_id: str) -> dict:
    stats = {source.name: load_bronze(lake, source, run_id).metadata for source in config.sources.suppliers}
    build_silver(lake, "material_lots", config.sources.suppliers, run_id)
    return stats


def _registry(lake: Lake) -> dict[str, dict]:
    return {row["file_name"]: row for row in delta.read(file_registry.registry_path(lake)).to_pylist()}


def test_each_awkward_file_is_loaded_partly_quarantined_or_rejected_and_every_row_is_accounted(tmp_path: Path) -> None:
    config = _config(tmp_path, SOURCES)
    lake = Lake(config.lake.root)
    assert len(CASES) >= 20
    for case in CASES:
        _drop(tmp_path, case)
    _run(config, lake, "run-1")

    registry = _registry(lake)
    assert set(registry) == {case.name for case in CASES}
    for case in CASES:
        entry = registry[case.name]
        assert entry["status"] == case.status, (case.name, entry["reason"])
        assert entry["rows_loaded"] + entry["rows_quarantined"] == entry["rows_read"], case.name
        assert (entry["rows_loaded"], entry["rows_quarantined"], entry["rows_skipped"]) == (
            case.loaded,
            case.quarantined,
            case.skipped,
        ), case.name
        assert case.reason in (entry["reason"] or ""), (case.name, entry["reason"])
        moved = Path(entry["moved_to"])
        assert moved.exists() and not (tmp_path / "drop" / case.folder / case.name).exists(), case.name
        assert moved.parent.name == ("rejected" if case.status == "rejected" else "archive")
        if case.status == "rejected":
            assert case.reason in Path(str(moved) + ".txt").read_text(encoding="utf-8")
    for source in config.sources.suppliers:
        assert files_accounted(lake, source.name) == (
            True,
            {"files": sum(c.folder == source.name for c in CASES), "files_not_accounted": []},
        )

    lots = {row["lot_id"]: row for row in delta.read(lake.table("silver", "material_lots")).to_pylist()}
    assert lots["CP-1"]["material"] == "Stahl € Güte C41" and lots["CP-1"]["quantity_kg"] == Decimal("1001.001")
    assert lots["L1-2"]["material"] == "Stahl Güte Größe C42"
    assert lots["QU-0"]["material"] == "Stahl; kalt, gewalzt"
    assert lots["U8-2"]["quantity_kg"] == Decimal("1002.002") and lots["U8-2"]["delivered_on"] == date(2026, 1, 3)
    assert lots["XL-1"]["quantity_kg"] == Decimal("1001.001") and lots["XL-1"]["delivered_on"] == date(2026, 1, 2)
    assert lots["PQ-2"]["quantity_kg"] == Decimal("1002.002") and lots["JW-0"]["delivered_on"] == date(2026, 1, 1)
    assert "BOM-0" in lots and "U16-0" in lots and "TAB-2" in lots and "Summe" not in lots and "Gesamt" not in lots
    assert lots["U16L-1"]["material"] == lots["U16B-1"]["material"] == "Stahl Güte C41" and "Summa" not in lots
    assert sum(1 for lot in lots if lot.startswith(("TI-", "BL-", "TR-", "EX-"))) == 12

    quarantined = {
        (row["file"].rsplit("/", 1)[-1], row["row_key"], row["field"]): row
        for row in delta.read(lake.quarantine).to_pylist()
    }
    assert quarantined[("bad_values.csv", "4", "Menge kg")]["value"] == "k.A."
    assert "'k.A.' is not a number" in quarantined[("bad_values.csv", "4", "Menge kg")]["reason"]
    assert quarantined[("bad_values.csv", "5", "Charge")]["reason"] == "required value is missing"
    assert "not a date" in quarantined[("bad_values.csv", "6", "Lieferdatum")]["reason"]
    assert "expected 4 fields, found 2" in quarantined[("truncated.csv", "5", "")]["reason"]
    assert "not valid JSON" in quarantined[("lines.jsonl", "4", "")]["reason"]
    assert quarantined[("lines.jsonl", "6", "")]["check_name"] == "structure"


def test_a_renamed_copy_is_not_loaded_again_and_a_corrected_resend_is_a_new_version(tmp_path: Path) -> None:
    config = _config(tmp_path, SOURCES[:1])
    source = config.sources.suppliers[0]
    lake = Lake(config.lake.root)
    folder = source.path
    folder.mkdir(parents=True)
    (folder / "lieferung.csv").write_bytes(BAD_VALUES.encode("cp1252"))
    _run(config, lake, "run-1")

    # the same bytes again, once under the same name and once renamed: neither is loaded again
    archived = Path(_registry(lake)["lieferung.csv"]["moved_to"])
    shutil.copy(archived, folder / "lieferung.csv")
    shutil.copy(archived, folder / "copy of lieferung.csv")
    stats = _run(config, lake, "run-2")["auto_csv"]
    assert (stats["files_loaded"], stats["files_already_loaded"], stats["files_duplicate"]) == (0, 1, 1)
    assert delta.row_count(lake.table("bronze", "auto_csv_rows")) == 2
    [report] = (folder / "rejected").glob("copy of lieferung.*.csv.txt")
    assert "same content as lieferung.csv" in report.read_text(encoding="utf-8")
    assert not list(folder.glob("*.csv"))

    # a corrected file under the same name: new content, the next version, its values win in silver
    corrected = (
        BAD_VALUES.replace("BV-8;C45;k.A.", "BV-8;C45;8,500")
        .replace(";C45;5,000", "BV-7;C45;5,000")
        .replace("32.13.2026", "31.12.2026")
    )
    (folder / "lieferung.csv").write_bytes(
        corrected.replace("BV-0;Stahl Güte C40;1.000,000", "BV-0;C40;999,000").encode("cp1252")
    )
    os.utime(folder / "lieferung.csv")
    stats = _run(config, lake, "run-3")["auto_csv"]
    assert (stats["files_loaded"], stats["rows_loaded"], stats["rows_quarantined"]) == (1, 5, 0)
    versions = sorted(
        (row["file_name"], row["version"], row["status"])
        for row in delta.read(file_registry.registry_path(lake)).to_pylist()
    )
    assert versions == [
        ("copy of lieferung.csv", 1, "duplicate"),  # the renamed copy has a row of its own
        ("lieferung.csv", 1, "loaded_with_quarantine"),
        ("lieferung.csv", 2, "loaded"),
    ]
    lots = {row["lot_id"]: row for row in delta.read(lake.table("silver", "material_lots")).to_pylist()}
    assert lots["BV-0"]["quantity_kg"] == Decimal("999.000") and lots["BV-8"]["quantity_kg"] == Decimal("8.500")
    assert len(lots) == 5


def test_number_marks_are_detected_per_file_and_units_converted(tmp_path: Path) -> None:
    config = parse_config(
        """
lake: {root: lake}
sources:
  suppliers:
    - name: grams
      path: drop
      glob: "*.csv"
      format: csv
      settle_seconds: 0
      key: [lot_id]
      columns:
        lot: {name: lot_id, required: true}
        grams: {name: quantity_kg, type: decimal, scale: 3, factor: 0.001, unit: kg}
""",
        tmp_path,
    )
    lake = Lake(config.lake.root)
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "eu.csv").write_bytes("lot;grams\nA;1.234.567,8\nB;12,5\n".encode("cp1252"))
    (tmp_path / "drop" / "us.csv").write_bytes(b'lot,grams\nC,"1,234,567.8"\nD,12.5\n')
    load_bronze(lake, config.sources.suppliers[0], "run-1")
    rows = {row["lot_id"]: row["quantity_kg"] for row in delta.read(lake.table("bronze", "grams_rows")).to_pylist()}
    assert rows == {"A": Decimal("1234.568"), "B": Decimal("0.013"), "C": Decimal("1234.568"), "D": Decimal("0.013")}
    assert delta.schema(lake.table("bronze", "grams_rows")).field("quantity_kg").metadata[b"unit"] == b"kg"

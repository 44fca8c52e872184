from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from plantlake.config import ColumnMapping, ConfigError, parse_config
from plantlake.connectors import transcode
from plantlake.connectors.file_formats import _trimmed, read_file
from plantlake.connectors.files import FileRejected, Layout, scan
from plantlake.lake.mapping import NumberFormat, _bytes_replaced, number_format, parse_value, type_batch

pytestmark = pytest.mark.unit

COLUMNS = {
    "Charge": ColumnMapping(name="lot_id", required=True),
    "Menge kg": ColumnMapping(name="quantity_kg", type="decimal", scale=3, required=True),
    "Lieferdatum": ColumnMapping(name="delivered_on", type="date"),
    "Werkstoff": ColumnMapping(name="material"),
}
LAYOUT = Layout(expected=list(COLUMNS))
EU = NumberFormat(",", ".")


def _csv(tmp_path: Path, body: str, encoding: str = "cp1252") -> Path:
    path = tmp_path / "lieferung.csv"
    path.write_bytes(body.replace("\n", "\r\n").encode(encoding))
    return path


def _read(path: Path, file_format: str = "csv", layout: Layout = LAYOUT) -> tuple[pa.Table, object]:
    opened = read_file(path, file_format, layout, scan(path))
    return pa.Table.from_batches(list(opened.batches)), opened


def test_cp1252_semicolon_csv_with_decimal_commas_types_exactly(tmp_path: Path) -> None:
    path = _csv(tmp_path, "Charge;Werkstoff;Menge kg;Lieferdatum\nL-1;Stahl Güte C45;1.234,567;03.01.2026\n")
    table, opened = _read(path)
    assert opened.layout == {"encoding": "cp1252", "delimiter": ";", "header_row": 1}
    good, problems = type_batch(table.to_batches()[0], COLUMNS, EU, "%d.%m.%Y")
    assert problems == []
    assert good.to_pylist() == [
        {
            "lot_id": "L-1",
            "quantity_kg": Decimal("1234.567"),
            "delivered_on": date(2026, 1, 3),
            "material": "Stahl Güte C45",
            "_line": 2,
        }
    ]


def test_bad_values_are_problems_naming_line_column_value_and_reason(tmp_path: Path) -> None:
    path = _csv(
        tmp_path, "Charge;Werkstoff;Menge kg;Lieferdatum\nL-1;C45;10,5;01.01.2026\nL-2;C45;k.A.;01.01.2026\n;C45;3;x\n"
    )
    table, _ = _read(path)
    good, problems = type_batch(table.to_batches()[0], COLUMNS, EU, "%d.%m.%Y")
    assert good.column("lot_id").to_pylist() == ["L-1"]
    by_place = {(problem.line, problem.column): problem for problem in problems}
    assert set(by_place) == {(3, "Menge kg"), (4, "Charge"), (4, "Lieferdatum")}
    assert by_place[(3, "Menge kg")].value == "k.A." and "'k.A.' is not a number" in by_place[(3, "Menge kg")].reason
    assert by_place[(4, "Charge")].reason == "required value is missing"


def test_a_day_the_month_lacks_is_a_problem_not_a_day_of_the_next_month(tmp_path: Path) -> None:
    """As is a year of two digits where the format asks for four (Arrow's parser took "5.3.26" for
    the year 26), whatever the day."""
    rows = [
        "A;1;31.02.2026;",
        "B;1;29.02.2025;",
        "C;1;29.02.2024;",
        "D;1;1.3.2026;",
        "E;1;2026-04-31;",
        "F;1;5.3.26;",
        "G;1;1.3.26;",
    ]
    path = _csv(tmp_path, "Charge;Menge kg;Lieferdatum;Werkstoff\n" + "\n".join(rows) + "\n")
    good, problems = type_batch(_read(path)[0].to_batches()[0], COLUMNS, EU, "%d.%m.%Y")
    assert good.to_pydict()["delivered_on"] == [date(2024, 2, 29), date(2026, 3, 1)]
    assert [(p.line, p.value) for p in problems] == [
        (2, "31.02.2026"),
        (3, "29.02.2025"),
        (6, "2026-04-31"),
        (7, "5.3.26"),
        (8, "1.3.26"),
    ]
    assert all("Lieferdatum" in p.reason and "as date" in p.reason for p in problems)


def test_decimals_round_half_away_from_zero_and_overflow_is_a_problem(tmp_path: Path) -> None:
    path = _csv(
        tmp_path, "Charge;Menge kg;Lieferdatum;Werkstoff\nA;0,0005;;\nB;-0,0005;;\nC;1.234.567.890.123.456,7;;\n"
    )
    good, problems = type_batch(_read(path)[0].to_batches()[0], COLUMNS, EU, "%d.%m.%Y")
    assert good.column("quantity_kg").to_pylist() == [Decimal("0.001"), Decimal("-0.001")]
    assert [(p.line, p.column) for p in problems] == [(4, "Menge kg")] and "does not fit" in problems[0].reason
    assert parse_value("0,0005", "decimal", 3, ",", "%d.%m.%Y") == Decimal("0.001")


def test_decimal_mark_is_detected_from_the_numbers() -> None:
    eu = pa.RecordBatch.from_pydict({"q": ["1.234,5", "12,5", None]})
    us = pa.RecordBatch.from_pydict({"q": ["1,234.5", "12.5", "7"]})
    assert number_format(None, None, eu, ["q"]) == NumberFormat(",", ".")
    assert number_format(None, None, us, ["q"]) == NumberFormat(".", ",")
    assert number_format(",", "", us, ["q"]) == NumberFormat(",", "")


def test_a_header_below_a_title_is_found_and_lines_stay_physical(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "Lieferschein;;;\n\nCharge;Werkstoff;Menge kg;Lieferdatum\nL-1;C45;1;\n\nL-2;C45;2;\nL-3;C45\nL-4;C45;4;\n",
    )
    table, opened = _read(path)
    assert opened.layout["header_row"] == 3
    assert table.column("_line").to_pylist() == [4, 6, 8]
    assert opened.tally.rows_skipped == 1
    [bad] = opened.tally.bad_rows
    assert (bad.line, bad.text) == (7, "L-3;C45") and "expected 4 fields, found 2" in bad.reason


def test_whole_file_rejections_say_why(tmp_path: Path) -> None:
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("Charge;x\nL-1;1\n".encode("utf-16"))
    with pytest.raises(FileRejected, match="missing"):
        _read(utf16)
    with pytest.raises(
        FileRejected, match=r"missing \['Menge kg', 'Lieferdatum', 'Werkstoff'\].*found \['Charge', 'x'\]"
    ):
        _read(utf16)
    cp1252 = _csv(tmp_path, "Charge;Werkstoff;Menge kg;Lieferdatum\nL-1;Güte;1;\n")
    opened = read_file(cp1252, "csv", Layout(expected=list(COLUMNS), encoding="utf-8"), scan(cp1252))
    with pytest.raises(FileRejected, match="not readable as utf-8"):
        list(opened.batches)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(FileRejected, match="empty"):
        _read(empty)


def test_xlsx_rows_carry_their_sheet_row_numbers_and_totals_are_skipped(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Lots"
    for row in (
        ["Deliveries January"],
        ["Lot", "Quantity (kg)", "Delivered"],
        [],
        ["SW-1", 1200.5, date(2026, 1, 2)],
        ["Total", 1200.5, None],
    ):
        sheet.append(row)
    path = tmp_path / "lots.xlsx"
    workbook.save(path)
    layout = Layout(expected=["Lot", "Quantity (kg)"], sheet="Lots", summary_rows=r"(?i)^total\b")
    table, opened = _read(path, "xlsx", layout)
    assert table.to_pylist() == [{"Lot": "SW-1", "Quantity (kg)": "1200.5", "Delivered": "2026-01-02", "_line": 4}]
    assert opened.tally.rows_skipped == 2
    with pytest.raises(FileRejected, match="no sheet 'Deliveries'"):
        _read(path, "xlsx", Layout(expected=["Lot"], sheet="Deliveries"))


def test_supplier_config_checks_keys_factors_and_encodings(tmp_path: Path) -> None:
    base = (
        "lake: {root: lake}\nsources:\n  suppliers:\n"
        "    - {name: s, path: d, glob: '*.csv', format: csv, key: [%s], csv: {encoding: %s}, columns: {A: %s}}\n"
    )
    assert (
        parse_config(base % ("a", "cp1252", "{name: a, type: decimal, factor: 0.001}"), tmp_path)
        .sources.suppliers[0]
        .archive_folder
        == tmp_path / "d" / "archive"
    )
    with pytest.raises(ConfigError, match="key columns \\['b'\\]"):
        parse_config(base % ("b", "auto", "{name: a}"), tmp_path)
    with pytest.raises(ConfigError, match="unknown encoding 'klingon'"):
        parse_config(base % ("a", "klingon", "{name: a}"), tmp_path)
    with pytest.raises(ConfigError, match="factor converts units"):
        parse_config(base % ("a", "auto", "{name: a, type: date, factor: 2}"), tmp_path)
    with pytest.raises(ConfigError, match="column 'A' maps to 'source', the lake's column naming the supplier"):
        parse_config(base % ("source", "auto", "{name: source}"), tmp_path)


def test_json_lines_stream_in_batches_with_every_line_counted_once(tmp_path: Path, monkeypatch) -> None:
    import plantlake.connectors.file_formats as file_formats

    monkeypatch.setattr(file_formats, "KEY_SAMPLE_RECORDS", 10)
    lines = [f'{{"Charge": "L-{n}", "Menge kg": "{n},5", "Werkstoff": "C45"}}' for n in range(1, 61)]
    lines[4] = "{broken"  # a bad line inside the key sample
    lines[40] = "[1, 2]"  # and one past it, an array instead of an object
    lines[50] = ""
    lines[55] = '{"Charge": "L-56", "Menge kg": "1", "Lieferdatum": "2026-01-02", "note": "late key"}'
    path = tmp_path / "portal.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    layout = Layout(expected=["Charge", "Menge kg", "Werkstoff"], batch_rows=16)
    opened = read_file(path, "jsonl", layout, scan(path))
    batches = list(opened.batches)
    assert max(batch.num_rows for batch in batches) <= 16
    table = pa.Table.from_batches(batches)
    assert opened.columns[:3] == ["Charge", "Menge kg", "Werkstoff"]  # the keys seen in the first 10 objects
    assert table.num_rows == 57 and table.column("_line").to_pylist()[:5] == [1, 2, 3, 4, 6]
    assert [(bad.line, bad.reason.split(":")[0]) for bad in opened.tally.bad_rows] == [
        (5, "not valid JSON"),
        (41, "expected a JSON object, found list"),
    ]
    assert opened.tally.rows_skipped == 1
    with pytest.raises(FileRejected, match="missing \\['Lieferdatum'\\]"):  # a key first seen past the sample
        read_file(path, "jsonl", Layout(expected=["Charge", "Lieferdatum"]), scan(path))


@pytest.mark.parametrize(
    "text",
    ["Müller & Söhne;Größe\r\n" * 40, "Stahl € „Güte“;Preis\r\n" * 40, "Fuß;°C\r\n" * 20 + "plain;ascii\r\n" * 20],
)
def test_legacy_code_pages_read_as_the_codec_decodes_them_whatever_the_chunks(
    tmp_path: Path, monkeypatch, text: str
) -> None:
    monkeypatch.setattr(transcode, "CHUNK_BYTES", 7)  # chunks mixing plain, latin-1-safe and cp1252-only bytes
    for encoding in ("cp1252", "latin-1", "utf-16"):
        if encoding == "latin-1" and any(char in text for char in "€„“"):
            continue
        path = tmp_path / f"{encoding}.csv"
        path.write_bytes(text.encode(encoding))
        with transcode.Utf8Reader(path, encoding) as reader:
            read = b"".join(bytes(piece) for piece in iter(lambda: reader.read(5), b""))
        with transcode.Utf8Reader(path, encoding) as reader:
            assert bytes(reader.read()) == read
        assert read.decode("utf-8") == text


def test_a_byte_cp1252_leaves_undefined_is_an_error_not_a_guess(tmp_path: Path) -> None:
    path = tmp_path / "gap.csv"
    path.write_bytes(b"a;b\r\nx\x81y;1\r\n")
    with transcode.Utf8Reader(path, "cp1252") as reader, pytest.raises(UnicodeDecodeError):
        reader.read()


def test_trimming_is_skipped_only_where_no_value_has_whitespace_at_an_end() -> None:
    spaces = [
        chr(code) for code in range(0x3001) if pc.utf8_trim_whitespace(pa.array([f"x{chr(code)}"]))[0].as_py() == "x"
    ]
    assert {"\t", " ", "\u00a0", "\u2007", "\u202f", "\u3000"} <= set(spaces)
    for space in spaces:
        for values in ([f"ab{space}", "cd"], ["ab", f"{space}cd"], ["", None, space], [f"{space}ß"]):
            column = pa.array(values)
            assert _trimmed(column).to_pylist() == pc.utf8_trim_whitespace(column).to_pylist(), (
                hex(ord(space)),
                values,
            )
    clean = pa.array(["LOT-1", None, "", "Güte"])
    assert _trimmed(clean) is clean and _trimmed(clean.slice(1)).to_pylist() == [None, "", "Güte"]


@pytest.mark.parametrize("spaced", [False, True])
def test_empty_and_blank_fields_read_as_null_whether_or_not_a_column_is_trimmed(tmp_path: Path, spaced: bool) -> None:
    path = tmp_path / "blanks.csv"
    pad = " " if spaced else ""
    path.write_text(f'Charge;Werkstoff\r\nL-1;{pad}Stahl\r\nL-2;\r\nL-3;""\r\nL-4;"{pad}"\r\n', encoding="utf-8")
    opened = read_file(path, "csv", Layout(["Charge", "Werkstoff"]), scan(path))
    column = pa.Table.from_batches(list(opened.batches)).column("Werkstoff")
    assert column.to_pylist() == ["Stahl", None, None, None]


def test_one_byte_marks_are_replaced_as_replace_substring_does() -> None:
    values = pa.array(["1.234,5", None, "", "12,00", "-0,5", "ä.ö,1", None, "9"])
    for part in (values, values.slice(1), values.slice(3, 3), values.slice(8)):
        expected = pc.replace_substring(pc.replace_substring(part, ".", ""), ",", ".")
        replaced = _bytes_replaced(part, b".", b",")
        replaced.validate(full=True)
        assert replaced.equals(expected)
    assert _bytes_replaced(pa.array(["1,234.5", None]), b",", b".").to_pylist() == ["1234.5", None]

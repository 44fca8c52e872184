"""Drop folders a supplier cannot break: files still being written wait, one file's failure stops no
other, links are not followed out of the folder, reasons quote little, totals rows in many languages,
UTF-16 without a BOM, several formats in one folder, and a registry row for every duplicate."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import openpyxl
import pyarrow as pa
import pytest

from plantlake.assets import suppliers
from plantlake.assets.suppliers import load_bronze
from plantlake.config import ConfigError, SupplierSource, parse_config
from plantlake.connectors import drop_folder, file_formats
from plantlake.connectors.files import (
    LINE,
    TOTALS_LABELS,
    TOTALS_PATTERN,
    FileRejected,
    Layout,
    Tally,
    _may_hold_totals,
    data_rows_only,
    scan,
)
from plantlake.lake import delta, file_registry
from plantlake.lake.layout import Lake
from plantlake.pipelines.factory import build_definitions

pytestmark = pytest.mark.unit

HEADER = "Charge;Menge;Bemerkung\r\n"
COLUMNS = {
    "Charge": {"name": "lot_id", "required": True},
    "Menge": {"name": "quantity", "type": "int"},
    "Bemerkung": {"name": "note"},
}


class FakeClock(drop_folder.Clock):
    """The wall clock's present, moved on by every wait instead of waiting."""

    def __init__(self) -> None:
        self.start, self.waited = time.time(), 0.0

    def now(self) -> float:
        return self.start + self.waited

    def sleep(self, seconds: float) -> None:
        self.waited += seconds


def _source(root: Path, **extra) -> SupplierSource:
    document = {"name": "acme", "path": root / "drop", "glob": "*.csv", "format": "csv", "key": ["lot_id"]}
    return SupplierSource.model_validate({**document, "columns": COLUMNS, **extra})


def _rows(numbers: range) -> str:
    return "".join(f"LOT-{n};{n};ok\r\n" for n in numbers)


def _age(path: Path, seconds: float = 3600) -> None:
    """As if the file had been written `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def _drop(source: SupplierSource, name: str, text: str | bytes, age: float | None = 3600) -> Path:
    source.path.mkdir(parents=True, exist_ok=True)
    path = source.path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    if age is not None:
        _age(path, age)
    return path


def _registry(lake: Lake) -> list[dict]:
    table = delta.read(file_registry.registry_path(lake))
    return [] if table is None else sorted(table.to_pylist(), key=lambda row: row["file_name"])


def _bronze(lake: Lake) -> list[dict]:
    table = delta.read(lake.table("bronze", "acme_rows"))
    return [] if table is None else table.to_pylist()


def _everything_written(lake: Lake, source: SupplierSource) -> str:
    """The registry, the quarantine and every report, as one text."""
    parts = [repr(_registry(lake))]
    quarantine = delta.read(lake.quarantine)
    if quarantine is not None:
        parts.append(repr(quarantine.to_pylist()))
    parts += [report.read_text(encoding="utf-8") for report in source.rejected_folder.glob("*.txt")]
    return "\n".join(parts)


# --- 1. a file is read only once it has stopped changing ------------------------------------------


def test_a_file_that_grows_while_it_is_read_is_loaded_whole_and_once(tmp_path: Path, monkeypatch) -> None:
    source, lake = _source(tmp_path), Lake(tmp_path / "lake")
    path = _drop(source, "lieferung.csv", HEADER + _rows(range(705)) + "LOT-705;7")  # the writer stalled mid-line
    real_read = file_formats.read_file
    reads = []

    def read_while_the_writer_goes_on(file: Path, *args) -> object:
        opened = real_read(file, *args)
        reads.append(file.name)
        read = opened.batches

        def batches() -> Iterator[pa.RecordBatch]:
            if len(reads) == 1:  # the writer finishes while the first batch is being read
                with file.open("ab") as handle:
                    handle.write(("05;more\r\n" + _rows(range(706, 1000))).encode("utf-8"))
            yield from read

        opened.batches = batches()
        return opened

    monkeypatch.setattr(file_formats, "read_file", read_while_the_writer_goes_on)
    clock = FakeClock()
    first = load_bronze(lake, source, "run-1", clock=clock).metadata
    second = load_bronze(lake, source, "run-2", clock=clock).metadata

    assert first["files_loaded"] + second["files_loaded"] == 1
    assert first["files_rejected"] + second["files_rejected"] == 0
    lots = [row["lot_id"] for row in _bronze(lake)]
    assert len(lots) == 1000 and set(lots) == {f"LOT-{n}" for n in range(1000)}
    assert [(row["quantity"], row["note"]) for row in _bronze(lake) if row["lot_id"] == "LOT-705"] == [(705, "more")]
    [entry] = _registry(lake)
    assert (entry["status"], entry["rows_read"], entry["rows_loaded"], entry["rows_quarantined"]) == (
        "loaded",
        1000,
        1000,
        0,
    )
    assert delta.read(lake.quarantine) is None and not path.exists()
    assert Path(entry["moved_to"]).read_bytes().endswith(b"LOT-999;999;ok\r\n")
    assert len(reads) == 2  # read a second time once it had settled, in the run that waited for it


def test_a_fresh_file_waits_for_settle_seconds_and_a_file_held_open_for_writing_waits_for_its_writer(
    tmp_path: Path,
) -> None:
    source, lake = _source(tmp_path, settle_seconds=30), Lake(tmp_path / "lake")
    held = _drop(source, "held.csv", HEADER + _rows(range(3)))
    writer = held.open("ab")
    try:
        _age(held)  # quiet for an hour, but a process still holds it open for writing
        fresh = _drop(source, "fresh.csv", HEADER + _rows(range(10, 13)), age=None)
        clock = FakeClock()
        stats = load_bronze(lake, source, "run-1", clock=clock).metadata
        assert (stats["files_loaded"], stats["files_waiting"]) == (1, 1)
        assert 0 < clock.waited <= 30 and not fresh.exists() and held.exists()  # the run waited for the fresh file
        assert [entry["file_name"] for entry in _registry(lake)] == ["fresh.csv"]
        assert drop_folder.open_for_writing([held]) == {held: os.getpid()}
    finally:
        writer.close()
    assert drop_folder.open_for_writing([held]) == {}
    assert load_bronze(lake, source, "run-2", clock=FakeClock()).metadata["files_loaded"] == 1
    assert sorted(row["lot_id"] for row in _bronze(lake)) == ["LOT-0", "LOT-1", "LOT-10", "LOT-11", "LOT-12", "LOT-2"]


SENSOR_CONFIG = """
lake: {root: lake}
sources:
  suppliers:
    - name: acme
      path: drop
      glob: "*.csv"
      format: csv
      settle_seconds: 60
      key: [lot_id]
      columns: {Charge: {name: lot_id}}
"""


def test_the_sensor_fires_only_for_settled_files(tmp_path: Path) -> None:
    (tmp_path / "drop").mkdir()
    sensor = build_definitions(parse_config(SENSOR_CONFIG, tmp_path)).resolve_sensor_def("supplier_files")

    def evaluate(cursor: str | None) -> dg.SensorResult:
        with dg.instance_for_test() as instance:
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))

    path = tmp_path / "drop" / "lots.csv"
    path.write_text("Charge\nA\n", encoding="utf-8")
    writing = evaluate(None)
    assert writing.run_requests == [] and "1 file not settled yet" in (writing.skip_message or "")
    _age(path)
    settled = evaluate(writing.cursor)
    assert len(settled.run_requests) == 1
    assert evaluate(settled.cursor).run_requests == []

    held = tmp_path / "drop" / "more.csv"
    with held.open("w", encoding="utf-8") as writer:
        writer.write("Charge\nB\n")
        writer.flush()
        _age(held)
        assert evaluate(settled.cursor).run_requests == []
    assert len(evaluate(settled.cursor).run_requests) == 1


def test_settling_by_modification_time_or_by_watching_and_settle_seconds_zero_takes_files_as_they_are(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    path = folder / "a.csv"
    path.write_bytes(b"x")
    modified = path.lstat().st_mtime_ns / 1e9  # as the survey reads it (st_mtime may differ in the last bits)
    now = modified + 10
    survey = drop_folder.survey(folder, "*.csv", None, settle_seconds=30, now=now)
    [waiting] = survey.waiting
    assert survey.ready == [] and waiting.settles_in == pytest.approx(20)
    assert [file.path for file in drop_folder.survey(folder, "*.csv", None, 30, now=modified + 30).ready] == [path]
    ahead = modified - 3600  # a share whose clock runs an hour ahead: watched unchanged for 30 s, it has settled
    [future] = drop_folder.survey(folder, "*.csv", None, 30, now=ahead).waiting
    assert future.settles_in == 30
    watched = drop_folder.survey(folder, "*.csv", None, 30, now=ahead + 30, seen={path: (future.file, ahead)})
    assert [file.path for file in watched.ready] == [path]
    assert [file.path for file in drop_folder.survey(folder, "*.csv", None, 0, now=now).ready] == [path]


# --- 2. one file's failure never stops another; fields of any length -----------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
@pytest.mark.parametrize("place", [0, 5000])
def test_a_field_of_a_megabyte_loads(tmp_path: Path, encoding: str, place: int) -> None:
    source, lake = _source(tmp_path, csv={"delimiter": ";", "encoding": encoding}), Lake(tmp_path / "lake")
    long_note = "Prüfbericht " + "x" * (1 << 20) + " Ende"
    text = HEADER + _rows(range(place)) + f'LOT-LONG;1;"{long_note}"\r\n' + _rows(range(place, place + 3))
    _drop(source, "lang.csv", text.encode(encoding))
    stats = load_bronze(lake, source, "run-1", clock=FakeClock()).metadata
    assert (stats["files_loaded"], stats["rows_loaded"], stats["rows_quarantined"]) == (1, place + 4, 0)
    [row] = [row for row in _bronze(lake) if row["lot_id"] == "LOT-LONG"]
    assert row["note"] == long_note


def test_a_file_that_fails_in_any_way_is_rejected_with_its_reason_and_the_others_load(
    tmp_path: Path, monkeypatch
) -> None:
    source, lake = _source(tmp_path), Lake(tmp_path / "lake")
    _drop(source, "a_good.csv", HEADER + _rows(range(3)), age=7200)
    crashing = _drop(source, "b_crash.csv", HEADER + _rows(range(3, 6)), age=7000)
    _drop(source, "c_good.csv", HEADER + _rows(range(6, 9)), age=6800)
    real_read_csv = file_formats.read_csv

    def read_csv(path: Path, *args):
        if path.name == "b_crash.csv":
            raise KeyError("an error nobody foresaw")
        return real_read_csv(path, *args)

    monkeypatch.setattr(file_formats, "read_csv", read_csv)
    stats = load_bronze(lake, source, "run-1", clock=FakeClock()).metadata
    assert (stats["files_loaded"], stats["files_rejected"], stats["rows_loaded"]) == (2, 1, 6)
    entries = {entry["file_name"]: entry for entry in _registry(lake)}
    assert entries["b_crash.csv"]["status"] == "rejected"
    assert "KeyError: 'an error nobody foresaw'" in entries["b_crash.csv"]["reason"]
    [report] = source.rejected_folder.glob("b_crash.*.csv.txt")
    assert "an error nobody foresaw" in report.read_text(encoding="utf-8") and not crashing.exists()


def test_a_file_that_cannot_be_moved_aside_stops_no_other_and_is_moved_by_the_next_run(
    tmp_path: Path, monkeypatch
) -> None:
    source, lake = _source(tmp_path), Lake(tmp_path / "lake")
    _drop(source, "a.csv", HEADER + _rows(range(2)), age=7200)
    _drop(source, "b.csv", HEADER + _rows(range(2, 4)), age=7000)
    real_move = suppliers.shutil.move

    def move(file: Path, destination: Path) -> None:
        if Path(file).name == "a.csv":
            raise PermissionError(13, "Permission denied", str(file))
        real_move(file, destination)

    monkeypatch.setattr(suppliers.shutil, "move", move)
    stats = load_bronze(lake, source, "run-1", clock=FakeClock()).metadata
    assert (stats["files_loaded"], stats["files_waiting"]) == (2, 1) and len(_bronze(lake)) == 4
    assert stats["files_not_moved"] == [
        "a.csv: PermissionError: [Errno 13] Permission denied: " + repr(str(source.path / "a.csv"))
    ]
    monkeypatch.setattr(suppliers.shutil, "move", real_move)
    again = load_bronze(lake, source, "run-2", clock=FakeClock()).metadata
    assert (again["files_already_loaded"], again["files_waiting"], len(_bronze(lake))) == (1, 0, 4)


# --- 3. links are not followed out of the folder; reasons quote little ----------------------------


def test_a_link_to_a_file_outside_the_drop_folder_is_rejected_without_reading_it(tmp_path: Path) -> None:
    source, lake = _source(tmp_path), Lake(tmp_path / "lake")
    secret = tmp_path / "etc" / "passwd"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n", encoding="utf-8")
    _age(secret)
    source.path.mkdir(parents=True)
    link = source.path / "passwd.csv"
    link.symlink_to(secret)
    inside = source.path / "alias.csv"  # a link that stays inside the folder is read like the file
    _drop(source, "lots.data", HEADER + _rows(range(2)))
    inside.symlink_to("lots.data")
    _age(link), _age(inside)
    stats = load_bronze(lake, source, "run-1", clock=FakeClock()).metadata
    assert (stats["files_loaded"], stats["files_rejected"]) == (1, 1)
    entries = {entry["file_name"]: entry for entry in _registry(lake)}
    assert entries["passwd.csv"]["status"] == "rejected" and entries["passwd.csv"]["rows_read"] == 0
    assert "a symbolic link to a file outside the drop folder" in entries["passwd.csv"]["reason"]
    assert "root:x" not in _everything_written(lake, source)
    assert secret.read_text(encoding="utf-8").startswith("root:x") and not link.is_symlink()
    assert entries["alias.csv"]["status"] == "loaded" and len(_bronze(lake)) == 2


def test_a_reason_quotes_a_short_escaped_snippet_of_a_text_file_and_nothing_of_a_binary_one(tmp_path: Path) -> None:
    source, lake = _source(tmp_path), Lake(tmp_path / "lake")
    _drop(source, "terminal.csv", "Los\x1b[2J;" + "Geheim" * 5000 + ";Menge\r\nL-1;1;2\r\n")
    binary = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00;TOPSECRET;Charge;Menge\r\n" + bytes(range(256))
    _drop(source, "image.csv", binary)
    load_bronze(lake, source, "run-1", clock=FakeClock())
    entries = {entry["file_name"]: entry for entry in _registry(lake)}
    text_reason, binary_reason = entries["terminal.csv"]["reason"], entries["image.csv"]["reason"]
    assert "\x1b" not in text_reason and "Los\\x1b[2J" in text_reason and len(text_reason) < 600
    assert "binary" in binary_reason
    written = _everything_written(lake, source)
    assert "TOPSECRET" not in written and "IHDR" not in written and "\x1b" not in written


# --- 4. totals rows in eleven languages; 5. UTF-16 without a BOM ---------------------------------

TOTALS = [
    "Total",
    "Grand total",
    "TOTALS:",
    "Summe",
    "Gesamt",
    "Gesamtsumme",
    "Summa",
    "Totalt",
    "I alt",
    "Sum",
    "Yhteensä",
    "Kaikki yhteensä",
    "Totaal",
    "Eindtotaal",
    "Total général",
    "Sous-total",
    "Totale",
    "Totale generale",
    "Total general",
    "Suma",
    "Razem",
    "Ogółem",
]


def test_totals_rows_are_recognised_in_eleven_languages_and_summary_rows_adds_more(tmp_path: Path) -> None:
    lots = ["LOT-1", "SUM-7", "Totalschaden 3", "Summarisch", "Übertrag"]
    path = tmp_path / "totals.csv"
    lines = ["Charge;Menge", *[f"{lot};1" for lot in lots], *[f"{label};{n}" for n, label in enumerate(TOTALS)]]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    for summary, kept in ((None, lots), (r"(?i)^übertrag$", lots[:-1])):
        opened = file_formats.read_file(path, "csv", Layout(["Charge"], summary_rows=summary), scan(path))
        table = pa.Table.from_batches(list(opened.batches))
        assert table.column("Charge").to_pylist() == kept
        assert opened.tally.rows_skipped == len(TOTALS) + len(lots) - len(kept)


def test_a_batch_is_searched_for_totals_labels_unless_no_value_can_begin_with_one() -> None:
    """The regular expression is skipped only where no value's first bytes begin a label: every label,
    in any case, after any spacing, alone in its batch, is still found."""
    variants = [
        f"{space}{cased}{end}"
        for label in TOTALS_LABELS
        for cased in (label, label.upper(), label.title(), label.replace(" ", "\t"))
        for space in ("", " ", "\t", "\u00a0")
        for end in ("", ":", " 2026")
    ]
    for value in variants:
        batch = pa.RecordBatch.from_pydict({"Charge": [value], LINE: [2]})
        matched = pa.compute.match_substring_regex(batch.column(0), TOTALS_PATTERN)[0].as_py()
        assert _may_hold_totals(batch.column(0)) or not matched, value
        tally = Tally()
        assert data_rows_only(batch, None, tally).num_rows == (0 if matched else 1), value
    assert sum(pa.compute.match_substring_regex(pa.array(variants), TOTALS_PATTERN).to_pylist()) > len(variants) / 2
    lots = pa.array(["LOT-00000001", "A-17", "12345", "Charge 7", "lot-9"])
    assert not _may_hold_totals(lots), "lots that begin unlike any label are not searched"


def test_a_summa_totals_row_is_not_loaded_as_a_lot(tmp_path: Path) -> None:
    source, lake = _source(tmp_path), Lake(tmp_path / "lake")
    _drop(source, "leverans.csv", HEADER + _rows(range(2)) + "Summa;1;\r\n")
    stats = load_bronze(lake, source, "run-1", clock=FakeClock()).metadata
    assert (stats["rows_loaded"], stats["rows_skipped"], stats["rows_quarantined"]) == (2, 1, 0)
    assert "Summa" not in {row["lot_id"] for row in _bronze(lake)}


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_detected(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "unicode.csv"
    path.write_bytes("Charge;Werkstoff\r\nL-1;Stahl Güte €\r\nL-2;Латунь\r\n".encode(encoding))
    assert scan(path).encoding() == encoding
    opened = file_formats.read_file(path, "csv", Layout(["Charge", "Werkstoff"]), scan(path))
    assert pa.Table.from_batches(list(opened.batches)).column("Werkstoff").to_pylist() == ["Stahl Güte €", "Латунь"]


# --- 6. several formats in one folder; 7. a registry row for every duplicate ---------------------


def _config(tmp_path: Path, supplier: str):
    text = f"lake: {{root: lake}}\nsources:\n  suppliers:\n    - {{name: acme, path: drop, key: [lot_id], {supplier}, "
    return parse_config(text + "columns: {Charge: {name: lot_id}, Menge: {name: quantity, type: int}}}\n", tmp_path)


def test_one_source_takes_several_formats_chosen_by_extension(tmp_path: Path) -> None:
    config = _config(tmp_path, "formats: {.csv: csv, .xlsx: xlsx}")
    source, lake = config.sources.suppliers[0], Lake(config.lake.root)
    _drop(source, "a.csv", "Charge;Menge\r\nC-1;1\r\n", age=7200)
    workbook = openpyxl.Workbook()
    workbook.active.append(["Charge", "Menge"])
    workbook.active.append(["X-1", 2])
    workbook.save(source.path / "b.XLSX")
    _age(source.path / "b.XLSX")
    _drop(source, "notes.pdf", b"%PDF-1.4")
    stats = load_bronze(lake, source, "run-1", clock=FakeClock()).metadata
    assert (stats["files_loaded"], stats["files_rejected"]) == (2, 0)
    assert sorted((row["lot_id"], row["quantity"]) for row in _bronze(lake)) == [("C-1", 1), ("X-1", 2)]
    assert (source.path / "notes.pdf").exists()  # not one of the source's formats: left alone
    assert source.format_of(Path("x.Csv")) == "csv" and source.format_of(Path("x.json")) is None

    assert _config(tmp_path, "glob: '*.txt', format: csv").sources.suppliers[0].format_of(Path("a.txt")) == "csv"
    with pytest.raises(ConfigError, match="format or formats"):
        _config(tmp_path, "glob: '*.csv', format: csv, formats: {.csv: csv}")
    with pytest.raises(ConfigError, match="format or formats"):
        _config(tmp_path, "glob: '*.csv'")
    with pytest.raises(ConfigError, match=r"formats.*'csv' is not an extension"):
        _config(tmp_path, "formats: {csv: csv}")


def test_each_renamed_duplicate_has_a_registry_row_of_its_own(tmp_path: Path) -> None:
    source, lake = _source(tmp_path), Lake(tmp_path / "lake")
    content = HEADER + _rows(range(3))
    _drop(source, "lieferung.csv", content)
    load_bronze(lake, source, "run-1", clock=FakeClock())
    _drop(source, "copy 1.csv", content)
    _drop(source, "copy 2.csv", content)
    stats = load_bronze(lake, source, "run-2", clock=FakeClock()).metadata
    assert (stats["files_loaded"], stats["files_duplicate"]) == (0, 2)
    entries = _registry(lake)
    assert [(entry["file_name"], entry["status"], entry["run_id"]) for entry in entries] == [
        ("copy 1.csv", "duplicate", "run-2"),
        ("copy 2.csv", "duplicate", "run-2"),
        ("lieferung.csv", "loaded", "run-1"),
    ]
    assert all("same content as lieferung.csv" in entry["reason"] for entry in entries[:2])
    assert all(Path(entry["moved_to"]).exists() and entry["rows_read"] == 0 for entry in entries[:2])
    assert len({entry["moved_to"] for entry in entries}) == 3

    _drop(source, "copy 1.csv", content)  # the same duplicate again, under the same name: no new row
    assert load_bronze(lake, source, "run-3", clock=FakeClock()).metadata["files_already_loaded"] == 1
    assert len(_registry(lake)) == 3 and len(_bronze(lake)) == 3


def test_reading_a_binary_file_as_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"Charge;Menge\r\n\x00\x01\x02\x03garbage\r\n")
    with pytest.raises(FileRejected, match="binary"):
        file_formats.read_file(path, "csv", Layout(["Charge"]), scan(path))


def test_any_file_or_folder_name_loads_and_is_registered_as_written(tmp_path: Path) -> None:
    """Spaces, punctuation, non-ASCII letters and SQL in the names of the file and of every folder."""
    root = tmp_path / "Zulieferer Süd; DROP TABLE x"
    source, lake = _source(root, glob="*"), Lake(root / "lake 'é'")
    name = "Lieferung Nr. 7 (Süd) 'Ø' ; DELETE FROM bronze.csv"
    _drop(source, name, HEADER + _rows(range(4)))
    stats = load_bronze(lake, source, "run-1", clock=FakeClock()).metadata
    assert stats["files_loaded"] == 1
    (entry,) = _registry(lake)
    assert entry["file_name"] == name and entry["status"] == "loaded" and entry["rows_loaded"] == 4
    archived = Path(entry["moved_to"])  # the name kept, the content's hash before the extension
    assert archived.exists() and archived.name.startswith(name.removesuffix(".csv")) and archived.suffix == ".csv"
    assert sorted(row["lot_id"] for row in _bronze(lake)) == [f"LOT-{n}" for n in range(4)]

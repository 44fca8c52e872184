"""Read supplier files (CSV, Excel, JSON, JSON lines, Parquet) into batches of text.

Every value is read as text exactly as the supplier wrote it, with the row's place in the
file (`_line`: the line of a CSV or JSON-lines file, the row of a sheet, the record of a
JSON or Parquet file), so that typing errors later can name the file, the line and the
value. What is not a data row is counted, not lost: blank rows and totals rows are
skipped and tallied, rows with the wrong number of fields are kept as `BadRow`s with the
reason. What the layout of the file is (encoding, delimiter, header row) is declared in the
YAML or found here; a file that cannot be read at all raises `FileRejected`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

LINE = "_line"
BATCH_ROWS = 200_000
_HEADER_SEARCH_ROWS = 20
_SAMPLE_BYTES = 256 * 1024
_CP1252_GAPS = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")  # bytes cp1252 leaves undefined


class FileRejected(ValueError):
    """A whole file cannot be taken in; the message says which file and why."""


@dataclass(frozen=True)
class Scan:
    """What one pass over a file's bytes tells: its identity, and which encodings can read it."""

    sha256: str
    size: int
    modified: datetime
    utf8: bool
    bom: str | None
    cp1252_gaps: bool

    def encoding(self, declared: str = "auto") -> str:
        if declared != "auto":
            return declared
        if self.bom:
            return self.bom
        if self.utf8:
            return "utf-8"
        return "latin-1" if self.cp1252_gaps else "cp1252"


def scan(path: Path) -> Scan:
    """Hash the file and check in the same pass whether it is valid UTF-8."""
    digest, decoder, utf8, gaps, size = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")(), True, False, 0
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(0)
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
            size += len(chunk)
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            gaps = gaps or any(gap in chunk for gap in _CP1252_GAPS)
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    bom = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-16" if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else None
    modified = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    return Scan(digest.hexdigest(), size, modified, utf8, bom, gaps)


def fingerprints(folder: Path, glob: str) -> dict[str, list[int]]:
    """Size and modification time of every file matching `glob` in `folder`, by path."""
    found = {}
    for path in sorted(folder.glob(glob)):
        if path.is_file():
            stat = path.stat()
            found[str(path)] = [stat.st_size, stat.st_mtime_ns]
    return found


def changed_since(current: dict[str, list[int]], seen: dict[str, list[int]]) -> list[str]:
    """Paths that are new or whose size or modification time moved since `seen`."""
    return sorted(path for path, fingerprint in current.items() if seen.get(path) != fingerprint)


@dataclass(frozen=True)
class BadRow:
    """A line that is not a row of the table (wrong number of fields, not a JSON object...)."""

    line: int
    reason: str
    text: str


@dataclass
class Tally:
    """What a read found besides data rows; filled in as the batches are consumed."""

    rows_skipped: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)


@dataclass
class TextFile:
    """A supplier file opened for reading: its header, its rows as text batches, its layout."""

    path: Path
    columns: list[str]
    batches: Iterator[pa.RecordBatch]
    tally: Tally
    layout: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """How to find the table in a file; None means: find it from the file and the mapping."""

    expected: list[str]
    delimiter: str | None = None
    quote: str = '"'
    encoding: str = "auto"
    sheet: str | None = None
    header_row: int | None = None
    summary_rows: str | None = None
    batch_rows: int = BATCH_ROWS


def check_header(columns: list[str], expected: list[str], path: Path) -> None:
    """Reject a file whose header lacks mapped columns, listing expected and found."""
    missing = [name for name in expected if name not in columns]
    if missing:
        raise FileRejected(f"{path}: header does not match the mapping; missing {missing}; expected {expected}; found {columns}")


def read_file(path: Path, file_format: str, layout: Layout, file_scan: Scan) -> TextFile:
    """Open a supplier file of `file_format`; its batches are read as they are consumed."""
    readers: dict[str, Callable[[Path, Layout, Scan], TextFile]] = {
        "csv": read_csv, "xlsx": read_xlsx, "json": read_json, "jsonl": read_json_lines, "parquet": read_parquet,
    }  # fmt: skip
    if file_format not in readers:
        raise FileRejected(f"{path}: unknown format {file_format!r}; expected one of {sorted(readers)}")
    if file_scan.size == 0:
        raise FileRejected(f"{path}: the file is empty")
    opened = readers[file_format](path, layout, file_scan)
    check_header(opened.columns, layout.expected, path)
    return opened


# --- header, blank and totals rows --------------------------------------------------------------


def header_index(rows: list[list[Any]], expected: list[str], declared: int | None) -> int:
    """The 0-based row holding the header: the declared one, else the one naming most mapped columns."""
    if declared is not None:
        return declared - 1
    wanted = set(expected)
    scores = [sum(1 for cell in row if cell is not None and str(cell).strip() in wanted) for row in rows[:_HEADER_SEARCH_ROWS]]
    best = max(range(len(scores)), key=lambda index: (scores[index], -index), default=0)
    return best if scores and scores[best] > 0 else 0


def column_names(cells: list[Any], path: Path) -> list[str]:
    names = [str(cell).strip() if cell is not None else "" for cell in cells]
    while names and names[-1] == "":
        names.pop()
    names = [name or f"column_{index + 1}" for index, name in enumerate(names)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FileRejected(f"{path}: the header repeats the columns {repeated}")
    return names


def _data_rows_only(batch: pa.RecordBatch, summary: re.Pattern[str] | None, tally: Tally) -> pa.RecordBatch:
    """Drop blank rows and totals rows (first non-empty cell matches `summary`), counting them."""
    cells = [batch.column(index) for index, name in enumerate(batch.schema.names) if name != LINE]
    if not cells or batch.num_rows == 0:
        return batch
    first = cells[0] if cells[0].null_count == 0 else pc.coalesce(*cells)  # the first cell, or the first filled one
    skip = pc.is_null(first)
    if summary is not None:
        skip = pc.or_(skip, pc.fill_null(pc.match_substring_regex(first, summary.pattern), False))
    skipped = pc.sum(skip).as_py() or 0
    if not skipped:
        return batch
    tally.rows_skipped += skipped
    return batch.filter(pc.invert(skip))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() and value.tzinfo is None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    text = str(value).strip()
    return text or None


def _rows_to_batches(names: list[str], rows: Iterable[tuple[int, list[Any]]], layout: Layout,
                     tally: Tally) -> Iterator[pa.RecordBatch]:  # fmt: skip
    """(line, values) rows as text batches; values past the header's width are joined into the last column."""
    summary = re.compile(layout.summary_rows) if layout.summary_rows else None
    pending: list[tuple[int, list[Any]]] = []

    def flush() -> pa.RecordBatch:
        columns = [pa.array([_text(values[i]) if i < len(values) else None for _, values in pending], pa.string())
                   for i in range(len(names))]  # fmt: skip
        lines = pa.array([line for line, _ in pending], pa.int64())
        return _data_rows_only(pa.RecordBatch.from_arrays([*columns, lines], names=[*names, LINE]), summary, tally)

    for line, values in rows:
        if len(values) > len(names) and any(_text(v) for v in values[len(names) :]):
            tally.bad_rows.append(BadRow(line, f"expected {len(names)} fields, found {len(values)}", repr(values)))
            continue
        pending.append((line, values))
        if len(pending) >= layout.batch_rows:
            yield flush()
            pending = []
    if pending:
        yield flush()


# --- the formats ------------------------------------------------------------------------------


def _sniff_delimiter(lines: list[str]) -> str:
    sample = "\n".join(line for line in lines if line.strip())
    try:
        return csv.Sniffer().sniff(sample, delimiters=";,\t|").delimiter
    except csv.Error:
        counts = {candidate: sum(line.count(candidate) for line in lines) for candidate in ";,\t|"}
        return max(counts, key=lambda candidate: counts[candidate])


def read_csv(path: Path, layout: Layout, file_scan: Scan) -> TextFile:
    """Streams the file through Arrow's CSV reader; every physical line keeps its number."""
    encoding = file_scan.encoding(layout.encoding)
    with path.open("rb") as handle:
        sample = handle.read(_SAMPLE_BYTES).decode(encoding, errors="replace").removeprefix("\ufeff")
    lines = sample.splitlines()[:-1] if len(sample) == _SAMPLE_BYTES else sample.splitlines()
    if not "".join(lines).strip():
        raise FileRejected(f"{path}: the file holds no header (it is blank)")
    delimiter = layout.delimiter or _sniff_delimiter(lines[:50])
    head = list(csv.reader(lines[:_HEADER_SEARCH_ROWS], delimiter=delimiter, quotechar=layout.quote))
    header = header_index(head, layout.expected, layout.header_row)
    if header >= len(head):
        raise FileRejected(f"{path}: header_row {header + 1} is past the end of the file")
    names = column_names(head[header], path)
    tally = Tally()
    shifts: list[int] = []  # physical lines the Arrow reader set aside: rows after them move down one line

    def set_aside(row: pcsv.InvalidRow) -> str:
        shifts.append(row.number)
        if row.text.strip(delimiter + " \t\r\n"):
            tally.bad_rows.append(BadRow(row.number, f"expected {row.expected_columns} fields, found {row.actual_columns}", row.text))
        else:
            tally.rows_skipped += 1
        return "skip"

    read_options = pcsv.ReadOptions(encoding="utf8" if encoding in ("utf-8", "utf-8-sig") else encoding,
                                    skip_rows=header + 1, column_names=names, block_size=1 << 22, use_threads=False)  # fmt: skip
    parse_options = pcsv.ParseOptions(delimiter=delimiter, quote_char=layout.quote, ignore_empty_lines=False,
                                      invalid_row_handler=set_aside)  # fmt: skip
    convert_options = pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True,
                                          quoted_strings_can_be_null=True, null_values=[""])  # fmt: skip
    summary = re.compile(layout.summary_rows) if layout.summary_rows else None
    first_line = header + 2

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        try:
            reader = pcsv.open_csv(path, read_options=read_options, parse_options=parse_options, convert_options=convert_options)
            for batch in reader:
                rows = np.arange(done, done + batch.num_rows)
                moved = np.array([line - first_line - index for index, line in enumerate(shifts)], dtype=np.int64)
                lines = first_line + rows + np.searchsorted(moved, rows, side="right")
                done += batch.num_rows
                trimmed = [pc.utf8_trim_whitespace(column) for column in batch.columns]
                with_lines = pa.RecordBatch.from_arrays([*trimmed, pa.array(lines, pa.int64())], names=[*names, LINE])
                yield _data_rows_only(_empty_as_null(with_lines), summary, tally)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise FileRejected(f"{path}: not readable as {encoding} CSV with delimiter {delimiter!r}: {exc}; "
                               "declare csv.encoding or csv.delimiter if they were guessed wrong") from None  # fmt: skip

    return TextFile(path, names, batches(), tally, {"encoding": encoding, "delimiter": delimiter, "header_row": header + 1})


def _empty_as_null(batch: pa.RecordBatch) -> pa.RecordBatch:
    columns = [column if name == LINE else pc.if_else(pc.equal(column, ""), None, column)
               for name, column in zip(batch.schema.names, batch.columns, strict=True)]  # fmt: skip
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def read_xlsx(path: Path, layout: Layout, _: Scan) -> TextFile:
    """One sheet (by name, else the first); the header may sit below a title, totals rows are skipped."""
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a broken workbook
        raise FileRejected(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {exc})") from None
    if layout.sheet is not None and layout.sheet not in workbook.sheetnames:
        workbook.close()
        raise FileRejected(f"{path}: no sheet {layout.sheet!r}; the workbook has {workbook.sheetnames}")
    worksheet = workbook[layout.sheet] if layout.sheet else workbook.worksheets[0]
    head = [list(values) for values in worksheet.iter_rows(max_row=_HEADER_SEARCH_ROWS, values_only=True)]
    if not any(any(_text(cell) for cell in row) for row in head):
        workbook.close()
        raise FileRejected(f"{path}: the sheet {worksheet.title!r} is empty")
    header = header_index(head, layout.expected, layout.header_row)
    names = column_names(head[header] if header < len(head) else [], path)
    tally = Tally()

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for number, values in enumerate(worksheet.iter_rows(min_row=header + 2, values_only=True), start=header + 2):
                yield number, list(values)
        finally:
            workbook.close()

    return TextFile(path, names, _rows_to_batches(names, rows(), layout, tally), tally,
                    {"sheet": worksheet.title, "header_row": header + 1})  # fmt: skip


def _records(document: Any, path: Path) -> list[Any]:
    """A JSON array of records, or an object whose one list holds them (as portals wrap them)."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        lists = [value for value in document.values() if isinstance(value, list)]
        if len(lists) == 1:
            return lists[0]
    raise FileRejected(f"{path}: expected a JSON array of records, or an object holding one such array")


def read_json(path: Path, layout: Layout, file_scan: Scan) -> TextFile:
    try:
        document = json.loads(path.read_text(encoding=file_scan.encoding(layout.encoding) if layout.encoding != "auto" else "utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileRejected(f"{path}: not valid JSON ({exc})") from None
    records = _records(document, path)
    return _records_file(path, list(enumerate(records, start=1)), layout, {"records": len(records)})


def read_json_lines(path: Path, layout: Layout, file_scan: Scan) -> TextFile:
    """One object per line; a line that is not one is a bad row, the others load."""
    encoding = file_scan.encoding(layout.encoding)
    numbered: list[tuple[int, Any]] = []
    with path.open(encoding=encoding, errors="strict" if file_scan.utf8 or layout.encoding != "auto" else "replace") as handle:
        for number, text in enumerate(handle, start=1):
            numbered.append((number, text))
    return _records_file(path, numbered, layout, {"encoding": encoding}, parse_lines=True)


def _records_file(path: Path, numbered: list[tuple[int, Any]], layout: Layout, details: dict[str, Any],
                  parse_lines: bool = False) -> TextFile:  # fmt: skip
    tally = Tally()
    records: list[tuple[int, dict[str, Any]]] = []
    for number, item in numbered:
        if parse_lines:
            if not item.strip():
                tally.rows_skipped += 1
                continue
            try:
                item = json.loads(item)
            except json.JSONDecodeError as exc:
                tally.bad_rows.append(BadRow(number, f"not valid JSON: {exc.msg} at column {exc.colno}", item.rstrip("\r\n")))
                continue
        if not isinstance(item, dict):
            tally.bad_rows.append(BadRow(number, f"expected a JSON object, found {type(item).__name__}", json.dumps(item)[:500]))
            continue
        records.append((number, item))
    names = list(dict.fromkeys(key for _, record in records for key in record))
    rows = ((number, [record.get(name) for name in names]) for number, record in records)
    return TextFile(path, names, _rows_to_batches(names, rows, layout, tally), tally, details)


def read_parquet(path: Path, layout: Layout, _: Scan) -> TextFile:
    """Parquet carries types; values are turned into text like the other formats, then typed by the mapping."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileRejected(f"{path}: not a readable Parquet file ({exc})") from None
    names = parquet.schema_arrow.names
    tally = Tally()
    summary = re.compile(layout.summary_rows) if layout.summary_rows else None

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        for batch in parquet.iter_batches(batch_size=layout.batch_rows):
            columns = [_parquet_text(column) for column in batch.columns]
            lines = pa.array(np.arange(done + 1, done + 1 + batch.num_rows), pa.int64())
            done += batch.num_rows
            yield _data_rows_only(pa.RecordBatch.from_arrays([*columns, lines], names=[*names, LINE]), summary, tally)

    return TextFile(path, names, batches(), tally, {"row_groups": parquet.num_row_groups})


def _parquet_text(column: pa.Array) -> pa.Array:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        return pa.array([_text(value) for value in column.to_pylist()], pa.string())
    return column.cast(pa.string())

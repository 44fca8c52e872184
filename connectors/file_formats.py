"""The readers of supplier files: CSV, Excel, JSON, JSON lines and Parquet, into batches of text.

Each returns a `TextFile` whose batches are read as they are consumed; see `connectors.files`
for what a batch holds and how blank, totals and malformed rows are counted.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from plantlake.connectors.files import (
    HEADER_SEARCH_ROWS,
    LINE,
    SAMPLE_BYTES,
    BadRow,
    FileRejected,
    Layout,
    Scan,
    Tally,
    TextFile,
    as_text,
    check_header,
    column_names,
    data_rows_only,
    header_index,
    rows_to_batches,
    snippet,
    snippets,
    text_bytes,
)
from plantlake.connectors.transcode import Utf8Reader

TEXT_FORMATS = ("csv", "json", "jsonl")


def read_file(path: Path, file_format: str, layout: Layout, file_scan: Scan) -> TextFile:
    """Open a supplier file of `file_format`; its batches are read as they are consumed."""
    readers: dict[str, Callable[[Path, Layout, Scan], TextFile]] = {
        "csv": read_csv,
        "xlsx": read_xlsx,
        "json": read_json,
        "jsonl": read_json_lines,
        "parquet": read_parquet,
    }
    if file_format not in readers:
        raise FileRejected(f"{path}: unknown format {file_format!r}; expected one of {sorted(readers)}")
    if file_scan.size == 0:
        raise FileRejected(f"{path}: the file is empty")
    if file_scan.binary and file_format in TEXT_FORMATS:
        raise FileRejected(
            f"{path}: the file holds binary data (zero bytes), not {file_format} text; nothing of it is quoted here"
        )
    opened = readers[file_format](path, layout, file_scan)
    check_header(opened.columns, layout.expected, path)
    return opened


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
        raw = handle.read(SAMPLE_BYTES)
    sample = raw.decode(encoding, errors="replace").removeprefix("\ufeff")
    lines = sample.splitlines()[:-1] if len(raw) == SAMPLE_BYTES else sample.splitlines()  # the last may be cut
    if not "".join(lines).strip():
        raise FileRejected(f"{path}: the file holds no header (it is blank)")
    delimiter = layout.delimiter or _sniff_delimiter(lines[:50])
    csv.field_size_limit(FIELD_SIZE_LIMIT)  # Python's csv module stops at 131,072 characters by default
    head = list(csv.reader(lines[:HEADER_SEARCH_ROWS], delimiter=delimiter, quotechar=layout.quote))
    header = header_index(head, layout.expected, layout.header_row)
    if header >= len(head):
        raise FileRejected(f"{path}: header_row {header + 1} is past the end of the file")
    names = column_names(head[header], path)
    tally = Tally()
    shifts: list[int] = []  # physical lines the Arrow reader set aside: rows after them move down one line

    def set_aside(row: pcsv.InvalidRow) -> str:
        shifts.append(row.number)
        if row.text.strip(delimiter + " \t\r\n"):
            tally.bad_rows.append(
                BadRow(row.number, f"expected {row.expected_columns} fields, found {row.actual_columns}", row.text)
            )
        else:
            tally.rows_skipped += 1
        return "skip"

    utf8 = encoding in ("utf-8", "utf-8-sig")  # else transcoded to UTF-8 by Python's codec: valid, no check needed
    read_options = pcsv.ReadOptions(
        encoding="utf8",
        skip_rows=header + 1,
        column_names=names,
        block_size=block_size(file_scan.long_line, 1 if utf8 else 3),
        use_threads=False,
    )
    parse_options = pcsv.ParseOptions(
        delimiter=delimiter, quote_char=layout.quote, ignore_empty_lines=False, invalid_row_handler=set_aside
    )
    convert_options = pcsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string() if utf8 else pa.binary()),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=[""],
    )
    first_line = header + 2

    def numbered(reader: pcsv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
        done = 0
        for batch in reader:
            rows = np.arange(done, done + batch.num_rows)
            moved = np.array([line - first_line - index for index, line in enumerate(shifts)], dtype=np.int64)
            lines = first_line + rows + np.searchsorted(moved, rows, side="right")
            done += batch.num_rows
            cells = [_cleaned(column.view(pa.string())) for column in batch.columns]
            yield data_rows_only(
                pa.RecordBatch.from_arrays([*cells, pa.array(lines, pa.int64())], names=[*names, LINE]),
                layout.summary_rows,
                tally,
            )

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            with nullcontext(str(path)) if utf8 else Utf8Reader(path, encoding) as source:
                reader = pcsv.open_csv(
                    source, read_options=read_options, parse_options=parse_options, convert_options=convert_options
                )
                yield from numbered(reader)
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise FileRejected(
                f"{path}: not readable as {encoding} CSV with delimiter {delimiter!r}: {snippet(str(exc), 200)}; "
                "declare csv.encoding or csv.delimiter if they were guessed wrong"
            ) from None

    return TextFile(
        path, names, batches(), tally, {"encoding": encoding, "delimiter": delimiter, "header_row": header + 1}
    )


FIELD_SIZE_LIMIT = min(sys.maxsize, 2**31 - 1)  # csv.field_size_limit takes a C long
BLOCK_BYTES = 1 << 21


def block_size(long_line: int, growth: int) -> int:
    """Bytes of the blocks Arrow's CSV reader parses, each a batch: 2 MB (it reads up to 32 blocks
    ahead, so 64 MB; in 1 MB batches of 6,000 rows, what each step costs per batch made a 2M-row
    file's bronze step a fifth slower), or, in a file with a longer line, a power of two over twice
    that line in UTF-8 (a line must fit in two blocks; a transcoded byte becomes at most `growth`
    bytes of UTF-8)."""
    size = BLOCK_BYTES
    while size < 2 * growth * long_line:
        size *= 2
    return size


# The bytes a UTF-8 value can begin or end with only if it begins or ends with whitespace as
# Arrow's `utf8_trim_whitespace` knows it: ASCII's, and the lead and last bytes of the Unicode
# spaces (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000).
# Some letters end in these bytes too (ß: C3 9F); then the column is trimmed, needlessly but rightly.
_SPACE_FIRST_BYTE = np.zeros(256, bool)
_SPACE_FIRST_BYTE[[*range(0x09, 0x0E), *range(0x1C, 0x21), 0xC2, 0xE1, 0xE2, 0xE3]] = True
_SPACE_LAST_BYTE = np.zeros(256, bool)
_SPACE_LAST_BYTE[[*range(0x09, 0x0E), *range(0x1C, 0x21), *range(0x80, 0x8B), 0x9F, 0xA0, 0xA8, 0xA9, 0xAF]] = True


def _trimmed(text: pa.Array) -> pa.Array:
    """Whitespace off both ends of every value; a column where no value can begin or end with any
    (most: trimming took a quarter of the reading time) is left as it is."""
    offsets, data = text_bytes(text)
    if not len(data):
        return text  # no value holds a byte
    # an empty value's "first byte" is the next value's, its "last" the one before's: checked anyway
    first, last = np.take(data, offsets[:-1], mode="clip"), np.take(data, offsets[1:] - 1, mode="clip")
    if np.take(_SPACE_FIRST_BYTE, first).any() or np.take(_SPACE_LAST_BYTE, last).any():
        return pc.utf8_trim_whitespace(text)
    return text


def _cleaned(text: pa.Array) -> pa.Array:
    """Whitespace off both ends, and a value it leaves empty null: Arrow's reader reads an empty
    field, quoted or not, as null already, so only a column that was trimmed can hold one."""
    trimmed = _trimmed(text)
    return text if trimmed is text else _empty_as_null(trimmed)


def _empty_as_null(text: pa.Array) -> pa.Array:
    """Arrow reads an empty field as null already; a field of only whitespace is empty once trimmed."""
    if not pc.any(pc.equal(pc.binary_length(text), 0)).as_py():
        return text
    return pc.if_else(pc.equal(text, ""), None, text)


def read_xlsx(path: Path, layout: Layout, _: Scan) -> TextFile:
    """One sheet (by name, else the first); the header may sit below a title, totals rows are skipped."""
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise FileRejected(
            f"{path}: not a readable .xlsx workbook ({type(exc).__name__}: {snippet(str(exc), 200)})"
        ) from None
    if layout.sheet is not None and layout.sheet not in workbook.sheetnames:
        workbook.close()
        raise FileRejected(f"{path}: no sheet {layout.sheet!r}; the workbook has {snippets(workbook.sheetnames)}")
    worksheet = workbook[layout.sheet] if layout.sheet else workbook.worksheets[0]
    head = [list(values) for values in worksheet.iter_rows(max_row=HEADER_SEARCH_ROWS, values_only=True)]
    if not any(any(as_text(cell) for cell in row) for row in head):
        workbook.close()
        raise FileRejected(f"{path}: the sheet {worksheet.title!r} is empty")
    header = header_index(head, layout.expected, layout.header_row)
    names = column_names(head[header] if header < len(head) else [], path)
    tally = Tally()

    def rows() -> Iterator[tuple[int, list[Any]]]:
        try:
            for number, values in enumerate(
                worksheet.iter_rows(min_row=header + 2, values_only=True), start=header + 2
            ):
                yield number, list(values)
        finally:
            workbook.close()

    return TextFile(
        path,
        names,
        rows_to_batches(names, rows(), layout, tally),
        tally,
        {"sheet": worksheet.title, "header_row": header + 1},
    )


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
    utf16 = file_scan.bom == "utf-16" or file_scan.utf16 is not None
    encoding = file_scan.encoding(layout.encoding) if layout.encoding != "auto" or utf16 else "utf-8-sig"
    try:
        document = json.loads(path.read_text(encoding=encoding))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileRejected(f"{path}: not valid JSON ({snippet(str(exc), 200)})") from None
    records = _records(document, path)
    return _records_file(path, list(enumerate(records, start=1)), layout, {"records": len(records)})


KEY_SAMPLE_RECORDS = 1_000


def read_json_lines(path: Path, layout: Layout, file_scan: Scan) -> TextFile:
    """One object per line, streamed; a line that is not one is a bad row, the others load.

    The columns are the keys of the first `KEY_SAMPLE_RECORDS` objects (mapped keys first), so
    the file is read once and memory holds one batch.
    """
    encoding = file_scan.encoding(layout.encoding)
    errors = "strict" if file_scan.utf8 or layout.encoding != "auto" else "replace"
    tally = Tally()

    def records(handle: Any, counts: Tally) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, text in enumerate(handle, start=1):
            record = _json_record(number, text, counts)
            if record is not None:
                yield number, record

    with path.open(
        encoding=encoding, errors=errors
    ) as handle:  # the sample's blank and bad lines are counted by the stream
        sample = list(itertools.islice(records(handle, Tally()), KEY_SAMPLE_RECORDS))
    found = list(dict.fromkeys(key for _, record in sample for key in record))
    names = [name for name in layout.expected if name in found] + [
        name for name in found if name not in layout.expected
    ]

    def rows() -> Iterator[tuple[int, list[Any]]]:
        with path.open(encoding=encoding, errors=errors) as handle:
            for number, record in records(handle, tally):
                yield number, [record.get(name) for name in names]

    details = {"encoding": encoding, "keys_from_records": KEY_SAMPLE_RECORDS}
    return TextFile(path, names, rows_to_batches(names, rows(), layout, tally), tally, details)


def _json_record(number: int, text: str, tally: Tally) -> dict[str, Any] | None:
    """The object on one line, or None with the line counted as blank or bad."""
    if not text.strip():
        tally.rows_skipped += 1
        return None
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        tally.bad_rows.append(BadRow(number, f"not valid JSON: {exc.msg} at column {exc.colno}", text.rstrip("\r\n")))
        return None
    return _as_record(number, item, tally)


def _as_record(number: int, item: Any, tally: Tally) -> dict[str, Any] | None:
    if isinstance(item, dict):
        return item
    tally.bad_rows.append(
        BadRow(number, f"expected a JSON object, found {type(item).__name__}", json.dumps(item)[:500])
    )
    return None


def _records_file(path: Path, numbered: list[tuple[int, Any]], layout: Layout, details: dict[str, Any]) -> TextFile:
    tally = Tally()
    records = [(number, record) for number, item in numbered if (record := _as_record(number, item, tally)) is not None]
    names = list(dict.fromkeys(key for _, record in records for key in record))
    rows = ((number, [record.get(name) for name in names]) for number, record in records)
    return TextFile(path, names, rows_to_batches(names, rows, layout, tally), tally, details)


def read_parquet(path: Path, layout: Layout, _: Scan) -> TextFile:
    """Parquet carries types; values are turned into text like the other formats, then typed by the mapping."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileRejected(f"{path}: not a readable Parquet file ({snippet(str(exc), 200)})") from None
    names = parquet.schema_arrow.names
    tally = Tally()

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        for batch in parquet.iter_batches(batch_size=layout.batch_rows):
            columns = [_parquet_text(column) for column in batch.columns]
            lines = pa.array(np.arange(done + 1, done + 1 + batch.num_rows), pa.int64())
            done += batch.num_rows
            yield data_rows_only(
                pa.RecordBatch.from_arrays([*columns, lines], names=[*names, LINE]), layout.summary_rows, tally
            )

    return TextFile(path, names, batches(), tally, {"row_groups": parquet.num_row_groups})


def _parquet_text(column: pa.Array) -> pa.Array:
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        return pa.array([as_text(value) for value in column.to_pylist()], pa.string())
    return column.cast(pa.string())

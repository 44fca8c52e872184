"""Read supplier files (CSV, Excel, JSON) into Arrow tables of text, one row per data row.

Every value is read as text exactly as the supplier wrote it, with the row's line number
(`_line`, counting the header as line 1), so that typing errors later can name the file,
the line and the value. Typing happens in the lake, where bad rows go to quarantine.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pyarrow as pa

LINE = "_line"


class FileRejected(ValueError):
    """A whole file cannot be taken in; the message says which file and why."""


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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


def _text_table(header: list[str], rows: list[tuple[int, list[object]]], path: Path) -> pa.Table:
    names = [str(name).strip() for name in header]
    duplicates = {name for name in names if names.count(name) > 1}
    if duplicates:
        raise FileRejected(f"{path}: the header repeats the columns {sorted(duplicates)}")
    columns: dict[str, list[str | None]] = {name: [] for name in names}
    lines: list[int] = []
    for line, values in rows:
        if len(values) > len(names) and any(str(v).strip() for v in values[len(names) :] if v is not None):
            values = values[: len(names)] + [";".join(str(v) for v in values[len(names) :])]
        lines.append(line)
        for index, name in enumerate(names):
            value = values[index] if index < len(values) else None
            columns[name].append(None if value is None or str(value).strip() == "" else _as_text(value))
    table = pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})
    return table.append_column(LINE, pa.array(lines, pa.int64()))


def _as_text(value: object) -> str:
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def read_csv(path: Path, delimiter: str = ",", encoding: str = "utf-8") -> pa.Table:
    try:
        text = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as exc:
        raise FileRejected(f"{path}: not readable as {encoding} at byte {exc.start}; declare csv.encoding") from None
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise FileRejected(f"{path}: the file is empty")
    rows = []
    for values in reader:
        if any(value.strip() for value in values):
            rows.append((reader.line_num, list(values)))
    return _text_table(header, rows, path)


def read_xlsx(path: Path, sheet: str | None = None) -> pa.Table:
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise FileRejected(f"{path}: no sheet {sheet!r}; the workbook has {workbook.sheetnames}")
        worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
        header: list[str] | None = None
        rows = []
        for number, values in enumerate(worksheet.iter_rows(values_only=True), start=1):
            if not any(value is not None and str(value).strip() for value in values):
                continue
            if header is None:
                header = [str(value) if value is not None else "" for value in values]
                while header and header[-1] == "":
                    header.pop()
                continue
            rows.append((number, list(values)))
    finally:
        workbook.close()
    if header is None:
        raise FileRejected(f"{path}: the sheet is empty")
    return _text_table(header, rows, path)


def read_json(path: Path) -> pa.Table:
    """A JSON array of objects, or one object per line."""
    text = path.read_text(encoding="utf-8-sig").strip()
    if not text:
        raise FileRejected(f"{path}: the file is empty")
    try:
        records = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise FileRejected(f"{path}: not valid JSON at line {exc.lineno}: {exc.msg}") from None
    header = list(dict.fromkeys(key for record in records for key in record))
    rows = [(number, [record.get(key) for key in header]) for number, record in enumerate(records, start=1)]
    return _text_table(header, rows, path)


def read_supplier_file(path: Path, file_format: str, delimiter: str = ",", encoding: str = "utf-8",
                       sheet: str | None = None) -> pa.Table:  # fmt: skip
    if file_format == "csv":
        return read_csv(path, delimiter, encoding)
    if file_format == "xlsx":
        return read_xlsx(path, sheet)
    if file_format == "json":
        return read_json(path)
    raise FileRejected(f"{path}: unknown format {file_format!r}; expected csv, xlsx or json")


def check_header(table: pa.Table, expected: list[str], path: Path) -> None:
    """Reject a file whose header lacks mapped columns, listing expected and found."""
    found = [name for name in table.column_names if name != LINE]
    missing = [name for name in expected if name not in found]
    if missing:
        raise FileRejected(f"{path}: header does not match the mapping; missing {missing}; expected {expected}; found {found}")

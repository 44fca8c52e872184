"""Supplier files: their identity, and what every reader of them shares (see `file_formats`).

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
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

LINE = "_line"
BATCH_ROWS = 200_000
HEADER_SEARCH_ROWS = 20
SAMPLE_BYTES = 256 * 1024
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
    bom = (
        "utf-8-sig"
        if head.startswith(codecs.BOM_UTF8)
        else "utf-16"
        if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
        else None
    )
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


def text_bytes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string array's value offsets (the first 0) and the UTF-8 bytes they index, as numpy views."""
    if not len(text):
        return np.zeros(1, np.int32), np.zeros(0, np.uint8)
    _, offsets_buffer, data_buffer = text.buffers()
    bounds = np.frombuffer(offsets_buffer, np.int32)[text.offset : text.offset + len(text) + 1]
    data = (
        np.frombuffer(data_buffer, np.uint8)[bounds[0] : bounds[-1]]
        if data_buffer is not None
        else np.zeros(0, np.uint8)
    )
    return bounds - bounds[0], data


def check_header(columns: list[str], expected: list[str], path: Path) -> None:
    """Reject a file whose header lacks mapped columns, listing expected and found."""
    missing = [name for name in expected if name not in columns]
    if missing:
        raise FileRejected(
            f"{path}: header does not match the mapping; missing {missing}; expected {expected}; found {columns}"
        )


# --- header, blank and totals rows --------------------------------------------------------------


def header_index(rows: list[list[Any]], expected: list[str], declared: int | None) -> int:
    """The 0-based row holding the header: the declared one, else the one naming most mapped columns."""
    if declared is not None:
        return declared - 1
    wanted = set(expected)
    scores = [
        sum(1 for cell in row if cell is not None and str(cell).strip() in wanted) for row in rows[:HEADER_SEARCH_ROWS]
    ]
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


def data_rows_only(batch: pa.RecordBatch, summary: str | None, tally: Tally) -> pa.RecordBatch:
    """Drop blank rows and totals rows (first non-empty cell matches the pattern `summary`), counting them."""
    cells = [batch.column(index) for index, name in enumerate(batch.schema.names) if name != LINE]
    if not cells or batch.num_rows == 0:
        return batch
    first = cells[0] if cells[0].null_count == 0 else pc.coalesce(*cells)  # the first cell, or the first filled one
    skip = pc.is_null(first)
    if summary is not None:
        skip = pc.or_(skip, pc.fill_null(pc.match_substring_regex(first, summary), False))
    skipped = pc.sum(skip).as_py() or 0
    if not skipped:
        return batch
    tally.rows_skipped += skipped
    return batch.filter(pc.invert(skip))


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (
            value.date().isoformat()
            if value.time() == datetime.min.time() and value.tzinfo is None
            else value.isoformat()
        )
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    text = str(value).strip()
    return text or None


def rows_to_batches(
    names: list[str], rows: Iterable[tuple[int, list[Any]]], layout: Layout, tally: Tally
) -> Iterator[pa.RecordBatch]:
    """(line, values) rows as text batches; a row with values past the header's width is a bad row."""
    pending: list[tuple[int, list[Any]]] = []

    def flush() -> pa.RecordBatch:
        columns = [
            pa.array([as_text(values[i]) if i < len(values) else None for _, values in pending], pa.string())
            for i in range(len(names))
        ]
        lines = pa.array([line for line, _ in pending], pa.int64())
        return data_rows_only(
            pa.RecordBatch.from_arrays([*columns, lines], names=[*names, LINE]), layout.summary_rows, tally
        )

    for line, values in rows:
        if len(values) > len(names) and any(as_text(v) for v in values[len(names) :]):
            tally.bad_rows.append(BadRow(line, f"expected {len(names)} fields, found {len(values)}", repr(values)))
            continue
        pending.append((line, values))
        if len(pending) >= layout.batch_rows:
            yield flush()
            pending = []
    if pending:
        yield flush()

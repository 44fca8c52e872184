"""Supplier files: their identity, and what every reader of them shares (see `file_formats`).

Every value is read as text exactly as the supplier wrote it, with the row's place in the
file (`_line`: the line of a CSV or JSON-lines file, the row of a sheet, the record of a
JSON or Parquet file), so that typing errors later can name the file, the line and the
value. What is not a data row is counted, not lost: blank rows and totals rows (labelled in
any of eleven languages) are skipped and tallied, rows with the wrong number of fields are
kept as `BadRow`s with the reason. What the layout of the file is (encoding, delimiter, header
row) is declared in the YAML or found here; a file that cannot be read at all raises
`FileRejected`, whose message quotes the file's content only in short, escaped snippets.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
UTF16_SAMPLE_BYTES = 64 * 1024
LONG_LINE = 128 * 1024
_CP1252_GAPS = (b"\x81", b"\x8d", b"\x8f", b"\x90", b"\x9d")  # bytes cp1252 leaves undefined


class FileRejected(ValueError):
    """A whole file cannot be taken in; the message says which file and why."""


class FileChanged(RuntimeError):
    """The file changed while it was read: it is still being written, and is read again once it has settled."""


def snippet(text: str, limit: int = 60) -> str:
    """At most `limit` characters of `text` (a file's content) for a message, control characters escaped."""
    shown = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text[:limit])
    return shown + (f"... ({len(text) - limit:,} more characters)" if len(text) > limit else "")


def snippets(names: list[str], limit: int = 12) -> str:
    """A list of names read from a file, each as a short snippet, at most `limit` of them."""
    shown = ", ".join(f"'{snippet(name, 40)}'" for name in names[:limit])
    return f"[{shown}{f', ... {len(names) - limit} more' if len(names) > limit else ''}]"


# A file's identity on disk: inode, size and modification time. A file whose identity moved while
# it was read was being written (or replaced) meanwhile.
Fingerprint = tuple[int, int, int]


def fingerprint(path: Path) -> Fingerprint:
    stat = path.stat()
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class Scan:
    """What one pass over a file's bytes tells: its identity, and which encodings can read it."""

    sha256: str
    size: int
    modified: datetime
    utf8: bool
    bom: str | None
    cp1252_gaps: bool
    utf16: str | None = None  # "utf-16-le" or "utf-16-be": UTF-16 without a BOM, told by where its zero bytes are
    binary: bool = False  # zero bytes in a file that is not UTF-16: not text
    long_line: int = 0  # bytes of the longest line if one is longer than LONG_LINE, else 0
    identity: Fingerprint = (0, 0, 0)

    def encoding(self, declared: str = "auto") -> str:
        if declared != "auto":
            return declared
        return choose_encoding(self.bom, self.utf16, self.utf8, self.cp1252_gaps)


def choose_encoding(bom: str | None, utf16: str | None, utf8: bool, cp1252_gaps: bool) -> str:
    """A byte-order mark first, then UTF-16 without one, then UTF-8 if the bytes are UTF-8, else a legacy code page."""
    if bom:
        return bom
    if utf16:
        return utf16
    if utf8:
        return "utf-8"
    return "latin-1" if cp1252_gaps else "cp1252"


def scan(path: Path) -> Scan:
    """Hash the file and check in the same pass whether it is valid UTF-8, binary, or has very long lines.

    The hash, two thirds of the time, runs in a thread beside the checks (hashlib lets go of
    the GIL while it hashes a chunk).
    """
    digest, decoder, utf8, gaps, size = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")(), True, False, 0
    zeros, lines, head = False, _LongestLine(), b""
    hashed: Future[None] | None = None
    with path.open("rb") as handle, ThreadPoolExecutor(1, thread_name_prefix="plantlake-hash") as hasher:
        stat = os.fstat(handle.fileno())
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            head = head or chunk[:UTF16_SAMPLE_BYTES]
            if hashed is not None:
                hashed.result()  # chunks are hashed in order, one at a time
            hashed = hasher.submit(digest.update, chunk)
            size += len(chunk)
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            gaps = gaps or any(gap in chunk for gap in _CP1252_GAPS)
            zeros = zeros or b"\x00" in chunk
            lines.feed(chunk)
        if hashed is not None:
            hashed.result()
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    bom = bom_encoding(head)
    utf16 = None if bom or not zeros else _utf16_without_bom(head)
    return Scan(
        sha256=digest.hexdigest(),
        size=size,
        modified=datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=UTC),
        utf8=utf8,
        bom=bom,
        cp1252_gaps=gaps,
        utf16=utf16,
        binary=zeros and bom != "utf-16" and utf16 is None,
        long_line=lines.longest(),
        identity=(stat.st_ino, stat.st_size, stat.st_mtime_ns),
    )


def bom_encoding(head: bytes) -> str | None:
    """The encoding a byte-order mark at the start of `head` names, if there is one."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    return "utf-16" if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else None


def sample_encoding(sample: bytes) -> str | None:
    """The encoding `scan` would choose for a file that begins with `sample`, told from the sample alone (for
    logs, too large and too live to scan whole); None while the sample is plain ASCII, which all of them read alike."""
    bom = bom_encoding(sample)
    if bom is None and sample.isascii() and b"\x00" not in sample:
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample)  # not final: the sample may end inside a character
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    utf16 = None if bom or b"\x00" not in sample else _utf16_without_bom(sample)
    return choose_encoding(bom, utf16, utf8, any(gap in sample for gap in _CP1252_GAPS))


def _utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 of text with some ASCII in it (digits, delimiters, line ends) has a zero byte for each such
    character: at odd places in little-endian, at even places in big-endian, and hardly any at the others."""
    sample = head[: len(head) // 2 * 2]
    half = len(sample) // 2
    if half < 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.1 * half and even <= 0.01 * half:
        encoding = "utf-16-le"
    elif even >= 0.1 * half and odd <= 0.01 * half:
        encoding = "utf-16-be"
    else:
        return None
    try:
        codecs.getincrementaldecoder(encoding)().decode(sample)  # not final: the sample may end inside a pair
    except UnicodeDecodeError:
        return None
    return encoding


class _LongestLine:
    """The longest line of the bytes fed, where it is longer than LONG_LINE (Arrow's CSV reader needs a
    block larger than that). Cheaply: where every stretch of LONG_LINE / 2 bytes holds a line end, no
    line is that long; only a chunk with a stretch that holds none is measured byte by byte."""

    def __init__(self) -> None:
        self.run = 0  # bytes since the last line end
        self.found = 0

    def feed(self, chunk: bytes) -> None:
        first, last = _line_end(chunk, 0, len(chunk)), _line_end(chunk, 0, len(chunk), last=True)
        if first < 0:
            self.run += len(chunk)
            return
        self.found = max(self.found, self.run + first)
        step = LONG_LINE // 2
        if any(_line_end(chunk, start, min(start + step, last + 1)) < 0 for start in range(first, last, step)):
            ends = np.flatnonzero(_LINE_END_BYTE[np.frombuffer(chunk, np.uint8, last - first + 1, first)])
            self.found = max(self.found, int(np.diff(ends).max(initial=0)))
        self.run = len(chunk) - last - 1

    def longest(self) -> int:
        found = max(self.found, self.run)
        return found if found > LONG_LINE else 0


def _line_end(chunk: bytes, start: int, end: int, last: bool = False) -> int:
    """The place of the first (or the last) line end, LF or CR, in chunk[start:end]; -1 if it holds none."""
    if last:
        lf = chunk.rfind(b"\n", start, end)
        return max(lf, chunk.rfind(b"\r", lf + 1 if lf >= 0 else start, end))
    lf = chunk.find(b"\n", start, end)
    cr = chunk.find(b"\r", start, lf if lf >= 0 else end)  # only before the LF: most files have one close by
    return lf if cr < 0 else cr


_LINE_END_BYTE = np.zeros(256, bool)
_LINE_END_BYTE[[0x0A, 0x0D]] = True


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
    summary_rows: str | None = None  # a pattern marking totals rows besides TOTALS_LABELS
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
            f"{path}: header does not match the mapping; missing {missing}; expected {expected}; "
            f"found {snippets(columns)}"
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
        raise FileRejected(f"{path}: the header repeats the columns {snippets(repeated)}")
    return names


# What a totals row's first cell says, in English, German, Swedish, Danish, Norwegian, Finnish, Dutch,
# French, Italian, Spanish and Polish. The label stands alone or is followed by a space or a
# punctuation mark such as a colon, not by a letter, a digit or a hyphen ("Totalschaden", "SUM-7" are lots).
TOTALS_LABELS = (
    *("total", "totals", "grand total", "subtotal", "sub-total", "sum"),
    *("summe", "gesamt", "gesamtsumme", "endsumme", "zwischensumme", "insgesamt"),
    *("summa", "totalt", "totalsumma", "delsumma", "summa totalt"),
    *("i alt", "samlet", "totalsum", "delsum"),
    *("yhteensä", "kaikki yhteensä", "välisumma"),
    *("totaal", "subtotaal", "eindtotaal", "totaal generaal"),
    *("total général", "sous-total", "totaux", "somme"),
    *("totale", "totali", "totale generale", "subtotale", "somma"),
    *("total general", "totales", "suma"),
    *("razem", "ogółem", "łącznie", "suma końcowa", "suma całkowita"),
)
TOTALS_PATTERN = (
    r"^\s*(?i:"
    + "|".join(label.replace(" ", r"\s+") for label in sorted(TOTALS_LABELS, key=len, reverse=True))
    + r")(?:$|[\s:.,;=*()\[\]])"
)


def _pair(first: str, second: str) -> int:
    return ord(first) << 8 | ord(second)


# the first two bytes, lower-cased, a totals label can begin with: its own, or its first letter and a space
_LOWER = np.arange(256, dtype=np.uint16)
_LOWER[ord("A") : ord("Z") + 1] += 32
_TOTALS_PAIRS = np.array(
    sorted(
        {_pair(label[0], label[1]) for label in TOTALS_LABELS if label[:2].isascii()}
        | {_pair(label[0], space) for label in TOTALS_LABELS if label[1] == " " for space in " \t\n\v\f\r"}
    ),
    np.uint16,
)


def _may_hold_totals(first: pa.Array) -> bool:
    """Whether a value of `first` (text) may begin with a totals label: the regular expression
    then decides. Most columns' values begin otherwise, and the test costs far less than it: one
    look at each value's first two bytes. Whitespace or a byte past ASCII there counts as may
    (leading space, a label such as "łącznie", a letter that folds to an ASCII one)."""
    if first.type != pa.string():
        return True
    offsets, data = text_bytes(first)
    if not len(data):
        return False
    starts = np.minimum(offsets[:-1], len(data) - 1)
    lead, next_byte = data[starts], data[np.minimum(starts + 1, len(data) - 1)]
    odd = (lead >= 0x80) | (next_byte >= 0x80) | (lead <= 0x20)
    return bool(odd.any() or np.isin(_LOWER[lead] << 8 | _LOWER[next_byte], _TOTALS_PAIRS).any())


def data_rows_only(batch: pa.RecordBatch, summary: str | None, tally: Tally) -> pa.RecordBatch:
    """Drop blank rows and totals rows (first non-empty cell is a totals label, or matches the pattern
    `summary` besides), counting them."""
    cells = [batch.column(index) for index, name in enumerate(batch.schema.names) if name != LINE]
    if not cells or batch.num_rows == 0:
        return batch
    first = cells[0] if cells[0].null_count == 0 else pc.coalesce(*cells)  # the first cell, or the first filled one
    skip = pc.is_null(first)
    if _may_hold_totals(first):
        skip = pc.or_(skip, pc.fill_null(pc.match_substring_regex(first, TOTALS_PATTERN), False))
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

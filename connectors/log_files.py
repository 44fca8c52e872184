"""Log files read on from where the last run stopped, a block at a time, in their own encoding.

Which file is which, and where it was read to, is `log_identity`'s; here a file is read from
that position. The newest entry of a file still being written is held back until the next line
shows it is complete. Entries keep their bytes: a start line with every line below it up to the
next start, blank lines included, less the end of its last line (`\\n` or `\\r\\n`).

The encoding is the source's, or found per file as for supplier files (`connectors.files`): a
byte-order mark, UTF-16 without one, UTF-8 if the bytes are UTF-8, else cp1252. It is decided on
the first bytes that are not ASCII and kept with the position. A byte the encoding cannot read is
kept as the text `\\xNN` and counted on its entry (`invalid_bytes`), never replaced silently.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plantlake.connectors.files import sample_encoding
from plantlake.connectors.log_identity import TAIL_BYTES, Position, content_size, digest, open_content
from plantlake.connectors.logs import LogFormat, empty_events, parse_entries
from plantlake.connectors.transcode import decode_escaped

SAMPLE_BYTES = 64 * 1024
_BOMS = {"utf-8": codecs.BOM_UTF8, "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}
_BOMS |= {"utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}


@dataclass(frozen=True)
class Codec:
    """An encoding as the reader needs it: its name, and how wide the code unit of a line end is."""

    name: str | None  # None: not decided yet, the bytes so far are ASCII (read as UTF-8)
    width: int = 1
    dtype: str = "u1"

    @classmethod
    def of(cls, name: str | None, head: bytes) -> Codec:
        """The codec `name` names; UTF-16 and UTF-32 take their byte order from the file's mark (else little-endian)."""
        if name is None:
            return cls(None)
        canonical = codecs.lookup(name).name.removesuffix("-sig")
        if canonical in ("utf-16", "utf-32"):
            big = head.startswith((codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)) and not head.startswith(
                codecs.BOM_UTF32_LE
            )
            canonical += "-be" if big else "-le"
        width = len("\n".encode(canonical))
        order = ">" if canonical.endswith("-be") else "<"
        return cls(canonical, width, "u1" if width == 1 else f"{order}u{width}")

    @property
    def text(self) -> str:
        return self.name or "utf-8"

    def line_ends(self, data: bytes) -> np.ndarray:
        """Offsets just past each line end in `data` (which starts at a code unit)."""
        units = np.frombuffer(data, self.dtype, len(data) // self.width)
        return (np.flatnonzero(units == 10) + 1) * self.width


def _decide(log_format: LogFormat, start: Position, head: bytes) -> Codec:
    if log_format.encoding != "auto":
        return Codec.of(log_format.encoding, head)
    return Codec.of(start.encoding or sample_encoding(head), head)


def read_new(
    path: Path, start: Position, log_format: LogFormat, final: bool, reference: datetime, block_bytes: int = 8 << 20
) -> Iterator[tuple[pa.RecordBatch, Position]]:
    """Events after `start`, a block at a time, each with the position after it.

    `final`: the file no longer grows (rotated, or quiet), so its last entry and a last line
    without a newline are complete. Otherwise they wait for the next run.
    """
    size = content_size(path)
    if path.suffix == ".gz" and size == start.offset % (1 << 32):
        return
    with open_content(path) as handle:
        head = handle.read(SAMPLE_BYTES)
        codec = _decide(log_format, start, head)
        position = replace(start, encoding=codec.name)
        mark = _BOMS.get(codec.name or "", b"")
        if position.offset == 0 and mark and head.startswith(mark):
            position = replace(position, offset=len(mark))  # a byte-order mark is not text
        recent_start = max(0, position.offset - TAIL_BYTES)
        handle.seek(recent_start)
        recent = handle.read(position.offset - recent_start)
        block_bytes -= block_bytes % codec.width
        carry = b""
        while True:
            block = handle.read(block_bytes)
            end = not block
            data = carry + block
            if codec.name is None and not data.isascii():
                codec = Codec.of(sample_encoding(data) or "utf-8", head)
                position = replace(position, encoding=codec.name)
            cut = len(data) if end and final else _last_line_end(data, codec)
            if cut == 0 and not end:
                carry = data
                continue
            used_bytes, used_lines, batch = _parse_block(
                data[:cut], position, path, log_format, reference, end and final, codec
            )
            if used_bytes:
                recent = (recent + data[max(0, used_bytes - TAIL_BYTES) : used_bytes])[-TAIL_BYTES:]
                position = replace(
                    position,
                    offset=position.offset + used_bytes,
                    lines=position.lines + used_lines,
                    tail=digest(recent),
                )
                yield batch, position  # no events (blank lines only): the position moves past them all the same
            carry = data[used_bytes:]
            if end:
                return


def _last_line_end(data: bytes, codec: Codec) -> int:
    if codec.width == 1:
        return data.rfind(b"\n") + 1
    ends = codec.line_ends(data)
    return int(ends[-1]) if len(ends) else 0


def _parse_block(
    data: bytes,
    position: Position,
    path: Path,
    log_format: LogFormat,
    reference: datetime,
    complete: bool,
    codec: Codec,
) -> tuple[int, int, pa.RecordBatch]:
    """Events of the complete lines in `data`; the last entry is held back unless `complete`.
    Returns (bytes consumed, lines consumed, events)."""
    if not data:
        return 0, 0, empty_events()
    ends = codec.line_ends(data)
    text, invalid = decode_escaped(data, codec.text)
    lines = pc.list_flatten(pc.split_pattern(pa.array([text]), "\n"))
    if len(ends) and ends[-1] == len(data):
        lines = lines.slice(0, len(lines) - 1)
    line_starts = np.concatenate([[0], ends])[: len(lines)]
    numbers = np.arange(position.lines + 1, position.lines + 1 + len(lines))
    nonblank = pc.invert(pc.equal(pc.utf8_trim_whitespace(lines), "")).to_numpy(zero_copy_only=False)
    starts = (
        pc.fill_null(pc.match_substring_regex(lines, log_format.start), False).to_numpy(zero_copy_only=False) & nonblank
    )
    keep = len(lines)
    if not complete:
        start_indices = np.flatnonzero(starts)
        keep = int(start_indices[-1]) if len(start_indices) else 0
        if keep == 0 and len(lines):
            return 0, 0, empty_events()
    consumed_bytes = len(data) if keep == len(lines) else int(line_starts[keep])
    bad = np.zeros(len(lines), np.int64)  # per line, bytes the encoding could not read
    if invalid:
        where, until = np.array(invalid, np.int64).T
        np.add.at(bad, np.searchsorted(line_starts, where, side="right") - 1, until - where)
    entries, entry_lines, orphans, entry_bad = _group_entries(
        lines.slice(0, keep), numbers[:keep], starts[:keep], nonblank[:keep], bad[:keep]
    )
    batch = parse_entries(entries, entry_lines, orphans, entry_bad, path, position.file_id, log_format, reference)
    return consumed_bytes, keep, batch


def _group_entries(
    lines: pa.Array, numbers: np.ndarray, starts: np.ndarray, nonblank: np.ndarray, bad: np.ndarray
) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """Lines joined into entries: each start line with every line below it up to the next start.

    Joined with `\\n`, the lines keep whatever else they end in (a `\\r`), so an entry is its bytes
    but the end of its last line. Lines above the first start form an entry of their own, flagged
    as an orphan, unless they are all blank. Returns entries, their first line numbers, the orphan
    flags and the invalid bytes of each.
    """
    count = len(lines)
    if count == 0:
        return pa.array([], pa.string()), numbers, np.zeros(0, bool), bad
    if starts.all():
        return pc.utf8_rtrim(lines, characters="\r"), numbers, np.zeros(count, bool), bad
    heads = starts.copy()
    heads[0] = True  # the orphan lines above the first start, if any, become one entry
    first_lines = np.flatnonzero(heads)
    offsets = pa.array(np.append(first_lines, count).astype(np.int32))
    entries = pc.utf8_rtrim(pc.binary_join(pa.ListArray.from_arrays(offsets, lines), "\n"), characters="\r")
    entry_bad = np.add.reduceat(bad, first_lines)
    orphans = np.zeros(len(first_lines), dtype=bool)
    orphans[0] = not starts[0]
    if orphans[0] and not nonblank[: first_lines[1] if len(first_lines) > 1 else count].any():
        return entries.slice(1), numbers[first_lines[1:]], orphans[1:], entry_bad[1:]  # only blank lines: no entry
    return entries, numbers[first_lines], orphans, entry_bad

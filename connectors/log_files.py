"""Log files followed through rotation and compression: identity by content, reading on from a position.

The identity of a file is a hash of its first bytes, which rotation (`app.log` -> `app.log.1`
-> `app.log.2.gz`) does not change. With the identity the caller keeps how far the file was
read (bytes and lines of its uncompressed content), so a rotated file is never read twice
and a growing one is read on from where the last run stopped. The newest entry of a file
still being written is held back until the next line shows it is complete.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plantlake.connectors.logs import LogFormat, empty_events, parse_entries

IDENTITY_BYTES = 1024
_ROTATED = re.compile(r"\.(\d+|gz)(\.gz)?$")


@dataclass(frozen=True)
class Position:
    """How far one file (by identity) has been read: bytes and lines of its uncompressed content."""

    file_id: str
    prefix: int
    offset: int = 0
    lines: int = 0


def is_rotated(path: Path) -> bool:
    """`app.log.1`, `app.log.2.gz`, `app.log.gz`: complete files that no longer grow."""
    return bool(_ROTATED.search(path.name))


def open_content(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def content_size(path: Path) -> int | None:
    """Uncompressed size without reading (gzip keeps it mod 2**32 in its last four bytes)."""
    if path.suffix != ".gz":
        return path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(-4, 2)
        return struct.unpack("<I", handle.read(4))[0]


def identify(path: Path, known: dict[str, Position]) -> Position | None:
    """The file's position if its first bytes match a known file, else a new identity (None if empty)."""
    with open_content(path) as handle:
        head = handle.read(IDENTITY_BYTES)
    if not head:
        return None
    for prefix in sorted({position.prefix for position in known.values()}, reverse=True):
        if prefix <= len(head):
            file_id = _file_id(head[:prefix])
            if file_id in known:
                return known[file_id]
    return Position(_file_id(head), len(head))


def _file_id(head: bytes) -> str:
    return f"{hashlib.sha256(head).hexdigest()[:24]}-{len(head)}"


def read_new(
    path: Path, start: Position, log_format: LogFormat, final: bool, reference: datetime, block_bytes: int = 8 << 20
) -> Iterator[tuple[pa.RecordBatch, Position]]:
    """Events after `start`, a block at a time, each with the position after it.

    `final`: the file no longer grows (rotated, or quiet), so its last entry and a last line
    without a newline are complete. Otherwise they wait for the next run.
    """
    size = content_size(path)
    if path.suffix == ".gz" and size is not None and size == start.offset % (1 << 32):
        return
    position, carry = start, b""
    with open_content(path) as handle:
        handle.seek(start.offset)
        while True:
            block = handle.read(block_bytes)
            end = not block
            data = carry + block
            cut = len(data) if end and final else data.rfind(b"\n") + 1
            if cut == 0 and not end:
                carry = data
                continue
            emitted_bytes, emitted_lines, batch = _parse_block(
                data[:cut], position, path, log_format, reference, end and final
            )
            if batch.num_rows:
                position = replace(
                    position, offset=position.offset + emitted_bytes, lines=position.lines + emitted_lines
                )
                yield batch, position
            elif emitted_bytes:  # only blank lines: move past them all the same
                position = replace(
                    position, offset=position.offset + emitted_bytes, lines=position.lines + emitted_lines
                )
                yield empty_events(), position
            carry = data[emitted_bytes:]
            if end:
                return


def _parse_block(
    data: bytes, position: Position, path: Path, log_format: LogFormat, reference: datetime, complete: bool
) -> tuple[int, int, pa.RecordBatch]:
    """Events of the complete lines in `data`; the last entry is held back unless `complete`.
    Returns (bytes consumed, lines consumed, events)."""
    if not data:
        return 0, 0, empty_events()
    newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    text = data.decode("utf-8", errors="replace")
    lines = pc.list_flatten(pc.split_pattern(pa.array([text]), "\n"))
    if data.endswith(b"\n"):
        lines = lines.slice(0, len(lines) - 1)
    line_starts = np.concatenate([[0], newlines + 1])[: len(lines)]
    lines = pc.utf8_rtrim(lines, characters="\r")
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
    selected = nonblank[:keep]
    entries, entry_lines, orphans = _group_entries(
        lines.slice(0, keep).filter(pa.array(selected)), numbers[:keep][selected], starts[:keep][selected]
    )
    batch = parse_entries(entries, entry_lines, orphans, path, position.file_id, log_format, reference)
    return consumed_bytes, keep, batch


def _group_entries(lines: pa.Array, numbers: np.ndarray, starts: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Lines joined into entries: each start line with the continuation lines below it.

    Lines above the first start form an entry of their own, flagged as an orphan. Only the
    entries that have continuation lines are joined one by one; the rest pass as they are.
    """
    if starts.all():
        return lines, numbers, np.zeros(len(lines), dtype=bool)
    heads = starts.copy()
    heads[0] = True  # the orphan lines above the first start, if any, become one entry
    entry = np.cumsum(heads) - 1
    first_lines = np.flatnonzero(heads)
    entries = lines.filter(pa.array(heads))
    continued = np.flatnonzero(~heads)
    texts = lines.take(pa.array(continued)).to_pylist()
    joined: dict[int, list[str]] = {}
    for index, text in zip(entry[continued].tolist(), texts, strict=True):
        if index not in joined:
            joined[index] = [entries[index].as_py()]
        joined[index].append(text)
    mask = np.zeros(len(entries), dtype=bool)
    mask[list(joined)] = True
    whole = pc.replace_with_mask(
        entries, pa.array(mask), pa.array(["\n".join(parts) for _, parts in sorted(joined.items())], pa.string())
    )
    orphans = np.zeros(len(entries), dtype=bool)
    orphans[0] = not starts[0]
    return whole, numbers[first_lines], orphans

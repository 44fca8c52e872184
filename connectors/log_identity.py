"""Which log file is which, so that no file is ever read from another file's offset.

A file is identified once it holds `fingerprint_bytes` (1 KiB by default): a hash of those first
bytes, which rotation (`app.log` -> `app.log.1`) and compression (`-> app.log.2.gz`) leave as they
are. A live file shorter than that waits and is read from its start once it holds them, as the
proven shippers do: a short banner that every restart writes would otherwise make every restart
look like the same file. A rotated file no longer grows, so its whole content may be its fingerprint.

A known file is found again only if, besides its fingerprint:
- its content is not shorter than the offset it was read to (else it was truncated, as
  copytruncate does, and what it holds now is another file);
- it is not at the name the file was last seen at under another device or inode (else the file
  was replaced: deleted and recreated, whatever its first bytes);
- the bytes just before that offset are still the ones read there (else it was rewritten in place,
  or it is another file that happens to begin alike, on an inode the file system reused).
A copy at another name (copytruncate's `app.log.1`, a `.gz`) passes these and is read on from the offset.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

FINGERPRINT_BYTES = 1024
TAIL_BYTES = 256
_ROTATED = re.compile(r"\.(\d+|gz)(\.gz)?$")
_GZIP_SIZES = 1 << 32  # gzip keeps the uncompressed size modulo 2**32


@dataclass(frozen=True)
class Position:
    """How far one file has been read (bytes and lines of its uncompressed content), and how it is known.

    Positions committed before device, inode, name and tail were kept have only `file_id`
    (fingerprint and length) and `prefix`: they are found by their fingerprint once, and carry
    the rest from then on.
    """

    file_id: str
    prefix: int
    offset: int = 0
    lines: int = 0
    fingerprint: str | None = None  # hash of the first `prefix` bytes
    device: int | None = None
    inode: int | None = None
    path: str | None = None  # where the file was last seen
    tail: str | None = None  # hash of the TAIL_BYTES before `offset`
    encoding: str | None = None  # decided on the first bytes that were not ASCII

    @property
    def head_hash(self) -> str:
        return self.fingerprint or self.file_id.split("-", 1)[0]

    def seen_as(self, device: int, inode: int) -> bool:
        return (self.device, self.inode) == (device, inode)


@dataclass(frozen=True)
class Found:
    """A file as this run finds it: where, which inode, how long its content is, its first bytes."""

    path: Path
    device: int
    inode: int
    size: int
    head: bytes

    @property
    def compressed(self) -> bool:
        return self.path.suffix == ".gz"

    @property
    def rotated(self) -> bool:
        return is_rotated(self.path)


def is_rotated(path: Path) -> bool:
    """`app.log.1`, `app.log.2.gz`, `app.log.gz`: complete files that no longer grow."""
    return bool(_ROTATED.search(path.name))


def open_content(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def content_size(path: Path) -> int:
    """Uncompressed size without reading (gzip keeps it mod 2**32 in its last four bytes)."""
    if path.suffix != ".gz":
        return path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(-4, 2)
        return int(struct.unpack("<I", handle.read(4))[0])


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def look(path: Path, fingerprint_bytes: int) -> Found:
    stat = path.stat()
    with open_content(path) as handle:
        head = handle.read(fingerprint_bytes)
    return Found(path, stat.st_dev, stat.st_ino, content_size(path), head)


def _tail_before(path: Path, offset: int) -> bytes:
    start = max(0, offset - TAIL_BYTES)
    with open_content(path) as handle:
        handle.seek(start)
        return handle.read(offset - start)


def _truncated(found: Found, offset: int) -> bool:
    if not found.compressed:
        return found.size < offset
    return offset < _GZIP_SIZES and found.size < offset  # past 4 GiB, gzip's size says nothing


def _is(found: Found, position: Position, fingerprint_bytes: int) -> bool:
    """Whether `found` is the file `position` was read from, or a copy of it (see the module's rules)."""
    if len(found.head) < position.prefix or digest(found.head[: position.prefix]) != position.head_hash:
        return False
    same_inode, legacy = position.seen_as(found.device, found.inode), position.inode is None
    if position.path == str(found.path) and not (same_inode or legacy):
        return False  # same name, another inode: replaced
    if _truncated(found, position.offset):
        return False
    offered = min(len(found.head), fingerprint_bytes)
    if position.offset <= position.prefix < offered and not (same_inode or legacy or found.size == position.prefix):
        return False  # all that is known of it is a short fingerprint, which this longer file merely begins with
    if position.tail is None or position.offset == 0:
        return True
    if found.compressed and found.size == position.offset % _GZIP_SIZES:
        return True  # a compressed rotation read to its end: not decompressed again to check
    return digest(_tail_before(found.path, position.offset)) == position.tail


@dataclass
class Plan:
    """Per file identity, the file to read and where it was read to; files too short to identify yet."""

    reads: list[tuple[Found, Position]]
    waiting: list[Path]


def plan(paths: Iterable[Path], known: dict[str, Position], fingerprint_bytes: int = FINGERPRINT_BYTES) -> Plan:
    """Match the files found (oldest first) to the known positions; new files get a new identity.

    One path per identity is read: the one at the file's own inode if it is still there, else a
    plain copy rather than a compressed one.
    """
    matches: dict[str, list[tuple[Found, Position]]] = {}
    fresh: dict[tuple[str, int], list[tuple[Found, Position]]] = {}
    taken, waiting = set(known), []
    head_bytes = max([fingerprint_bytes, *(position.prefix for position in known.values())])
    for path in paths:
        found = look(path, head_bytes)
        if not found.head:
            continue
        if len(found.head) < fingerprint_bytes and not found.rotated:
            waiting.append(path)
            continue
        position = _known(found, known.values(), fingerprint_bytes) or _copy_of_fresh(found, fresh, fingerprint_bytes)
        if position is None:
            position = _new(found, taken, fingerprint_bytes)
            taken.add(position.file_id)
            fresh.setdefault((position.head_hash, position.prefix), []).append((found, position))
        matches.setdefault(position.file_id, []).append((found, position))
    reads = []
    for candidates in matches.values():
        found, position = min(
            candidates, key=lambda pair: (not pair[1].seen_as(pair[0].device, pair[0].inode), pair[0].compressed)
        )
        upgraded = position
        if position.inode is None:  # a position from before: fingerprint it as positions are now
            head = found.head[:fingerprint_bytes]
            upgraded = replace(position, prefix=len(head), fingerprint=digest(head))
        reads.append((found, replace(upgraded, device=found.device, inode=found.inode, path=str(found.path))))
    return Plan(reads, waiting)


def _known(found: Found, positions: Iterable[Position], fingerprint_bytes: int) -> Position | None:
    candidates = sorted(positions, key=lambda position: not position.seen_as(found.device, found.inode))
    return next((position for position in candidates if _is(found, position, fingerprint_bytes)), None)


def _copy_of_fresh(
    found: Found, fresh: dict[tuple[str, int], list[tuple[Found, Position]]], fingerprint_bytes: int
) -> Position | None:
    """A new file found twice this run (plain and compressed, or a copy): the same identity, if the
    whole contents are equal; a file that merely begins alike is a file of its own."""
    head = found.head[:fingerprint_bytes]
    for other, position in fresh.get((digest(head), len(head)), []):
        if other.size == found.size and _content_digest(other.path) == _content_digest(found.path):
            return position
    return None


def _content_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with open_content(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _new(found: Found, taken: set[str], fingerprint_bytes: int) -> Position:
    """A new identity, the same on a rerun of a run that failed before its positions were committed."""
    head = found.head[:fingerprint_bytes]
    base = f"{digest(head)}-{len(head)}-{found.inode}"
    file_id, n = base, 1
    while file_id in taken:
        n += 1
        file_id = f"{base}-{n}"
    return Position(file_id, len(head), fingerprint=digest(head))

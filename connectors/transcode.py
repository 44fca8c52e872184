"""A file in a legacy code page, read as UTF-8: what Arrow's CSV reader parses fastest.

Arrow would transcode through Python's codecs too; for a cp1252 file that cost more than
parsing it, most of it in cp1252's table decoder. cp1252 and latin-1 differ only in the
bytes 0x80-0x9F, and latin-1's decoder is little more than a copy: a chunk is decoded as
latin-1 first, and again as cp1252 only if its UTF-8 holds a character U+0080-U+00BF
(lead byte 0xC2, one `memchr` to find; German text, ä to ß, never needs it).
"""

from __future__ import annotations

import codecs
import io
import re
import threading
from pathlib import Path

CHUNK_BYTES = 1 << 20
_LATIN1_LOW_HIGH = b"\xc2"  # UTF-8 lead byte of U+0080-U+00BF, where the bytes 0x80-0x9F would land


class Utf8Reader(io.RawIOBase):
    """`path`'s bytes in `encoding`, read as UTF-8 bytes; a byte the code page lacks raises UnicodeDecodeError."""

    def __init__(self, path: Path, encoding: str) -> None:
        super().__init__()
        self._raw = path.open("rb")
        self._cp1252 = codecs.lookup(encoding).name == "cp1252"
        self._decoder = codecs.getincrementaldecoder(encoding)()
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def _utf8(self, chunk: bytes) -> bytes:
        if self._cp1252:
            utf8 = chunk.decode("latin-1").encode("utf-8")
            if _LATIN1_LOW_HIGH not in utf8:
                return utf8
        return self._decoder.decode(chunk, final=not chunk).encode("utf-8")

    def read(self, size: int = -1) -> memoryview:
        """Up to `size` bytes of UTF-8 (all that is left if `size` < 0), as a view: Arrow takes any
        buffer, so nothing is copied."""
        if size < 0:
            return memoryview(b"".join(iter(lambda: bytes(self.read(CHUNK_BYTES)), b"")))
        while not self._pending:
            chunk = self._raw.read(max(CHUNK_BYTES, size))
            self._pending = memoryview(self._utf8(chunk))
            if not chunk:
                break
        piece, self._pending = self._pending[:size], self._pending[size:]
        return piece

    def close(self) -> None:
        self._raw.close()
        super().close()


ESCAPE_ERRORS = "plantlake.escape"
_C1_BYTES = re.compile(rb"[\x80-\x9f]")  # where cp1252 and latin-1 differ
_escaped = threading.local()


def _escape(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: the bytes a codec cannot read as the text `\\xNN`, their place noted."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    _escaped.ranges.append((error.start, error.end))
    return "".join(f"\\x{byte:02x}" for byte in error.object[error.start : error.end]), error.end


codecs.register_error(ESCAPE_ERRORS, _escape)


def decode_escaped(data: bytes, encoding: str) -> tuple[str, list[tuple[int, int]]]:
    """`data` in `encoding` as text, with every byte the encoding cannot read kept as the text `\\xNN`
    rather than replaced, and where those bytes were (start and end offsets in `data`).

    cp1252 is decoded as latin-1 wherever the two agree, as `Utf8Reader` does: only data holding a
    byte 0x80-0x9F goes through cp1252's table decoder.
    """
    if codecs.lookup(encoding).name == "cp1252" and not _C1_BYTES.search(data):
        return data.decode("latin-1"), []
    try:
        return data.decode(encoding), []
    except UnicodeDecodeError:
        pass
    _escaped.ranges = []
    try:
        return data.decode(encoding, ESCAPE_ERRORS), _escaped.ranges
    finally:
        del _escaped.ranges

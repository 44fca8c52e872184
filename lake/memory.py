"""Give memory a step has freed back to the operating system, so its peak follows the chunk at hand.

Freed memory stays with the allocator that held it: Arrow's pool (mimalloc or jemalloc) keeps
pages for reuse, and glibc's malloc, which numpy, pandas (Great Expectations' frames) and the
database drivers use, keeps free blocks in its heaps, where later allocations of other sizes
fragment them. Between the chunks of a silver step both hold tens of MB the next chunk may
never reuse, and a process's peak is its resident memory, not what it uses.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

import pyarrow as pa


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    trim = getattr(library, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release() -> None:
    """Return the free pages of Arrow's pool and of the C heap (every glibc arena) to the system."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)

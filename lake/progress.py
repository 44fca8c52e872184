"""Rows a running step has handled so far, per table, for whoever reports progress (the assets' heartbeat)."""

from __future__ import annotations

import threading
from pathlib import Path

_rows: dict[Path, int] = {}
_lock = threading.Lock()


def add(table: Path, rows: int) -> None:
    with _lock:
        _rows[table] = _rows.get(table, 0) + rows


def rows(table: Path) -> int:
    with _lock:
        return _rows.get(table, 0)


def reset(table: Path) -> None:
    with _lock:
        _rows.pop(table, None)

"""Rows a running step has handled so far, per table, for whoever reports progress (the assets' heartbeat)."""

from __future__ import annotations

import threading

from plantlake.lake.storage import Location, Where

_rows: dict[Location, int] = {}
_lock = threading.Lock()


def add(table: Where, rows: int) -> None:
    table = Location.of(table)
    with _lock:
        _rows[table] = _rows.get(table, 0) + rows


def rows(table: Where) -> int:
    table = Location.of(table)
    with _lock:
        return _rows.get(table, 0)


def reset(table: Where) -> None:
    table = Location.of(table)
    with _lock:
        _rows.pop(table, None)

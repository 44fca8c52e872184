"""One writer per table at a time, across runs and processes on this machine.

Two runs that refresh the same table (the schedule, a sensor's run and a manual launch can
overlap) would both read the same state and both add the same rows. Each step therefore
holds its table's lock from reading the state to writing it back; a second writer waits,
then finds the state the first one left and adds nothing twice. Dagster's run queue keeps
such runs apart in the first place (`dagster.yaml`); the lock holds even without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

FOLDER = "_locks"
# A step waiting for another run's step on the same table: longer than any nightly step.
WAIT_SECONDS = 6 * 3600


def lock_file(table: Path) -> Path:
    """`<root>/_locks/<layer>.<name>.lock` for the table at `<root>/<layer>/<name>`."""
    return table.parent.parent / FOLDER / f"{table.parent.name}.{table.name}.lock"


@contextmanager
def exclusive(*tables: Path, wait_seconds: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the writer locks of `tables`, taken in one order so that two holders never deadlock."""
    held: list[FileLock] = []
    try:
        for path in sorted({lock_file(table) for table in tables}):
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path), timeout=wait_seconds)
            lock.acquire()
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            lock.release()

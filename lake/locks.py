"""One writer per table at a time, across runs and processes on this machine.

Two runs that refresh the same table (the schedule, a sensor's run and a manual launch can
overlap) would both read the same state and both add the same rows. Each step therefore
holds its table's lock from reading the state to writing it back; a second writer waits,
then finds the state the first one left and adds nothing twice. Dagster's run queue keeps
such runs apart in the first place (`dagster.yaml`); the lock holds even without it.

A file lock holds on one machine. A lake in object storage written from several machines
relies on Dagster's pools (a table's steps share a pool of one, kept in the instance's
database); its lock files are still taken on each machine, in the temporary folder.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from plantlake.lake.storage import Location, Where

FOLDER = "_locks"
# A step waiting for another run's step on the same table: longer than any nightly step.
WAIT_SECONDS = 6 * 3600


def lock_file(table: Location) -> Path:
    """`<root>/_locks/<layer>.<name>.lock` for the table at `<root>/<layer>/<name>`; for a lake in
    object storage, the same under a folder of this machine's temporary folder named after the root."""
    name = f"{table.parent.name}.{table.name}.lock"
    root = table.parent.parent
    if root.is_local:
        return root.path / FOLDER / name
    digest = hashlib.sha256(root.uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "plantlake-locks" / digest / name


@contextmanager
def exclusive(*tables: Where, wait_seconds: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the writer locks of `tables`, taken in one order so that two holders never deadlock."""
    held: list[FileLock] = []
    try:
        for path in sorted({lock_file(table) for table in map(Location.of, tables)}):
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path), timeout=wait_seconds)
            lock.acquire()
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            lock.release()

"""Which process executes a run, noted in the run's tags for the run launcher's health check."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

WORKER_TAG = "plantlake/worker"


def process_started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _is_step_process(pid: int) -> bool:
    """A process the multiprocess executor started for a step (spawned, or forked by its forkserver)."""
    try:
        return b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def run_worker_pid() -> int:
    """The process that executes the run: this one, or, in a step process, the run's own above it."""
    pid = os.getpid()
    while _is_step_process(pid) and (parent := _parent(pid)) not in (None, 0, 1):
        pid = parent
    return pid


def worker_id(pid: int | None = None) -> str:
    pid = pid or run_worker_pid()
    return f"{socket.gethostname()}:{pid}:{process_started(pid)}"


def note_worker(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tag the run with the process executing it (called once, when the run's resources start)."""
    run = instance.get_run_by_id(run_id)
    if run is not None and run.tags.get(WORKER_TAG) is None:
        instance.add_run_tags(run_id, {WORKER_TAG: worker_id()})

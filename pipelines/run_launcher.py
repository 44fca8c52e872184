"""Dagster's default run launcher, able to tell whether a run's process still lives.

A run killed outright (SIGKILL, the OOM killer, a reboot) writes no failure event, so Dagster
shows it STARTED for ever and `record_failed_runs` never hears of it. Dagster's run monitoring
(enabled in the shipped dagster.yaml) asks the run launcher about every started run; the
default launcher cannot answer. This one reads the process each run notes in its tags when
it starts (`assets.worker.note_worker`), and answers FAILED once that process is gone, so the monitoring
daemon marks the run failed and the failure sensor records it.
"""

from __future__ import annotations

import socket

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus  # not re-exported at the top level

from plantlake.assets.worker import WORKER_TAG, process_started


def worker_status(tag: str | None) -> WorkerStatus:
    """RUNNING while the noted process lives, FAILED once it is gone, UNKNOWN for another host or no note."""
    if not tag:
        return WorkerStatus.UNKNOWN
    host, pid, started = tag.rsplit(":", 2)
    if host != socket.gethostname():
        return WorkerStatus.UNKNOWN
    alive = process_started(int(pid))
    return WorkerStatus.RUNNING if alive is not None and alive == started else WorkerStatus.FAILED


class PlantlakeRunLauncher(dg.DefaultRunLauncher):
    """The default launcher plus a health check for run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        status = worker_status(run.tags.get(WORKER_TAG))
        return CheckRunHealthResult(status, "the run's process is gone" if status == WorkerStatus.FAILED else None)

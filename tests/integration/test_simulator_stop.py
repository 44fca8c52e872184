"""The simulator's OPC-UA server stops on SIGTERM even when its parent hands SIGTERM down ignored.

That happens to any process started after a Dagster run in a parent that began with SIGINT
ignored (a script's background job): Dagster maps SIGTERM to SIGINT's handler, which is then
SIG_IGN, and children inherit it. The nightly replay's servers then lived on as strays.
"""

from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime

import pytest

from plantlake.simulator.process import free_port, serve_command, stop, wait_for_port

pytestmark = pytest.mark.integration


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def test_server_stops_on_sigterm_inherited_as_ignored() -> None:
    port = free_port()
    command = serve_command(port, datetime(2026, 1, 10, tzinfo=UTC), lines=1, machines_per_line=1, history_days=0.1)
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_ignore_sigterm
    )
    try:
        wait_for_port(port, process, 60)
        process.terminate()
        assert process.wait(timeout=10) == -signal.SIGTERM
    finally:
        stop(process)


def test_stop_kills_a_process_that_ignores_sigterm() -> None:
    process = subprocess.Popen(["sleep", "60"], preexec_fn=_ignore_sigterm)
    stop(process, timeout_s=0.5)
    assert process.returncode == -signal.SIGKILL

"""Start and stop the OPC-UA simulator as a child process, for the demo and the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the OPC-UA simulator exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the OPC-UA simulator did not listen on port {port} within {timeout_s:.0f} s")


def serve_command(
    port: int,
    anchor: datetime,
    seed: int = 42,
    lines: int = 2,
    machines_per_line: int = 3,
    history_days: float = 2,
    sample_seconds: int = 60,
    tags_per_machine: int = 5,
    day_by_day: bool = False,
    idle_days: Iterable[date] = (),
) -> list[str]:
    """The command line of `python -m plantlake.simulator serve` for this plant (see `build_plant` for the last two)."""
    command = [
        sys.executable,
        "-m",
        "plantlake.simulator",
        "serve",
        "--port",
        str(port),
        "--seed",
        str(seed),
        "--lines",
        str(lines),
        "--machines-per-line",
        str(machines_per_line),
        "--history-days",
        str(history_days),
        "--sample-seconds",
        str(sample_seconds),
        "--anchor",
        anchor.isoformat(),
        "--tags-per-machine",
        str(tags_per_machine),
    ]
    if day_by_day:
        command.append("--day-by-day")
    idle = sorted(idle_days)
    if idle:
        command += ["--idle-days", ",".join(day.isoformat() for day in idle)]
    return command


@contextmanager
def opcua_simulator(
    port: int,
    anchor: datetime,
    seed: int = 42,
    lines: int = 2,
    machines_per_line: int = 3,
    history_days: float = 2,
    sample_seconds: int = 60,
    timeout_s: float = 60,
    tags_per_machine: int = 5,
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    day_by_day: bool = False,
    idle_days: Iterable[date] = (),
) -> Iterator[str]:
    """Run `python -m plantlake.simulator serve` and yield its endpoint; the process is stopped on exit."""
    command = serve_command(
        port,
        anchor,
        seed,
        lines,
        machines_per_line,
        history_days,
        sample_seconds,
        tags_per_machine,
        day_by_day,
        idle_days,
    )
    with serving([*command, *(extra_args or [])], port, timeout_s, env) as endpoint:
        yield endpoint


@contextmanager
def serving(command: list[str], port: int, timeout_s: float = 60, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run a `serve_command` and yield its endpoint once it listens; the process is stopped on exit."""
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    try:
        wait_for_port(port, process, timeout_s)
        yield f"opc.tcp://127.0.0.1:{port}/plantlake"
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout_s: float = 10) -> None:
    """Stop a server process: SIGTERM, then SIGKILL if it has not exited after `timeout_s`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout_s)

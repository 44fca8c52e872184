"""Services a test starts as the deployment does: long-running processes, and the environment of a
Dagster instance (deploy/dagster.yaml) in a scratch PostgreSQL database."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import sqlalchemy as sa


def instance_environment(url: str, home: Path) -> dict[str, str]:
    """The variables deploy/dagster.yaml reads, pointed at the scratch database."""
    parsed = sa.make_url(url)
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": parsed.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(parsed.port or 5432),
        "DAGSTER_PG_USERNAME": parsed.username or "postgres",
        "DAGSTER_PG_PASSWORD": parsed.password or "",
        "DAGSTER_PG_DB": parsed.database or "",
    }


@contextmanager
def service(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process in a session of its own; stopped as systemd stops it, then killed with what it started."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
            with suppress(ProcessLookupError):  # what it started (a code server, a worker's pool), if still there
                os.killpg(process.pid, signal.SIGKILL)

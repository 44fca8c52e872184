"""Celery workers for the tests of `executor: celery`: the deployment's Dagster instance in a scratch
PostgreSQL database, and worker processes as `deploy/plantlake-worker@.service` starts them.

Each test gets a queue of its own (`unique_queue`): a worker left over from elsewhere on the same
broker listens on another queue and takes none of its steps.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
from services import service
from unavailable import unavailable

REPO = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
# the broker the tests send steps through (RabbitMQ); another one: set PLANTLAKE_TEST_CELERY_BROKER
BROKER = os.environ.get("PLANTLAKE_TEST_CELERY_BROKER", "pyamqp://guest:guest@127.0.0.1:5672//")
READY_SECONDS = 90


def require_broker(url: str = BROKER) -> None:
    """RabbitMQ (or whichever broker `url` names) takes connections, else the test skips (fails with CI=true)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError:
        unavailable(
            f"the Celery broker is not reachable on {host}:{port}; start RabbitMQ "
            "(service rabbitmq-server start) or set PLANTLAKE_TEST_CELERY_BROKER"
        )


def unique_queue() -> str:
    return f"plantlake-test-{uuid.uuid4().hex[:10]}"


def write_instance(home: Path) -> None:
    """DAGSTER_HOME with the deployment's dagster.yaml: PostgreSQL storage, one slot per pool."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8")


def _wait_ready(names: list[str], logs: list[Path], processes: list[subprocess.Popen[bytes]]) -> None:
    """Until each worker logs `NAME@HOST ready.`; a worker that exits fails the test with its log."""
    host = socket.gethostname()
    deadline = time.monotonic() + READY_SECONDS
    waiting = set(names)
    while waiting:
        for name, log, process in zip(names, logs, processes, strict=True):
            text = log.read_text(errors="replace")
            assert process.poll() is None, f"celery worker {name} exited:\n{text[-4000:]}"
            if f"{name}@{host} ready." in text:
                waiting.discard(name)
        assert time.monotonic() < deadline, f"celery workers {sorted(waiting)} not ready in {READY_SECONDS} s"
        time.sleep(0.2)


@contextmanager
def celery_workers(env: dict[str, str], folder: Path, names: tuple[str, ...] = ("w1", "w2")) -> Iterator[list[str]]:
    """One worker process per name, one step at a time each, ready when this yields their node names
    (`w1@host`); stopped (then killed, with their pool processes) when the block ends.

    `env` holds what a worker needs: PLANTLAKE_CONFIG (its `execution` section names the broker and
    the queue), DAGSTER_HOME and the instance's DAGSTER_PG_* variables. Logs go to `folder`/NAME.log."""
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        processes, logs = [], []
        for name in names:
            log = folder / f"{name}.log"
            command = [str(BIN / "celery"), "-A", "plantlake.pipelines.celery_app", "worker"]
            command += ["--concurrency", "1", "-n", f"{name}@%h", "--loglevel", "INFO", "--without-mingle"]
            processes.append(stack.enter_context(service(command, REPO, env, log)))
            logs.append(log)
        _wait_ready(list(names), logs, processes)
        yield [f"{name}@{socket.gethostname()}" for name in names]


def delete_queue(queue: str, url: str = BROKER) -> None:
    """Remove the test's queue from the broker (it outlives the workers: Celery declares it durable)."""
    from kombu import Connection

    with Connection(url) as connection:
        connection.default_channel.queue_delete(queue)


STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}


def step_intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """(started, ended) of every step of the run, as its event log has them."""
    started, ended = {}, {}
    for entry in instance.all_logs(run_id, of_type=STEP_EVENTS):
        if entry.dagster_event is None or entry.step_key is None:
            continue
        is_start = entry.dagster_event.event_type == dg.DagsterEventType.STEP_START
        (started if is_start else ended)[entry.step_key] = entry.timestamp
    assert set(started) == set(ended), f"steps that started and never ended: {set(started) ^ set(ended)}"
    return {key: (started[key], ended[key]) for key in started}

"""The production deployment: deploy/dagster.yaml on PostgreSQL, a daemon and a webserver as separate services.

The daemon alone starts runs here (a sensor's and a schedule's), the webserver sees them through the
instance they share, and the plantlake definitions start their schedules and sensors only with automation on.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from services import instance_environment, service
from webserver import graphql

from plantlake.config import load_config
from plantlake.pipelines.factory import build_definitions
from plantlake.simulator.process import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
TIMEOUT_SECONDS = 150

# A code location of its own: one trivial job, a sensor that asks for one run, a schedule every minute.
LOCATION = """
import dagster as dg


@dg.op
def hello() -> int:
    return 1


@dg.job(tags={"plantlake/writes": "lake"})  # queued under the deployment's tag limit, as plantlake's jobs are
def tiny():
    hello()


@dg.sensor(job=tiny, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def once(context):
    return dg.RunRequest(run_key="once")


every_minute = dg.ScheduleDefinition(
    name="every_minute", job=tiny, cron_schedule="* * * * *", default_status=dg.DefaultScheduleStatus.RUNNING
)

defs = dg.Definitions(jobs=[tiny], sensors=[once], schedules=[every_minute])
"""
RUNS = """{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"""


def _succeeded_by(runs: list[dict]) -> dict[str, str]:
    """Which of the sensor, the schedule and the shell has a run that succeeded, with that run's id."""
    found: dict[str, str] = {}
    for run in runs:
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        if run["status"] != "SUCCESS":
            continue
        if tags.get("dagster/sensor_name") == "once":
            found["sensor"] = run["runId"]
        if tags.get("dagster/schedule_name") == "every_minute":
            found["schedule"] = run["runId"]
        if tags.get("test/launched_by") == "shell":
            found["shell"] = run["runId"]
    return found


def test_daemon_and_webserver_run_a_sensor_and_a_schedule_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    home, location = tmp_path / "dagster_home", tmp_path / "location"
    home.mkdir()
    location.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text(encoding="utf-8"))
    (location / "tiny_location.py").write_text(LOCATION, encoding="utf-8")
    (location / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: tiny_location.py\n"
        "      location_name: tiny\n      working_directory: .\n",
        encoding="utf-8",
    )
    env = instance_environment(postgres_url, home)
    port = free_port()
    daemon_command = [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
    webserver_command = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"]
    with (
        service(daemon_command, location, env, tmp_path / "daemon.log") as daemon,
        service(webserver_command, location, env, tmp_path / "webserver.log") as webserver,
    ):
        deadline, found, runs = time.monotonic() + TIMEOUT_SECONDS, {}, []
        # a run started from the shell, as the README says: queued, then launched by the daemon
        launch = [str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "tiny"]
        launch += ["--tags", json.dumps({"test/launched_by": "shell"})]
        launched = subprocess.run(launch, cwd=location, env=env, capture_output=True, text=True, timeout=120)
        assert launched.returncode == 0, launched.stderr[-4000:]
        while time.monotonic() < deadline and len(found) < 3:
            for name, process in (("daemon", daemon), ("webserver", webserver)):
                log = (tmp_path / f"{name}.log").read_text(errors="replace")
                assert process.poll() is None, f"dagster-{name} exited:\n{log[-4000:]}"
            with suppress(OSError, KeyError, TypeError):
                runs = graphql(port, RUNS)["data"]["runsOrError"]["results"]
                found = _succeeded_by(runs)
            time.sleep(2)
        daemon_log = (tmp_path / "daemon.log").read_text(errors="replace")
        assert set(found) == {"sensor", "schedule", "shell"}, (
            f"within {TIMEOUT_SECONDS} s: succeeded {found}, runs {runs}\ndaemon log:\n{daemon_log[-4000:]}"
        )

    # the instance lived in the scratch PostgreSQL database, not in files under DAGSTER_HOME
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            stored = set(connection.execute(sa.text("select run_id from runs")).scalars())
    finally:
        engine.dispose()
    assert set(found.values()) <= stored
    assert not (home / "history" / "runs.db").exists()
    by_sensor = [run for run in runs if {"key": "dagster/sensor_name", "value": "once"} in run["tags"]]
    assert len(by_sensor) == 1  # its run_key lets the sensor's request start one run, however often it ticks


@pytest.mark.parametrize(
    ("automation", "schedule_status", "sensor_status"),
    [
        ("on", dg.DefaultScheduleStatus.RUNNING, dg.DefaultSensorStatus.RUNNING),
        ("off", dg.DefaultScheduleStatus.STOPPED, dg.DefaultSensorStatus.STOPPED),
        (None, dg.DefaultScheduleStatus.STOPPED, dg.DefaultSensorStatus.STOPPED),  # development: off unless set
    ],
)
def test_plantlake_schedules_and_sensors_start_on_only_with_automation_on(
    monkeypatch: pytest.MonkeyPatch,
    automation: str | None,
    schedule_status: dg.DefaultScheduleStatus,
    sensor_status: dg.DefaultSensorStatus,
) -> None:
    if automation is None:
        monkeypatch.delenv("PLANTLAKE_AUTOMATION", raising=False)
    else:
        monkeypatch.setenv("PLANTLAKE_AUTOMATION", automation)
    definitions = build_definitions(load_config(REPO / "plantlake.yaml"))
    for name in ("nightly_refresh", "weekly_maintenance"):
        assert definitions.resolve_schedule_def(name).default_status == schedule_status
    for name in ("record_failed_runs", "supplier_files"):
        assert definitions.resolve_sensor_def(name).default_status == sensor_status

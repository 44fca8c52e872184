"""A run killed outright (SIGKILL) is found by Dagster's run monitoring and marked failed.

The run is started the way the schedule starts one, in its own process through the shipped
dagster.yaml; the test then asks the monitoring daemon's own check about it.
"""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from plantlake.assets.worker import WORKER_TAG
from plantlake.pipelines.run_launcher import PlantlakeRunLauncher

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[2]

SLOW_LOCATION = """
import time
import dagster as dg
from plantlake.assets.resources import PlantlakeResource

@dg.asset
def slow(plantlake: PlantlakeResource) -> None:
    time.sleep(60)

defs = dg.Definitions(assets=[slow], jobs=[dg.define_asset_job("slow_job", selection=[slow])],
                      resources={"plantlake": PlantlakeResource(config_path="unused.yaml")},
                      executor=dg.multiprocess_executor)  # the step in a process of its own; the run's process is noted

"""


def _started_run(instance: dg.DagsterInstance, timeout_s: float = 120) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        if runs and runs[0].tags.get(WORKER_TAG):
            return runs[0]
        time.sleep(0.5)
    raise AssertionError("the run never started")


def _gone(pid: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_run_killed_with_sigkill_is_marked_failed_by_run_monitoring(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "slow_location.py").write_text(SLOW_LOCATION, encoding="utf-8")
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(REPO)}
    worker = subprocess.Popen(
        [str(dagster), "job", "execute", "-f", str(tmp_path / "slow_location.py"), "-j", "slow_job"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert isinstance(instance.run_launcher, PlantlakeRunLauncher)
            run = _started_run(instance)
            assert instance.run_launcher.check_run_worker_health(run).status.value == "RUNNING"
            pid = int(run.tags[WORKER_TAG].split(":")[1])
            assert pid == worker.pid  # the run's own process, not its step's
            os.kill(pid, signal.SIGKILL)
            worker.wait(30)
            _gone(pid)

            record = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))[0]
            assert record.dagster_run.status == dg.DagsterRunStatus.STARTED  # nothing else noticed
            # the daemon's workspace (None here) is used only for code-location health, not for our launcher
            monitor_started_run(instance, None, record, logging.getLogger("test"))  # type: ignore[arg-type]
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    finally:
        if worker.poll() is None:
            worker.kill()

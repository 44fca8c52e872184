"""Steps on several workers: `refresh_all` with `executor: celery`, on the deployment's instance in PostgreSQL.

Two Celery worker processes (one step at a time each) on a queue of the test's own run the steps;
the run's own process (`dagster job execute`, as a launched run's is) hands them out and claims each
step's pool in the instance first. The lake they write, in a SeaweedFS store, holds what an in-process run writes on a
lake of its own on local disk from the same sources, table for table and row for row. Then two runs at once: the
test holds the pool of one table until both runs wait for it, and no two steps that write the same
table run at the same time, across the two runs and the two workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pytest
import yaml
from celery_workers import (
    BROKER,
    celery_workers,
    delete_queue,
    require_broker,
    step_intervals,
    unique_queue,
    write_instance,
)
from services import instance_environment

from plantlake.assets.factory import table_pool
from plantlake.assets.logs import bronze_key
from plantlake.assets.worker import WORKER_TAG
from plantlake.config import load_config
from plantlake.lake import delta
from plantlake.lake.layout import INGESTED_AT, RUN_ID, Lake
from plantlake.pipelines.factory import build_definitions
from plantlake.simulator.erp import create_erp
from plantlake.simulator.files import write_machine_logs

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[2]
DAGSTER = Path(sys.executable).with_name("dagster")
RUN_SECONDS = 240
# columns that differ from run to run by nature: which run wrote or checked a row, and when
RUN_STAMPS = {
    INGESTED_AT,
    RUN_ID,
    "run_id",
    "checked_at",
    "detected_at",
    "quarantined_at",
    "failed_at",
    "registered_at",
}


@pytest.fixture
def lake_root(s3_root: str) -> str:
    """Where the workers' lake goes: a prefix in the SeaweedFS store (conftest's `s3_root`); `lake_env`
    hands the store's settings to every process. The in-process run's lake is on local disk."""
    return s3_root


@pytest.fixture
def lake_env(lake_root: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """What the runs, the workers and this test need to reach the lakes: nothing for a folder, the
    store's AWS_* variables (which plantlake.yaml's `lake.s3` reads) for an s3:// root."""
    return request.getfixturevalue("s3_store").environment() if lake_root.startswith("s3://") else {}


@pytest.fixture
def sources(tmp_path: Path, plant) -> Path:
    """The simulated plant's ERP (SQLite) and machine logs, read by both lakes' runs (none moves or changes them)."""
    folder = tmp_path / "sources"
    folder.mkdir()
    create_erp(f"sqlite:///{folder / 'erp.sqlite'}", plant)
    write_machine_logs(plant, folder / "logs")
    return folder


def _config(folder: Path, lake_root: str, sources: Path, executor: str, queue: str) -> Path:
    """plantlake.yaml's own ERP tables and log sources, on `sources`, into the lake at `lake_root`
    (its `lake.s3` settings as they are, read from the environment where the config is loaded)."""
    demo = yaml.safe_load((REPO / "plantlake.yaml").read_text(encoding="utf-8"))
    erp = {**demo["sources"]["erp"][0], "url": f"sqlite:///{sources / 'erp.sqlite'}"}
    logs = [{**log, "path": str(sources / "logs" / log["name"])} for log in demo["sources"]["logs"]]
    config = {
        "lake": {"root": lake_root, "local": str(folder / "local"), "s3": demo["lake"]["s3"]},
        "execution": {"executor": executor, "broker": BROKER, "queue": queue},
        "sources": {"erp": [erp], "logs": logs},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plantlake.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def _execute(stack: ExitStack, env: dict[str, str], log: Path, tag: str) -> subprocess.Popen[bytes]:
    """`refresh_all` in the background, as a run's own process executes it, tagged test/run=`tag`;
    killed when `stack` closes if it still runs then."""
    command = [str(DAGSTER), "job", "execute", "-m", "plantlake.pipelines.definitions", "-j", "refresh_all"]
    command += ["--tags", json.dumps({"test/run": tag})]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)

    def stop() -> None:
        if process.poll() is None:
            process.kill()
            process.wait()

    stack.callback(stop)
    return process


def _succeeded(process: subprocess.Popen[bytes], log: Path) -> None:
    process.wait(timeout=RUN_SECONDS)
    assert process.returncode == 0, f"the run failed:\n{log.read_text(errors='replace')[-6000:]}"


def _contents(lake: Lake) -> dict[str, list[str]]:
    """Every table's rows without the run's stamps, each row as JSON, sorted."""
    found = {}
    for layer, name, location in lake.tables():
        table = delta.read(location)
        assert table is not None, f"{layer}.{name} is listed but cannot be read"
        rows = [{k: v for k, v in row.items() if k not in RUN_STAMPS} for row in table.to_pylist()]
        found[f"{layer}.{name}"] = sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)
    return found


def _run_id(instance: dg.DagsterInstance, tag: str) -> str | None:
    runs = instance.get_runs(dg.RunsFilter(tags={"test/run": tag}))
    return runs[0].run_id if runs else None


def _celery_workers_of(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """The workers that executed steps of the run: each task's first event names its worker (dagster-celery)."""
    found = set()
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        value = (getattr(data, "metadata", None) or {}).get("Celery worker")
        if value is not None:
            found.add(str(getattr(value, "value", value)))
    return found


def _wait_until(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.5)


def test_refresh_all_on_two_celery_workers_writes_what_one_process_writes(
    tmp_path: Path,
    lake_root: str,
    lake_env: dict[str, str],
    sources: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_broker()
    queue = unique_queue()
    celery_config = _config(tmp_path / "celery", f"{lake_root}/celery", sources, "celery", queue)
    alone_config = _config(tmp_path / "in_process", str(tmp_path / "in_process" / "lake"), sources, "in_process", queue)
    home = tmp_path / "dagster_home"
    write_instance(home)
    env = {**instance_environment(postgres_url, home), **lake_env, "PLANTLAKE_CONFIG": str(celery_config)}
    for name, value in env.items():  # this process opens the instance and the lakes too
        if name.startswith("DAGSTER_PG_") or name in lake_env:
            monkeypatch.setenv(name, value)
    # the in-process run: on an instance of its own, the development one (SQLite, no pools)
    alone_home = tmp_path / "dagster_home_in_process"
    alone_home.mkdir()
    (alone_home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    alone_env = {**os.environ, **lake_env, "DAGSTER_HOME": str(alone_home), "PLANTLAKE_CONFIG": str(alone_config)}
    logs = tmp_path / "logs"
    logs.mkdir()

    with ExitStack() as stack:
        stack.callback(delete_queue, queue)
        instance = stack.enter_context(dg.DagsterInstance.from_config(str(home)))
        alone = _execute(stack, alone_env, logs / "in_process.log", "in_process")  # beside the workers' run
        nodes = stack.enter_context(celery_workers(env, tmp_path / "workers"))

        # 1. one run: its steps on both workers, and the lake holds what the in-process run's does
        first = _execute(stack, env, logs / "celery.log", "celery")
        _succeeded(first, logs / "celery.log")
        _succeeded(alone, logs / "in_process.log")
        run_id = _run_id(instance, "celery")
        assert run_id is not None
        assert _celery_workers_of(instance, run_id) == set(nodes)
        # run monitoring watches the run's own process, not a worker's (pipelines.executors.RunNotedCeleryExecutor)
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.tags[WORKER_TAG].split(":")[1] == str(first.pid)
        written = _contents(Lake.from_config(load_config(celery_config).lake))
        expected = _contents(Lake.from_config(load_config(alone_config).lake))
        assert {"silver.machine_events", "silver.erp_production_orders"} <= set(expected)
        assert {name: len(rows) for name, rows in written.items()} == {
            name: len(rows) for name, rows in expected.items()
        }
        for name, rows in expected.items():
            assert written[name] == rows, f"{name}: the workers' rows differ from the in-process run's"

        # 2. two runs at once, on the same lake: the test holds one table's pool until both wait for it
        held = table_pool(bronze_key(load_config(celery_config).sources.logs[0]))
        storage = instance.event_log_storage
        # the first run made the pool, with the instance's default of one slot
        assert [pool.limit for pool in storage.get_pool_limits() if pool.name == held] == [1]
        assert storage.claim_concurrency_slot(held, "test-holder", "hold").is_claimed
        try:
            runs = {tag: _execute(stack, env, logs / f"{tag}.log", tag) for tag in ("overlap-1", "overlap-2")}
            _wait_until(lambda: all(_run_id(instance, tag) for tag in runs), "both runs started")
            overlap_ids = {_run_id(instance, tag) or "" for tag in runs}
            _wait_until(
                lambda: storage.get_concurrency_info(held).pending_run_ids == overlap_ids,
                f"both runs wait for pool {held}",
            )
            released = time.time()
        finally:
            storage.free_concurrency_slot_for_step("test-holder", "hold")
        for tag, process in runs.items():
            _succeeded(process, logs / f"{tag}.log")

        pools = {
            node.name: node.pool
            for node in build_definitions(load_config(celery_config)).resolve_job_def("refresh_all").graph.node_defs
            if node.pool
        }
        by_pool: dict[str, list[tuple[float, float, str]]] = {}
        for rid in overlap_ids:
            for step, (start, end) in step_intervals(instance, rid).items():
                if step in pools:
                    by_pool.setdefault(pools[step], []).append((start, end, f"{step} of run {rid}"))
        assert sorted(by_pool) == sorted(pools.values())
        for pool, steps in by_pool.items():
            assert len(steps) == 2, f"{pool}: {steps}"  # its table written by both runs ...
            (_, first_end, first), (second_start, _, second) = sorted(steps)
            assert first_end <= second_start, f"pool {pool}: {first} and {second} ran at the same time"  # ... in turn
        assert min(start for start, _, _ in by_pool[held]) >= released, f"a step of {held} ran while the test held it"

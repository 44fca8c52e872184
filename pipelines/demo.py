"""The demo: generate the bundled plant, serve its OPC-UA history, run every asset once.

python -m plantlake.pipelines.demo [--config plantlake.yaml] [--s3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb

from plantlake.config import PlantlakeConfig, load_config
from plantlake.lake.layout import Lake
from plantlake.pipelines.factory import build_definitions
from plantlake.pipelines.runs import refresh_and_publish
from plantlake.simulator.__main__ import generate_sources
from plantlake.simulator.object_store import seaweedfs
from plantlake.simulator.plant import build_plant, default_anchor
from plantlake.simulator.process import opcua_simulator


def _say(message: str) -> None:
    print(f"[plantlake demo] {message}", flush=True)


def local_instance(config: PlantlakeConfig) -> dg.DagsterInstance:
    """The instance in $DAGSTER_HOME (so `dagster dev` shows the runs), by default beside the lake, telemetry off."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(config.lake.local_folder.parent / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    return dg.DagsterInstance.get()


@contextlib.contextmanager
def bundled_server(config: PlantlakeConfig) -> Iterator[bool]:
    """The simulator's OPC-UA server while the block runs, for a config that declares the bundled
    plant and whose port is free; yields whether it started one (a running one is left alone)."""
    sim = config.simulator
    if sim is None or _listening(sim.opcua_port):
        yield False
        return
    with opcua_simulator(
        sim.opcua_port,
        default_anchor(),
        sim.seed,
        sim.lines,
        sim.machines_per_line,
        sim.history_days,
        sim.sample_seconds,
    ):
        yield True


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _require_free_port(port: int) -> None:
    if _listening(port):
        raise SystemExit(
            f"port {port} is already in use (a simulator from `make sim`?); stop that process "
            "or set simulator.opcua_port and the OPC-UA endpoint in the config to a free port"
        )


def run_demo(config: PlantlakeConfig) -> bool:
    sim = config.simulator
    if sim is None:
        raise SystemExit("the config has no 'simulator' section; the demo needs it")
    started = time.monotonic()
    anchor = default_anchor()
    plant = build_plant(sim.seed, sim.lines, sim.machines_per_line, sim.history_days, sim.sample_seconds, anchor)
    _say(
        f"generating the plant: {len(plant.machines)} machines, "
        f"{sim.history_days} days up to {anchor:%Y-%m-%d %H:%M} UTC"
    )
    erp_url = config.sources.erp[0].url if config.sources.erp else None
    generate_sources(plant, sim.output, erp_url)
    _require_free_port(sim.opcua_port)
    _say(f"starting the OPC-UA simulator on port {sim.opcua_port}")
    with bundled_server(config):  # history up to the same anchor, midnight today
        _say("running job refresh_all (progress below)")
        night = refresh_and_publish(build_definitions(config), local_instance(config))
    _say("OPC-UA simulator stopped")
    _summary(config, night.success, time.monotonic() - started)
    return night.success


def _summary(config: PlantlakeConfig, success: bool, seconds: float) -> None:
    lake = Lake.from_config(config.lake)
    catalog = lake.catalog_file
    _say(f"run {'succeeded' if success else 'FAILED'} in {seconds:.0f} s")
    if catalog.exists():
        with duckdb.connect(str(catalog), read_only=True) as connection:
            rows = connection.execute(
                "SELECT qualified_name, row_count, quality_status, quarantined_rows, freshness, last_error "
                "FROM catalog ORDER BY layer, table_name"
            ).fetchall()
        for name, count, status, quarantined, freshness, error in rows:
            held = f", {quarantined} in quarantine" if quarantined else ""
            stale = f"   STALE: {error}" if freshness == "stale" else ""
            print(f"    {name:<38} {count:>9} rows   quality: {status}{held}{stale}")
    print(f"lake:      {lake.root}")
    print(f"catalog:   {catalog}")
    print(f"catalog page: {lake.catalog_page}")
    print(f"data docs: {lake.data_docs_dir / 'index.html'}")
    print("status:    .venv/bin/plantlake status   (and plantlake check, run, catalog, ui; --help)")
    print('query it:  make query SQL="select * from gold.machine_hour_features limit 5"')
    print('           make query SQL="select table_name, file, row_key, field, value, reason from quarantine.rows"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=None, help="YAML file (default: $PLANTLAKE_CONFIG or plantlake.yaml)")
    parser.add_argument("--s3", action="store_true", help="the lake in a local SeaweedFS (data/seaweedfs) it starts")
    args = parser.parse_args()
    with contextlib.ExitStack() as store:
        if args.s3:  # the config reads the lake's root and the store's AWS_* variables from the environment
            endpoint = store.enter_context(seaweedfs(Path("data/seaweedfs")))
            _say(f"SeaweedFS serves S3 on {endpoint.url}; the lake is s3://{endpoint.bucket}/demo")
            os.environ.update(
                endpoint.environment(),
                PLANTLAKE_LAKE_ROOT=f"s3://{endpoint.bucket}/demo",
                PLANTLAKE_LAKE_LOCAL="data/lake_s3",
            )
        success = run_demo(load_config(args.config))
    if args.s3:
        _say(
            "SeaweedFS stopped with the demo; to query the lake, start it with `.venv/bin/plantlake-sim s3 "
            "--folder data/seaweedfs`, export what it prints, then run `.venv/bin/plantlake sql`"
        )
    raise SystemExit(0 if success else 1)


if __name__ == "__main__":
    main()

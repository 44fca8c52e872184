"""The real nightly job over simulated nights, and what must hold after each: used by the
multi-night integration test and by `benchmarks/nights.py`.

Each night the plant clock (`simulator.clock`) advances every source by a day, the simulator's
OPC-UA server serves the history up to then, and `refresh_all` then `publish` run in this
process, as the schedule and the sensors would run them, with the simulated present as the
run's present. After the night every check below is counted, not asserted, so a benchmark
can report them all; the test asserts the counts are zero.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import sqlalchemy as sa
from erp_compare import silver_rows, source_rows

from plantlake.assets.erp import table_name
from plantlake.assets.gold import buildable_models, model_inputs
from plantlake.config import PlantlakeConfig, load_config
from plantlake.lake import delta, gold, maintenance, state
from plantlake.lake.deletes import DELETED_AT
from plantlake.lake.layout import Lake
from plantlake.pipelines.factory import build_definitions
from plantlake.pipelines.runs import SILENT, refresh_and_publish
from plantlake.simulator.clock import (
    NightChanges,
    PlantClock,
    expected_machine_events,
    expected_material_lots,
    expected_sensor_readings,
)
from plantlake.simulator.object_store import S3Endpoint
from plantlake.simulator.process import free_port, stop, wait_for_port

REPO = Path(__file__).parents[1]
WRITTEN_LAYERS = ("bronze", "silver", "gold", "quarantine")
Runner = Callable[["Replay"], bool]


@dataclass
class NightReport:
    night: int
    changed: bool
    seconds: float
    success: bool
    mismatches: dict[str, int] = field(default_factory=dict)
    state_missing: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)  # tables whose version moved this night
    files_max: int = 0
    stale: list[str] = field(default_factory=list)
    in_process: bool = True  # run as the demo runs it; False: as a scheduled run, in new processes


class _Server:
    """A simulator OPC-UA server process, started ahead of the night that needs it."""

    def __init__(self, command: list[str], port: int) -> None:
        self.port = port
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready(self) -> str:
        wait_for_port(self.port, self.process, 120)
        return f"opc.tcp://127.0.0.1:{self.port}/plantlake"

    def stop(self) -> None:
        stop(self.process)


@dataclass
class Replay:
    """A small plant and its lake under `root`, advanced and loaded night after night.

    `idle_nights` are planned, so the next night's OPC-UA server starts while this one runs.
    """

    root: Path
    erp_url: str
    days_ago: int  # night 0's history ends this many midnights before today; the last night may run on the real clock
    idle_nights: set[int] = field(default_factory=set)
    maintenance_every: int = 7
    retention: timedelta = timedelta(days=7)
    reports: list[NightReport] = field(default_factory=list)
    quiet: bool = False  # Dagster's console log: warnings only
    store: S3Endpoint | None = None  # the lake in this object store (s3://bucket/<root's name>), else under root
    _outer_environment: dict[str, str | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        self.clock = PlantClock(
            seed=7,
            lines=1,
            machines_per_line=2,
            history_days=1,
            sample_seconds=60,
            anchor0=today - timedelta(days=self.days_ago),
            output=self.root / "sources",
            erp_url=self.erp_url,
            idle_nights=set(self.idle_nights),
        )
        settings = {
            "PLANTLAKE_LAKE_ROOT": str(self.root / "lake"),
            "PLANTLAKE_SOURCES": str(self.root / "sources"),
            "PLANTLAKE_ERP_URL": self.erp_url,
        }
        if self.store is not None:
            settings.update(self.store.environment())
            settings["PLANTLAKE_LAKE_ROOT"] = f"s3://{self.store.bucket}/{self.root.name}"
            settings["PLANTLAKE_LAKE_LOCAL"] = str(self.root / "lake")
        self._set_environment(settings)
        self.config: PlantlakeConfig = self._config(free_port())
        self.lake = Lake.from_config(self.config.lake)
        # In this process each night's runs go to an instance in memory of its own (one that held
        # every night's events would slow the later nights, which no deployment's instance does);
        # runs in new processes (`runner`) to the shipped dagster.yaml's instance on disk.
        self.home = self.root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "dagster.yaml", self.home / "dagster.yaml")
        self.instance = dg.DagsterInstance.ephemeral()
        self._next: _Server | None = None

    def _config(self, port: int) -> PlantlakeConfig:
        self._set_environment(
            {"PLANTLAKE_OPCUA_PORT": str(port), "PLANTLAKE_OPCUA_ENDPOINT": f"opc.tcp://127.0.0.1:{port}/plantlake"}
        )
        return load_config(REPO / "plantlake.yaml")

    def _server(self, night: int) -> _Server:
        port = free_port()
        return _Server(self.clock.serve_command(port, night), port)

    def _set_environment(self, settings: dict[str, str]) -> None:
        """Set what the config reads, keeping what was there for `close` to put back."""
        for name, value in settings.items():
            self._outer_environment.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def close(self) -> None:
        for name, value in self._outer_environment.items():  # a later test's config reads its own
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.instance.dispose()
        if self._next is not None:
            self._next.stop()
            self._next = None

    def night(self, runner: Runner | None = None) -> NightReport:
        """Advance the sources (night 0: write them), run the job, check everything.

        `runner` runs the night's jobs instead of this process (on the real clock: the last night only).
        """
        if not self.reports:
            changed = self._start()
        else:
            changed = self.clock.advance(self.clock.night + 1 not in self.idle_nights)
        server = self._next or self._server(self.clock.night)
        self.config = self._config(server.port)
        server.ready()
        self._next = self._server(self.clock.night + 1)  # boots while this night runs
        before, _ = versions(self.lake)
        self.instance.dispose()
        self.instance = dg.DagsterInstance.ephemeral()
        try:
            started = time.monotonic()
            if runner is None:
                definitions = build_definitions(self.config, now=self.clock.now)
                success = refresh_and_publish(definitions, self.instance, SILENT if self.quiet else None).success
            else:
                success = runner(self)
            seconds = time.monotonic() - started
        finally:
            server.stop()
        report = NightReport(self.clock.night, changed.changed, seconds, success, in_process=runner is None)
        after, files = versions(self.lake)
        report.committed = sorted(name for name, version in after.items() if before.get(name) != version)
        report.mismatches = self.mismatches()
        report.state_missing = missing_state(self.lake)
        report.files_max = max(files.values(), default=0)
        report.stale = stale_tables(self.lake)
        self.reports.append(report)
        if self.maintenance_every and self.clock.night and self.clock.night % self.maintenance_every == 0:
            maintenance.maintain_lake(self.lake, self.retention)
        return report

    def _start(self) -> NightChanges:
        self.clock.start()
        return NightChanges(night=0, day=self.clock.now.date(), sensor_values=1)

    def mismatches(self) -> dict[str, int]:
        """Per check, how many rows differ: silver against the sources, gold against a recompute."""
        found = {
            **erp_mismatches(self.lake, self.config),
            "silver.sensor_readings": self._sensors(),
            "silver.machine_events": self._events(),
            "silver.material_lots": self._lots(),
            **gold_mismatches(self.lake, self.config),
        }
        return {name: count for name, count in found.items() if count}

    def _sensors(self) -> int:
        expected = expected_sensor_readings(self.clock).select(["machine_id", "tag", "timestamp", "value"])
        historized = ds.field("tag").isin(pc.unique(expected.column("tag")))  # not the snapshot tags (serial numbers)
        actual = delta.read(
            self.lake.table("silver", "sensor_readings"), ["machine_id", "tag", "timestamp", "value"], historized
        )
        return _difference(expected, actual)

    def _events(self) -> int:
        expected = expected_machine_events(self.clock)
        expected = expected.select(["machine_id", "timestamp", "code"]).append_column("source", expected.column("log"))
        actual = delta.read(
            self.lake.table("silver", "machine_events"), columns=["source", "machine_id", "timestamp", "code"]
        )
        return _difference(expected, actual)

    def _lots(self) -> int:
        wanted = expected_material_lots(self.clock)
        rows = delta.read(
            self.lake.table("silver", "material_lots"), columns=["lot_id", "material", "supplier", "quantity_kg"]
        )
        held = {
            row["lot_id"]: (row["material"], row["supplier"], float(row["quantity_kg"])) for row in rows.to_pylist()
        }
        keys = set(wanted) | set(held)
        return sum(1 for key in keys if wanted.get(key) != held.get(key))

    def summary(self) -> dict[str, float]:
        """The benchmark's figures over every night so far."""
        times = [report.seconds for report in self.reports[1:] if report.in_process]  # night 0 is the first, full load
        head, tail = times[:10], times[-10:]
        live = sum(maintenance.footprint(path).live_bytes for _, _, path in self.lake.tables())
        disk = sum(self.lake.root.file_sizes())
        return {
            "nights": len(self.reports),
            "mismatches": sum(sum(report.mismatches.values()) for report in self.reports),
            "state_lost": sum(1 for report in self.reports if report.state_missing),
            "run_growth": statistics.median(tail) / statistics.median(head) if head else 0.0,
            "files_max": max(report.files_max for report in self.reports),
            "disk_ratio": disk / live if live else 0.0,
        }


def versions(lake: Lake) -> tuple[dict[str, int], dict[str, int]]:
    """The version of every table the nightly job writes (meta tables, written by every run, aside),
    and the live files of every table."""
    found, files = {}, {}
    for layer, name, path in lake.tables():
        table = delta.open_table(path)
        files[f"{layer}.{name}"] = len(table.file_uris())
        if layer in WRITTEN_LAYERS:
            found[f"{layer}.{name}"] = table.version()
    return found, files


def _difference(expected: pa.Table, actual: pa.Table | None) -> int:
    """Rows in one multiset and not the other, after casting both to the expected types.

    Both sides are first summed per day (a count and a sum of row hashes); only the days that
    differ are compared row by row, so a long history costs one pass over each side.
    """
    if actual is None:
        return expected.num_rows
    connection = duckdb.connect()
    connection.register("e", expected)
    connection.register("a", actual.select(expected.column_names).cast(expected.schema))
    columns = ", ".join(delta.quote(name) for name in expected.column_names)
    day = "date_trunc('day', \"timestamp\")" if "timestamp" in expected.column_names else "0"
    digest = f"SELECT {day} AS day, count(*) AS n, sum(hash({columns})::HUGEINT) AS h FROM {{}} GROUP BY 1"
    differing = (
        f"SELECT coalesce(x.day, y.day) FROM ({digest.format('e')}) x FULL JOIN ({digest.format('a')}) y "
        "ON x.day IS NOT DISTINCT FROM y.day WHERE x.n IS DISTINCT FROM y.n OR x.h IS DISTINCT FROM y.h"
    )
    days = [row[0] for row in connection.execute(differing).fetchall()]
    if not days:
        return 0
    connection.register("days", pa.table({"day": days}))
    within = f"WHERE {day} IN (SELECT day FROM days)"
    query = (
        f"SELECT (SELECT count(*) FROM (SELECT * FROM e {within} EXCEPT ALL SELECT * FROM a {within})) + "
        f"(SELECT count(*) FROM (SELECT * FROM a {within} EXCEPT ALL SELECT * FROM e {within}))"
    )
    return connection.execute(query).fetchone()[0]


def _row_key(row: dict) -> str:
    return json.dumps(row, default=str, sort_keys=True)


def erp_mismatches(lake: Lake, config: PlantlakeConfig) -> dict[str, int]:
    """Per ERP table: silver's live rows against the source's, and keys the source deleted but silver has live."""
    found = {}
    for source in config.sources.erp:
        engine = sa.create_engine(source.url)
        try:
            for table in source.tables:
                expected = source_rows(engine, source, table)
                actual = silver_rows(lake, source, table)
                difference = Counter(map(_row_key, expected))
                difference.subtract(Counter(map(_row_key, actual)))
                found[f"silver.{table_name(source, table)}"] = sum(abs(count) for count in difference.values())
        finally:
            engine.dispose()
    return found


def gold_mismatches(lake: Lake, config: PlantlakeConfig) -> dict[str, int]:
    """Per model, windows whose newest version differs from the model recomputed from scratch on the same silver."""
    models = buildable_models(config)
    names = {model.name for model, _ in models}
    found = {}
    for model, inputs in models:
        path = lake.table("gold", model.name)
        built = delta.read_state(path, gold.BUILT_THROUGH)
        if built is None:
            continue
        newest = gold.latest(path)
        start, end = min(newest[model.time].to_pylist()), datetime.fromisoformat(built)
        fresh = gold.compute(model, config.gold, model_inputs(lake, names, inputs), start, end, end)
        columns = [*model.key, model.time, gold.FEATURE_TIME]
        published = delta.read(path, columns=[*columns, gold.KNOWN_AT, gold.ROW_HASH])
        connection = duckdb.connect()
        connection.register("published", published)
        current = connection.sql(
            f"SELECT * EXCLUDE ({gold.KNOWN_AT}) FROM published QUALIFY row_number() OVER "
            f"(PARTITION BY {', '.join(columns)} ORDER BY {gold.KNOWN_AT} DESC) = 1"
        ).to_arrow_table()
        found[f"gold.{model.name}"] = _difference(fresh.select([*columns, gold.ROW_HASH]), current)
    return found


def missing_state(lake: Lake) -> list[str]:
    """Tables with rows whose marks are gone: bronze of every source, every silver table fed from bronze."""
    wanted = {"bronze": {"_readings": "read_until", "_events": "positions"}, "silver": {"": "consumed"}}
    missing = []
    for layer, name, path in lake.tables():
        for suffix, key in wanted.get(layer, {}).items():
            if (
                name.endswith(suffix)
                and name != "opcua_tags"
                and delta.row_count(path)
                and state.current(path).get(key) is None
            ):
                missing.append(f"{layer}.{name}:{key}")
        if layer == "bronze" and name.startswith("erp_") and state.current(path).get("watermark") is None:
            missing.append(f"{layer}.{name}:watermark")
    return missing


def stale_tables(lake: Lake) -> list[str]:
    if not lake.catalog_file.exists():
        return ["catalog.duckdb missing"]
    with duckdb.connect(str(lake.catalog_file), read_only=True) as connection:
        return [
            row[0]
            for row in connection.execute("SELECT qualified_name FROM catalog WHERE freshness <> 'fresh'").fetchall()
        ]


def deleted_live(lake: Lake, config: PlantlakeConfig) -> int:
    """Rows marked deleted in silver (for the report: deletes are reconciled)."""
    total = 0
    for source in config.sources.erp:
        for table in source.tables:
            data = delta.read(lake.table("silver", table_name(source, table)))
            if data is not None and DELETED_AT in data.column_names:
                total += pc.sum(pc.is_valid(data[DELETED_AT]).cast(pa.int64())).as_py() or 0
    return total

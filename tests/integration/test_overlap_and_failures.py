"""Runs that overlap, a source that fails, and configurations with a single kind of source.

- Two `refresh_all` runs started at once in two OS processes on one fresh lake: the per-table
  locks (`lake.locks`) keep them from landing or merging anything twice.
- An ERP that cannot be reached on a night after a good one: only what depends on it goes
  stale, everything else refreshes, and the catalog and the Data Docs are still published.
- ERP-only and supplier-only configurations: both jobs finish green, without a gold table.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa
import yaml

from plantlake.config import PlantlakeConfig, load_config
from plantlake.lake import delta, quarantine, state, transforms
from plantlake.lake.layout import Lake
from plantlake.pipelines.factory import build_definitions
from plantlake.pipelines.runs import QUIET, refresh_and_publish
from plantlake.quality import results as quality_results
from plantlake.simulator.__main__ import generate_sources
from plantlake.simulator.plant import TAGS

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[2]
RUNNER = REPO / "tests" / "overlap_run.py"
UNREACHABLE_ERP = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
GOLD = dg.AssetKey(["gold", "machine_hour_features"])
OLD = 1_000_000_000  # a file time long past: a file rewritten tonight has a newer one


# ---------------------------------------------------------------- helpers


def _env_for(lake_root: Path, sources: Path, erp_url: str, endpoint: str) -> dict[str, str]:
    return {
        "PLANTLAKE_LAKE_ROOT": str(lake_root),
        "PLANTLAKE_SOURCES": str(sources),
        "PLANTLAKE_ERP_URL": erp_url,
        "PLANTLAKE_OPCUA_ENDPOINT": endpoint,
    }


def _point(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> PlantlakeConfig:
    """The repo's plantlake.yaml with its variables set to `env` (the resource reads them again at run time)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_config(REPO / "plantlake.yaml")


def _row_counts(lake: Lake) -> dict[str, int]:
    return {f"{layer}.{name}": delta.row_count(path) for layer, name, path in lake.tables()}


def _table_keys(config: PlantlakeConfig) -> dict[str, list[str]]:
    """For every bronze and silver table the config fills: the columns that identify one row."""
    keys: dict[str, list[str]] = {}
    for erp in config.sources.erp:
        for table in erp.tables:
            keys[f"bronze.{erp.name}_{table.name}"] = [*table.primary_key, *([table.cursor] if table.cursor else [])]
            keys[f"silver.{erp.name}_{table.name}"] = list(table.primary_key)
    for server in config.sources.opcua:
        keys[f"bronze.{server.name}_readings"] = ["node_id", "source_timestamp"]
        keys[f"bronze.{server.name}_tags"] = ["node_id"]
    if config.sources.opcua:
        keys["silver.sensor_readings"] = list(transforms.SENSOR_KEYS)
        keys["silver.opcua_tags"] = ["source", "node_id"]
    for source in config.sources.logs:
        keys[f"bronze.{source.name}_events"] = ["file_id", "line_number"]
    if config.sources.logs:
        keys["silver.machine_events"] = list(transforms.EVENT_KEYS)
    for source in config.sources.suppliers:
        keys[f"bronze.{source.name}_rows"] = [transforms.FILE_HASH, "_line"]
        keys[f"silver.{source.target}"] = list(source.key)
    return keys


def _duplicates(path: Path, keys: list[str]) -> list[tuple]:
    """Key values held by more than one row of the table's current version (a few, for the message)."""
    data = delta.read(path, columns=keys)
    assert data is not None, f"{path} was never written"
    with duckdb.connect() as connection:
        connection.register("t", data)
        columns = ", ".join(delta.quote(key) for key in keys)
        return connection.execute(
            f"SELECT {columns}, count(*) FROM t GROUP BY ALL HAVING count(*) > 1 LIMIT 5"
        ).fetchall()


def _erp_counts(url: str, config: PlantlakeConfig) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                f"{erp.name}_{table.name}": connection.execute(
                    sa.text(f"SELECT count(*) FROM {table.name}")
                ).scalar_one()
                for erp in config.sources.erp
                for table in erp.tables
            }
    finally:
        engine.dispose()


def _served_readings(plant) -> int:
    """Values the simulator serves: every historized tag at every sample, and one snapshot
    (SerialNumber) per machine."""
    return len(plant.machines) * len(TAGS) * len(plant.timestamps) + len(plant.machines)


def _catalog(lake: Lake) -> dict[str, dict]:
    with duckdb.connect(str(lake.catalog_file), read_only=True) as connection:
        cursor = connection.execute("SELECT * FROM catalog")
        names = [column[0] for column in cursor.description]
        return {row[names.index("qualified_name")]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def demo_sources(tmp_path: Path, postgres_url: str, opcua_endpoint: str, plant) -> dict:
    """ERP tables in PostgreSQL, and log and supplier files under tmp_path; the simulator serves the readings."""
    sources = tmp_path / "sources"
    generate_sources(plant, sources, postgres_url)
    return {"sources": sources, "erp_url": postgres_url, "endpoint": opcua_endpoint}


# ---------------------------------------------------------------- 1. overlapping runs


def _start_together(config_path: Path, env: dict[str, str], folder: Path, count: int = 2) -> list[dict]:
    """`count` refresh_all runs in processes of their own, released at once by a barrier file; their summaries."""
    folder.mkdir(parents=True, exist_ok=True)
    barrier = folder / "go"
    runs = []
    for number in range(count):
        ready, result = folder / f"ready-{number}", folder / f"result-{number}.json"
        log = (folder / f"run-{number}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, str(RUNNER), str(config_path), str(ready), str(barrier), str(result)],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        runs.append((process, ready, result, log))
    try:
        deadline = time.monotonic() + 180  # bounded: both have loaded Dagster and the definitions
        while not all(ready.exists() for _, ready, _, _ in runs):
            crashed = [process.args for process, _, _, _ in runs if process.poll() is not None]
            assert not crashed and time.monotonic() < deadline, f"a run process did not get ready: {crashed}"
            time.sleep(0.05)
        barrier.write_text("go", encoding="utf-8")
        for process, _, _, _ in runs:
            process.wait(timeout=300)
    finally:
        for process, _, _, log in runs:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    summaries = []
    for number, (process, _, result, _) in enumerate(runs):
        output = (folder / f"run-{number}.log").read_text(encoding="utf-8", errors="replace")
        assert result.exists(), f"run {number} exited with {process.returncode} without a result:\n{output[-4000:]}"
        summary = json.loads(result.read_text(encoding="utf-8"))
        assert process.returncode == 0 and summary["success"], (
            f"run {number} failed: {summary.get('failures') or summary.get('error')}\n{output[-4000:]}"
        )
        summaries.append(summary)
    return summaries


def test_two_refresh_runs_started_at_once_land_nothing_twice(
    tmp_path: Path, demo_sources: dict, plant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a second copy of the same files, for a single run on a lake of its own: the numbers to match
    reference_sources = tmp_path / "reference_sources"
    shutil.copytree(demo_sources["sources"], reference_sources)
    shared_env = _env_for(tmp_path / "lake", demo_sources["sources"], demo_sources["erp_url"], demo_sources["endpoint"])
    reference_env = _env_for(
        tmp_path / "reference_lake", reference_sources, demo_sources["erp_url"], demo_sources["endpoint"]
    )

    # 1. two runs on one fresh lake, released together
    first, second = _start_together(REPO / "plantlake.yaml", shared_env, tmp_path / "overlap")
    assert first["run_id"] != second["run_id"]
    # the barrier did its job: each run began before the other ended (else this test proves nothing)
    assert max(first["began"], second["began"]) < min(first["ended"], second["ended"]), (first, second)

    config = _point(monkeypatch, shared_env)
    lake = Lake(config.lake.root)
    keys = _table_keys(config)
    landed = {f"{layer}.{name}": path for layer, name, path in lake.tables() if layer in ("bronze", "silver")}
    assert set(landed) == set(keys), "every bronze and silver table the config fills exists, and no other"
    duplicated = {name: found for name, path in landed.items() if (found := _duplicates(path, keys[name]))}
    assert duplicated == {}, f"rows landed twice by the overlapping runs: {duplicated}"

    # silver holds exactly the source
    counts = _row_counts(lake)
    for name, expected in _erp_counts(demo_sources["erp_url"], config).items():
        assert counts[f"silver.{name}"] == expected, f"silver.{name}"
        assert counts[f"bronze.{name}"] == expected, f"bronze.{name}: one version per row, the source changed nothing"
    assert counts["silver.sensor_readings"] == _served_readings(plant)
    assert counts["bronze.plant_readings"] == _served_readings(plant)

    # ... and every table holds what one run alone lands on a fresh lake
    reference_config = _point(monkeypatch, reference_env)
    with dg.instance_for_test() as instance:
        alone = (
            build_definitions(reference_config)
            .resolve_job_def("refresh_all")
            .execute_in_process(run_config=QUIET, instance=instance, raise_on_error=False)
        )
    assert alone.success
    assert counts == _row_counts(Lake(reference_config.lake.root))

    # 2. a third, ordinary night on the shared lake adds nothing
    config = _point(monkeypatch, shared_env)
    with dg.instance_for_test() as instance:
        night = refresh_and_publish(build_definitions(config), instance)
    assert night.success
    assert _row_counts(lake) == counts


# ---------------------------------------------------------------- 2. a failing ERP


def _new_supplier_file(source_folder: Path) -> Path:
    """A delivery that arrives on the failing night: one new lot, in acme's CSV layout."""
    path = source_folder / "suppliers" / "acme" / "lieferung_nachtrag.csv"
    path.write_bytes(
        "Charge;Werkstoff;Lieferant;Menge kg;Lieferdatum;Zeugnis\r\n"
        "LOT-AC-9999;C45;Acme Stahlhandel GmbH;1234,5;01.01.2026;3.1 EN 10204 Nr. 99999\r\n".encode("cp1252")
    )
    return path


def test_an_unreachable_erp_leaves_the_rest_of_the_night_fresh_and_published(
    tmp_path: Path, demo_sources: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    good_env = _env_for(tmp_path / "lake", demo_sources["sources"], demo_sources["erp_url"], demo_sources["endpoint"])
    config = _point(monkeypatch, good_env)
    lake = Lake(config.lake.root)
    erp_tables = [f"{erp.name}_{table.name}" for erp in config.sources.erp for table in erp.tables]
    index = lake.data_docs_dir / "index.html"

    with dg.instance_for_test() as instance:
        # night 1: everything works
        good = refresh_and_publish(build_definitions(config), instance)
        assert good.success
        good_refresh = {
            name: state.current(lake.table(*name.split(".")))[state.LAST_GOOD_REFRESH]
            for name in [
                *(f"{layer}.{t}" for t in erp_tables for layer in ("bronze", "silver")),
                "gold.machine_hour_features",
            ]
        }
        before = _row_counts(lake)
        gold_version = delta.open_table(lake.table("gold", "machine_hour_features")).version()
        for published in (lake.catalog_file, index):
            os.utime(published, (OLD, OLD))
        _new_supplier_file(demo_sources["sources"])

        # night 2: the ERP cannot be reached
        config = _point(monkeypatch, {**good_env, "PLANTLAKE_ERP_URL": UNREACHABLE_ERP})
        assert config.sources.erp[0].url == UNREACHABLE_ERP
        night = refresh_and_publish(build_definitions(config), instance)

        assert not night.refresh.success
        assert night.publish.success, "the catalog and the Data Docs are published after a failed refresh"
        failed = {event.step_key for event in night.refresh.all_events if event.event_type_value == "STEP_FAILURE"}
        assert failed == {f"bronze__{name}" for name in erp_tables}, "only the ERP's own steps fail"
        refreshed = _materialized(night.refresh)
        for key in (
            "bronze/plant_readings",
            "silver/sensor_readings",
            "bronze/plc_events",
            "bronze/cnc_events",
            "silver/machine_events",
            "bronze/acme_rows",
            "bronze/stahlwerk_rows",
            "silver/material_lots",
        ):
            assert key in refreshed, f"{key} was not refreshed on the night the ERP failed"
        assert not any(key.startswith(("bronze/erp_", "silver/erp_")) for key in refreshed)
        after = _row_counts(lake)
        assert after["silver.material_lots"] == before["silver.material_lots"] + 1  # tonight's delivery is in
        assert all(after[f"silver.{name}"] == before[f"silver.{name}"] for name in erp_tables)  # yesterday's ERP kept

        # gold is built on silver.erp_production_orders, so it is downstream of the failed source:
        # Dagster skips it, the table keeps last night's version, and the catalog marks it stale
        assert "gold/machine_hour_features" not in refreshed
        assert delta.open_table(lake.table("gold", "machine_hour_features")).version() == gold_version
        assert after["gold.machine_hour_features"] == before["gold.machine_hour_features"]

        # the catalog is rebuilt tonight and says what is stale, why, and since when it was last good
        assert lake.catalog_file.stat().st_mtime > OLD + 1
        catalog = _catalog(lake)
        for name in erp_tables:
            landed, merged = catalog[f"bronze.{name}"], catalog[f"silver.{name}"]
            assert landed["freshness"] == "stale", name
            assert "connect" in (landed["last_error"] or "").lower(), landed["last_error"]
            assert "127.0.0.1" in landed["last_error"] and "port 1" in landed["last_error"], landed["last_error"]
            assert merged["freshness"] == "stale", name
            assert merged["last_error"] == f"not refreshed: bronze.{name} is stale"
            for row, layer in ((landed, "bronze"), (merged, "silver")):
                assert row["last_good_refresh"] == datetime.fromisoformat(good_refresh[f"{layer}.{name}"]), (
                    layer,
                    name,
                )
        gold = catalog["gold.machine_hour_features"]
        assert gold["freshness"] == "stale"
        assert gold["last_error"] == "not refreshed: silver.erp_production_orders is stale"
        assert gold["last_good_refresh"] == datetime.fromisoformat(good_refresh["gold.machine_hour_features"])
        assert gold["row_count"] == before["gold.machine_hour_features"]
        for name in (
            "bronze.plant_readings",
            "bronze.plant_tags",
            "silver.sensor_readings",
            "silver.opcua_tags",
            "bronze.plc_events",
            "bronze.cnc_events",
            "silver.machine_events",
            "bronze.acme_rows",
            "bronze.stahlwerk_rows",
            "silver.material_lots",
        ):
            assert (catalog[name]["freshness"], catalog[name]["last_error"]) == ("fresh", None), name
        assert catalog["silver.material_lots"]["row_count"] == after["silver.material_lots"]

        # the Data Docs are rewritten tonight
        assert index.stat().st_mtime > OLD + 1


# ---------------------------------------------------------------- 3. one kind of source only


def _single_source_config(tmp_path: Path, kind: str, **replace: str) -> Path:
    """The repo's YAML with only `sources.<kind>`, the lake under tmp_path; `replace` substitutes ${VARS}."""
    raw = yaml.safe_load((REPO / "plantlake.yaml").read_text(encoding="utf-8"))
    text = yaml.safe_dump(
        {
            "lake": {"root": str(tmp_path / "lake")},
            "schedule": raw["schedule"],
            "sources": {kind: raw["sources"][kind]},
        },
        sort_keys=False,
    )
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / f"{kind}_only.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _night_without_gold(config_path: Path) -> tuple[PlantlakeConfig, dict[str, dict]]:
    config = load_config(config_path)
    definitions = build_definitions(config)
    graph = definitions.resolve_asset_graph()
    assert GOLD not in graph.get_all_asset_keys()
    with dg.instance_for_test() as instance:
        night = refresh_and_publish(definitions, instance)
        assert night.refresh.success, [
            e.step_key for e in night.refresh.all_events if e.event_type_value == "STEP_FAILURE"
        ]
        assert night.publish is None  # the refresh published the catalog and the Data Docs itself
        assert {"catalog", "data_docs"} <= _materialized(night.refresh)
    lake = Lake(config.lake.root)
    assert not (lake.root / "gold").exists()
    assert (lake.data_docs_dir / "index.html").is_file()
    catalog = _catalog(lake)
    assert not [name for name in catalog if name.startswith("gold.")]
    return config, catalog


def test_an_erp_only_configuration_finishes_green(tmp_path: Path, postgres_url: str, plant, monkeypatch) -> None:
    generate_sources(plant, tmp_path / "sources", postgres_url)
    monkeypatch.setenv("PLANTLAKE_ERP_URL", postgres_url)
    config, catalog = _night_without_gold(_single_source_config(tmp_path, "erp"))
    assert [source.url for source in config.sources.erp] == [postgres_url]
    expected = _erp_counts(postgres_url, config)
    tables = {name for name in catalog if name.startswith(("bronze.", "silver."))}
    assert tables == {f"{layer}.{name}" for name in expected for layer in ("bronze", "silver")}
    for name, rows in expected.items():
        assert catalog[f"silver.{name}"]["row_count"] == rows, name
        assert catalog[f"silver.{name}"]["freshness"] == "fresh"
        assert catalog[f"silver.{name}"]["quality_status"] == "passed", (
            name,
            catalog[f"silver.{name}"]["quality_status"],
        )


def test_a_supplier_only_configuration_finishes_green(tmp_path: Path, plant, monkeypatch) -> None:
    written = generate_sources(plant, tmp_path / "sources")  # the ERP goes to a SQLite file nobody reads
    monkeypatch.setenv("PLANTLAKE_SOURCES", str(tmp_path / "sources"))
    config, catalog = _night_without_gold(_single_source_config(tmp_path, "suppliers"))
    assert [source.name for source in config.sources.suppliers] == ["acme", "stahlwerk"]
    assert {name for name in catalog if name.startswith(("bronze.", "silver."))} == {
        "bronze.acme_rows",
        "bronze.stahlwerk_rows",
        "silver.material_lots",
    }
    assert catalog["silver.material_lots"]["row_count"] > 0
    assert catalog["silver.material_lots"]["freshness"] == "fresh"
    assert catalog["meta.supplier_files"]["row_count"] == len(written["suppliers"])
    assert not [path for source in config.sources.suppliers for path in source.path.glob(source.glob)]  # all taken


# ---------------------------------------------------------------- 4. the shared tables' first write


def _record_result(lake: Lake, who: str) -> None:
    quality_results.record(lake, f"silver.from_{who}", "invariants", "sql", True, {}, who)


def _record_rejection(lake: Lake, who: str) -> None:
    quarantine.write(lake, [quarantine.Rejection(f"silver.from_{who}", "parse", "unreadable", {"raw": who})], who)


@pytest.mark.parametrize(
    ("writer", "table"), [(_record_result, "meta.quality_results"), (_record_rejection, "quarantine.rows")]
)
def test_two_first_writes_to_a_shared_table_both_land(tmp_path: Path, writer, table: str) -> None:
    """The quarantine and meta tables are written by many steps without a table lock (`lake.delta`:
    "retry a lost commit race"). On a fresh lake, the first two writers can both find no table
    and both create it, as two overlapping runs (test 1) do in their first steps. Threads race
    the same code as processes, and cheaply enough to try many fresh lakes."""
    lost: list[str] = []

    def write(who: str, lake: Lake, barrier: threading.Barrier, errors: list[str]) -> None:
        barrier.wait()
        try:
            writer(lake, who)
        except Exception as error:
            errors.append(f"{who}: {type(error).__name__}: {error}")

    for trial in range(100):
        lake = Lake(tmp_path / f"lake{trial}")
        barrier = threading.Barrier(2)
        errors: list[str] = []
        threads = [threading.Thread(target=write, args=(who, lake, barrier, errors)) for who in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        written = delta.read(lake.table(*table.split(".")), columns=["table_name"])
        landed = set(written.column("table_name").to_pylist()) if written is not None else set()
        if errors or landed != {"silver.from_a", "silver.from_b"}:
            lost.append(f"trial {trial}: landed {sorted(landed)}; {errors}")
            break
    assert lost == [], f"a concurrent first write to {table} failed and its row was lost: {lost}"

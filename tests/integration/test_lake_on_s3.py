"""The lake in a real object store (SeaweedFS, an S3 implementation we did not write), night after night.

The nightly job runs as a plant runs it, with the lake at `s3://lake/<prefix>`: every night
silver must equal the sources and gold a recompute, no table may lose its state, and the
maintenance job (no retention: checkpoint, log cleanup, vacuum) runs between nights. Then
time travel reads an earlier version from the store, the catalog's views read the tables
through the lake's own S3 client, and nothing of the lake was written to local disk but
the catalog, the quality report and (emptied) spool files.
"""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from nightly import Replay

from plantlake.config import parse_config
from plantlake.lake import delta, state
from plantlake.lake.catalog import open_catalog
from plantlake.lake.layout import Lake
from plantlake.lake.storage import Location
from plantlake.pipelines.checks import Finding, check_sources
from plantlake.simulator.object_store import S3Endpoint

pytestmark = pytest.mark.integration

NIGHTS = 4  # maintenance (no retention) after night 2, and a night after it


def test_four_nights_on_s3_keep_silver_equal_to_the_sources_through_maintenance(
    tmp_path: Path, postgres_url: str, s3_store: S3Endpoint
) -> None:
    replay = Replay(
        tmp_path / "plant", postgres_url, days_ago=NIGHTS, maintenance_every=2, retention=timedelta(0), store=s3_store
    )
    lake = replay.lake
    assert lake.root.uri == f"s3://{s3_store.bucket}/plant" and not lake.root.is_local
    readings = lake.table("silver", "sensor_readings")
    counts: list[tuple[int, int]] = []  # (version, rows) of silver.sensor_readings after each night
    try:
        for number in range(NIGHTS):
            report = replay.night()
            where = f"night {number} on S3"
            assert report.success, where
            assert report.mismatches == {}, where
            assert report.state_missing == [], where
            assert report.stale == [], where
            table = delta.load(readings)
            counts.append((table.version(), delta.rows_of(table)))
            if number == 1:  # before the maintenance of night 2 (no retention) removes the older versions
                earlier_version, earlier_rows = counts[0]
                assert delta.rows_of(delta.load(readings, earlier_version)) == earlier_rows  # time travel
                assert counts[1][1] > earlier_rows
    finally:
        replay.close()

    assert counts[3][1] > counts[2][1] > counts[1][1]  # every night landed new readings, maintenance or not

    objects = s3_store.filesystem().get_file_info(pafs.FileSelector(f"{s3_store.bucket}/plant", recursive=True))
    names = {info.path.split("/plant/", 1)[1].split("/")[0] for info in objects}
    assert {"bronze", "silver", "gold", "quarantine", "meta", "_state"} <= names
    registry = delta.read(lake.table("meta", "supplier_files"), columns=["status"])
    assert registry is not None and registry.num_rows > 0  # the file registry lives in the store too

    local = {path.relative_to(lake.local).parts[0] for path in lake.local.rglob("*") if path.is_file()}
    assert local <= {"catalog.duckdb", "catalog", "quality_docs", "_spool"}, local
    assert not list(lake.spool.glob("spool-*"))  # temporary files are cleaned up

    shell = Path(sys.executable).with_name("plantlake")  # the analyst's way in: the environment names the store
    query = "select count(*) as n from silver.sensor_readings"
    environment = {
        **os.environ,
        **s3_store.environment(),
        "PLANTLAKE_LAKE_ROOT": lake.root.uri,
        "PLANTLAKE_LAKE_LOCAL": str(lake.local),
    }
    completed = subprocess.run(
        [str(shell), "sql", "--json", query], capture_output=True, text=True, timeout=120, env=environment
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads(completed.stdout) == [{"n": counts[-1][1]}]

    with open_catalog(lake) as catalog:
        found = catalog.execute("SELECT count(*) FROM silver.sensor_readings").fetchone()
        assert found is not None and found[0] == counts[-1][1]
        latest = catalog.execute("SELECT count(*) FROM gold.machine_hour_features").fetchone()
        assert latest is not None and latest[0] > 0


def test_check_writes_to_the_store_and_names_what_is_wrong(tmp_path: Path, s3_store: S3Endpoint, s3_root: str) -> None:
    def lake_check(secret: str) -> Finding:
        text = (
            f"lake: {{root: {s3_root}, local: local, s3: {{endpoint: {s3_store.url}, region: {s3_store.region}, "
            f"access_key_id: {s3_store.access_key_id}, secret_access_key: {secret}}}}}\nsources: {{}}\n"
        )
        return next(finding for finding in check_sources(parse_config(text, tmp_path)) if finding.source == "lake")

    good = lake_check(s3_store.secret_access_key)
    assert good.ok and good.detail.startswith("writable"), good
    assert s3_store.filesystem().get_file_info(pafs.FileSelector(s3_root.removeprefix("s3://"))) == []  # no marker left
    wrong = lake_check("not-the-secret")
    assert not wrong.ok and wrong.item == s3_root, wrong


def test_a_root_and_a_table_with_spaces_and_umlauts_work_in_the_store(tmp_path: Path, s3_store: S3Endpoint) -> None:
    lake = Lake(Location.of(f"s3://{s3_store.bucket}/plant lake {tmp_path.name}", s3_store.environment()), tmp_path)
    table = lake.table("silver", "Bestellung Ärger")
    assert delta.append(table, pa.table({"id": [1, 2], "x": ["a", "b"]}), state={"mark": 1})["inserted"] == 2
    assert delta.merge(table, pa.table({"id": [2, 3], "x": ["B", "c"]}), ["id"], update=True) == {
        "inserted": 1,
        "updated": 1,
    }
    assert state.current(table) == {"mark": 1}
    assert [(layer, name) for layer, name, _ in lake.tables()] == [("silver", "Bestellung Ärger")]
    connection = duckdb.connect()
    assert delta.register(connection, "t", table)
    assert connection.sql("SELECT id, x FROM t ORDER BY id").fetchall() == [(1, "a"), (2, "B"), (3, "c")]
    assert delta.rows_of(delta.load(table, 0)) == 2  # time travel to the first version


def test_a_first_load_in_the_store_is_copied_by_the_store_and_merges_after(
    tmp_path: Path, s3_store: S3Endpoint
) -> None:
    from plantlake.assets import erp
    from plantlake.config import ErpSource, ErpTable
    from plantlake.lake import bronze
    from plantlake.lake.layout import Ingestion

    lake = Lake(Location.of(f"s3://{s3_store.bucket}/linked {tmp_path.name}", s3_store.environment()), tmp_path)
    table = ErpTable(name="Aufträge offen", primary_key=["id"], cursor="version", deletes=None)
    source = ErpSource(name="erp", url="sqlite:///unused.sqlite", tables=[table])
    schema = pa.schema([("id", pa.int64()), ("version", pa.int64())])

    def land(ids: range, version: int) -> None:
        batch = pa.record_batch([pa.array(ids, pa.int64()), pa.array([version] * len(ids), pa.int64())], schema=schema)
        path = lake.table("bronze", erp.table_name(source, table))
        bronze.land(path, iter([batch]), schema, ["id", "version"], Ingestion.now(f"r{version}"), "erp")

    land(range(200_000), 1)
    first = erp.build_silver(lake, source, table, "r1")
    assert first.metadata["linked"] and first.metadata["rows_inserted"] == 200_000
    land(range(199_990, 200_010), 2)
    assert erp.build_silver(lake, source, table, "r2").metadata["rows_updated"] == 10
    connection = duckdb.connect()
    assert delta.register(connection, "orders", lake.table("silver", erp.table_name(source, table)))
    counts = connection.execute("SELECT count(*), count(DISTINCT id), sum(version), count(_deleted_at) FROM orders")
    assert counts.fetchall() == [(200_010, 200_010, 200_030, 0)]
    assert "_run_id" not in [row[0] for row in connection.sql("DESCRIBE orders").fetchall()]

"""The real nightly job over consecutive simulated nights, as a plant runs it.

Every night the simulated plant changes every source (new, changed and deleted ERP rows, a
late commit, a day of OPC-UA history, log lines and rotations, new and corrected supplier
files); one night nothing changes. Every third night the maintenance job runs with no
retention at all: checkpoint, log cleanup and vacuum leave nothing of the commits that
used to carry the marks, and the next night still reads only what is new.
"""

import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from nightly import Replay

pytestmark = pytest.mark.integration

NIGHTS = 9  # night 0, the first load, then 8 nights
IDLE = 4


def _latest(replay: Replay, *path: str) -> dict:
    event = replay.instance.get_latest_materialization_event(dg.AssetKey(list(path)))
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def test_nine_nights_keep_silver_equal_to_the_sources_and_gold_equal_to_a_recompute(
    tmp_path: Path, postgres_url: str
) -> None:
    replay = Replay(
        tmp_path, postgres_url, days_ago=NIGHTS, idle_nights={IDLE}, maintenance_every=3, retention=timedelta(0)
    )
    try:
        marks: dict[str, str] = {}
        for number in range(NIGHTS):
            began = time.time()
            report = replay.night()
            where = f"night {number}"
            assert report.success, where
            assert report.mismatches == {}, where
            assert report.state_missing == [], where
            assert report.stale == [], where
            assert os.path.getmtime(replay.lake.catalog_file) >= began, f"{where}: the catalog is older than the night"
            assert os.path.getmtime(replay.lake.data_docs_dir / "index.html") >= began, (
                f"{where}: the quality report is old"
            )
            if number == IDLE:
                # a shift that ran past last night's run ends today: its window is new; nothing else moves
                new_windows_only = [name for name in report.committed if name.startswith("gold.")]
                assert [name for name in report.committed if name not in new_windows_only] == [], (
                    f"{where}: an idle night committed {report.committed}"
                )
                for name in new_windows_only:
                    assert _corrected_by_last_commit(replay, name.split(".")[1]) == 0, (
                        f"{where}: {name} changed a window"
                    )
            elif number:
                assert (
                    "silver.erp_production_orders" in report.committed and "silver.sensor_readings" in report.committed
                )
            if number:  # every night, and the nights after maintenance with no retention above all
                _read_only_what_is_new(replay, marks, where)
            marks = {
                table.name: _latest(replay, "bronze", f"erp_{table.name}")["watermark"]
                for table in replay.config.sources.erp[0].tables
            }
            if number and number % 3 == 0:  # maintenance ran after this night: one checkpoint, no older commit
                log = replay.lake.table("bronze", "erp_production_orders") / "_delta_log"
                assert len([name for name in os.listdir(log) if name.endswith(".json")]) == 1, where
    finally:
        replay.close()


def _corrected_by_last_commit(replay: Replay, model: str) -> int:
    """Windows of a gold model to which its newest versions added a second version (a correction)."""
    import duckdb

    from plantlake.lake import delta, gold

    path = replay.lake.table("gold", model)
    shape = delta.read_state(path, gold.SHAPE)
    connection = duckdb.connect()
    connection.register("versions", delta.read(path))
    same = " AND ".join(f"w.{delta.quote(c)} = v.{delta.quote(c)}" for c in [*shape["key"], shape["time"]])
    return connection.execute(
        f"WITH last AS (SELECT max({gold.KNOWN_AT}) AS at FROM versions) SELECT count(*) FROM versions v, last "
        f"WHERE v.{gold.KNOWN_AT} = last.at AND EXISTS (SELECT 1 FROM versions w WHERE {same} "
        f"AND w.{gold.KNOWN_AT} < last.at)"
    ).fetchone()[0]


def _read_only_what_is_new(replay: Replay, marks: dict[str, str], where: str) -> None:
    """Bronze read from the night before's watermark (less the look-back); silver merged only what bronze landed."""
    for table in replay.config.sources.erp[0].tables:
        bronze = _latest(replay, "bronze", f"erp_{table.name}")
        silver = _latest(replay, "silver", f"erp_{table.name}")
        lookback = table.lookback_value() or timedelta(0)
        expected = datetime.fromisoformat(marks[table.name]) - lookback
        assert bronze["read_from"] == str(expected), f"{where}: bronze.erp_{table.name} read from {bronze['read_from']}"
        assert silver.get("rows_new", 0) == bronze["rows_inserted"], (
            f"{where}: silver.erp_{table.name} merged old rows again"
        )
    readings = _latest(replay, "bronze", "plant_readings")  # a day of 5 tags on 2 machines, 2 serial number snapshots
    assert readings["values_read"] <= 24 * 60 * 2 * 5 + 2, f"{where}: OPC-UA history read again from the start"

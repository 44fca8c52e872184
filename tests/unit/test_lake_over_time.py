"""The lake over many nights: one schema whatever wrote a table, state that housekeeping cannot lose, lean tables."""

import json
import multiprocessing
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import CommitProperties, DeltaTable

from plantlake.lake import deletes, delta, locks, maintenance, state
from plantlake.lake.layout import Lake
from plantlake.quality import invariants

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("at", pa.timestamp("us", tz="UTC"))])


def _rows(ids: range, name: str) -> pa.Table:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return pa.table(
        {"id": list(ids), "name": [f"{name}{i}" for i in ids], "at": [moment + timedelta(hours=i) for i in ids]},
        schema=SCHEMA,
    )


def _written_every_way(path: Path) -> None:
    """The table written as plantlake writes tables: stream append (large strings), MERGE, delete marks, OPTIMIZE."""
    large = pa.schema([("id", pa.int64()), ("name", pa.large_string()), ("at", pa.timestamp("ns", tz="UTC"))])
    delta.append(path, _rows(range(0, 50), "a").cast(large).to_reader())
    delta.merge(path, _rows(range(40, 80), "b"), ["id"], update=True)
    delta.merge(path, _rows(range(70, 90), "c"), ["id"], update=False)
    delta.widen(path, {})
    marked = pa.table({"id": [1, 2]})
    delta.merge(path, pa.table({"id": [3], "name": ["x"], "at": [None]}, schema=SCHEMA), ["id"], update=True)
    table = DeltaTable(str(path))
    table.merge(marked, "t.id = s.id", source_alias="s", target_alias="t").when_matched_delete().execute()


@pytest.mark.parametrize("compacted", [False, True])
def test_every_write_leaves_one_schema_and_text_predicates_work(tmp_path: Path, compacted: bool) -> None:
    path = tmp_path / "silver" / "t"
    _written_every_way(path)
    if compacted:
        maintenance.maintain_table(path, timedelta(0))
    physical = {str(ds.dataset(uri.removeprefix("file://")).schema.field("name").type) for uri in delta.files(path)}
    assert compacted or "string_view" in physical  # the upstream behaviour this guards against is really there

    data = delta.dataset(path)
    assert data.schema == SCHEMA.remove_metadata()
    read = delta.read(path, filter=(ds.field("name") >= "b") & ds.field("name").isin(["b41", "c85", "a3"]))
    assert sorted(read.column("name").to_pylist()) == ["b41", "c85"] and read.schema == SCHEMA
    assert delta.read(path, columns=["id"], filter=ds.field("name") == "a5").column("id").to_pylist() == [5]
    assert delta.schema(path) == SCHEMA
    assert invariants.unique_keys(data, ["name"]).success
    assert invariants.row_count_matches(data, 2, "x", ds.field("name").isin(["a0", "x"])).success

    connection = duckdb.connect()
    assert delta.register(connection, "t", path)
    assert connection.execute(
        "SELECT count(*) FROM t WHERE name >= 'c' AND name IN ('c71', 'c81', 'c88', 'b50')"
    ).fetchone() == (2,)
    assert not delta.register(connection, "missing", tmp_path / "silver" / "none")


def test_state_outlives_checkpoints_log_cleanup_and_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "bronze" / "orders"
    for night in range(5):
        delta.append(path, _rows(range(night * 10, night * 10 + 10), "n"), state={"watermark": night})
    delta.merge(path, _rows(range(0, 5), "m"), ["id"], update=True, state={"seen": [1, 2]})
    maintenance.maintain_table(path, timedelta(0))  # OPTIMIZE, checkpoint, log cleanup and vacuum with no retention
    commits = [name for name in os.listdir(path / "_delta_log") if name.endswith(".json")]
    assert commits == [f"{DeltaTable(str(path)).version():020d}.json"]  # every commit that carried a write is gone
    assert state.current(path) == {"watermark": 4, "seen": [1, 2]}
    assert delta.read_state(path, "watermark", required=True) == 4


def test_a_table_with_rows_but_no_state_stops_instead_of_reloading(tmp_path: Path) -> None:
    path = tmp_path / "bronze" / "orders"
    delta.append(path, _rows(range(3), "a"), state={"watermark": 3})
    state.state_file(path).delete()
    with pytest.raises(
        state.StateMissingError, match=r"bronze\.orders holds rows but its state 'watermark' is missing"
    ):
        delta.read_state(path, "watermark", required=True)
    assert delta.read_state(path, "watermark") is None  # not required: a table that needs no mark
    empty = tmp_path / "bronze" / "new"
    assert delta.read_state(empty, "watermark", required=True) is None  # never written: a first load


def test_state_of_lakes_from_before_is_read_once_from_commit_history(tmp_path: Path) -> None:
    path = tmp_path / "silver" / "orders"
    delta.append(path, _rows(range(3), "a"))
    table = DeltaTable(str(path))
    table.merge(
        _rows(range(3, 4), "b"),
        "t.id = s.id",
        source_alias="s",
        target_alias="t",
        commit_properties=CommitProperties(custom_metadata={"plantlake.consumed": json.dumps({"x": "2026"})}),
    ).when_not_matched_insert_all().execute()
    state.state_file(path).path.unlink(missing_ok=True)
    assert delta.read_state(path, "consumed", required=True) == {"x": "2026"}
    state.write(path, {"consumed": {"x": "2027"}})
    assert delta.read_state(path, "consumed") == {"x": "2027"}


def test_a_write_with_no_rows_commits_nothing_but_keeps_its_state(tmp_path: Path) -> None:
    path = tmp_path / "silver" / "orders"
    delta.merge(path, _rows(range(3), "a"), ["id"], update=True, state={"consumed": 1})
    version = DeltaTable(str(path)).version()
    delta.merge(path, _rows(range(0), "a"), ["id"], update=True, state={"consumed": 2})
    delta.append(path, _rows(range(0), "a").to_reader(), state={"other": 3})
    deletes.apply(path, pa.table({"id": pa.array([], pa.int64())}), ["id"], remove=False)
    assert DeltaTable(str(path)).version() == version
    assert state.current(path)["consumed"] == 2 and state.current(path)["other"] == 3
    assert deletes.RECONCILED_AT in state.current(path)
    assert not delta.overwrite(path, delta.read(path))  # the same rows again: no commit
    assert DeltaTable(str(path)).version() == version


def test_maintenance_compacts_removes_orphans_and_keeps_time_travel_within_retention(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    path = lake.table("bronze", "readings")
    for night in range(12):
        delta.append(path, _rows(range(night * 100, night * 100 + 100), "r"))
    orphan = Path(path) / "part-orphan-left-by-a-killed-run.parquet"
    orphan.write_bytes(b"not referenced")
    os.utime(orphan, (0, 0))
    spool = lake.spool / "spool-killed.arrow"
    spool.parent.mkdir(parents=True)
    spool.write_bytes(b"x")
    os.utime(spool, (0, 0))
    before = DeltaTable(str(path)).version()

    report = maintenance.maintain_lake(lake, timedelta(days=7))["bronze.readings"]
    assert (report["files_before"], report["files_after"], report["files_compacted"]) == (12, 1, 12)
    assert not orphan.exists() and report["files_vacuumed"] == 1  # old and unreferenced; the compacted files stay
    assert maintenance.remove_leftovers(lake, timedelta(hours=1)) == 1 and not spool.exists()
    old = DeltaTable(str(path), version=before)  # within the retention: the old version still reads
    assert old.to_pyarrow_dataset().count_rows() == 1200 == delta.row_count(path)
    settled = DeltaTable(str(path)).version()
    again = maintenance.maintain_lake(lake, timedelta(days=7))["bronze.readings"]
    assert (again["files_compacted"], again["files_vacuumed"]) == (0, 0)
    assert DeltaTable(str(path)).version() == settled  # nothing to do: no commit


def _hold_lock(table: str, entered: str, release: str) -> None:
    with locks.exclusive(Path(table)):
        Path(entered).touch()
        while not Path(release).exists():
            pass


def test_a_second_writer_waits_for_the_table_lock(tmp_path: Path) -> None:
    table = tmp_path / "lake" / "silver" / "orders"
    entered, release = tmp_path / "entered", tmp_path / "release"
    holder = multiprocessing.get_context("spawn").Process(
        target=_hold_lock, args=(str(table), str(entered), str(release))
    )
    holder.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=60)
        while not entered.exists() and datetime.now(UTC) < deadline:
            pass
        assert entered.exists()
        with pytest.raises(TimeoutError), locks.exclusive(table, wait_seconds=0.2):
            pass
        with locks.exclusive(tmp_path / "lake" / "silver" / "other", wait_seconds=0.2):
            pass  # another table is free
    finally:
        release.touch()
        holder.join(60)
    with locks.exclusive(table, wait_seconds=5):
        pass


def test_gold_does_not_change_when_compaction_reorders_the_readings(tmp_path: Path) -> None:
    """Floating-point sums depend on their order; gold must not move when only the files' row order does."""
    import numpy as np
    from gold_plant import DEMO_GOLD, T0, Plant, demo_model

    from plantlake.lake import gold

    rng = np.random.default_rng(3)
    count = 20_000
    moments = [T0 + timedelta(seconds=7 * index) for index in range(count)]
    tags = rng.choice(["Temperature", "Vibration", "SpindleSpeed"], count)
    values = rng.normal(40, 7, count) / 3
    rows = [
        ("M-1", str(tag), moment, float(value), "Good")
        for tag, moment, value in zip(tags, moments, values, strict=True)
    ]
    model = demo_model("machine_hour_features")
    found = []
    for name, order in (("ordered", np.arange(count)), ("shuffled", rng.permutation(count))):
        plant = Plant(Lake(tmp_path / name))
        plant.add_tags("M-1", {"Temperature": None, "Vibration": None, "SpindleSpeed": None})
        plant.set_orders([], at=T0)
        plant.set_lots([], at=T0)
        plant.add_readings([rows[index] for index in order], at=T0)
        found.append(gold.compute(model, DEMO_GOLD, plant.inputs(model), T0, T0 + timedelta(hours=39), T0))
    assert found[0].num_rows == 39 and found[0].equals(found[1])


def test_silver_appends_readings_it_does_not_hold_and_upserts_only_those_it_does(tmp_path: Path) -> None:
    from plantlake.lake import silver

    path = tmp_path / "silver" / "readings"
    keys, work = ["id", "at"], silver.Pending(consumed={"bronze": "night 1"})
    first = silver.FirstLoad(path)
    first.write(_rows(range(0, 100), "a"), work)
    first.finish()
    version = DeltaTable(str(path)).version()
    night_two = silver.Pending(consumed={"bronze": "night 2"})
    fresh = silver.commit(path, _rows(range(100, 150), "b"), keys, night_two, window_key="at")
    assert fresh == {"inserted": 50, "updated": 0}
    assert DeltaTable(str(path)).history(1)[0]["operation"] != "MERGE"  # all new: appended, no MERGE
    mixed = silver.commit(
        path, _rows(range(140, 160), "c"), keys, silver.Pending(consumed={"bronze": "night 3"}), window_key="at"
    )
    assert mixed == {"inserted": 10, "updated": 10}
    table = delta.read(path)
    assert table.num_rows == 160 and len(set(table.column("id").to_pylist())) == 160
    assert sorted(table.filter(ds.field("id") >= 140).column("name").to_pylist()) == [f"c{i}" for i in range(140, 160)]
    # a night's rows are one commit: the new ones appended, the changed ones' file written again
    assert DeltaTable(str(path)).version() == version + 2 and state.current(path)["consumed"] == {"bronze": "night 3"}

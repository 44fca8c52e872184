"""A first load silver takes as landed links bronze's files instead of writing them again: the
same rows, read by every reader in silver's schema, through later merges, deletes, compaction
and bronze's own housekeeping; anything silver would change takes the usual path. A first load
written chunk by chunk commits once, in the schema its chunks widen to."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from plantlake.assets import erp, steps, suppliers
from plantlake.config import ErpSource, ErpTable, SupplierSource
from plantlake.lake import bronze, deletes, delta, maintenance, parquet_files, silver, transforms
from plantlake.lake.layout import Ingestion, Lake
from plantlake.lake.storage import Location

pytestmark = pytest.mark.unit
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("version", pa.int64()), pa.field("name", pa.string())])
TABLE = ErpTable(name="orders", primary_key=["id"], cursor="version", deletes=None)
SOURCE = ErpSource(name="erp", url="sqlite:///unused.sqlite", tables=[TABLE])
NAME = erp.table_name(SOURCE, TABLE)
SILVER_COLUMNS = ["id", "version", "name", "_ingested_at", deletes.DELETED_AT]


def _land(lake: Lake, ids: np.ndarray, version: int, run: str, ids_again: np.ndarray | None = None) -> None:
    """Land rows in key order as a table read returns them; `ids_again` lands a second row for those keys."""
    keys = np.concatenate([ids, ids_again]) if ids_again is not None else ids
    batch = pa.RecordBatch.from_pydict(
        {"id": keys, "version": np.full(len(keys), version), "name": [f"v{version}-{i}" for i in keys]}, schema=SCHEMA
    )
    bronze.land(lake.table("bronze", NAME), iter([batch]), SCHEMA, ["id", "version", "name"], Ingestion.now(run), "erp")


def _silver_rows(lake: Lake) -> dict[int, str]:
    rows = delta.read(lake.table("silver", NAME), columns=["id", "name"])
    assert rows is not None
    assert len(set(rows["id"].to_pylist())) == rows.num_rows, "a key twice in silver"
    return dict(zip(rows["id"].to_pylist(), rows["name"].to_pylist(), strict=True))


def _linked(lake: Lake, table: str = NAME) -> int:
    """How many of the silver table's files are bronze's bytes under a second name."""
    return sum(os.stat(Path(uri)).st_nlink > 1 for uri in delta.files(lake.table("silver", table)))


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


def test_a_clean_first_load_links_bronze_files_and_every_reader_sees_silver_columns(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = np.arange(300_000)
    _land(lake, ids, 1, "r1")
    assert len(delta.files(lake.table("bronze", NAME))) == 3, "bronze holds a row group per file"

    def no_writes(*args: object, **kwargs: object) -> None:
        raise AssertionError("a clean first load writes no Parquet")

    monkeypatch.setattr(parquet_files, "write_files", no_writes)
    step = erp.build_silver(lake, SOURCE, TABLE, "r1")
    monkeypatch.undo()
    assert step.metadata["linked"] and step.metadata["rows_inserted"] == 300_000
    assert step.validation is not None and step.validation.rows_checked == 300_000
    assert _linked(lake) == 3
    silver = lake.table("silver", NAME)
    assert delta.schema(silver).names == SILVER_COLUMNS
    read = delta.read(silver)
    assert read.column_names == SILVER_COLUMNS and read[deletes.DELETED_AT].null_count == 300_000
    connection = duckdb.connect()
    delta.register(connection, "orders", silver)
    assert [row[0] for row in connection.execute("DESCRIBE orders").fetchall()] == SILVER_COLUMNS
    counts = connection.execute("SELECT count(*), count(DISTINCT id), count(_deleted_at) FROM orders").fetchall()
    assert counts == [(300_000, 300_000, 0)]
    assert delta.read_state(silver, "consumed")[NAME]


def test_linked_silver_stays_exact_through_merges_deletes_compaction_and_bronze_housekeeping(lake: Lake) -> None:
    ids = np.arange(300_000)
    _land(lake, ids, 1, "r1")
    erp.build_silver(lake, SOURCE, TABLE, "r1")
    assert _linked(lake) == 3
    changed = np.concatenate([np.arange(299_000, 300_000), np.arange(300_000, 301_000)])  # newest changed, new
    _land(lake, changed, 2, "r2")
    step = erp.build_silver(lake, SOURCE, TABLE, "r2")
    assert "linked" not in step.metadata and step.metadata["rows_updated"] == 1_000
    assert _linked(lake) == 2, "the merge rewrote the one file its keys fall in"
    expected = {int(i): f"v1-{i}" for i in ids} | {int(i): f"v2-{i}" for i in changed}
    assert _silver_rows(lake) == expected
    silver = lake.table("silver", NAME)
    now = datetime(2026, 11, 30, 3, tzinfo=UTC)
    gone = pa.table({"id": pa.array([5, 150_000], pa.int64())})
    assert deletes.apply(silver, gone, ["id"], remove=False, now=now) == 2
    marked = delta.read(silver, filter=delta.ds.field(deletes.DELETED_AT).is_valid())
    assert sorted(marked["id"].to_pylist()) == [5, 150_000]
    for layer in ("bronze", "silver"):
        maintenance.maintain_table(lake.table(layer, NAME), timedelta(0))  # compacted, old files vacuumed
    assert len(delta.files(silver)) == 1 and _linked(lake) == 0
    assert _silver_rows(lake) == expected
    assert delta.read(silver).column_names == SILVER_COLUMNS


def test_bronze_housekeeping_keeps_linked_silver_whole(lake: Lake) -> None:
    _land(lake, np.arange(250_000), 1, "r1")
    erp.build_silver(lake, SOURCE, TABLE, "r1")
    maintenance.maintain_table(lake.table("bronze", NAME), timedelta(0))  # bronze's linked names removed
    assert not any(os.stat(Path(uri)).st_nlink > 1 for uri in delta.files(lake.table("silver", NAME)))
    assert len(_silver_rows(lake)) == 250_000


def test_a_first_load_with_a_repeated_key_keeps_the_newest_version_the_usual_way(lake: Lake) -> None:
    _land(lake, np.arange(1_000), 1, "r1", ids_again=np.array([7]))
    _land(lake, np.array([7]), 2, "r2")
    step = erp.build_silver(lake, SOURCE, TABLE, "r2")
    assert "linked" not in step.metadata and _linked(lake) == 0
    rows = _silver_rows(lake)
    assert len(rows) == 1_000 and rows[7] == "v2-7"


def test_a_first_load_with_a_rejected_row_quarantines_it_and_writes_the_rest(lake: Lake) -> None:
    ids = pa.array([1, 2, None, 4], pa.int64())
    batch = pa.RecordBatch.from_arrays([ids, pa.array([1] * 4, pa.int64()), pa.array(list("abcd"))], schema=SCHEMA)
    bronze.land(
        lake.table("bronze", NAME), iter([batch]), SCHEMA, ["id", "version", "name"], Ingestion.now("r1"), "erp"
    )
    step = erp.build_silver(lake, SOURCE, TABLE, "r1")
    assert "linked" not in step.metadata and _linked(lake) == 0
    assert sorted(_silver_rows(lake)) == [1, 2, 4]
    assert step.metadata["rows_quarantined"] == 1
    assert delta.row_count(lake.quarantine) == 1


def test_filters_on_silver_columns_the_linked_files_lack_see_them_null(lake: Lake) -> None:
    _land(lake, np.arange(1_000), 1, "r1")
    erp.build_silver(lake, SOURCE, TABLE, "r1")
    assert _linked(lake) == 1
    data = delta.dataset(lake.table("silver", NAME))
    assert data.count_rows(filter=delta.ds.field(deletes.DELETED_AT).is_null()) == 1_000
    assert data.count_rows(filter=delta.ds.field(deletes.DELETED_AT).is_valid()) == 0


def test_a_bronze_commit_during_the_checks_takes_the_usual_path(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    _land(lake, np.arange(1_000), 1, "r1")
    groups = silver.landed_groups

    def landing_meanwhile(*args: object, **kwargs: object):
        yield from groups(*args, **kwargs)
        _land(lake, np.arange(1_000, 1_010), 2, "r2")  # another run's bronze step, between the checks and the link

    monkeypatch.setattr(silver, "landed_groups", landing_meanwhile)
    step = erp.build_silver(lake, SOURCE, TABLE, "r1")
    assert "linked" not in step.metadata and _linked(lake) == 0
    assert len(_silver_rows(lake)) == 1_010  # the usual path read bronze after the commit
    monkeypatch.undo()
    assert erp.build_silver(lake, SOURCE, TABLE, "r2").metadata["rows_new"] == 0


def _supplier(folder: Path, name: str = "acme") -> SupplierSource:
    return SupplierSource.model_validate(
        {
            "name": name,
            "path": str(folder),
            "glob": "*.csv",
            "format": "csv",
            "settle_seconds": 0,
            "key": ["lot_id"],
            "columns": {"Charge": {"name": "lot_id", "required": True}, "Menge": {"name": "kg", "type": "int"}},
        }
    )


def _drop(folder: Path, name: str, lots: range) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("Charge;Menge\n" + "".join(f"L-{lot:06d};{lot % 50}\n" for lot in lots))


def test_one_suppliers_first_load_links_its_files_with_its_name_as_silver_source(tmp_path: Path) -> None:
    lake, source = Lake(tmp_path / "lake"), _supplier(tmp_path / "acme")
    _drop(tmp_path / "acme", "a.csv", range(5_000))
    suppliers.load_bronze(lake, source, "r1")
    step = suppliers.build_silver(lake, "lots", [source], "r1")
    assert step.metadata["linked"] and step.metadata["rows_inserted"] == 5_000 and _linked(lake, "lots") == 1
    connection = duckdb.connect()
    delta.register(connection, "lots", lake.table("silver", "lots"))
    columns = [row[0] for row in connection.execute("DESCRIBE lots").fetchall()]
    assert columns == transforms.supplier_schema(source.columns).names
    rows = connection.execute("SELECT count(*), count(DISTINCT lot_id), min(source), max(source) FROM lots").fetchall()
    assert rows == [(5_000, 5_000, "acme", "acme")]


def test_a_first_file_whose_every_row_is_quarantined_leaves_silver_nothing_to_take_and_no_failure(
    tmp_path: Path,
) -> None:
    """Bronze then exists and holds no file; the next good file is linked as any first load."""
    lake, source = Lake(tmp_path / "lake"), _supplier(tmp_path / "acme")
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "bad.csv").write_text("Charge;Menge\nL-1;viel\n;3\n")
    assert suppliers.load_bronze(lake, source, "r1").metadata["rows_quarantined"] == 2
    assert delta.files(lake.table("bronze", "acme_rows")) == []
    assert suppliers.build_silver(lake, "lots", [source], "r1").metadata["rows_new"] == 0
    _drop(tmp_path / "acme", "a.csv", range(100))
    suppliers.load_bronze(lake, source, "r2")
    assert suppliers.build_silver(lake, "lots", [source], "r2").metadata["rows_inserted"] == 100


@pytest.mark.parametrize("newer_file", [False, True])
def test_bronze_landed_before_it_held_the_supplier_name_takes_the_usual_path(tmp_path: Path, newer_file: bool) -> None:
    lake, source = Lake(tmp_path / "lake"), _supplier(tmp_path / "acme")
    _drop(tmp_path / "acme", "a.csv", range(100))
    suppliers.load_bronze(lake, source, "r1")
    bronze_rows = lake.table("bronze", "acme_rows")
    delta.overwrite(bronze_rows, delta.read(bronze_rows).drop_columns([transforms.SUPPLIER]))  # an older release's
    if newer_file:  # the column comes back, null in the older file
        _drop(tmp_path / "acme", "b.csv", range(100, 200))
        suppliers.load_bronze(lake, source, "r2")
    step = suppliers.build_silver(lake, "lots", [source], "r2")
    assert "linked" not in step.metadata and _linked(lake, "lots") == 0
    names = delta.read(lake.table("silver", "lots"))[transforms.SUPPLIER]
    assert len(names) == (200 if newer_file else 100) and set(names.to_pylist()) == {"acme"}


def test_two_suppliers_of_one_target_are_combined_the_usual_way(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    acme, bolt = _supplier(tmp_path / "acme"), _supplier(tmp_path / "bolt", "bolt")
    _drop(tmp_path / "acme", "a.csv", range(100))
    _drop(tmp_path / "bolt", "b.csv", range(50, 150))
    for source in (acme, bolt):
        suppliers.load_bronze(lake, source, "r1")
    step = suppliers.build_silver(lake, "lots", [acme, bolt], "r1")
    assert "linked" not in step.metadata and _linked(lake, "lots") == 0
    rows = delta.read(lake.table("silver", "lots"))
    assert rows.num_rows == 150 and set(rows[transforms.SUPPLIER].to_pylist()) == {"acme", "bolt"}


def test_a_first_load_whose_chunks_differ_in_columns_commits_once_in_the_widened_schema(tmp_path: Path) -> None:
    from plantlake.lake import silver

    path = Location.of(tmp_path / "silver")
    strict = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("qty", pa.int32(), nullable=False)])
    key = strict.field("id")
    chunks = [
        pa.table({"id": [1, 2], "qty": [10, 20]}, schema=strict),
        pa.table([[3], [30], ["late"]], schema=pa.schema([key, ("qty", pa.int64()), ("note", pa.string())])),
        pa.table([[4]], schema=pa.schema([key])),  # no qty, no note
    ]
    load = silver.FirstLoad(path)
    for number, rows in enumerate(chunks):
        load.write(rows, silver.Pending(consumed={"bronze": f"mark {number}"}))
        assert delta.open_table(path) is None, "nothing is visible before the last chunk"
    load.finish()
    assert delta.load(path).version() == 0 and delta.read_state(path, silver.CONSUMED) == {"bronze": "mark 2"}
    schema = delta.schema(path)
    assert [(f.name, str(f.type), f.nullable) for f in schema] == [
        ("id", "int64", False),
        ("qty", "int32", True),
        ("note", "string", True),
    ]
    data = delta.dataset(path)
    assert sorted(data.to_table().to_pylist(), key=lambda row: row["id"]) == [
        {"id": 1, "qty": 10, "note": None},
        {"id": 2, "qty": 20, "note": None},
        {"id": 3, "qty": 30, "note": "late"},
        {"id": 4, "qty": None, "note": None},
    ]
    assert data.count_rows(filter=delta.ds.field("note").is_null()) == 3  # the first file counts it null


def test_a_value_the_first_loads_type_cannot_hold_fails_naming_the_column_and_commits_nothing(tmp_path: Path) -> None:
    from plantlake.lake import silver

    path = Location.of(tmp_path / "silver")
    load = silver.FirstLoad(path)
    load.write(pa.table({"id": [1], "qty": pa.array([1], pa.int32())}), silver.Pending(consumed={"b": "1"}))
    with pytest.raises(TypeError, match="column 'qty': values of type int64 do not fit the table's int32"):
        load.write(
            pa.table({"id": [2], "qty": pa.array([3_000_000_000], pa.int64())}), silver.Pending(consumed={"b": "2"})
        )
    assert delta.open_table(path) is None


def test_bronze_files_that_each_span_the_keys_are_written_again_in_key_ranges(lake: Lake) -> None:
    _land(lake, np.random.default_rng(7).permutation(600_000), 1, "r1")  # a source read in no key order
    step = erp.build_silver(lake, SOURCE, TABLE, "r1")
    assert "linked" not in step.metadata and _linked(lake) == 0
    files = pa.table(delta.load(lake.table("silver", NAME)).get_add_actions(flatten=True)).sort_by("min.id")
    lows, highs = files["min.id"].to_pylist(), files["max.id"].to_pylist()
    assert len(lows) > 2 and all(highs[index] < lows[index + 1] for index in range(len(lows) - 1))
    assert len(_silver_rows(lake)) == 600_000


def test_changes_rewrite_each_linked_file_once_where_files_overlap_their_neighbours(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parquet_files, "ROW_GROUP_ROWS", 1_000)
    monkeypatch.setattr(bronze, "FILE_ROWS", 1_000)
    ids = np.arange(10_000)
    for boundary in range(2_000, 10_000, 2_000):  # some neighbours share keys, as a parallel scan lands them
        ids[[boundary - 1, boundary]] = ids[[boundary, boundary - 1]]
    _land(lake, ids, 1, "r1")
    assert erp.build_silver(lake, SOURCE, TABLE, "r1").metadata["linked"]
    path = lake.table("silver", NAME)
    before = delta.load(path).version()
    linked = set(delta.load(path).file_uris())
    spread = np.arange(0, 10_000, 50)
    _land(lake, spread, 2, "r2")
    assert erp.build_silver(lake, SOURCE, TABLE, "r2").metadata["rows_updated"] == 200
    table = delta.load(path)
    assert table.version() == before + 1 and not linked & set(table.file_uris())
    assert len(table.file_uris()) == len(linked), "each file held a changed key: written again once, none twice"
    assert _silver_rows(lake) == {int(i): f"v{2 if i % 50 == 0 else 1}-{i}" for i in range(10_000)}


def test_a_key_repeated_across_neighbouring_files_is_found_however_small_the_groups(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parquet_files, "ROW_GROUP_ROWS", 1_000)
    monkeypatch.setattr(bronze, "FILE_ROWS", 1_000)
    monkeypatch.setattr(steps, "LINK_CHUNK_ROWS", 1_000)  # a group a file, where no file spans the cut
    ids = np.concatenate([np.arange(2_000), [1_999], np.arange(2_000, 9_999)])  # 1,999 opens the third file too
    _land(lake, ids, 1, "r1")
    groups = list(silver.landed_groups(delta.load(lake.table("bronze", NAME)), "id", ["id"], 1_000))
    keys = [set(group["id"].to_pylist()) for group in groups]
    assert [group.num_rows for group in groups] == [1_000, 2_000, *[1_000] * 7], "files 2 and 3 share a key"
    assert sum(group.num_rows for group in groups) == 10_000 and set().union(*keys) == set(range(9_999))
    assert all(not keys[i] & keys[j] for i in range(len(keys)) for j in range(i + 1, len(keys)))
    step = erp.build_silver(lake, SOURCE, TABLE, "r1")
    assert "linked" not in step.metadata and _linked(lake) == 0
    assert len(_silver_rows(lake)) == 9_999

"""A first load silver takes as landed links bronze's files instead of writing them again: the
same rows, read by every reader in silver's schema, through later merges, deletes, compaction
and bronze's own housekeeping; anything silver would change takes the usual path."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from plantlake.assets import erp
from plantlake.config import ErpSource, ErpTable
from plantlake.lake import bronze, deletes, delta, maintenance, parquet_files
from plantlake.lake.layout import Ingestion, Lake

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


def _linked(lake: Lake) -> int:
    """How many of silver's files are bronze's bytes under a second name."""
    return sum(os.stat(Path(uri)).st_nlink > 1 for uri in delta.files(lake.table("silver", NAME)))


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
    from plantlake.lake import silver

    _land(lake, np.arange(1_000), 1, "r1")
    chunks = silver.pending_chunks

    def landing_meanwhile(*args: object, **kwargs: object):
        yield from chunks(*args, **kwargs)
        _land(lake, np.arange(1_000, 1_010), 2, "r2")  # another run's bronze step, between the checks and the link

    monkeypatch.setattr(silver, "pending_chunks", landing_meanwhile)
    step = erp.build_silver(lake, SOURCE, TABLE, "r1")
    assert "linked" not in step.metadata and _linked(lake) == 0
    assert len(_silver_rows(lake)) == 1_010  # the usual path read bronze after the commit
    monkeypatch.undo()
    assert erp.build_silver(lake, SOURCE, TABLE, "r2").metadata["rows_new"] == 0

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from plantlake.assets.steps import merge_validated
from plantlake.lake import bronze, delta, silver, transforms
from plantlake.lake.layout import Ingestion, Lake, next_millisecond
from plantlake.quality.suites import not_null

pytestmark = pytest.mark.unit
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("version", pa.int64()), pa.field("name", pa.string())])


def _land(lake: Lake, rows: list[tuple[int, int, str]], run: str) -> None:
    batch = pa.RecordBatch.from_pylist([dict(zip(SCHEMA.names, row, strict=True)) for row in rows], schema=SCHEMA)
    bronze.land(lake.table("bronze", "orders"), iter([batch]), SCHEMA, ["id", "version"], Ingestion.now(run), "erp")


def _build(lake: Lake, chunk_rows: int, fail_on_chunk: int | None = None):
    path = lake.table("silver", "orders")
    chunks = silver.pending_chunks(
        path, {"orders": silver.BronzeInput(lake.table("bronze", "orders"), ["id"])}, chunk_rows
    )
    seen = []

    def prepare(work: silver.Pending):
        seen.append(work)
        if fail_on_chunk is not None and len(seen) == fail_on_chunk:
            raise RuntimeError("killed mid-way")
        return transforms.erp_rows(work.rows["orders"], ["id"], "version"), []

    return merge_validated(lake, path, chunks, prepare, lambda schema: not_null("id"), ["id"], "run")


def _silver(lake: Lake) -> list[dict]:
    table = delta.read(lake.table("silver", "orders")).drop_columns(["_ingested_at"])
    return sorted(table.to_pylist(), key=lambda row: row["id"])


@pytest.fixture
def history():
    first = [(i, 1, f"v1-{i}") for i in range(50)]
    second = [(i, 2, f"v2-{i}") for i in range(25)] + [(i, 1, f"v1-{i}") for i in range(50, 60)]
    third = [(i, 3, f"v3-{i}") for i in range(0, 60, 7)]
    return [first, second, third]


def test_small_chunks_give_the_same_silver_as_one_chunk(tmp_path: Path, history) -> None:
    small, whole = Lake(tmp_path / "small"), Lake(tmp_path / "whole")
    for lake in (small, whole):
        _land(lake, history[0], "r1")
        _land(lake, history[1], "r2")
    step = _build(small, chunk_rows=7)
    _build(whole, chunk_rows=1_000_000)
    assert step.metadata["chunks"] > 5
    assert _silver(small) == _silver(whole)
    rows = {row["id"]: row["name"] for row in _silver(small)}
    assert rows[3] == "v2-3" and rows[40] == "v1-40" and rows[55] == "v1-55" and len(rows) == 60

    for lake in (small, whole):
        _land(lake, history[2], "r3")
    _build(small, chunk_rows=3)
    _build(whole, chunk_rows=1_000_000)
    assert _silver(small) == _silver(whole)
    assert {row["id"]: row["name"] for row in _silver(small)}[7] == "v3-7"


def test_a_run_killed_between_chunks_keeps_the_mark_and_the_rerun_finishes(tmp_path: Path, history) -> None:
    lake, reference = Lake(tmp_path / "lake"), Lake(tmp_path / "reference")
    for target in (lake, reference):
        _land(target, history[0], "r1")
        _land(target, history[1], "r2")
    _build(reference, chunk_rows=1_000_000)

    with pytest.raises(RuntimeError, match="killed mid-way"):
        _build(lake, chunk_rows=7, fail_on_chunk=3)
    assert delta.open_table(lake.table("silver", "orders")) is None  # a first load commits at its end, or not at all
    _build(lake, chunk_rows=7)
    assert _silver(lake) == _silver(reference)
    mark = delta.read_state(lake.table("silver", "orders"), silver.CONSUMED)

    for target in (lake, reference):
        _land(target, history[2], "r3")
    _build(reference, chunk_rows=1_000_000)
    version = delta.load(lake.table("silver", "orders")).version()
    with pytest.raises(RuntimeError, match="killed mid-way"):
        _build(lake, chunk_rows=2, fail_on_chunk=2)
    assert delta.load(lake.table("silver", "orders")).version() > version  # a chunk committed
    assert delta.read_state(lake.table("silver", "orders"), silver.CONSUMED) == mark  # but the mark did not move
    _build(lake, chunk_rows=2)
    assert _silver(lake) == _silver(reference)
    assert _build(lake, chunk_rows=2).metadata == {"rows_new": 0}


@pytest.mark.parametrize("extra_columns", [0, 35], ids=["narrow", "wide"])
def test_rows_landed_by_a_clock_behind_the_tables_newest_stamp_still_reach_silver(
    tmp_path: Path, extra_columns: int
) -> None:
    """A second worker's clock set back, or two runs in one millisecond: bronze stamps its rows
    after the newest stamp it holds, so silver, which reads past its mark, does not skip them.
    With more than 32 columns delta-rs shows no statistics of the stamp: the state holds it."""
    lake, path = Lake(tmp_path), tmp_path / "bronze" / "orders"
    schema = pa.schema([*SCHEMA, *(pa.field(f"extra{i}", pa.int64()) for i in range(extra_columns))])

    def batch(key: int) -> pa.RecordBatch:
        row = {"id": key, "version": 1, "name": f"v1-{key}", **{f"extra{i}": i for i in range(extra_columns)}}
        return pa.RecordBatch.from_pylist([row], schema=schema)

    bronze.land(path, iter([batch(1)]), schema, ["id", "version"], Ingestion.now("r1"), "erp")
    _build(lake, chunk_rows=100)
    newest = delta.read(path)["_ingested_at"][0].as_py()
    behind = Ingestion("r2", newest - timedelta(hours=1))
    bronze.land(path, iter([batch(2)]), schema, ["id", "version"], behind, "erp")
    assert _build(lake, chunk_rows=100).metadata["rows_inserted"] == 1
    assert [row["id"] for row in _silver(lake)] == [1, 2]


def test_silver_reads_only_the_bronze_files_landed_after_its_mark(tmp_path: Path) -> None:
    lake, bronze_path = Lake(tmp_path), tmp_path / "bronze" / "orders"
    for night in range(1, 6):
        _land(lake, [(night * 10 + i, 1, f"n{night}") for i in range(3)], f"r{night}")
        _build(lake, chunk_rows=100)
        mark = datetime.fromisoformat(delta.read_state(lake.table("silver", "orders"), silver.CONSUMED)["orders"])
        assert Ingestion.now("x").ingested_at.microsecond % 1000 == 0, "stamps are whole milliseconds"
        assert len(delta.dataset(bronze_path, since=("_ingested_at", next_millisecond(mark))).files) == 0
        assert len(delta.dataset(bronze_path).files) == night
    _land(lake, [(99, 1, "n6")], "r6")
    assert len(delta.dataset(bronze_path, since=("_ingested_at", next_millisecond(mark))).files) == 1
    assert _build(lake, chunk_rows=100).metadata["rows_inserted"] == 1


def test_the_surveys_of_several_bronze_tables_keep_one_chunk_of_rows_at_most(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A night's few rows are kept from the survey instead of read again, but however many
    tables a silver table reads, the kept rows stay within one chunk."""
    from plantlake.lake import silver_chunks

    lake, inputs = Lake(tmp_path), {}
    for number in range(4):
        path = lake.table("bronze", f"source_{number}")
        rows = pa.RecordBatch.from_pylist(
            [{"id": number * 100 + i, "version": 1, "name": "a"} for i in range(40)], SCHEMA
        )
        bronze.land(path, iter([rows]), SCHEMA, ["id", "version"], Ingestion.now("r1"), "erp")
        inputs[f"source_{number}"] = silver.BronzeInput(path, ["id"])
    surveyed = []
    survey = silver_chunks._survey
    monkeypatch.setattr(silver_chunks, "_survey", lambda *args: surveyed.append(survey(*args)) or surveyed[-1])
    chunks = list(silver.pending_chunks(lake.table("silver", "all"), inputs, chunk_rows=100))
    assert [found.held is not None for found in surveyed] == [True, True, False, False]
    assert sorted(id for work in chunks for table in work.rows.values() for id in table["id"].to_pylist()) == sorted(
        number * 100 + i for number in range(4) for i in range(40)
    )

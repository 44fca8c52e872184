from pathlib import Path

import pyarrow as pa
import pytest

from plantlake.assets.steps import merge_validated
from plantlake.lake import bronze, delta, silver, transforms
from plantlake.lake.layout import Ingestion, Lake
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
    with pytest.raises(RuntimeError, match="killed mid-way"):
        _build(lake, chunk_rows=2, fail_on_chunk=2)
    assert delta.open_table(lake.table("silver", "orders")).history(1)[0]["operation"] == "MERGE"  # a chunk merged
    assert delta.read_state(lake.table("silver", "orders"), silver.CONSUMED) == mark  # but the mark did not move
    _build(lake, chunk_rows=2)
    assert _silver(lake) == _silver(reference)
    assert _build(lake, chunk_rows=2).metadata == {"rows_new": 0}

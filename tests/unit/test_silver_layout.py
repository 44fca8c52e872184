"""Silver's layout: chunks by key ranges, files that hold narrow key ranges, merges that meet only
the files that can hold their keys, and the same rows whatever the layout (after compaction too)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from plantlake.lake import bronze, delta, maintenance, silver, silver_chunks, state, transforms
from plantlake.lake.layout import Ingestion
from plantlake.lake.storage import Location

pytestmark = pytest.mark.unit
SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("version", pa.int64()), pa.field("name", pa.string())])
KEYS = ["id"]


def _land(path: Path, ids: np.ndarray, version: int, run: str) -> None:
    batch = pa.RecordBatch.from_pydict(
        {"id": ids, "version": np.full(len(ids), version), "name": [f"v{version}-{i}" for i in ids]}, schema=SCHEMA
    )
    bronze.land(path, iter([batch]), SCHEMA, ["id", "version"], Ingestion.now(run), "erp")


def _to_silver(root: Path, chunk_rows: int) -> list[silver.Pending]:
    """Every new bronze row to silver, chunk by chunk, as the silver step does (without validation)."""
    path = root / "silver"
    first_load = silver.FirstLoad(path) if delta.open_table(path) is None else None
    chunks = list(silver.pending_chunks(path, {"orders": silver.BronzeInput(root / "bronze", KEYS)}, chunk_rows))
    for work in chunks:
        rows = transforms.erp_rows(work.rows["orders"], KEYS, "version")
        if first_load is not None:
            first_load.write(rows, work)
        else:
            silver.commit(path, rows, KEYS, work)
    if first_load is not None:
        first_load.finish()
    return chunks


def _expected(history: list[tuple[np.ndarray, int]]) -> dict[int, str]:
    newest: dict[int, str] = {}
    for ids, version in history:
        newest.update({int(i): f"v{version}-{i}" for i in ids})
    return newest


def _silver(root: Path) -> dict[int, str]:
    table = delta.read(root / "silver", columns=["id", "name"])
    assert len(pc.unique(table["id"])) == table.num_rows, "a key twice in silver"
    return dict(zip(table["id"].to_pylist(), table["name"].to_pylist(), strict=True))


def _file_ranges(path: Path) -> list[tuple[int, int]]:
    files = pa.table(DeltaTable(str(path)).get_add_actions(flatten=True))
    return sorted(zip(files["min.id"].to_pylist(), files["max.id"].to_pylist(), strict=True))


@pytest.fixture
def shuffled() -> np.ndarray:
    return np.random.default_rng(3).permutation(10_000)


def test_chunks_hold_disjoint_key_ranges_in_order_and_every_version_of_a_key_in_one(
    tmp_path: Path, shuffled: np.ndarray
) -> None:
    _land(tmp_path / "bronze", shuffled, 1, "r1")
    _land(tmp_path / "bronze", shuffled[:3_000], 2, "r2")  # a second version of some keys, landed later
    chunks = _to_silver(tmp_path, chunk_rows=1_000)
    assert len(chunks) >= 10
    ranges = [pc.min_max(work.rows["orders"]["id"]).values() for work in chunks]
    lows, highs = [low.as_py() for low, _ in ranges], [high.as_py() for _, high in ranges]
    assert all(highs[index] < lows[index + 1] for index in range(len(ranges) - 1))
    assert sum(work.rows["orders"].num_rows for work in chunks) == 13_000
    assert [bool(work.consumed) for work in chunks] == [False] * (len(chunks) - 1) + [True]
    assert _silver(tmp_path) == _expected([(shuffled, 1), (shuffled[:3_000], 2)])
    files = _file_ranges(tmp_path / "silver")
    assert all(files[index][1] < files[index + 1][0] for index in range(len(files) - 1)), files


def test_a_merge_of_recent_keys_rewrites_only_the_files_of_their_range(tmp_path: Path, shuffled: np.ndarray) -> None:
    _land(tmp_path / "bronze", shuffled, 1, "r1")
    _to_silver(tmp_path, chunk_rows=1_000)
    before = set(DeltaTable(str(tmp_path / "silver")).file_uris())
    changed, new = np.arange(9_950, 10_000), np.arange(10_000, 10_050)
    _land(tmp_path / "bronze", np.concatenate([changed, new]), 2, "r2")
    _to_silver(tmp_path, chunk_rows=1_000)
    after = set(DeltaTable(str(tmp_path / "silver")).file_uris())
    assert len(before - after) == 1, "only the file holding the newest keys is rewritten"
    (removed,), (written,) = before - after, after - before  # few rows: its own, the changed and the new in one
    assert pq.read_table(written)["id"].to_pylist() == [*sorted(pq.read_table(removed)["id"].to_pylist()), *new]
    assert _silver(tmp_path) == _expected([(shuffled, 1), (np.concatenate([changed, new]), 2)])
    assert state.current(tmp_path / "silver")[silver.CONSUMED]


def test_changes_spread_over_every_key_rewrite_each_file_once_in_one_commit_and_stay_exact(
    tmp_path: Path, shuffled: np.ndarray
) -> None:
    _land(tmp_path / "bronze", shuffled, 1, "r1")
    _to_silver(tmp_path, chunk_rows=1_000)
    version = DeltaTable(str(tmp_path / "silver")).version()
    before = set(DeltaTable(str(tmp_path / "silver")).file_uris())
    spread = shuffled[::50]
    _land(tmp_path / "bronze", spread, 2, "r2")
    _to_silver(tmp_path, chunk_rows=1_000_000)
    table = DeltaTable(str(tmp_path / "silver"))
    after = set(table.file_uris())
    assert table.version() == version + 1
    assert not before & after and len(after) == len(before), "every file held a changed key: each written again once"
    assert _silver(tmp_path) == _expected([(shuffled, 1), (spread, 2)])


def test_silver_stays_exact_after_maintenance_compacts_it_and_later_merges(
    tmp_path: Path, shuffled: np.ndarray
) -> None:
    history = [(shuffled, 1), (shuffled[::7], 2), (np.arange(9_990, 10_100), 3)]
    _land(tmp_path / "bronze", *history[0], "r1")
    _to_silver(tmp_path, chunk_rows=1_000)
    maintenance.maintain_table(tmp_path / "silver", timedelta(0))
    assert len(_file_ranges(tmp_path / "silver")) < 10
    for ids, version in history[1:]:
        _land(tmp_path / "bronze", ids, version, f"r{version}")
        _to_silver(tmp_path, chunk_rows=1_000)
        maintenance.maintain_table(tmp_path / "silver", timedelta(0))
    assert _silver(tmp_path) == _expected(history)


def test_rows_landed_in_key_order_are_cut_into_runs_without_a_spill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_spill(*_: object) -> None:
        raise AssertionError("rows in key order need no split into ranges")

    monkeypatch.setattr(silver_chunks, "_spill_by_range", no_spill)
    ids = np.arange(5_000)
    for start in range(0, 5_000, 500):  # batches in key order, as a source returns a table by its key
        _land(tmp_path / "bronze", ids[start : start + 500], 1, f"r{start}")
    twice = np.repeat(np.arange(2_000, 2_010), 2)  # ... and keys landed again later: no longer in order
    chunks = _to_silver(tmp_path, chunk_rows=1_000)
    assert len(chunks) == 5
    assert [bool(work.consumed) for work in chunks] == [False] * 4 + [True]
    assert _silver(tmp_path) == _expected([(ids, 1)])
    _land(tmp_path / "bronze", np.unique(twice), 2, "later")
    _to_silver(tmp_path, chunk_rows=1_000)
    assert _silver(tmp_path) == _expected([(ids, 1), (np.unique(twice), 2)])


def test_a_key_whose_versions_straddle_a_run_boundary_stays_in_one_run(tmp_path: Path) -> None:
    ids = np.repeat(np.arange(1_000), 3)  # three versions of every key, next to each other, in key order
    batch = pa.RecordBatch.from_pydict(
        {
            "id": ids,
            "version": np.tile([1, 2, 3], 1_000),
            "name": [f"v{v}-{i}" for i, v in zip(ids, np.tile([1, 2, 3], 1_000), strict=True)],
        },
        schema=SCHEMA,
    )
    path = tmp_path / "bronze"
    for start in range(0, len(ids), 250):  # batch boundaries fall inside a key's versions
        bronze.land(path, iter([batch.slice(start, 250)]), SCHEMA, ["id", "version"], Ingestion.now("r"), "erp")
    chunks = _to_silver(tmp_path, chunk_rows=500)
    assert len(chunks) > 3
    for work in chunks:
        counts = pc.value_counts(work.rows["orders"]["id"]).field("counts")
        assert pc.min(counts).as_py() == 3, "every version of a key in one chunk"
    assert _silver(tmp_path) == {i: f"v3-{i}" for i in range(1_000)}


def test_rows_read_nearly_in_key_order_are_cut_into_runs_that_keep_every_version_of_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a database's parallel scan returns a table: each batch overlaps its neighbours a little,
    and here the overlap holds a second version of keys whose first is in the batch before."""

    def no_spill(*_: object) -> None:
        raise AssertionError("rows nearly in key order need no split into ranges")

    monkeypatch.setattr(silver_chunks, "_spill_by_range", no_spill)
    rows: list[tuple[int, int]] = []
    for start in range(0, 6_000, 500):
        batch = [(key, 1) for key in range(start, start + 500)]
        if start:
            batch += [(key, 2) for key in range(start - 10, start)]  # later versions of the batch before's last keys
        rows.append(batch)
    for number, batch in enumerate(rows):
        ids = np.array([key for key, _ in batch])
        versions = np.array([version for _, version in batch])
        table = pa.RecordBatch.from_pydict(
            {"id": ids, "version": versions, "name": [f"v{v}-{i}" for i, v in zip(ids, versions, strict=True)]},
            schema=SCHEMA,
        )
        bronze.land(tmp_path / "bronze", iter([table]), SCHEMA, ["id", "version"], Ingestion.now(f"r{number}"), "erp")
    chunks = _to_silver(tmp_path, chunk_rows=1_000)
    assert len(chunks) >= 4
    ranges = [[value.as_py() for value in pc.min_max(work.rows["orders"]["id"]).values()] for work in chunks]
    assert all(ranges[i][1] < ranges[i + 1][0] for i in range(len(ranges) - 1)), ("disjoint, in order", ranges)
    expected = {key: f"v1-{key}" for key in range(6_000)}
    expected.update({key: f"v2-{key}" for start in range(500, 6_000, 500) for key in range(start - 10, start)})
    assert _silver(tmp_path) == expected


def test_a_run_of_overlapping_batches_is_handed_on_before_the_next_batch_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a parallel scan returns a table: batch n holds every other key of block n, and the keys
    of block n - 1 that batch n - 1 did not. A run is whole once the batches before its cut are
    read, so what is held while it is merged is the run and the few rows that belong to the next."""
    blocks = [np.arange(start, start + 500) for start in range(0, 6_000, 500)]
    for number in range(len(blocks) + 1):
        parts = [block[number % 2 :: 2] for block in blocks[max(0, number - 1) : number + 1]]
        _land(tmp_path / "bronze", np.concatenate(parts), 1, f"r{number}")
    read: list[int] = []
    row_groups = delta.row_groups

    def counted(data, columns=None, filter=None):
        for group in row_groups(data, columns, filter):
            if columns is None:  # the scan that reads whole rows, not the survey's
                read.append(group.num_rows)
            yield group

    monkeypatch.setattr(delta, "row_groups", counted)
    path, sizes, batches_read = tmp_path / "silver", [], []
    first_load = silver.FirstLoad(path)
    for work in silver.pending_chunks(path, {"orders": silver.BronzeInput(tmp_path / "bronze", KEYS)}, 600):
        batches_read.append(len(read))
        sizes.append(work.rows["orders"].num_rows)
        first_load.write(transforms.erp_rows(work.rows["orders"], KEYS, "version"), work)
    first_load.finish()
    assert batches_read == list(range(2, len(blocks) + 2)), "each run goes before the batch after its cut is read"
    assert sum(sizes) == 6_000 and max(sizes) <= 501
    assert _silver(tmp_path) == _expected([(np.arange(6_000), 1)])


def test_a_run_ends_before_the_batch_that_would_take_it_past_a_chunk(tmp_path: Path) -> None:
    """Batches of nearly a chunk (bronze's row groups against silver's chunks) make runs of one
    batch: a run's memory stays about a chunk, not two."""
    ids = np.arange(6_000)
    for start in range(0, 6_000, 600):
        _land(tmp_path / "bronze", ids[start : start + 600], 1, f"r{start}")
    chunks = _to_silver(tmp_path, chunk_rows=1_000)
    assert [work.rows["orders"].num_rows for work in chunks] == [600] * 10
    assert _silver(tmp_path) == _expected([(ids, 1)])


def test_keys_once_in_any_order_are_kept_as_they_are_and_repeated_keys_keep_their_newest(
    shuffled: np.ndarray,
) -> None:
    once = pa.table({"id": shuffled, "version": np.ones(len(shuffled), np.int64)})
    assert transforms.latest_per_key(once, KEYS, ["version"]) is once
    with_null = pa.table({"id": pa.array([3, None, 1, 2], pa.int64()), "version": [1, 1, 1, 1]})
    assert transforms.latest_per_key(with_null, KEYS, ["version"]) is with_null
    repeated = pa.table(
        {"id": pa.array([3, None, 1, 3, None], pa.int64()), "version": [1, 1, 1, 2, 2], "name": list("abcde")}
    )
    newest = transforms.latest_per_key(repeated, KEYS, ["version"]).sort_by("id")
    assert newest.to_pylist() == [
        {"id": 1, "version": 1, "name": "c"},
        {"id": 3, "version": 2, "name": "d"},
        {"id": None, "version": 2, "name": "e"},
    ]


def _first_load(path: Path, chunks: list[pa.Table]) -> None:
    load = silver.FirstLoad(Location.of(path))
    for number, rows in enumerate(chunks):
        load.write(rows, silver.Pending(consumed={"bronze": str(number)}))
    load.finish()


def test_a_file_spanning_every_key_is_read_for_its_keys_but_written_again_only_if_it_holds_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "silver"

    def rows(ids: np.ndarray, tag: str) -> pa.Table:
        return pa.table({"id": ids, "v": [tag] * len(ids)})

    _first_load(path, [rows(np.arange(c * 2_000, (c + 1) * 2_000, 2), "v1") for c in range(8)])
    spread_new = np.arange(1, 16_000, 160)  # new keys spread over the range: appended as one file spanning it
    silver.commit(path, rows(spread_new, "v2"), ["id"], silver.Pending(consumed={"bronze": "a"}))
    spanning = set(DeltaTable(str(path)).file_uris()) - set(DeltaTable(str(path), version=0).file_uris())
    before = set(DeltaTable(str(path)).file_uris())
    updates = np.arange(0, 16_000, 100)  # even keys: none in the spanning file
    assert silver.commit(path, rows(updates, "v3"), ["id"], silver.Pending(consumed={"bronze": "b"})) == {
        "inserted": 0,
        "updated": len(updates),
    }
    after = set(DeltaTable(str(path)).file_uris())
    assert len(spanning) == 1 and spanning <= after, "the spanning file holds none of the keys: it stays"
    assert len(before - after) == 8
    rows = dict(zip(*delta.read(path, columns=["id", "v"]).to_pydict().values(), strict=True))
    assert len(rows) == 8_000 + len(spread_new) and all(rows[int(i)] == "v3" for i in updates)


def test_keys_too_long_for_parquet_statistics_are_still_matched_not_appended_again(tmp_path: Path) -> None:
    path = tmp_path / "silver"

    def rows(ids: range, tag: str) -> pa.Table:
        return pa.table({"id": [f"{i:06d}" + "x" * 5_000 for i in ids], "v": [tag] * len(ids)})

    _first_load(path, [rows(range(c * 100, (c + 1) * 100), "v1") for c in range(3)])
    assert pa.table(DeltaTable(str(path)).get_add_actions(flatten=True))["min.id"].null_count == 3
    merged = silver.commit(path, rows(range(5, 155, 100), "v2"), ["id"], silver.Pending(consumed={"bronze": "x"}))
    assert merged == {"inserted": 0, "updated": 2}
    table = delta.read(path)
    assert table.num_rows == 300 and len(set(table["id"].to_pylist())) == 300

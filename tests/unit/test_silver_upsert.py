"""Silver's upsert: changed rows replace theirs in the files that hold them, new rows get files
of their own, in one commit; columns and statistics as the table has them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from plantlake.lake import delta, parquet_files, silver, silver_upsert
from plantlake.lake.storage import Location

pytestmark = pytest.mark.unit


def _first_load(path: Path, chunks: list[pa.Table]) -> None:
    load = silver.FirstLoad(Location.of(path))
    for number, rows in enumerate(chunks):
        load.write(rows, silver.Pending(consumed={"bronze": str(number)}))
    load.finish()


def _commit(path: Path, rows: pa.Table, keys: list[str], window_key: str | None = None) -> dict[str, int]:
    return silver.commit(Location.of(path), rows, keys, silver.Pending(consumed={"bronze": "next"}), window_key)


def _by_key(path: Path, key: str = "id") -> dict:
    rows = delta.read(path).to_pylist()
    assert len({row[key] for row in rows}) == len(rows), "a key twice in silver"
    return {row[key]: row for row in rows}


def test_changed_keys_rewrite_only_their_file_and_new_keys_come_in_the_same_commit(tmp_path: Path) -> None:
    path = tmp_path / "silver"
    _first_load(path, [pa.table({"id": range(c * 100, (c + 1) * 100), "v": ["a"] * 100}) for c in range(5)])
    before, version = set(DeltaTable(str(path)).file_uris()), DeltaTable(str(path)).version()
    merged = _commit(path, pa.table({"id": [250, 260, 900], "v": ["b", "b", "b"]}), ["id"])
    table = DeltaTable(str(path))
    assert merged == {"inserted": 1, "updated": 2}
    assert table.version() == version + 1 and len(before - set(table.file_uris())) == 1
    assert delta.read_state(path, silver.CONSUMED) == {"bronze": "next"}
    rows = _by_key(path)
    assert len(rows) == 501 and rows[250]["v"] == rows[900]["v"] == "b" and rows[249]["v"] == "a"


def test_a_column_the_rows_lack_keeps_its_value_and_a_column_they_bring_is_added(tmp_path: Path) -> None:
    path = tmp_path / "silver"
    _first_load(path, [pa.table({"id": [1, 2, 3], "v": ["a", "a", "a"], "kept": [10, 20, 30]})])
    _commit(path, pa.table({"id": [2, 4], "v": ["b", "b"], "added": [True, False]}), ["id"])
    rows = _by_key(path)
    assert rows[2] == {"id": 2, "v": "b", "kept": 20, "added": True}
    assert rows[4] == {"id": 4, "v": "b", "kept": None, "added": False}
    assert rows[1] == {"id": 1, "v": "a", "kept": 10, "added": None}


def test_keys_twice_in_one_upsert_are_refused_with_the_table_named(tmp_path: Path) -> None:
    path = tmp_path / "silver"
    _first_load(path, [pa.table({"id": [1, 2], "v": ["a", "a"]})])
    with pytest.raises(ValueError, match=r"silver: 1 keys come more than once.*'id': 2"):
        _commit(path, pa.table({"id": [2, 2, 3], "v": ["b", "c", "d"]}), ["id"])
    assert DeltaTable(str(path)).version() == 0


def test_a_key_in_the_last_millisecond_of_a_file_is_found_though_its_statistics_are_truncated(
    tmp_path: Path,
) -> None:
    """Delta keeps a timestamp's maximum to the millisecond: a file holding 12:00:00.000900 says
    12:00:00.000 is its highest; a changed row of that instant must still replace the old one."""
    path = tmp_path / "silver"
    start = datetime(2026, 11, 30, 12, tzinfo=UTC)
    moments = [start + timedelta(microseconds=step * 300) for step in range(4)]  # .000, .0003, .0006, .0009
    kind = pa.timestamp("us", "UTC")
    _first_load(path, [pa.table({"tag": ["T"] * 4, "at": pa.array(moments, kind), "value": [1.0, 2.0, 3.0, 4.0]})])
    maximum = pa.table(DeltaTable(str(path)).get_add_actions(flatten=True))["max.at"][0].as_py()
    assert maximum < moments[-1], "the statistics are truncated, or the test proves nothing"
    later = pa.table({"tag": ["T", "T"], "at": pa.array([moments[-1], start + timedelta(seconds=1)], kind)})
    merged = _commit(path, later.append_column("value", pa.array([40.0, 5.0])), ["tag", "at"], window_key="at")
    assert merged == {"inserted": 1, "updated": 1}
    values = {row["at"]: row["value"] for row in delta.read(path).to_pylist()}
    assert len(values) == 5 and values[moments[-1]] == 40.0


def test_files_a_delta_rs_merge_wrote_with_string_view_columns_are_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "silver"
    delta.merge(path, pa.table({"id": [1], "s": ["x"], "v": [1]}), ["id"], update=True)
    delta.merge(path, pa.table({"id": [1, 2, 3], "s": ["a", "b", "c"], "v": [1, 1, 1]}), ["id"], update=True)
    viewed = [pq.read_schema(file).field("s").type for file in DeltaTable(str(path)).file_uris()]
    assert pa.string_view() in viewed, "delta-rs no longer writes string_view: the test proves nothing"
    assert _commit(path, pa.table({"id": [2], "v": [2]}), ["id"]) == {"inserted": 0, "updated": 1}
    assert {key: (row["s"], row["v"]) for key, row in _by_key(path).items()} == {1: ("a", 1), 2: ("b", 2), 3: ("c", 1)}


def test_a_file_rewritten_by_another_writer_meanwhile_makes_the_upsert_read_again_not_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plantlake.lake import silver_upsert

    path = tmp_path / "silver"
    _first_load(path, [pa.table({"id": range(10), "v": ["a"] * 10})])
    write_new, raced = silver_upsert._write_new, []

    def other_writer_first(*args: object) -> object:
        if not raced:  # after this upsert read the file's keys, another writer rewrites that file
            raced.append("other writer")
            _commit(path, pa.table({"id": [5, 6], "v": ["other", "other"]}), ["id"])
        return write_new(*args)

    monkeypatch.setattr(silver_upsert, "_write_new", other_writer_first)
    assert _commit(path, pa.table({"id": [6, 7], "v": ["mine", "mine"]}), ["id"]) == {"inserted": 0, "updated": 2}
    rows = _by_key(path)
    assert raced and len(rows) == 10
    assert [rows[key]["v"] for key in (4, 5, 6, 7)] == ["a", "other", "mine", "mine"]


def _files_and_ids(path: Path) -> dict[str, list[int]]:
    table = DeltaTable(str(path))
    return {uri: sorted(pq.read_table(uri)["id"].to_pylist()) for uri in table.file_uris()}


@pytest.mark.parametrize("shared_rows", [10_000, 40])
def test_changes_in_one_file_go_with_the_new_rows_and_changes_in_several_back_into_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_rows: int
) -> None:
    """An ERP's newest orders change: the file holding them, its unchanged rows, the changed and
    the new rows are written as one narrow run, in two files of halves of it where they are many
    (one per thread). Changes in several files go back into each, so no file spans the ranges
    between them."""
    monkeypatch.setattr(silver_upsert, "SHARED_ROWS", shared_rows)
    path = tmp_path / "silver"
    _first_load(path, [pa.table({"id": range(c * 100, (c + 1) * 100), "v": ["a"] * 100}) for c in range(5)])
    merged = _commit(path, pa.table({"id": [*range(500, 520), *range(470, 500)], "v": ["b"] * 50}), ["id"])
    assert merged == {"inserted": 20, "updated": 30}
    files = _files_and_ids(path)
    run = [list(range(400, 520))] if shared_rows > 120 else [list(range(400, 460)), list(range(460, 520))]
    assert sorted(files.values(), key=min)[-len(run) :] == run, "the run in key order, each half a file"
    assert len(files) == 4 + len(run)

    merged = _commit(path, pa.table({"id": [150, 350, 900], "v": ["c"] * 3}), ["id"])
    assert merged == {"inserted": 1, "updated": 2}
    files = _files_and_ids(path)
    assert list(range(100, 200)) in files.values() and list(range(300, 400)) in files.values()
    assert [900] in files.values() and len(files) == 5 + len(run)
    rows = _by_key(path)
    assert len(rows) == 521
    assert [rows[key]["v"] for key in (149, 150, 350, 469, 470, 519, 900)] == ["a", "c", "c", "a", "b", "b", "c"]


def test_changes_beside_the_new_keys_in_a_file_larger_than_a_row_group_leave_its_other_rows_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is not held whole: its other rows are written again a row group at a time, and the
    changed rows go with the new ones."""
    monkeypatch.setattr(parquet_files, "ROW_GROUP_ROWS", 50)
    path = tmp_path / "silver"
    _first_load(path, [pa.table({"id": range(c * 100, (c + 1) * 100), "v": ["a"] * 100}) for c in range(3)])
    assert sorted(_files_and_ids(path).values(), key=min)[-1] == list(range(200, 300)), "a file of two row groups"
    merged = _commit(path, pa.table({"id": [*range(290, 300), *range(300, 320)], "v": ["b"] * 30}), ["id"])
    assert merged == {"inserted": 20, "updated": 10}
    files = sorted(_files_and_ids(path).values(), key=min)
    assert files[2] == list(range(200, 290)), "its other rows, written again"
    assert sorted(key for ids in files[3:] for key in ids) == list(range(290, 320)), "the changed with the new"
    rows = _by_key(path)
    assert len(rows) == 320 and [rows[key]["v"] for key in (289, 290, 319)] == ["a", "b", "b"]


def test_appended_rows_are_written_in_the_order_of_the_window_key(tmp_path: Path) -> None:
    path = tmp_path / "silver"
    _first_load(path, [pa.table({"id": range(100), "v": ["a"] * 100})])
    before = set(DeltaTable(str(path)).file_uris())
    _commit(path, pa.table({"id": [1005, 1001, 1003, 1002], "v": ["b"] * 4}), ["id"])
    (new_file,) = set(DeltaTable(str(path)).file_uris()) - before
    assert pq.read_table(new_file)["id"].to_pylist() == [1001, 1002, 1003, 1005]
    _commit(path, pa.table({"id": [2001, 2002, 2004], "v": ["c"] * 3}), ["id"])  # in order already
    files = [pq.read_table(uri)["id"].to_pylist() for uri in DeltaTable(str(path)).file_uris()]
    assert sorted(files) == [list(range(100)), [1001, 1002, 1003, 1005], [2001, 2002, 2004]]


def test_a_change_far_from_the_new_keys_or_without_new_keys_goes_back_into_its_file(tmp_path: Path) -> None:
    """Written with the new rows, an old order's change would make a file spanning the table;
    a night of changes only would add a file each night."""
    path = tmp_path / "silver"
    _first_load(path, [pa.table({"id": range(c * 100, (c + 1) * 100), "v": ["a"] * 100}) for c in range(5)])
    for night in range(3):
        _commit(path, pa.table({"id": [7, *range(500 + night * 20, 520 + night * 20)], "v": ["b"] * 21}), ["id"])
    _commit(path, pa.table({"id": [8, 9], "v": ["c", "c"]}), ["id"])
    files = sorted(_files_and_ids(path).values(), key=min)
    assert files[0] == list(range(100)) and [min(ids) for ids in files[1:]] == [100, 200, 300, 400, 500, 520, 540]
    assert len(_by_key(path)) == 560 and _by_key(path)[7]["v"] == "b" and _by_key(path)[9]["v"] == "c"

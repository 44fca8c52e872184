"""The streamed append: Parquet files written in bounded row groups, committed with delta-rs's own statistics."""

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from plantlake.lake import delta, parquet_files

pytestmark = pytest.mark.unit


def _sample(rows: int, start: int = 0) -> pa.Table:
    numbers = range(start, start + rows)
    return pa.table(
        {
            "id": pa.array(numbers, pa.int64()),
            "small": pa.array([n % 7 for n in numbers], pa.int16()),
            "name": [f"lot-{n:06d}" if n % 5 else None for n in numbers],
            "amount": pa.array([Decimal(n) / 100 - 3 for n in numbers], pa.decimal128(18, 2)),
            "ratio": [n / 3 if n % 4 else float("nan") for n in numbers],
            "day": pa.array([date(2026, 1, 1 + n % 28) for n in numbers]),
            "at": pa.array(
                [datetime(2026, 3, 1, 12, 0, n % 60, 123456, tzinfo=UTC) for n in numbers], pa.timestamp("us", "UTC")
            ),
            "local": pa.array(
                [datetime(2026, 3, 1, 12, n % 60, 0, 654321) for n in numbers],  # noqa: DTZ001 - a naive column
                pa.timestamp("us"),
            ),
            "flag": [n % 3 == 0 for n in numbers],
            "raw": [bytes([n % 256]) for n in numbers],
            "nested": [{"x": n, "y": str(n)} for n in numbers],
            "items": [[n, n + 1] for n in numbers],
            "empty": pa.nulls(rows, pa.int64()),
        }
    )


def _stats(path: Path) -> list[dict]:
    return [
        json.loads(line)["add"]["stats"]
        for log in sorted((path / "_delta_log").glob("*.json"))
        for line in log.read_text().splitlines()
        if '"add"' in line
    ]


def test_statistics_are_those_delta_rs_writes(tmp_path: Path) -> None:
    data = _sample(1000)
    write_deltalake(str(tmp_path / "theirs"), data)
    delta.append(tmp_path / "ours", data)
    [theirs], [ours] = _stats(tmp_path / "theirs"), _stats(tmp_path / "ours")
    assert json.loads(ours) == json.loads(theirs)


def test_a_stream_is_written_in_bounded_row_groups_and_reads_back_whole(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(parquet_files, "ROW_GROUP_ROWS", 300)
    monkeypatch.setattr(parquet_files, "FILE_BYTES", 20_000)
    data = _sample(2500)
    stream = pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=170))
    assert delta.append(tmp_path / "t", stream, state={"mark": 7}) == {"inserted": 2500, "updated": 0}
    files = [pq.ParquetFile(uri).metadata for uri in delta.files(tmp_path / "t")]
    assert len(files) > 1 and all(
        meta.row_group(i).num_rows <= 300 for meta in files for i in range(meta.num_row_groups)
    )
    assert sum(json.loads(stats)["numRecords"] for stats in _stats(tmp_path / "t")) == 2500
    back = delta.read(tmp_path / "t").sort_by("id")
    assert back.drop_columns(["ratio"]).equals(data.drop_columns(["ratio"]))
    assert delta.read_state(tmp_path / "t", "mark") == 7
    filtered = delta.read(
        tmp_path / "t", columns=["id"], filter=ds.field("at") >= datetime(2026, 3, 1, 12, 0, 59, tzinfo=UTC)
    )
    assert sorted(filtered.column("id").to_pylist()) == [n for n in range(2500) if n % 60 == 59]


def test_new_columns_are_added_and_missing_ones_are_null(tmp_path: Path) -> None:
    path = tmp_path / "t"
    delta.append(path, pa.table({"id": [1, 2], "name": ["a", "b"]}))
    unit = pa.field("weight", pa.float64(), metadata={"unit": "kg"})
    delta.append(
        path,
        pa.table(
            {"id": pa.array([3]), "weight": pa.array([2.5])}, schema=pa.schema([pa.field("id", pa.int64()), unit])
        ),
    )
    table = DeltaTable(str(path))
    assert pa.schema(table.schema().to_arrow()).field("weight").metadata == {b"unit": b"kg"}
    assert delta.read(path).sort_by("id").to_pylist() == [
        {"id": 1, "name": "a", "weight": None},
        {"id": 2, "name": "b", "weight": None},
        {"id": 3, "name": None, "weight": 2.5},
    ]


def test_timestamps_become_microseconds_in_utc_and_an_unheld_type_names_its_column() -> None:
    schema = parquet_files.delta_schema(
        pa.schema([("at", pa.timestamp("ns", "Europe/Berlin")), ("text", pa.large_string())])
    )
    assert schema.types == [pa.timestamp("us", "UTC"), pa.string()]
    with pytest.raises(TypeError, match="column 'span' has type duration"):
        parquet_files.delta_schema(pa.schema([("span", pa.duration("s"))]))


def test_a_stream_that_fails_commits_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t"
    delta.append(path, pa.table({"id": [1]}), state={"mark": 1})

    def batches():
        yield pa.record_batch({"id": [2]})
        raise RuntimeError("source lost")

    with pytest.raises(RuntimeError, match="source lost"):
        delta.append(
            path, pa.RecordBatchReader.from_batches(pa.schema([("id", pa.int64())]), batches()), state={"mark": 2}
        )
    assert delta.read(path).column("id").to_pylist() == [1]
    assert delta.read_state(path, "mark") == 1


def test_constants_are_stored_as_plain_columns_with_statistics(tmp_path: Path) -> None:
    at = datetime(2026, 3, 1, 6, tzinfo=UTC)
    constants = {
        "_run_id": pa.scalar("run-7"),
        "_file_hash": pa.scalar("ab" * 32),
        "_ingested_at": pa.scalar(at, pa.timestamp("us", "UTC")),
    }
    delta.append(tmp_path / "t", _sample(500).select(["id", "name"]), constants=constants)
    delta.append(
        tmp_path / "t",
        _sample(300, start=500).select(["id", "name"]),
        constants={**constants, "_run_id": pa.scalar("run-8")},
    )
    table = DeltaTable(str(tmp_path / "t"))
    landed = table.to_pyarrow_table()
    assert table.schema().to_arrow().field("_run_id").type == pa.string()  # Delta's type, never a dictionary
    assert landed.num_rows == 800 and set(landed.column("_file_hash").to_pylist()) == {"ab" * 32}
    assert sorted(landed.filter(pc.equal(landed["_run_id"], "run-8"))["id"].to_pylist()) == list(range(500, 800))
    assert set(landed.column("_ingested_at").to_pylist()) == {at}
    [first, second] = [json.loads(stats) for stats in _stats(tmp_path / "t")]
    assert (
        first["minValues"]["_run_id"] == first["maxValues"]["_run_id"] == "run-7"
        and second["minValues"]["_run_id"] == "run-8"
    )
    assert first["nullCount"]["_file_hash"] == 0 and first["maxValues"]["_ingested_at"] == "2026-03-01T06:00:00.000Z"
    for file in (tmp_path / "t").glob("*.parquet"):
        assert pq.read_schema(file).field("_run_id").type == pa.string()


def test_a_column_name_with_dots_keeps_its_statistics_and_a_filter_on_it_finds_its_rows(tmp_path: Path) -> None:
    """A dot in a name is not a nested field: `Work Order No.` once lost its statistics to a
    nested path, and a filter on it then skipped every file (silver appended keys it held)."""
    path = tmp_path / "orders"
    delta.append(path, pa.table({"Work Order No.": ["WO-1", "WO-2", "WO-3"], "s.t": [{"a.b": 1}] * 3}))
    [stats] = pa.table(DeltaTable(str(path)).get_add_actions(flatten=True)).select(["min.Work Order No."]).to_pylist()
    assert stats == {"min.Work Order No.": "WO-1"}
    window = (ds.field("Work Order No.") >= "WO-2") & (ds.field("Work Order No.") <= "WO-9")
    assert sorted(delta.read(path, columns=["Work Order No."], filter=window).column(0).to_pylist()) == ["WO-2", "WO-3"]


def test_only_repeated_text_is_dictionary_encoded(tmp_path: Path) -> None:
    """Hashing every order number into a dictionary the writer then abandons costs time and saves no space."""
    rows = 20_000
    data = pa.table(
        {
            "order_no": [f"SO-{index:08d}" for index in range(rows)],
            "status": [("draft", "sale", "done")[index % 3] for index in range(rows)],
            "note": [None] * rows,
            "id": list(range(rows)),
        }
    )
    delta.append(tmp_path / "t", data, constants={"_run_id": pa.scalar("run-1")})
    [file] = (tmp_path / "t").glob("*.parquet")
    group = pq.ParquetFile(file).metadata.row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
    dictionary = {name for name, used in encodings.items() if any("DICTIONARY" in encoding for encoding in used)}
    assert dictionary == {"status", "_run_id"}  # an all-null column has no values to encode either way
    assert DeltaTable(str(tmp_path / "t")).to_pyarrow_table().sort_by("id").select(data.column_names).equals(data)

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from plantlake.lake import bronze, delta, storage
from plantlake.lake.layout import Ingestion
from plantlake.lake.storage import Location

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("updated_at", pa.int64()), pa.field("name", pa.string())])


def _batches(rows: list[tuple[int, int | None, str]]):
    for row in rows:
        yield pa.RecordBatch.from_pylist([dict(zip(SCHEMA.names, row, strict=True))], schema=SCHEMA)


def test_landing_twice_adds_nothing_the_second_time(tmp_path: Path) -> None:
    path = tmp_path / "bronze" / "orders"
    rows = [(1, 10, "a"), (2, 10, "b"), (3, None, "c")]
    first = bronze.land(
        path, _batches(rows), SCHEMA, ["id", "updated_at"], Ingestion.now("run-1"), "erp", {"watermark": 10}
    )
    second = bronze.land(
        path, _batches(rows), SCHEMA, ["id", "updated_at"], Ingestion.now("run-2"), "erp", {"watermark": 10}
    )
    assert (first.rows_inserted, second.rows_read, second.rows_inserted) == (3, 3, 0)
    assert delta.row_count(path) == 3
    changed = bronze.land(
        path, _batches([(1, 11, "a2")]), SCHEMA, ["id", "updated_at"], Ingestion.now("run-3"), "erp", {"watermark": 11}
    )
    assert changed.rows_inserted == 1 and delta.row_count(path) == 4
    assert delta.read_state(path, "watermark") == 11


def test_a_run_that_fails_midway_commits_neither_rows_nor_watermark(tmp_path: Path) -> None:
    path = tmp_path / "bronze" / "orders"
    bronze.land(
        path, _batches([(1, 10, "a")]), SCHEMA, ["id", "updated_at"], Ingestion.now("run-1"), "erp", {"watermark": 10}
    )
    version = delta.open_table(path).version()

    def broken():
        yield from _batches([(2, 20, "b"), (3, 20, "c")])
        raise ConnectionError("source went away")

    with pytest.raises(Exception, match="source went away"):
        bronze.land(path, broken(), SCHEMA, ["id", "updated_at"], Ingestion.now("run-2"), "erp", {"watermark": 20})
    assert delta.open_table(path).version() == version
    assert delta.row_count(path) == 1
    assert delta.read_state(path, "watermark") == 10


def test_nothing_to_land_makes_no_commit(tmp_path: Path) -> None:
    path = tmp_path / "bronze" / "orders"
    landed = bronze.land(path, iter([]), SCHEMA, ["id"], Ingestion.now("run-1"), "erp", {"watermark": 1})
    assert landed.rows_read == 0 and delta.open_table(path) is None


def test_upsert_updates_matching_keys_and_names_need_quoting(tmp_path: Path) -> None:
    path = tmp_path / "silver" / "work orders"
    schema = pa.schema([pa.field("Order Id", pa.int64()), pa.field("status", pa.string())])
    delta.merge(
        path, pa.table({"Order Id": [1, 2], "status": ["open", "open"]}, schema=schema), ["Order Id"], update=True
    )
    result = delta.merge(
        path, pa.table({"Order Id": [2, 3], "status": ["done", "open"]}, schema=schema), ["Order Id"], update=True
    )
    assert result == {"inserted": 1, "updated": 1}
    rows = sorted(delta.read(path).to_pylist(), key=lambda r: r["Order Id"])
    assert [r["status"] for r in rows] == ["open", "done", "open"]


def test_row_groups_come_one_at_a_time_in_key_order_of_the_files_and_skip_by_statistics(tmp_path: Path) -> None:
    from plantlake.lake import parquet_files

    path = tmp_path / "t"
    for start in (2_000, 0, 1_000):  # committed out of key order
        rows = pa.table(
            {"id": pa.array(range(start, start + 1_000), pa.int64()), "name": [f"n{i}" for i in range(1_000)]}
        )
        delta.append(path, rows)
    data = delta.dataset(path, order_by="id")
    groups = list(delta.row_groups(data))
    assert [group["id"][0].as_py() for group in groups] == [0, 1_000, 2_000]
    assert all(group.num_rows <= parquet_files.ROW_GROUP_ROWS for group in groups)
    found = list(delta.row_groups(data, ["id"], filter=ds.field("id") >= 1_500))
    assert len(found) == 2 and sum(group.num_rows for group in found) == 1_500 and found[0].column_names == ["id"]


def test_duckdb_reads_a_bucket_with_the_options_it_was_configured_with_only() -> None:
    options = {"AWS_ENDPOINT_URL": "http://store.example:8333", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
    unknown = duckdb.connect()
    with pytest.raises(ValueError, match="no object store configured for bucket 'never-configured'"):
        storage.attach(unknown, "s3://never-configured/lake/silver/t/part-0.parquet")
    Location.of("s3://bare-only/lake")  # no options: nothing to read that bucket with
    with pytest.raises(ValueError, match="bare-only"):
        storage.attach(duckdb.connect(), "s3://bare-only/lake/x.parquet")

    Location.of("s3://configured/plant-a", options)
    Location.of("s3://configured/plant-a/silver/t")  # made later without options: the store's are kept
    connection = duckdb.connect()
    storage.attach(connection, "s3://configured/plant-a/silver/t/part-0.parquet")
    assert "s3" in connection.list_filesystems()
    assert storage._KNOWN_BUCKETS["configured"] == tuple(sorted(options.items()))

"""A batch in which every row fails validation is quarantined whole, like any other failing batch."""

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from plantlake.quality.expectations import validate
from plantlake.quality.suites import Expect

pytestmark = pytest.mark.unit


def test_a_batch_whose_every_row_fails_is_quarantined_whole() -> None:
    # a non-historized setpoint whose server timestamp came out as 1601-01-01, each row failing
    table = pa.table(
        {
            "node_id": ["ns=2;s=Setpoint", "ns=2;s=Limit"],
            "status": ["Good", "Good"],
            "timestamp": pa.array([datetime(1601, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
        }
    )
    suite = [Expect("between", "timestamp", datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))]
    result = validate(table, suite, "silver.sensor_readings", key_columns=["node_id"])
    assert result.accepted.num_rows == 0
    assert result.accepted.schema == table.schema  # the empty remainder keeps the batch's columns and types
    assert result.rows_rejected == 2
    assert sorted(r.row for r in result.rejections) == ["node_id=ns=2;s=Limit", "node_id=ns=2;s=Setpoint"]


def test_silver_quarantines_a_chunk_whose_every_row_fails_and_moves_on(tmp_path) -> None:
    from plantlake.assets.steps import merge_validated
    from plantlake.lake import delta, silver
    from plantlake.lake.layout import Lake

    lake = Lake(tmp_path / "lake")
    path = lake.table("silver", "setpoints")
    suite = [Expect("between", "timestamp", datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))]

    def chunk(node: str, year: int, mark: str) -> silver.Pending:
        rows = pa.table(
            {"node_id": [node], "timestamp": pa.array([datetime(year, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))}
        )
        return silver.Pending({"bronze": rows}, {"bronze": mark})

    # the first load, a good chunk, and a later load: the two that fail whole are quarantined, the marks move on
    for run, (node, year) in enumerate([("b", 1601), ("a", 2024), ("c", 1601)]):
        step = merge_validated(
            lake,
            path,
            [chunk(node, year, str(run))],
            lambda work: (work.rows["bronze"], []),
            lambda _: suite,
            ["node_id"],
            f"run-{run}",
        )
        assert step.metadata["rows_quarantined"] == (year == 1601)
        assert delta.read_state(path, silver.CONSUMED) == {"bronze": str(run)}
    assert delta.read(path).column("node_id").to_pylist() == ["a"]
    assert sorted(delta.read(lake.table("quarantine", "rows")).column("row_key").to_pylist()) == [
        "node_id=b",
        "node_id=c",
    ]

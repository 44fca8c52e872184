import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from plantlake.lake import delta, quarantine
from plantlake.lake.catalog import TableInfo, build_catalog
from plantlake.lake.layout import Lake
from plantlake.quality import invariants
from plantlake.quality.expectations import validate
from plantlake.quality.suites import sensor_suite

pytestmark = pytest.mark.unit


def _readings() -> pa.Table:
    ok = datetime(2026, 1, 11, 10, tzinfo=UTC)
    return pa.table(
        {
            "source": ["plant"] * 4,
            "node_id": ["n1", "n2", "n3", "n4"],
            "tag": ["Temperature", "Temperature", "Vibration", "Temperature"],
            "timestamp": pa.array([ok, ok, ok, datetime(1970, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
            "value": [55.0, 950.0, 950.0, 40.0],
            "status": ["Good", "Good", "Bad", "Sometimes"],
        }
    )


def test_gx_keeps_good_rows_and_names_the_failed_expectation(tmp_path: Path) -> None:
    table = _readings()
    result = validate(table, sensor_suite(table.schema), "silver.sensor_readings", key_columns=["source", "node_id"])
    # n3 is Bad quality: flagged, not range-checked; n2's 950 degrees breaks a generic range, which warns
    assert result.accepted["node_id"].to_pylist() == ["n1", "n2", "n3"]
    assert result.warned == {
        'value between -50 and 400 where tag=="Temperature" and status=="Good"': 1,
        "timestamp between 2000-01-01 and tomorrow": 1,
    }
    # n4's status is none plantlake knows: quarantined
    quarantined = [(r.row, r.field, r.value) for r in result.rejections]
    assert quarantined == [("source=plant, node_id=n4", "status", "Sometimes")]
    assert "status in" in result.rejections[0].check
    assert not result.success and not result.holds and result.rows_rejected == 1

    # a rerun that rejects the same rows adds nothing to quarantine
    lake = Lake(tmp_path / "lake")
    assert quarantine.write(lake, result.rejections, "run-1") == len(result.rejections)
    again = validate(table, sensor_suite(table.schema), "silver.sensor_readings", key_columns=["source", "node_id"])
    assert quarantine.write(lake, again.rejections, "run-2") == 0


def test_whole_table_invariants_in_duckdb(tmp_path: Path) -> None:
    path = tmp_path / "orders"
    delta.merge(path, pa.table({"id": [1, 2, 2], "machine_id": ["M-1", "M-9", None]}), ["id"], update=False)
    machines = tmp_path / "machines"
    delta.merge(machines, pa.table({"machine_id": ["M-1"]}), ["machine_id"], update=False)
    unique = invariants.unique_keys(delta.dataset(path), ["id"])
    assert not unique.success and unique.observed == 1
    orphans = invariants.references(
        delta.dataset(path), "machine_id", delta.dataset(machines), "machine_id", "machines"
    )
    assert not orphans.success and orphans.observed == 1
    assert invariants.row_count_matches(delta.dataset(path), 3, "source").success


def test_catalog_opens_in_a_plain_duckdb_without_extensions(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    delta.merge(
        lake.table("silver", "lots"), pa.table({"lot_id": ["A", "B"], "kg": [1.5, 2.0]}), ["lot_id"], update=True
    )
    delta.merge(
        lake.table("silver", "lots"), pa.table({"lot_id": ["B", "C"], "kg": [2.5, 3.0]}), ["lot_id"], update=True
    )
    quarantine.write(
        lake, [quarantine.Rejection("silver.lots", "mapping", "bad kg", {"lot_id": "D"}, file="f.csv", row="4")], "run"
    )
    build_catalog(lake, {"silver.lots": TableInfo("supplier:acme", "Material lots")})
    script = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True, "
        "config={'autoinstall_known_extensions': False, 'autoload_known_extensions': False}); "
        "print(c.execute('select lot_id, kg from silver.lots order by lot_id').fetchall()); "
        'print(c.execute("select source, description, row_count, quarantined_rows from catalog '
        "where qualified_name='silver.lots'\").fetchall()); "
        "print(c.execute('select count(*) from duckdb_extensions() "
        "where loaded and install_mode <> \\'STATICALLY_LINKED\\'').fetchall())"
    )
    output = subprocess.run(
        [sys.executable, "-c", script, str(lake.catalog_file)], capture_output=True, text=True, check=True
    ).stdout
    lines = output.strip().splitlines()
    assert lines[0] == "[('A', 1.5), ('B', 2.5), ('C', 3.0)]"
    assert lines[1] == "[('supplier:acme', 'Material lots', 3, 1)]"
    assert lines[2] == "[(0,)]"
    with duckdb.connect(str(lake.catalog_file), read_only=True) as connection:
        assert connection.execute("select count(*) from quarantine.rows").fetchone() == (1,)


def _naive(*parts: int) -> datetime:
    return datetime(*parts)  # noqa: DTZ001 - a time without a zone on purpose: such a column goes to GX in ns


def test_gx_finds_the_same_rows_in_the_forms_it_checks_fast() -> None:
    """Columns go to GX as 1.0/NaN (nulls only), floats (decimals) and nanoseconds (naive times):
    the rows it finds must be those of the values as they are, at their positions."""
    from decimal import Decimal

    from plantlake.quality.suites import Expect

    table = pa.table(
        {
            "lot": pa.array(["L1", None, "L3", "L4", None], pa.string()),
            "kg": pa.array(
                [Decimal("1.5"), Decimal("2000001.25"), None, Decimal("7"), Decimal("-0.001")], pa.decimal128(12, 3)
            ),
            "at": pa.array([_naive(2026, 1, 1), _naive(1970, 1, 1), _naive(2026, 1, 2), None, _naive(2026, 1, 3)]),
            "status": ["ok", "ok", "bad", "ok", "ok"],
        }
    )
    suite = [
        Expect("not_null", "lot"),
        Expect("between", "kg", 0, 1_000_000),
        Expect("between", "at", _naive(2000, 1, 1), _naive(2100, 1, 1)),
        Expect("in_set", "status", values=("ok",)),
    ]
    result = validate(table, suite, "silver.lots")
    failed = {(rejection.field, rejection.row) for rejection in result.rejections}
    assert failed == {
        ("lot", "batch row 1"),
        ("lot", "batch row 4"),
        ("kg", "batch row 1"),
        ("kg", "batch row 4"),
        ("at", "batch row 1"),
        ("status", "batch row 2"),
    }
    assert result.accepted.column("lot").to_pylist() == ["L1", "L4"]


def test_gx_keeps_nothing_of_a_batch_once_it_is_validated() -> None:
    """A silver step validates chunk after chunk: what GX computed on one (a Series per rule, of
    the chunk's length) must not stay behind, or memory grows with the number of chunks."""
    from plantlake.quality.expectations import _batch_definition

    for offset in range(3):
        table = _readings()
        table = table.set_column(4, "value", pa.array([v + offset for v in table["value"].to_pylist()]))
        validate(table, sensor_suite(table.schema), "silver.sensor_readings", key_columns=["source", "node_id"])
    engine = _batch_definition().data_asset.datasource.get_execution_engine()
    assert not engine._metric_cache
    assert not engine.batch_manager.batch_data_cache


def test_gx_does_not_hash_every_batch_it_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """GX fingerprints in-memory batches by hashing them whole (twice a validation), which
    plantlake never reads: 0.86 s of a 5M-row first load's checks."""
    from great_expectations.execution_engine import pandas_execution_engine

    def refuse(_: object) -> str:
        raise AssertionError("GX hashed a whole batch")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", refuse)
    table = _readings()
    result = validate(table, sensor_suite(table.schema), "silver.sensor_readings", key_columns=["source", "node_id"])
    assert result.rows_rejected == 1


def test_gx_lists_failing_rows_only_where_a_rule_breaks_or_broke_in_the_last_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A passing batch is checked with BOOLEAN_ONLY alone; one that breaks a rule is checked
    again with COMPLETE, and so, at once, is the table's next batch; the counts hold throughout."""
    from great_expectations.datasource.fluent.interfaces import Batch

    from plantlake.quality.suites import Expect

    formats: list[str] = []
    real = Batch.validate

    def recorded(self: Batch, expect: object, result_format: dict) -> object:
        formats.append(result_format["result_format"])
        return real(self, expect, result_format=result_format)

    monkeypatch.setattr(Batch, "validate", recorded)
    rules = [Expect("not_null", "id"), Expect("between", "v", 0, 10, on_fail="warn")]
    bad, good = pa.table({"id": [1, 2, None], "v": [1, 50, 3]}), pa.table({"id": [4, 5], "v": [1, 2]})
    seen = []
    for batch in (good, bad, bad, good, good):
        formats.clear()
        result = validate(batch, rules, "silver.formats_test", key_columns=["id"])
        seen.append((tuple(formats), result.rows_rejected, result.warned))
    assert seen == [
        (("BOOLEAN_ONLY",), 0, {}),
        (("BOOLEAN_ONLY", "COMPLETE"), 1, {"v between 0 and 10": 1}),
        (("COMPLETE",), 1, {"v between 0 and 10": 1}),
        (("COMPLETE",), 0, {}),
        (("BOOLEAN_ONLY",), 0, {}),
    ]

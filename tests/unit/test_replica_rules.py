"""A replica stays a replica: generic rules warn, declared rules say what they do, declarations are checked first.

The ERP here is a SQLite file: the path of every dialect without a fast one, and the same
declaration check as PostgreSQL's and MariaDB's (reflection).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlalchemy as sa

from plantlake.assets.erp import build_silver, load_bronze
from plantlake.assets.results import Step
from plantlake.config import ConfigError, ErpSource, TableExpectations, parse_config
from plantlake.lake import delta
from plantlake.lake.catalog import build_catalog
from plantlake.lake.layout import Lake
from plantlake.quality import results
from plantlake.quality.expectations import RuleFailedError, validate
from plantlake.quality.suites import erp_suite

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
NEXT_YEAR = NOW + timedelta(days=400)


def _erp(tmp_path: Path) -> str:
    """`tabWork Order` as ERPNext keeps it: a text key, a planned start that may lie ahead."""
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                'CREATE TABLE "tabWork Order" (name TEXT PRIMARY KEY, status TEXT, qty NUMERIC(10, 3), '
                "planned_start_date DATETIME, modified DATETIME, docstatus INTEGER, idx TEXT)"
            )
        )
        connection.execute(
            sa.text('INSERT INTO "tabWork Order" VALUES (:name, :status, :qty, :start, :modified, 1, :name)'),
            [
                {"name": "WO-1", "status": "Completed", "qty": 5, "start": NOW - timedelta(days=3), "modified": NOW},
                {"name": "WO-2", "status": "Not Started", "qty": 7, "start": NEXT_YEAR, "modified": NOW},
                {"name": "WO-3", "status": "Draft", "qty": -1, "start": NOW, "modified": NOW},
            ],
        )
    engine.dispose()
    return url


def _source(tmp_path: Path, table: str) -> ErpSource:
    text = f"""
lake: {{root: lake}}
sources:
  erp:
    - name: erpnext
      url: {_erp(tmp_path)}
      tables:
        - {{name: "tabBOM", primary_key: [name]}}
        - {table}
"""
    return parse_config(text, tmp_path).sources.erp[0]


def _sync(tmp_path: Path, table: str) -> tuple[Lake, ErpSource, Step]:
    source, lake = _source(tmp_path, table), Lake(tmp_path / "lake")
    declared = source.tables[1]
    load_bronze(lake, source, declared, "run-1")
    step = build_silver(lake, source, declared, "run-1")
    return lake, source, step


def _silver(lake: Lake) -> dict[str, dict]:
    return {row["name"]: row for row in delta.read(lake.table("silver", "erpnext_tabwork_order")).to_pylist()}


# ---------------------------------------------------------------- generic rules warn


def test_a_future_dated_erp_timestamp_reaches_silver_and_the_check_warns(tmp_path: Path) -> None:
    lake, _, step = _sync(tmp_path, '{name: "tabWork Order", primary_key: [name], cursor: modified}')
    rows = _silver(lake)
    assert set(rows) == {"WO-1", "WO-2", "WO-3"}
    assert rows["WO-2"]["planned_start_date"] == NEXT_YEAR.replace(tzinfo=UTC)
    assert step.metadata["rows_quarantined"] == 0 and delta.open_table(lake.quarantine) is None
    # the warning shows in the check: the rule failed for one row, which was kept
    assert not step.validation.success and step.validation.holds
    assert step.validation.warned == {"planned_start_date between 2000-01-01 and tomorrow": 1}


def test_the_generic_timestamp_rule_can_be_made_to_quarantine(tmp_path: Path) -> None:
    lake, _, step = _sync(
        tmp_path, '{name: "tabWork Order", primary_key: [name], expect: {timestamps_sane: quarantine}}'
    )
    assert set(_silver(lake)) == {"WO-1", "WO-3"} and step.metadata["rows_quarantined"] == 1


# ---------------------------------------------------------------- declared rules: quarantine, warn, fail


def test_declared_rules_quarantine_by_default_and_each_may_say_otherwise(tmp_path: Path) -> None:
    expect = (
        "expect: {ranges: {qty: [0, 100]}, "
        "allowed: {status: {values: [Completed, Not Started], on_fail: warn}}, "
        "not_null: [{column: docstatus, on_fail: fail}]}"
    )
    lake, _, step = _sync(tmp_path, f'{{name: "tabWork Order", primary_key: [name], {expect}}}')
    assert set(_silver(lake)) == {"WO-1", "WO-2"}  # WO-3's negative qty: quarantined; its Draft status: a warning
    assert step.metadata["rows_quarantined"] == 1
    assert step.validation.warned == {
        "status in ['Completed', 'Not Started']": 1,
        "planned_start_date between 2000-01-01 and tomorrow": 1,
    }
    assert not step.validation.holds


def test_a_rule_that_fails_stops_the_step_naming_the_rule_and_the_table() -> None:
    table = pa.table({"name": ["WO-1", "WO-2"], "qty": [5.0, -1.0]})
    expect = TableExpectations.model_validate({"ranges": {"qty": {"min": 0, "on_fail": "fail"}}})
    with pytest.raises(RuleFailedError, match=r"silver.erpnext_tabwork_order: rule 'qty between 0.0 and None'") as e:
        validate(table, erp_suite(["name"], expect, table.schema), "silver.erpnext_tabwork_order", "erpnext", ["name"])
    assert "on_fail: fail" in str(e.value) and "name=WO-2" in str(e.value) and "-1.0" in str(e.value)


def test_the_short_and_long_forms_of_a_rule_agree() -> None:
    expect = TableExpectations.model_validate(
        {
            "on_fail": "warn",
            "ranges": {"a": [0, 1], "b": {"max": 5, "on_fail": "fail"}},
            "allowed": {"s": ["x"]},
            "not_null": ["c", {"column": "d", "on_fail": "quarantine"}],
        }
    )
    assert expect.range_rules() == [("a", 0, 1, "warn"), ("b", None, 5, "fail")]
    assert expect.allowed_rules() == [("s", ["x"], "warn")]
    assert expect.not_null_rules() == [("c", "warn"), ("d", "quarantine")]
    with pytest.raises(ValueError, match="on_fail"):
        TableExpectations.model_validate({"ranges": {"a": {"min": 0, "on_fail": "ignore"}}})


# ---------------------------------------------------------------- declarations checked against the source first


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '{name: "tabWork Order", primary_key: [idd], cursor: modified}',
            'sources.erp[0].tables[1].primary_key: column "idd" does not exist in "tabWork Order" '
            '(did you mean "idx"?)',
        ),
        ('{name: "tabWork Order", primary_key: [name], cursor: modifed}', 'tables[1].cursor: column "modifed"'),
        ('{name: "tabWork Order", primary_key: [name], include: [name, qtty]}', 'tables[1].include: column "qtty"'),
        ('{name: "tabWork Order", primary_key: [name], exclude: [secret]}', 'tables[1].exclude: column "secret"'),
        ('{name: "tabWork Order", primary_key: [name], personal_data: [email]}', "tables[1].personal_data"),
        ('{name: "tabWork Order", primary_key: [name], where: [{column: company, value: 1}]}', "tables[1].where"),
        (
            '{name: "tabWork Order", primary_key: [name], exclude: [status], expect: {allowed: {status: [a]}}}',
            'tables[1].expect: column "status" is not a landed column of "tabWork Order"',
        ),
        (
            '{name: "tabWork Order", primary_key: [name], cursor: idx, lookback: 1h}',
            "tables[1].lookback: '1h' does not fit the cursor 'idx', a string (neither time nor number) column; "
            "give no look-back",
        ),
        (
            '{name: "tabWork Order", primary_key: [name], cursor: modified, lookback: 500}',
            "tables[1].lookback: 500 does not fit the cursor 'modified', a time column; give a duration",
        ),
        (
            '{name: "tabWork Order", primary_key: [name], cursor: docstatus, lookback: 2h}',
            "a numeric column; give a number",
        ),
    ],
)
def test_a_declaration_that_does_not_fit_the_source_is_reported_before_bronze_is_written(
    tmp_path: Path, table: str, message: str
) -> None:
    source, lake = _source(tmp_path, table), Lake(tmp_path / "lake")
    with pytest.raises(ConfigError) as raised:
        load_bronze(lake, source, source.tables[1], "run-1")
    assert message in str(raised.value)
    assert "the columns of 'tabWork Order' are ['name', 'status'" in str(raised.value)
    assert not lake.table("bronze", "erpnext_tabwork_order").exists()
    assert not (lake.root / "meta").exists()  # no schema change was noted either


def test_every_problem_of_a_table_is_reported_at_once(tmp_path: Path) -> None:
    source = _source(tmp_path, '{name: "tabWork Order", primary_key: [id], cursor: changed}')
    with pytest.raises(ConfigError) as raised:
        load_bronze(Lake(tmp_path / "lake"), source, source.tables[1], "run-1")
    assert "primary_key" in str(raised.value) and "cursor" in str(raised.value)


def test_the_catalog_tells_a_warning_from_a_failure(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    for name in ("warned", "failed", "clean"):
        delta.merge(lake.table("silver", name), pa.table({"id": [1]}), ["id"], update=True)
    rule = "planned_start_date between 2000-01-01 and tomorrow"
    results.record(lake, "silver.warned", "expectations", "gx", False, {"failed": {rule: 1}, "warned": {rule: 1}}, "r")
    results.record(lake, "silver.failed", "expectations", "gx", False, {"failed": {rule: 1}, "warned": {}}, "r")
    results.record(lake, "silver.clean", "expectations", "gx", True, {"failed": {}, "warned": {}}, "r")
    build_catalog(lake, {})
    with duckdb.connect(str(lake.catalog_file), read_only=True) as connection:
        status = dict(connection.execute("SELECT qualified_name, quality_status FROM catalog").fetchall())
    assert status["silver.warned"] == "warned: expectations"
    assert status["silver.failed"] == "failed: expectations"
    assert status["silver.clean"] == "passed"

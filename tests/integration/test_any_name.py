"""Any name works, and a replica stays a replica: ERPNext's `tabWork Order` in PostgreSQL and MariaDB.

The table's name has a space and capitals, its columns hold spaces, punctuation, quotes,
non-ASCII letters and SQL keywords, and the lake root's path has a space. One night runs
through the real Definitions (`refresh_all`, then the catalog); silver must equal the source
row for row, including a planned start years in the future, and the catalog must answer for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa
import yaml
from erp_compare import assert_silver_equals_source, sync

from plantlake.config import ErpSource, load_config
from plantlake.lake.layout import Lake
from plantlake.pipelines.factory import build_definitions
from plantlake.pipelines.runs import refresh_and_publish

pytestmark = pytest.mark.integration

TABLE = "tabWork Order"
LAKE_TABLE = "erpnext_tabwork_order"
NOW = datetime.now().replace(microsecond=0)  # noqa: DTZ005 - the source stores naive local times, as ERPNext does
FUTURE = NOW.replace(year=NOW.year + 2)


def _create(url: str) -> sa.Table:
    engine = sa.create_engine(url)
    table = sa.Table(
        TABLE,
        sa.MetaData(),
        sa.Column("Work Order No.", sa.String(140), primary_key=True),  # the key has a space and a dot
        sa.Column("qty to produce", sa.Numeric(12, 3)),
        sa.Column("Größe", sa.String(40)),
        sa.Column("order", sa.Integer),  # an SQL keyword
        sa.Column('say "hi"; drop', sa.String(40)),  # quotes and punctuation
        sa.Column("e-mail", sa.String(80)),
        sa.Column("planned_start_date", sa.DateTime),
        sa.Column("modified", sa.DateTime, nullable=False),
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(table.insert(), [_row(i, NOW - timedelta(days=1)) for i in range(1, 6)])
        # ERPNext plans work orders ahead: a planned start years away is a source value like any other
        connection.execute(table.insert(), [{**_row(6, NOW - timedelta(days=1)), "planned_start_date": FUTURE}])
    engine.dispose()
    return table


def _row(number: int, modified: datetime) -> dict:
    return {
        "Work Order No.": f"MFG-WO-2026-{number:05d}",
        "qty to produce": Decimal(f"{number}.125"),
        "Größe": "groß" if number % 2 else "klein",
        "order": number,
        'say "hi"; drop': f"it's {number}",
        "e-mail": f"planner{number}@example.com",
        "planned_start_date": NOW - timedelta(hours=number),
        "modified": modified,
    }


def _config(tmp_path: Path, url: str, **table: object) -> Path:
    declared = {
        "name": TABLE,
        "primary_key": ["Work Order No."],
        "cursor": "modified",
        "lookback": "1h",
        "personal_data": ["e-mail"],
        "where": [{"column": "order", "op": "in", "value": list(range(1, 10))}],
        "deletes": {"every_hours": 0},
        **table,
    }
    text = yaml.safe_dump(
        {
            "lake": {"root": str(tmp_path / "plant lake")},  # a space in the lake root's path
            "sources": {"erp": [{"name": "erpnext", "url": url, "tables": [declared]}]},
        },
        allow_unicode=True,
    )
    path = tmp_path / "plantlake.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _catalog(lake: Lake) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(lake.catalog_file), read_only=True)


def test_a_table_named_like_erpnext_runs_through_dagster_into_the_catalog(
    erp_database_url: str, tmp_path: Path
) -> None:
    table = _create(erp_database_url)
    config = load_config(_config(tmp_path, erp_database_url))
    lake = Lake(config.lake.root)
    definitions = build_definitions(config)
    assert {("bronze", LAKE_TABLE), ("silver", LAKE_TABLE)} <= {
        tuple(key.path) for key in definitions.resolve_asset_graph().get_all_asset_keys()
    }
    with dg.instance_for_test() as instance:
        night = refresh_and_publish(definitions, instance)
        assert night.refresh.success, [
            e.event_specific_data.error.message
            for e in night.refresh.all_events
            if e.event_type_value == "STEP_FAILURE"
        ]
        assert_silver_equals_source(lake, config.sources.erp[0])  # the future planned start included
        with _catalog(lake) as connection:
            found = connection.execute(
                f'SELECT count(*), max(planned_start_date), sum("qty to produce") FROM silver.{LAKE_TABLE}'
            ).fetchone()
            status = connection.execute(
                "SELECT row_count, quality_status, freshness FROM catalog WHERE qualified_name = ?",
                [f"silver.{LAKE_TABLE}"],
            ).fetchone()
            quarantined = connection.execute("SELECT count(*) FROM catalog WHERE quarantined_rows > 0").fetchone()
        assert found[0] == 6 and found[1].year == FUTURE.year
        assert found[2] == sum(Decimal(f"{n}.125") for n in range(1, 7))
        # the planned start years ahead is kept; the generic timestamp rule only warns
        assert status == (6, "warned: expectations", "fresh")
        assert quarantined == (0,)

        # a second night: an update, an insert and a delete, read incrementally through the quoted names
        engine = sa.create_engine(erp_database_url)
        later = NOW + timedelta(minutes=1)
        with engine.begin() as connection:
            connection.execute(
                table.update()
                .where(table.c["Work Order No."] == "MFG-WO-2026-00001")
                .values({"Größe": "größer", "modified": later})
            )
            connection.execute(table.insert(), [_row(7, later)])
            connection.execute(table.delete().where(table.c["Work Order No."] == "MFG-WO-2026-00002"))
        engine.dispose()
        assert refresh_and_publish(definitions, instance).refresh.success
        assert_silver_equals_source(lake, config.sources.erp[0])

        def metadata(layer: str) -> dict:
            event = instance.get_latest_materialization_event(dg.AssetKey([layer, LAKE_TABLE]))
            return event.asset_materialization.metadata

        assert metadata("silver")["rows_deleted"].value == 1
        assert metadata("bronze")["reader"].value in ("adbc", "connectorx")  # the fast paths, not the portable one
        columns = {c.name: c for c in metadata("silver")["dagster/column_schema"].value.columns}
        assert columns["e-mail"].tags == {"personal_data": "true"} and set(columns) >= {"Größe", "order"}
    assert not list(lake.local.glob("*.tmp"))


def test_a_table_named_like_erpnext_reads_through_the_portable_path(erp_database_url: str, tmp_path: Path) -> None:
    """The same table through SQLAlchemy's streaming cursor (`fast_path: false`)."""
    _create(erp_database_url)
    config = load_config(_config(tmp_path, erp_database_url))
    source = ErpSource.model_validate({**config.sources.erp[0].model_dump(), "fast_path": False})
    lake = Lake(config.lake.root)
    stats = sync(lake, source, "run-1")
    assert stats[TABLE]["reader"] == "sqlalchemy" and stats[TABLE]["rows_inserted"] == 6
    assert_silver_equals_source(lake, source)

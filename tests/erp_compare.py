"""Helpers for ERP tests: run one sync, and compare silver with the source row for row."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from plantlake.assets.erp import BOOKKEEPING, build_silver, load_bronze, table_name
from plantlake.config import ErpSource, ErpTable
from plantlake.lake import delta
from plantlake.lake.deletes import DELETED_AT
from plantlake.lake.layout import Lake


def sync(lake: Lake, source: ErpSource, run_id: str, tables: list[ErpTable] | None = None) -> dict[str, dict]:
    """Bronze then silver for each table, as the Dagster assets do; returns their metadata by table."""
    stats = {}
    for table in tables or source.tables:
        landed = load_bronze(lake, source, table, run_id)
        merged = build_silver(lake, source, table, run_id)
        stats[table.name] = {**landed.metadata, **{f"silver_{k}": v for k, v in merged.metadata.items()}}
        assert merged.validation.holds, merged.validation.rejections  # no row kept out (a warning keeps its row)
    return stats


def _normalise(value: object, zone: ZoneInfo) -> object:
    if isinstance(value, datetime):
        return value.replace(tzinfo=zone).astimezone(UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def source_rows(engine: sa.Engine, source: ErpSource, table: ErpTable) -> list[dict]:
    """The rows the lake should hold: the declared columns of the rows meeting the row filter."""
    reflected = sa.Table(table.name, sa.MetaData(), autoload_with=engine)
    columns = [c for c in (table.include or reflected.c.keys()) if c not in table.exclude]
    # floats as the driver's float, not the Decimal SQLAlchemy makes of MySQL's DOUBLE
    query = sa.select(
        *[
            sa.type_coerce(reflected.c[c], sa.Double(asdecimal=False)).label(c)
            if isinstance(reflected.c[c].type, sa.Float)
            else reflected.c[c]
            for c in columns
        ]
    )
    for condition in table.where:
        column = reflected.c[condition.column]
        query = query.where(column.in_(condition.value) if condition.op == "in" else column == condition.value)
    zone = ZoneInfo(source.timezone)
    with engine.connect() as connection:
        rows = [{k: _normalise(v, zone) for k, v in row._mapping.items()} for row in connection.execute(query)]
    return sorted(rows, key=lambda row: tuple(row[k] for k in table.primary_key))


def silver_rows(lake: Lake, source: ErpSource, table: ErpTable) -> list[dict]:
    """Silver's rows not marked deleted, without the lake's bookkeeping columns."""
    data = delta.read(lake.table("silver", table_name(source, table)))
    rows = [row for row in data.to_pylist() if row.get(DELETED_AT) is None]
    rows = [{k: v for k, v in row.items() if k not in BOOKKEEPING} for row in rows]
    return sorted(rows, key=lambda row: tuple(row[k] for k in table.primary_key))


def assert_silver_equals_source(lake: Lake, source: ErpSource, tables: list[ErpTable] | None = None) -> None:
    engine = sa.create_engine(source.url)
    try:
        for table in tables or source.tables:
            expected, actual = source_rows(engine, source, table), silver_rows(lake, source, table)
            assert len(actual) == len(expected), f"{table.name}: silver has {len(actual)} rows, source {len(expected)}"
            for lake_row, source_row in zip(actual, expected, strict=True):
                assert lake_row == source_row, (
                    f"{table.name}: silver row {lake_row} differs from the source {source_row}"
                )
    finally:
        engine.dispose()

"""ERP tables: one bronze and one silver asset per table declared in the YAML."""

import dagster as dg
import pyarrow.dataset as ds
import sqlalchemy as sa

from assets.factory import bronze_asset, silver_assets
from assets.results import Step
from assets.steps import merge_validated
from connectors import sql
from lake import bronze, delta, silver, transforms
from lake.layout import Ingestion, Lake
from pipelines.config import ErpSource, ErpTable
from quality import invariants, suites


def table_name(source: ErpSource, table: ErpTable) -> str:
    return f"{source.name}_{table.name}"


def load_bronze(lake: Lake, source: ErpSource, table: ErpTable, run_id: str) -> Step:
    """Land rows changed since the committed watermark, up to the cursor's maximum now."""
    path = lake.table("bronze", table_name(source, table))
    engine = sa.create_engine(source.url)
    try:
        source_table = sql.reflect_table(engine, table.name)
        since = bronze.decode_watermark(delta.read_state(path, "watermark"))
        until = sql.max_cursor(engine, source_table, table.cursor) if table.cursor else None
        batches = sql.read_batches(engine, source_table, table.cursor, since, until, source.batch_rows)
        keys = [*table.primary_key, table.cursor] if table.cursor else list(source_table.c.keys())
        state = {"watermark": bronze.encode_watermark(until)} if table.cursor else None
        landed = bronze.land(path, batches, sql.arrow_schema(source_table), keys, Ingestion.now(run_id), source.name, state)
    finally:
        engine.dispose()
    return Step(path, {"rows_read": landed.rows_read, "rows_inserted": landed.rows_inserted,
                       "watermark": str(until) if until is not None else "none"})  # fmt: skip


def build_silver(lake: Lake, source: ErpSource, table: ErpTable, run_id: str) -> Step:
    """Newest version per primary key, validated; failing rows go to quarantine."""
    name, keys = table_name(source, table), table.primary_key
    path = lake.table("silver", name)
    chunks = silver.pending_chunks(path, {name: silver.BronzeInput(lake.table("bronze", name), keys)})
    return merge_validated(lake, path, chunks, lambda work: (transforms.erp_rows(work.rows[name], keys, table.cursor), []),
                           lambda schema: suites.erp_suite(keys, table.expect, schema), keys, run_id, source.name)  # fmt: skip


def silver_invariants(data: ds.Dataset, lake: Lake, source: ErpSource, table: ErpTable) -> list[invariants.InvariantResult]:
    """Unique primary key, references to other tables, and the source's row count."""
    found = [invariants.unique_keys(data, table.primary_key)]
    for column, target in table.references.items():
        parent_table, parent_column = target.split(".")
        parent = delta.dataset(lake.table("silver", f"{source.name}_{parent_table}"))
        if parent is not None:
            found.append(invariants.references(data, column, parent, parent_column, f"{source.name}.{parent_table}"))
    engine = sa.create_engine(source.url)
    try:
        expected = sql.count_rows(engine, sql.reflect_table(engine, table.name))
    finally:
        engine.dispose()
    found.append(invariants.row_count_matches(data, expected, f"source table {table.name}"))
    return found


def erp_assets(source: ErpSource) -> list:
    return [definition for table in source.tables for definition in _table_assets(source, table)]


def _table_assets(source: ErpSource, table: ErpTable) -> list:
    name = table_name(source, table)
    bronze_key, silver_key = dg.AssetKey(["bronze", name]), dg.AssetKey(["silver", name])
    return [
        bronze_asset(bronze_key, "erp", {"sql"},
                     f"Rows of ERP table {table.name} as landed from {source.name}. {table.description}",
                     lambda lake, run_id: load_bronze(lake, source, table, run_id)),
        *silver_assets(silver_key, [bronze_key], "erp",
                       f"ERP table {table.name}, newest version per key. {table.description}",
                       lambda lake, run_id: build_silver(lake, source, table, run_id),
                       lambda data, lake: silver_invariants(data, lake, source, table),
                       "Unique keys, references, source row count"),
    ]  # fmt: skip

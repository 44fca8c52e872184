"""ERP tables: one bronze and one silver asset per table declared in the YAML."""

import dagster as dg
import pyarrow.dataset as ds
import sqlalchemy as sa

from assets.resources import PlantlakeResource
from assets.results import OWNERS, Step, expectation_spec, invariants_result, materialize
from connectors import sql
from assets.steps import merge_validated
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
    name = table_name(source, table)
    path = lake.table("silver", name)
    work = silver.pending(path, {name: lake.table("bronze", name)})
    incoming = transforms.erp_rows(work.rows[name], table.primary_key, table.cursor) if name in work.rows else None
    suite = suites.erp_suite(table.primary_key, table.expect, incoming.schema) if incoming is not None else []
    return merge_validated(lake, path, work, incoming, suite, table.primary_key, run_id, source=source.name)


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


def erp_assets(source: ErpSource) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    return [definition for table in source.tables for definition in _table_assets(source, table)]


def _table_assets(source: ErpSource, table: ErpTable) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    name = table_name(source, table)
    bronze_key, silver_key = dg.AssetKey(["bronze", name]), dg.AssetKey(["silver", name])

    @dg.asset(key=bronze_key, group_name="erp", owners=OWNERS, kinds={"sql", "delta"},
              description=f"Rows of ERP table {table.name} as landed from {source.name}. {table.description}")  # fmt: skip
    def bronze_asset(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Land new and changed rows of one ERP table."""
        return materialize(context, plantlake.lake, load_bronze(plantlake.lake, source, table, context.run.run_id))

    @dg.asset(key=silver_key, deps=[bronze_key], group_name="erp", owners=OWNERS, kinds={"delta"},
              check_specs=[expectation_spec(silver_key)],
              description=f"ERP table {table.name}, newest version per key. {table.description}")  # fmt: skip
    def silver_asset(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Merge new bronze rows into silver on the primary key."""
        return materialize(context, plantlake.lake, build_silver(plantlake.lake, source, table, context.run.run_id))

    @dg.asset_check(asset=silver_key, name="invariants", blocking=True, description="Unique keys, references, source row count")
    def silver_check(context: dg.AssetCheckExecutionContext, plantlake: PlantlakeResource) -> dg.AssetCheckResult:
        """DuckDB invariants over the whole silver table."""
        lake = plantlake.lake
        return invariants_result(context, lake, silver_key, lake.table("silver", name),
                                 lambda data: silver_invariants(data, lake, source, table), blocking=False)  # fmt: skip

    return [bronze_asset, silver_asset, silver_check]

"""What analysts open: the DuckDB catalog, and the GX Data Docs."""

import json

import dagster as dg
import pyarrow as pa

from plantlake.assets.factory import table_pool
from plantlake.assets.resources import PlantlakeResource
from plantlake.assets.results import OWNERS
from plantlake.config import PlantlakeConfig
from plantlake.config.models import ModelSpec, load_models
from plantlake.lake import delta, locks
from plantlake.lake.catalog import TableInfo, build_catalog
from plantlake.lake.layout import Lake
from plantlake.quality import suites
from plantlake.quality.docs import DocsTable, build_data_docs

CATALOG = dg.AssetKey(["catalog"])
DATA_DOCS = dg.AssetKey(["data_docs"])


def table_infos(
    config: PlantlakeConfig, descriptions: dict[str, str], upstream: dict[str, tuple[str, ...]] | None = None
) -> dict[str, TableInfo]:
    """Source, description and upstream tables of each table, for the catalog, from the asset definitions."""
    sources: dict[str, str] = {}
    for erp in config.sources.erp:
        for table in erp.tables:
            for layer in ("bronze", "silver"):
                sources[f"{layer}.{erp.lake_table(table)}"] = f"erp:{erp.name}"
    for server in config.sources.opcua:
        sources[f"bronze.{server.name}_readings"] = f"opcua:{server.name}"
        sources[f"bronze.{server.name}_tags"] = f"opcua:{server.name}"
    for log in config.sources.logs:
        sources[f"bronze.{log.name}_events"] = f"logs:{log.name}"
    for supplier in config.sources.suppliers:
        sources[f"bronze.{supplier.name}_rows"] = f"supplier:{supplier.name}"
        sources.setdefault(f"silver.{supplier.target}", f"supplier:{supplier.name}")
    sources.setdefault("silver.sensor_readings", "opcua")
    sources.setdefault("silver.opcua_tags", "opcua")
    sources.setdefault("silver.machine_events", "logs")
    for model in load_models(config.gold.models):
        sources.setdefault(f"gold.{model.name}", "silver")
    upstream = upstream or {}
    return {
        name: TableInfo(
            sources.get(name, "plantlake"), descriptions.get(name, ""), upstream.get(name, ()), owner=OWNERS[0]
        )
        for name in {*sources, *descriptions, *upstream}
    }


def suite_for(
    config: PlantlakeConfig, models: dict[str, ModelSpec], qualified: str, schema: pa.Schema
) -> list[suites.Expect]:
    """The row-level suite of a silver or gold table, as used at ingestion; `models` by qualified name."""
    _, name = qualified.split(".", 1)
    if qualified in models:
        return suites.model_suite(models[qualified], schema)
    if qualified == "silver.sensor_readings":
        return suites.sensor_suite(schema)
    if qualified == "silver.machine_events":
        return suites.event_suite(schema)
    for erp in config.sources.erp:
        for table in erp.tables:
            if name == erp.lake_table(table):
                return suites.erp_suite(table.primary_key, table.expect, schema)
    for source in config.sources.suppliers:
        if name == source.target:
            return suites.supplier_suite(source.columns, source.key, schema)
    return suites.timestamps_sane(schema)


def docs_tables(lake: Lake, config: PlantlakeConfig) -> dict[str, DocsTable]:
    tables = {}
    checks = sql_checks(lake)
    models = {f"gold.{model.name}": model for model in load_models(config.gold.models)}  # read once, not per table
    for layer, name, path in lake.tables():
        if layer in ("silver", "gold"):
            table = delta.load(path)
            data = table.to_pyarrow_dataset()
            qualified = f"{layer}.{name}"
            tables[qualified] = DocsTable(
                data, table.version(), suite_for(config, models, qualified, data.schema), checks.get(qualified, {})
            )
    return tables


def sql_checks(lake: Lake) -> dict[str, dict[str, tuple[bool, str]]]:
    """Per table, the newest outcome of each SQL invariant, as the invariants checks recorded them."""
    recorded = delta.read(lake.quality_results)
    found: dict[str, dict[str, tuple[bool, str]]] = {}
    for row in [] if recorded is None else recorded.to_pylist():
        if row["kind"] != "sql":
            continue
        for name, outcome in json.loads(row["details"] or "{}").items():
            seen = f"{outcome.get('observed')}" + (f" ({outcome['detail']})" if outcome.get("detail") else "")
            found.setdefault(row["table_name"], {})[name] = (bool(outcome.get("passed")), seen)
    return found


def publish_assets(
    config: PlantlakeConfig,
    tables: list[dg.AssetKey],
    descriptions: dict[str, str],
    upstream: dict[str, tuple[str, ...]],
) -> list:
    """The catalog and the Data Docs; the `publish` job runs them after every refresh, failed or not."""

    @dg.asset(
        key=CATALOG,
        deps=tables,
        group_name="publish",
        owners=OWNERS,
        kinds={"duckdb"},
        description="catalog.duckdb at the lake root: every table as bronze.x, silver.x, gold.x, and a catalog "
        "table; catalog/index.html, the same catalog as a page to read.",
        pool=table_pool(CATALOG),
    )
    def catalog(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Rebuild the DuckDB catalog over the lake's current tables."""
        path = build_catalog(plantlake.lake, table_infos(plantlake.config, descriptions, upstream))
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(path)),
                "page": dg.MetadataValue.path(str(plantlake.lake.catalog_page)),
                "tables": sum(1 for _ in plantlake.lake.tables()),
            }
        )

    @dg.asset(
        key=DATA_DOCS,
        deps=[t for t in tables if t.path[0] in ("silver", "gold")],
        group_name="publish",
        owners=OWNERS,
        kinds={"great_expectations"},
        description="Great Expectations Data Docs for every silver and gold table, under the lake root.",
        pool=table_pool(DATA_DOCS),
    )
    def data_docs(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Validate silver and gold tables and rebuild the Data Docs site."""
        lake = plantlake.lake
        with locks.exclusive(lake.table("meta", "data_docs")):  # one builder at a time
            index = build_data_docs(lake.data_docs_dir, docs_tables(lake, plantlake.config))
        return dg.MaterializeResult(metadata={"index": dg.MetadataValue.path(str(index))})

    return [catalog, data_docs]

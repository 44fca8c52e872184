"""Tables the steps write beside their own and the catalog publishes: assets too, so the UI shows
them with their lineage. They are not materialized on their own: the steps named upstream write
them. Their descriptions here are the catalog's too."""

import dagster as dg

from plantlake.assets.factory import owners_of
from plantlake.assets.results import OWNERS
from plantlake.config import PlantlakeConfig


def _layer(keys: list[dg.AssetKey], *layers: str) -> list[dg.AssetKey]:
    return [key for key in keys if key.path[0] in layers]


def published_table_specs(config: PlantlakeConfig, tables: list[dg.AssetKey]) -> list[dg.AssetSpec]:
    """silver.opcua_tags, quarantine.rows and the meta tables, each downstream of the steps that write it."""
    supplier_bronze = [key for key in _layer(tables, "bronze") if key.path[-1].endswith("_rows")]
    readings_bronze = [key for key in _layer(tables, "bronze") if key.path[-1].endswith("_readings")]
    # key, written after, owners, description
    written: list[tuple[str, list[dg.AssetKey], list[str], str]] = [
        (
            "quarantine/rows",
            [*_layer(tables, "silver"), *supplier_bronze],
            OWNERS,
            "Rows kept out of the lake, with table, file, row, field, value, check and reason.",
        ),
        (
            "meta/quality_results",
            _layer(tables, "silver", "gold"),
            OWNERS,
            "Newest result of every quality check: table, check, success, details.",
        ),
        (
            "meta/schema_changes",
            _layer(tables, "bronze", "silver"),
            OWNERS,
            "Every column change found in a source: table, column, added, widened or removed, old and new type, "
            "when and in which run.",
        ),
        (
            "meta/run_failures",
            [],
            OWNERS,
            "Every failed run: job, failed steps and their errors.",
        ),
    ]
    if config.sources.opcua:
        written.append(
            (
                "silver/opcua_tags",
                readings_bronze,
                owners_of(config.sources.opcua),
                "Every historized OPC-UA tag: node id, browse path, machine, data type, engineering unit, range and "
                "description, as the servers report them.",
            )
        )
    if config.sources.suppliers:
        written.append(
            (
                "meta/supplier_files",
                supplier_bronze,
                owners_of(config.sources.suppliers),
                "Every supplier file by content hash: version, status, rows read, loaded, quarantined and skipped, "
                "why it was rejected, where it was moved.",
            )
        )
    return [
        dg.AssetSpec(
            dg.AssetKey.from_user_string(key),
            deps=deps,
            group_name="silver" if key.startswith("silver/") else "quality",
            owners=owners,
            kinds={"delta"},
            description=description,
        )
        for key, deps, owners, description in written
    ]

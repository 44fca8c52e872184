"""Tables the steps write beside their own and the catalog publishes: assets too, so the UI shows
them with their lineage. They are not materialized on their own: the steps named upstream write them."""

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
            "Rows kept out of the lake, with table, file, row, field, value, check and reason; written by the "
            "silver steps and the supplier landings.",
        ),
        (
            "meta/quality_results",
            _layer(tables, "silver", "gold"),
            OWNERS,
            "Newest result of every quality check per table: written by each check.",
        ),
        (
            "meta/schema_changes",
            _layer(tables, "bronze", "silver"),
            OWNERS,
            "Every column a source added, widened or dropped: written by the steps that met it.",
        ),
        (
            "meta/run_failures",
            [],
            OWNERS,
            "Every failed run with its failed steps and errors: written by the failed-run sensor.",
        ),
    ]
    if config.sources.opcua:
        written.append(
            (
                "silver/opcua_tags",
                readings_bronze,
                owners_of(config.sources.opcua),
                "Every OPC-UA tag the servers report: node id, browse path, machine, data type, engineering unit, "
                "range and description; written by the sensor_readings step.",
            )
        )
    if config.sources.suppliers:
        written.append(
            (
                "meta/supplier_files",
                supplier_bronze,
                owners_of(config.sources.suppliers),
                "Every supplier file by content hash: version, status, rows, where it went and why.",
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

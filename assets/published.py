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
    specs = [
        dg.AssetSpec(
            ["quarantine", "rows"],
            deps=[*_layer(tables, "silver"), *supplier_bronze],
            group_name="quality",
            owners=OWNERS,
            kinds={"delta"},
            description="Rows kept out of the lake, with table, file, row, field, value, check and reason; "
            "written by the silver steps and the supplier landings.",
        ),
        dg.AssetSpec(
            ["meta", "quality_results"],
            deps=_layer(tables, "silver", "gold"),
            group_name="quality",
            owners=OWNERS,
            kinds={"delta"},
            description="Newest result of every quality check per table: written by each check.",
        ),
        dg.AssetSpec(
            ["meta", "schema_changes"],
            deps=_layer(tables, "bronze", "silver"),
            group_name="quality",
            owners=OWNERS,
            kinds={"delta"},
            description="Every column a source added, widened or dropped: written by the steps that met it.",
        ),
        dg.AssetSpec(
            ["meta", "run_failures"],
            group_name="quality",
            owners=OWNERS,
            kinds={"delta"},
            description="Every failed run with its failed steps and errors: written by the failed-run sensor.",
        ),
    ]
    if config.sources.opcua:
        specs.append(
            dg.AssetSpec(
                ["silver", "opcua_tags"],
                deps=[key for key in _layer(tables, "bronze") if key.path[-1].endswith("_readings")],
                group_name="silver",
                owners=owners_of(config.sources.opcua),
                kinds={"delta", "opcua"},
                description="Every OPC-UA tag the servers report: node id, browse path, machine, data type, "
                "engineering unit, range and description; written by the sensor_readings step.",
            )
        )
    if config.sources.suppliers:
        specs.append(
            dg.AssetSpec(
                ["meta", "supplier_files"],
                deps=supplier_bronze,
                group_name="quality",
                owners=owners_of(config.sources.suppliers),
                kinds={"delta"},
                description="Every supplier file by content hash: version, status, rows, where it went and why.",
            )
        )
    return specs

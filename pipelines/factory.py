"""Build the one Definitions object (assets, checks, jobs, schedule, sensor) from a plantlake config."""

from __future__ import annotations

import dagster as dg

from assets.erp import erp_assets
from assets.gold import gold_assets
from assets.logs import log_assets
from assets.opcua import opcua_assets
from assets.opcua_backfill import backfill_job
from assets.publish import DATA_DOCS, publish_assets, table_infos
from assets.resources import PlantlakeResource
from assets.suppliers import bronze_key as supplier_bronze_key
from assets.suppliers import supplier_assets
from pipelines.config import PlantlakeConfig
from pipelines.sensors import failed_runs_sensor, supplier_files_sensor


def build_definitions(config: PlantlakeConfig) -> dg.Definitions:
    source_assets = [
        *[definition for erp in config.sources.erp for definition in erp_assets(erp)],
        *opcua_assets(config.sources.opcua),
        *log_assets(config.sources.logs),
        *supplier_assets(config.sources.suppliers),
        *gold_assets(config),
    ]
    tables = [d for d in source_assets if isinstance(d, dg.AssetsDefinition) and not isinstance(d, dg.AssetChecksDefinition)]
    keys = [key for definition in tables for key in definition.keys]
    descriptions = {".".join(key.path): definition.descriptions_by_key.get(key, "") for definition in tables for key in definition.keys}
    everything = [*source_assets, *publish_assets(config, keys, descriptions)]

    refresh_all = dg.define_asset_job("refresh_all", selection=dg.AssetSelection.all(),
                                      description="Ingest every source, rebuild silver and gold, publish catalog and Data Docs.")  # fmt: skip
    supplier_keys = [supplier_bronze_key(source) for source in config.sources.suppliers]
    supplier_job = dg.define_asset_job(
        "supplier_files",
        selection=dg.AssetSelection.assets(*supplier_keys).downstream() - dg.AssetSelection.assets(DATA_DOCS),
        description="Land new supplier files and refresh what depends on them.",
    )
    nightly = dg.ScheduleDefinition(name="nightly_refresh", job=refresh_all, cron_schedule=config.schedule.cron,
                                    execution_timezone=config.schedule.timezone,
                                    default_status=dg.DefaultScheduleStatus.RUNNING)  # fmt: skip
    sensors = [failed_runs_sensor(config, table_infos(config, descriptions))]
    if config.sources.suppliers:
        sensors.append(supplier_files_sensor(config, supplier_job))
    return dg.Definitions(
        assets=[d for d in everything if not isinstance(d, dg.AssetChecksDefinition)],
        asset_checks=[d for d in everything if isinstance(d, dg.AssetChecksDefinition)],
        jobs=[refresh_all, *([supplier_job] if supplier_keys else []), *(backfill_job(s) for s in config.sources.opcua)],
        schedules=[nightly],
        sensors=sensors,
        resources={"plantlake": PlantlakeResource(config_path=str(config.path))},
    )


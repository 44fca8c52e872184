"""Build the one Definitions object (assets, checks, jobs, schedules, sensors) from a plantlake config."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from plantlake.assets.erp import erp_assets
from plantlake.assets.gold import buildable_models, gold_assets, rebuild_job
from plantlake.assets.logs import log_assets
from plantlake.assets.maintenance import maintenance_job
from plantlake.assets.opcua import opcua_assets
from plantlake.assets.opcua_backfill import backfill_job
from plantlake.assets.publish import CATALOG, DATA_DOCS, publish_assets
from plantlake.assets.published import published_table_specs
from plantlake.assets.resources import PlantlakeResource
from plantlake.assets.results import WRITES_TAG
from plantlake.assets.suppliers import bronze_key as supplier_bronze_key
from plantlake.assets.suppliers import supplier_assets
from plantlake.config import PlantlakeConfig
from plantlake.pipelines.executors import executor_for
from plantlake.pipelines.sensors import failed_runs_sensor, supplier_files_sensor

PUBLISH = dg.AssetSelection.assets(CATALOG, DATA_DOCS)


def _qualified(key: dg.AssetKey) -> str:
    return ".".join(key.path)


def schedule_status(config: PlantlakeConfig) -> dg.DefaultScheduleStatus:
    """Schedules start on only with automation on (production); in development they wait for the UI."""
    return dg.DefaultScheduleStatus.RUNNING if config.schedule.automated else dg.DefaultScheduleStatus.STOPPED


def build_definitions(config: PlantlakeConfig, now: datetime | None = None) -> dg.Definitions:
    """Everything the YAML declares; `now` fixes the present the runs assume (replaying a simulated plant)."""
    models = buildable_models(config)  # each model file read and parsed once
    source_assets = [
        *[definition for erp in config.sources.erp for definition in erp_assets(erp)],
        *opcua_assets(config.sources.opcua),
        *log_assets(config.sources.logs),
        *supplier_assets(config.sources.suppliers),
        *gold_assets(models),
    ]
    tables = [
        d for d in source_assets if isinstance(d, dg.AssetsDefinition) and not isinstance(d, dg.AssetChecksDefinition)
    ]
    keys = [key for definition in tables for key in definition.keys]
    descriptions = {
        _qualified(key): definition.descriptions_by_key.get(key, "") for definition in tables for key in definition.keys
    }
    upstream = {
        _qualified(key): tuple(sorted(_qualified(dep) for dep in definition.asset_deps.get(key, ())))
        for definition in tables
        for key in definition.keys
    }
    published = published_table_specs(config, keys)
    for spec in published:
        descriptions[_qualified(spec.key)] = spec.description or ""
        upstream[_qualified(spec.key)] = tuple(sorted(_qualified(dep.asset_key) for dep in spec.deps))
    published_keys = [spec.key for spec in published]
    everything = [*source_assets, *published, *publish_assets(config, [*keys, *published_keys], descriptions, upstream)]

    refresh_all = dg.define_asset_job(
        "refresh_all",
        selection=dg.AssetSelection.all(),
        tags=WRITES_TAG,
        description="Ingest every source, rebuild silver and gold, publish the catalog "
        "and the Data Docs (after a failure, the publish job does).",
    )
    publish = dg.define_asset_job(
        "publish",
        selection=PUBLISH,
        tags=WRITES_TAG,
        description="Rebuild the catalog and the Data Docs from the lake as it is now.",
    )
    supplier_keys = [supplier_bronze_key(source) for source in config.sources.suppliers]
    supplier_job = dg.define_asset_job(
        "supplier_files",
        # downstream passes through the tables the steps write beside their own (quarantine, meta),
        # which are not materialized on their own
        selection=dg.AssetSelection.assets(*supplier_keys).downstream().materializable()
        - dg.AssetSelection.assets(DATA_DOCS),
        tags=WRITES_TAG,
        description="Land new supplier files, refresh what depends on them and the catalog.",
    )
    refresh_jobs = [refresh_all, *([supplier_job] if supplier_keys else [])]
    schedules = [
        dg.ScheduleDefinition(
            name="nightly_refresh",
            job=refresh_all,
            cron_schedule=config.schedule.cron,
            execution_timezone=config.schedule.timezone,
            default_status=schedule_status(config),
        ),
        dg.ScheduleDefinition(
            name="weekly_maintenance",
            job=maintenance_job,
            cron_schedule=config.maintenance.cron,
            execution_timezone=config.schedule.timezone,
            default_status=schedule_status(config),
        ),
    ]
    rebuild = rebuild_job(models)
    sensors = [failed_runs_sensor(config, publish, refresh_jobs)]
    if config.sources.suppliers:
        sensors.append(supplier_files_sensor(config, supplier_job))
    return dg.Definitions(
        assets=[d for d in everything if not isinstance(d, dg.AssetChecksDefinition)],
        asset_checks=[d for d in everything if isinstance(d, dg.AssetChecksDefinition)],
        jobs=[
            *refresh_jobs,
            publish,
            maintenance_job,
            *(backfill_job(s) for s in config.sources.opcua),
            *([rebuild] if rebuild else []),
        ],
        schedules=schedules,
        sensors=sensors,
        resources={"plantlake": PlantlakeResource(config_path=str(config.path), now=now.isoformat() if now else None)},
        executor=executor_for(config.execution),
    )

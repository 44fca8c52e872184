"""Daily backfill of OPC-UA history: a partitioned job, one partition a UTC day, run from the UI.

Each partition reads the raw history of every selected tag for its day and lands what bronze
does not hold yet, so a partition run again adds nothing. The per-tag marks of the nightly
incremental read are left as they are.
"""

from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import pyarrow.dataset as ds

from plantlake.assets.factory import table_pool
from plantlake.assets.opcua import bronze_key, bronze_path, read_history
from plantlake.assets.resources import PlantlakeResource
from plantlake.assets.results import WRITES_TAG, Step
from plantlake.config import OpcuaSource
from plantlake.connectors import opcua
from plantlake.lake import bronze, locks
from plantlake.lake.layout import Ingestion, Lake


def backfill_day(lake: Lake, source: OpcuaSource, day: date, run_id: str) -> Step:
    """Land the history of `day` (UTC) that bronze does not hold yet."""
    path = bronze_path(lake, source)
    start = datetime.combine(day, time.min, UTC)
    last = start + timedelta(days=1) - timedelta(microseconds=1)  # raw reads include their end: stop before midnight
    failures: dict[str, str] = {}
    link_losses: list[str] = []
    tags, batches = read_history(source, start, last, failures, link_losses, snapshots=False, describe=False)
    window = (ds.field("source_timestamp") >= start) & (ds.field("source_timestamp") <= last)
    landed = bronze.land(
        path,
        batches,
        opcua.READINGS_SCHEMA,
        ["node_id", "source_timestamp"],
        Ingestion.now(run_id),
        source.name,
        None,
        window,
        ("source_timestamp", start),
    )
    return Step(
        path,
        {
            "day": day.isoformat(),
            "tags": len(tags),
            "values_read": landed.rows_read,
            "values_inserted": landed.rows_inserted,
            "tags_failed": dg.MetadataValue.json(failures),
            "link_losses": len(link_losses),
        },
    )


def backfill_job(source: OpcuaSource) -> dg.JobDefinition:
    days = dg.DailyPartitionsDefinition(start_date=source.backfill_from.isoformat(), timezone="UTC")

    @dg.op(
        name=f"backfill_{source.name}_day",
        description=f"Land one day of history from {source.endpoint}.",
        pool=table_pool(bronze_key(source)),  # the nightly run's landing writes the same table
    )
    def land_day(context: dg.OpExecutionContext, plantlake: PlantlakeResource) -> None:
        """Read the partition's day and record the landing on the bronze readings asset."""
        day = context.partition_time_window.start.date()
        with locks.exclusive(bronze_path(plantlake.lake, source)):  # the nightly run writes the same table
            step = backfill_day(plantlake.lake, source, day, context.run.run_id)
        context.log_event(dg.AssetMaterialization(asset_key=bronze_key(source), metadata=step.metadata))

    @dg.job(
        name=f"{source.name}_backfill",
        partitions_def=days,
        tags=WRITES_TAG,
        description=f"Backfill {source.name}'s sensor history day by day; pick a range of days in the UI.",
    )
    def backfill() -> None:
        land_day()

    return backfill

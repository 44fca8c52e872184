"""The maintenance job: housekeeping for every table, with what it freed as metadata."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from plantlake.assets.resources import PlantlakeResource
from plantlake.assets.results import WRITES_TAG
from plantlake.lake import maintenance

LEFTOVER_MARGIN = timedelta(hours=1)


def longest_running_run(instance: dg.DagsterInstance, besides: str) -> timedelta:
    """How long the oldest run still going (other than `besides`) has been running."""
    now = datetime.now(UTC).timestamp()
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    starts = [record.start_time for record in records if record.dagster_run.run_id != besides and record.start_time]
    return timedelta(seconds=max((now - start for start in starts), default=0))


@dg.op(name="maintain_lake", description="Compact small files, checkpoint, clean the log and vacuum every table.")
def maintain_lake(context: dg.OpExecutionContext, plantlake: PlantlakeResource) -> dg.Output[None]:
    """Housekeeping of every table; files and bytes before and after as metadata."""
    settings = plantlake.config.maintenance
    running = longest_running_run(context.instance, context.run.run_id)
    retention = max(timedelta(days=settings.retention_days), running)
    report = maintenance.maintain_lake(plantlake.lake, retention, settings.target_file_mb * 1024 * 1024)
    leftovers = maintenance.remove_leftovers(plantlake.lake, running + LEFTOVER_MARGIN)
    totals = {
        key: sum(table[key] for table in report.values())
        for key in ("files_before", "files_after", "bytes_before", "bytes_after", "files_compacted", "files_vacuumed")
    }
    context.log.info(f"maintenance of {len(report)} tables: {totals}; {leftovers} leftover files removed")
    return dg.Output(
        None,
        metadata={
            **totals,
            "tables": len(report),
            "retention_hours": retention.total_seconds() / 3600,
            "leftovers_removed": leftovers,
            "per_table": dg.MetadataValue.json(report),
        },
    )


@dg.job(
    name="maintenance",
    tags=WRITES_TAG,
    description="Weekly housekeeping: compaction, checkpoints, log cleanup, vacuum, leftovers.",
)
def maintenance_job() -> None:
    maintain_lake()

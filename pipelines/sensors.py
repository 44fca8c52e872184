"""Sensors: start a run when a supplier drops a file; record every failed run in the lake."""

import hashlib
import json

import dagster as dg

from connectors import files
from lake import runlog
from lake.catalog import TableInfo, build_catalog
from lake.layout import Lake
from pipelines.config import PlantlakeConfig


def _drop_folder_state(config: PlantlakeConfig) -> dict[str, list[int]]:
    state: dict[str, list[int]] = {}
    for source in config.sources.suppliers:
        state.update(files.fingerprints(source.path, source.glob))
    return state


def supplier_files_sensor(config: PlantlakeConfig, job: dg.JobDefinition | object) -> dg.SensorDefinition:
    @dg.sensor(name="supplier_files", job=job, minimum_interval_seconds=config.schedule.supplier_sensor_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Starts the supplier_files job when files appear or change in a drop folder.")  # fmt: skip
    def watch(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Compare the drop folders with what the last evaluation saw."""
        seen = json.loads(context.cursor) if context.cursor else {}
        current = _drop_folder_state(config)
        new = files.changed_since(current, seen)
        if not new:
            return dg.SensorResult(skip_reason="no new supplier files", cursor=json.dumps(current))
        run_key = hashlib.sha256(json.dumps({path: current[path] for path in new}).encode()).hexdigest()[:16]
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key, tags={"plantlake/new_files": str(len(new))})],
                               cursor=json.dumps(current))  # fmt: skip

    return watch


def failed_runs_sensor(config: PlantlakeConfig, infos: dict[str, TableInfo]) -> dg.SensorDefinition:
    """Nightly runs nobody watches: a failure lands in meta.run_failures and the catalog at once."""

    @dg.run_failure_sensor(name="record_failed_runs", default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Writes each failed run, its failed steps and errors to meta.run_failures.")  # fmt: skip
    def record(context: dg.RunFailureSensorContext) -> None:
        """Record the failed run and rebuild the catalog so analysts see it in DuckDB."""
        lake = Lake(config.lake.root)
        steps = {event.step_key: _root_cause(event.event_specific_data.error)
                 for event in context.get_step_failure_events() if event.step_key}  # fmt: skip
        run = context.dagster_run
        runlog.record_failure(lake, run.run_id, run.job_name, steps, context.failure_event.message or "")
        build_catalog(lake, infos)

    return record


def _root_cause(error: object) -> str:
    """The innermost error (the connector's own message), not Dagster's wrapper around it."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return getattr(error, "message", str(error)).strip()

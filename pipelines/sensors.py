"""Sensors: start a run when a supplier drops a file; record every failed run in the lake."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:  # the types of what define_asset_job returns and of a step's error; not exported by dagster
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
    from dagster._utils.error import SerializableErrorInfo

from plantlake.assets.publish import CATALOG
from plantlake.config import PlantlakeConfig
from plantlake.connectors import drop_folder
from plantlake.lake import runlog
from plantlake.lake.layout import Lake

AssetJob = Any  # what dg.define_asset_job returns; dagster does not export its type


def sensor_status(config: PlantlakeConfig) -> dg.DefaultSensorStatus:
    """Sensors start on only with automation on (production); in development they wait for the UI."""
    return dg.DefaultSensorStatus.RUNNING if config.schedule.automated else dg.DefaultSensorStatus.STOPPED


def _drop_folder_state(config: PlantlakeConfig, cursor: dict[str, Any], now: float) -> dict[str, Any]:
    """The settled files of every drop folder by path, [size, mtime], and the files still settling,
    [size, mtime, since when they have looked so] (a file is watched where its time is ahead of ours)."""
    ready: dict[str, list[int]] = {}
    settling: dict[str, list[float]] = {}
    watched = cursor.get("settling", {})
    for source in config.sources.suppliers:
        seen = {
            Path(path): (drop_folder.DropFile(Path(path), int(size), int(modified)), since)
            for path, (size, modified, since) in watched.items()
        }
        survey = drop_folder.survey(source.path, source.glob, source.suffixes, source.settle_seconds, now, seen)
        ready |= {str(file.path): file.fingerprint for file in survey.ready}
        settling |= {str(path): [*file.fingerprint, since] for path, (file, since) in survey.seen.items()}
    return {"ready": ready, "settling": settling}


def supplier_files_sensor(config: PlantlakeConfig, job: UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name="supplier_files",
        job=job,
        minimum_interval_seconds=config.schedule.supplier_sensor_seconds,
        default_status=sensor_status(config),
        description="Starts the supplier_files job when files appear or change in a drop folder, once they have "
        "settled (see settle_seconds).",
    )
    def watch(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Compare the drop folders' settled files with what the last evaluation saw."""
        cursor = json.loads(context.cursor) if context.cursor else {}
        fired = cursor.get("ready", {}) if "ready" in cursor else cursor  # an older cursor: paths only
        state = _drop_folder_state(config, cursor, time.time())
        current = state["ready"]
        new = sorted(path for path, fingerprint in current.items() if fired.get(path) != fingerprint)
        if not new:
            settling = len(state["settling"])
            unsettled = f"; {settling} file{'' if settling == 1 else 's'} not settled yet" if settling else ""
            return dg.SensorResult(skip_reason=f"no new supplier files{unsettled}", cursor=json.dumps(state))
        run_key = hashlib.sha256(json.dumps({path: current[path] for path in new}).encode()).hexdigest()[:16]
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=run_key, tags={"plantlake/new_files": str(len(new))})],
            cursor=json.dumps(state),
        )

    return watch


def failed_runs_sensor(config: PlantlakeConfig, publish: AssetJob, refresh_jobs: list[AssetJob]) -> dg.SensorDefinition:
    """Nightly runs nobody watches: every failure lands in meta.run_failures; a failed refresh is published anyway."""
    refresh_names = {job.name for job in refresh_jobs}

    @dg.run_failure_sensor(
        name="record_failed_runs",
        default_status=sensor_status(config),
        request_job=publish,
        description="Writes each failed run, its failed steps and errors to meta.run_failures, "
        "and after a failed refresh starts the publish job, which marks what is stale.",
    )
    def record(context: dg.RunFailureSensorContext) -> dg.RunRequest | None:
        """Record the failed run; rebuild the catalog and Data Docs if it was a refresh."""
        steps = {
            event.step_key: _root_cause(event.step_failure_data.error)
            for event in context.get_step_failure_events()
            if event.step_key
        }
        run = context.dagster_run
        runlog.record_failure(
            Lake.from_config(config.lake), run.run_id, run.job_name, steps, context.failure_event.message or ""
        )
        return publish_request(run) if run.job_name in refresh_names else None

    return record


def publish_request(run: dg.DagsterRun) -> dg.RunRequest:
    """After a failed nightly refresh, the catalog and the Data Docs; after a failed supplier file, the catalog only.

    A refresh that succeeds publishes them itself, as its last steps; one that fails skips them
    (Dagster skips what depends on a failed step), so this run rebuilds them from the lake as it is.
    """
    selection = None if run.job_name == "refresh_all" else [CATALOG]
    return dg.RunRequest(
        run_key=f"publish-after-{run.run_id}", asset_selection=selection, tags={"plantlake/after_run": run.run_id}
    )


def _root_cause(error: SerializableErrorInfo | None) -> str:
    """The innermost error (the connector's own message), not Dagster's wrapper around it."""
    if error is None:
        return ""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()

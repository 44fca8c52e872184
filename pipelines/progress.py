"""A job run in this process with a live progress bar: assets done, rows and values landed, rate.

The run executes in a thread; this thread reads the run's events from the instance as they
are written and moves a rich progress bar, so a long load shows where it is.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import dagster as dg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from plantlake.config import PlantlakeConfig
from plantlake.pipelines.factory import build_definitions
from plantlake.pipelines.runs import SILENT

COUNTED = ("rows_inserted", "values_inserted", "rows_new", "files_loaded", "files_read", "versions_added")
WATCHED = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.STEP_FAILURE}


def _numbers(metadata: dict[str, Any]) -> dict[str, float]:
    found = {}
    for name in COUNTED:
        value = getattr(metadata.get(name), "value", metadata.get(name))
        if isinstance(value, int | float):
            found[name] = float(value)
    return found


def run_with_progress(
    config: PlantlakeConfig, instance: dg.DagsterInstance, job_name: str, selection: list[str], quiet: bool = False
) -> dict[str, Any]:
    """Run `job_name` (only the `selection` of asset keys, if given); what it did, for people and for --json."""
    job = build_definitions(config).resolve_job_def(job_name)
    keys = [dg.AssetKey.from_user_string(key) for key in selection] or None
    run_id, done = str(uuid.uuid4()), {}
    started = time.monotonic()

    def execute() -> None:
        done["result"] = job.execute_in_process(
            run_config=SILENT, instance=instance, raise_on_error=False, run_id=run_id, asset_selection=keys
        )

    worker = threading.Thread(target=execute, name="plantlake-run", daemon=True)
    worker.start()
    totals: dict[str, float] = dict.fromkeys(COUNTED, 0.0)
    assets: list[str] = []
    failures: dict[str, str] = {}
    cursor = None
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=quiet, transient=False) as progress:
        task = progress.add_task(
            f"{job_name}: starting", total=len(keys) if keys else len(job.nodes_in_topological_order)
        )
        while True:
            running = worker.is_alive()  # read before the events: nothing the run writes after is missed
            records = instance.get_records_for_run(run_id, cursor=cursor, of_type=WATCHED)
            cursor = records.cursor or cursor
            for record in records.records:
                _count(record.event_log_entry, assets, totals, failures)
            if records.records and assets:
                rate = (totals["values_inserted"] + totals["rows_inserted"]) / max(time.monotonic() - started, 1e-3)
                progress.update(
                    task,
                    completed=len(assets),
                    description=f"{job_name}: {assets[-1]} · {int(totals['rows_inserted']):,} rows, "
                    f"{int(totals['values_inserted']):,} values, {rate:,.0f}/s, "
                    f"{int(totals['files_loaded'] + totals['files_read']):,} files",
                )
            if not running and not records.has_more:
                break
            if not records.has_more:
                time.sleep(0.5)
    worker.join()
    result = done.get("result")
    return {
        "run_id": run_id,
        "job": job_name,
        "success": bool(result is not None and result.success),
        "seconds": round(time.monotonic() - started, 1),
        "assets_materialized": assets,
        "totals": {name: int(value) for name, value in totals.items()},
        "failed_steps": failures,
    }


def _count(entry: dg.EventLogEntry, assets: list[str], totals: dict[str, float], failures: dict[str, str]) -> None:
    """Note a materialization's asset and counts, or a failed step's error."""
    event = entry.dagster_event
    if event is None:
        return
    if event.event_type == dg.DagsterEventType.STEP_FAILURE:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:  # Dagster's wrapper first, what failed last
            error = error.cause
        failures[event.step_key or "?"] = (error.message.strip() if error else "failed")[:1000]
        return
    materialization = entry.asset_materialization
    if materialization is not None:
        assets.append(materialization.asset_key.to_user_string())
        for name, value in _numbers(dict(materialization.metadata)).items():
            totals[name] += value

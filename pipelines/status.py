"""`plantlake status`: per table freshness, quality and quarantine; the last run, failures and the next ticks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import duckdb
from dagster._utils.schedules import cron_string_iterator  # Dagster's own cron arithmetic, as its daemon uses

from plantlake.config import PlantlakeConfig
from plantlake.lake.layout import Lake

TABLE_COLUMNS = "qualified_name, row_count, freshness, last_update, quality_status, quarantined_rows, last_error"


def _tables(config: PlantlakeConfig) -> list[dict[str, Any]]:
    catalog = Lake.from_config(config.lake).catalog_file
    if not catalog.exists():
        return []
    with duckdb.connect(str(catalog), read_only=True) as connection:
        cursor = connection.execute(f"SELECT {TABLE_COLUMNS} FROM catalog ORDER BY layer, table_name")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _next_tick(cron: str, timezone: str) -> str:
    return str(next(cron_string_iterator(time.time(), cron, timezone)))


def _runs(instance: dg.DagsterInstance) -> tuple[dict[str, Any], int]:
    """The newest run, and how many runs failed in the last seven days."""
    newest = instance.get_runs(limit=1)
    last: dict[str, Any] = {}
    if newest:
        run = newest[0]
        record = instance.get_run_record_by_id(run.run_id)
        last = {
            "run_id": run.run_id,
            "job": run.job_name,
            "status": run.status.value,
            "started": str(datetime.fromtimestamp(record.start_time, UTC)) if record and record.start_time else None,
        }
    since = datetime.now(UTC) - timedelta(days=7)
    failed = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], created_after=since), limit=1000
    )
    return last, len(failed)


def collect(config: PlantlakeConfig, instance: dg.DagsterInstance) -> dict[str, Any]:
    tables = _tables(config)
    last_run, failures = _runs(instance)
    return {
        "lake": str(config.lake.root),
        "tables": tables,
        "tables_stale": [table["qualified_name"] for table in tables if table["freshness"] == "stale"],
        "quarantined_rows": sum(table["quarantined_rows"] or 0 for table in tables),
        "last_run": last_run,
        "failed_runs_7d": failures,
        "next_nightly_refresh": _next_tick(config.schedule.cron, config.schedule.timezone),
        "next_maintenance": _next_tick(config.maintenance.cron, config.schedule.timezone),
    }


def describe(found: dict[str, Any]) -> list[str]:
    """The status as lines for a terminal."""
    lines = [f"lake {found['lake']}"]
    if not found["tables"]:
        lines.append("no catalog yet: run `plantlake run` (or `make demo`) first")
    for table in found["tables"]:
        state = "[red]STALE[/]" if table["freshness"] == "stale" else "fresh"
        held = f", {table['quarantined_rows']} quarantined" if table["quarantined_rows"] else ""
        lines.append(
            f"  {table['qualified_name']:<38} {state:<5} {table['row_count']:>10} rows  "
            f"quality {table['quality_status']}{held}  updated {table['last_update']}"
        )
    run = found["last_run"]
    lines.append(f"last run: {run.get('job')} {run.get('status')} {run.get('started')}" if run else "no run yet")
    lines.append(f"failed runs in 7 days: {found['failed_runs_7d']}")
    lines.append(
        f"next nightly refresh: {found['next_nightly_refresh']}; next maintenance: {found['next_maintenance']}"
    )
    return lines

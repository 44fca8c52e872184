"""Turn a step's outcome into Dagster metadata and check results, the same way for every asset."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds

from plantlake.lake import delta, locks, progress, state
from plantlake.lake.catalog import column_notes
from plantlake.lake.layout import Lake
from plantlake.lake.storage import Location
from plantlake.quality import results
from plantlake.quality.expectations import Validation
from plantlake.quality.invariants import InvariantResult

OWNERS = ["team:data-engineering"]
# Every job that writes the lake carries this tag; the shipped dagster.yaml lets one such run
# go at a time and queues the others, so the schedule, a sensor and a manual launch never overlap.
WRITES_TAG = {"plantlake/writes": "lake"}
# Every invariant check is blocking so that it runs before the catalog reads the results.
# Silver checks report WARN, which does not stop downstream assets; gold checks report
# ERROR, which keeps a failing gold table from being published.
EXPECTATIONS_CHECK = "expectations"
INVARIANTS_CHECK = "invariants"


@dataclass
class Step:
    """What one materialization did to one table."""

    table: Location
    metadata: dict[str, Any] = field(default_factory=dict)
    validation: Validation | None = None


def column_schema(schema: pa.Schema | None) -> dg.TableSchema:
    """Columns with their type; source type and zone as description, personal data as a tag."""
    columns = []
    for column in schema or []:
        notes = column_notes(column)
        tags = {"personal_data": "true"} if notes.pop("personal_data", None) == "true" else {}
        description = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in notes.items()) or None
        columns.append(dg.TableColumn(column.name, str(column.type), description=description, tags=tags))
    return dg.TableSchema(columns=columns)


def table_name(key: dg.AssetKey) -> str:
    return ".".join(key.path)


HEARTBEAT_S = 10.0


@contextmanager
def heartbeat(name: str, path: Location, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """While the block runs, log every `every_s` how long it has run and the rows it has handled so far."""
    log, done, started = dg.get_dagster_logger(), threading.Event(), time.monotonic()
    progress.reset(path)

    def report() -> None:
        while not done.wait(every_s):
            seconds, rows = time.monotonic() - started, progress.rows(path)
            log.info(f"{name}: running for {seconds:.0f} s, {rows:,} rows so far ({rows / seconds:,.0f} rows/s)")

    reporter = threading.Thread(target=report, name=f"plantlake-heartbeat-{name}", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        done.set()
        reporter.join()
        progress.reset(path)


def refreshed(lake: Lake, key: dg.AssetKey, run_id: str, build: Callable[[], Step]) -> Step:
    """Run `build` holding the table's writer lock, and note its outcome for the catalog.

    A second run refreshing the same table waits here, then finds the state the first left.
    """
    path = lake.table(*key.path)
    with locks.exclusive(path), heartbeat(table_name(key), path):
        try:
            step = build()
        except Exception as error:
            state.record_refresh(path, run_id, f"{type(error).__name__}: {error}"[:2000])
            raise
        state.record_refresh(path, run_id)
    return step


def materialize(
    context: dg.AssetExecutionContext, lake: Lake, step: Step, blocking: bool = False
) -> dg.MaterializeResult:
    """MaterializeResult with row count, column schema, location, and the GX check if validated."""
    table = delta.open_table(step.table)
    metadata = {
        "dagster/row_count": 0 if table is None else delta.rows_of(table),
        "dagster/column_schema": column_schema(None if table is None else pa.schema(table.schema().to_arrow())),
        "location": dg.MetadataValue.path(str(step.table)),
        **step.metadata,
    }
    checks = []
    if step.validation is not None:
        checks.append(expectation_check(context, lake, step.validation, blocking))
    summary = ", ".join(f"{key} {value}" for key, value in step.metadata.items())
    context.log.info(f"{table_name(context.asset_key)}: {metadata['dagster/row_count']} rows; {summary}")
    return dg.MaterializeResult(metadata=metadata, check_results=checks or None)


def expectation_check(
    context: dg.AssetExecutionContext, lake: Lake, validation: Validation, blocking: bool
) -> dg.AssetCheckResult:
    name = table_name(context.asset_key)
    failed = {o.expectation: o.unexpected for o in validation.outcomes if not o.success}
    details = {
        "rows_checked": validation.rows_checked,
        "rows_quarantined": validation.rows_rejected,
        "failed": failed,
        "warned": validation.warned,  # failed, but their rows were kept (on_fail: warn)
    }
    results.record(lake, name, EXPECTATIONS_CHECK, "gx", validation.success, details, context.run.run_id)
    return dg.AssetCheckResult(
        check_name=EXPECTATIONS_CHECK,
        passed=validation.success,
        # a rule that only warns never blocks what depends on the table
        severity=dg.AssetCheckSeverity.ERROR if blocking and not validation.holds else dg.AssetCheckSeverity.WARN,
        metadata={
            "rows_checked": validation.rows_checked,
            "rows_quarantined": validation.rows_rejected,
            **{  # one line per expectation, readable in the check's page without opening JSON
                f"expect: {o.expectation}": "passed" if o.success else f"failed on {o.unexpected} rows ({o.on_fail})"
                for o in validation.outcomes
            },
            "failed_expectations": dg.MetadataValue.json(failed),
            "warned_expectations": dg.MetadataValue.json(validation.warned),
        },
    )


def expectation_spec(key: dg.AssetKey, blocking: bool = False) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        EXPECTATIONS_CHECK,
        asset=key,
        blocking=blocking,
        description="Great Expectations suite on the new batch; failing rows go to quarantine",
    )


def invariants_result(
    context: dg.AssetCheckExecutionContext,
    lake: Lake,
    key: dg.AssetKey,
    path: Location,
    build: Callable[[ds.Dataset], list[InvariantResult]],
    blocking: bool,
) -> dg.AssetCheckResult:
    """Run `build` over the table's current version and report it; a table not yet written fails."""
    data = delta.dataset(path)
    if data is None:
        found = [InvariantResult("table exists", False, 0, f"{table_name(key)} has not been written yet")]
    else:
        found = build(data)
    passed = all(item.success for item in found)
    details = {
        item.name: {"passed": item.success, "observed": item.observed, "detail": item.description} for item in found
    }
    results.record(lake, table_name(key), INVARIANTS_CHECK, "sql", passed, details, context.run.run_id)
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        metadata={
            **{
                f"invariant: {item.name}": f"{'passed' if item.success else 'FAILED'}: {item.observed}"
                + (f" ({item.description})" if item.description else "")
                for item in found
            },
            "invariants": dg.MetadataValue.json(details),
        },
    )

"""Machine logs: one bronze asset per log folder, one silver table of machine events."""

from pathlib import Path

import dagster as dg

from assets.resources import PlantlakeResource
from assets.results import OWNERS, Step, expectation_spec, invariants_result, materialize
from assets.steps import merge_validated
from connectors import logs
from lake import bronze, delta, silver, transforms
from lake.layout import Ingestion, Lake
from pipelines.config import LogSource
from quality import invariants, suites

MACHINE_EVENTS = dg.AssetKey(["silver", "machine_events"])


def bronze_key(source: LogSource) -> dg.AssetKey:
    return dg.AssetKey(["bronze", f"{source.name}_events"])


def _fingerprints(source: LogSource) -> dict[str, list[int]]:
    return {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(source.path.glob(source.glob)) if p.is_file()}


def load_bronze(lake: Lake, source: LogSource, run_id: str) -> Step:
    """Parse the files that changed since the last committed run; lines are keyed by file and number."""
    path = lake.table("bronze", f"{source.name}_events")
    seen = delta.read_state(path, "files") or {}
    current = _fingerprints(source)
    changed = [file for file, fingerprint in current.items() if seen.get(file) != fingerprint]

    def batches():  # noqa: ANN202
        for file in changed:
            yield from logs.read_log_file(Path(file), source.format)

    landed = bronze.land(path, batches(), logs.EVENTS_SCHEMA, ["source_file", "line_number"],
                         Ingestion.now(run_id), source.name, {"files": {**seen, **current}})  # fmt: skip
    return Step(path, {"files_read": len(changed), "lines_read": landed.rows_read, "lines_inserted": landed.rows_inserted})


def build_silver(lake: Lake, sources: list[LogSource], run_id: str) -> Step:
    """Events with UTC time, machine id, severity and code; unparseable lines to quarantine."""
    path = lake.table("silver", "machine_events")
    work = silver.pending(path, {f"{s.name}_events": lake.table("bronze", f"{s.name}_events") for s in sources})
    maps = {f"{s.name}_events": s.machine_map for s in sources}
    incoming, rejected = transforms.event_rows(work.rows, maps)
    return merge_validated(lake, path, work, incoming, suites.event_suite(incoming.schema),
                           transforms.EVENT_KEYS, run_id, rejected)  # fmt: skip


def log_assets(sources: list[LogSource]) -> list:
    if not sources:
        return []
    definitions: list = [_bronze_asset(source) for source in sources]

    @dg.asset(key=MACHINE_EVENTS, deps=[bronze_key(s) for s in sources], group_name="logs", owners=OWNERS,
              kinds={"delta"}, check_specs=[expectation_spec(MACHINE_EVENTS)],
              description="Machine and controller log events: UTC time, machine, severity, code, message.")  # fmt: skip
    def machine_events(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Merge newly parsed events into silver."""
        return materialize(context, plantlake.lake, build_silver(plantlake.lake, sources, context.run.run_id))

    @dg.asset_check(asset=MACHINE_EVENTS, name="invariants", blocking=True, description="One event per file line")
    def event_invariants(context: dg.AssetCheckExecutionContext, plantlake: PlantlakeResource) -> dg.AssetCheckResult:
        """Unique (source, file, line) over the whole table."""
        path = plantlake.lake.table("silver", "machine_events")
        return invariants_result(context, plantlake.lake, MACHINE_EVENTS, path,
                                 lambda data: [invariants.unique_keys(data, transforms.EVENT_KEYS)], blocking=False)  # fmt: skip

    return [*definitions, machine_events, event_invariants]


def _bronze_asset(source: LogSource) -> dg.AssetsDefinition:
    @dg.asset(key=bronze_key(source), group_name="logs", owners=OWNERS, kinds={"delta"},
              description=f"Parsed lines of {source.format} logs {source.glob} in {source.path.name}/, raw text kept.")  # fmt: skip
    def events(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Land new log lines of one folder."""
        return materialize(context, plantlake.lake, load_bronze(plantlake.lake, source, context.run.run_id))

    return events

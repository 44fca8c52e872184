"""Machine logs: one bronze asset per log folder, one silver table of machine events."""

from pathlib import Path

import dagster as dg

from assets.factory import bronze_asset, silver_assets
from assets.results import Step
from assets.steps import merge_validated
from connectors import files, logs
from lake import bronze, delta, silver, transforms
from lake.layout import Ingestion, Lake
from pipelines.config import LogSource
from quality import invariants, suites

MACHINE_EVENTS = dg.AssetKey(["silver", "machine_events"])


def bronze_key(source: LogSource) -> dg.AssetKey:
    return dg.AssetKey(["bronze", f"{source.name}_events"])


def load_bronze(lake: Lake, source: LogSource, run_id: str) -> Step:
    """Parse the files that changed since the last committed run; lines are keyed by file and number."""
    path = lake.table("bronze", f"{source.name}_events")
    seen = delta.read_state(path, "files") or {}
    current = files.fingerprints(source.path, source.glob)
    changed = files.changed_since(current, seen)

    def batches():  # noqa: ANN202
        for file in changed:
            yield from logs.read_log_file(Path(file), source.format)

    landed = bronze.land(path, batches(), logs.EVENTS_SCHEMA, ["source_file", "line_number"],
                         Ingestion.now(run_id), source.name, {"files": {**seen, **current}})  # fmt: skip
    return Step(path, {"files_read": len(changed), "lines_read": landed.rows_read, "lines_inserted": landed.rows_inserted})


def build_silver(lake: Lake, sources: list[LogSource], run_id: str) -> Step:
    """Events with UTC time, machine id, severity and code; unparseable lines to quarantine."""
    path = lake.table("silver", "machine_events")
    bronze_tables = {f"{s.name}_events": silver.BronzeInput(lake.table("bronze", f"{s.name}_events"),
                                                           ["source_file", "line_number"]) for s in sources}  # fmt: skip
    maps = {f"{s.name}_events": s.machine_map for s in sources}
    return merge_validated(lake, path, silver.pending_chunks(path, bronze_tables),
                           lambda work: transforms.event_rows(work.rows, maps), suites.event_suite,
                           transforms.EVENT_KEYS, run_id)  # fmt: skip


def log_assets(sources: list[LogSource]) -> list:
    if not sources:
        return []
    bronze = [
        bronze_asset(bronze_key(source), "logs", set(),
                     f"Parsed lines of {source.format} logs {source.glob} in {source.path.name}/, raw text kept.",
                     lambda lake, run_id, source=source: load_bronze(lake, source, run_id))  # fmt: skip
        for source in sources
    ]
    return bronze + silver_assets(
        MACHINE_EVENTS, [bronze_key(s) for s in sources], "logs",
        "Machine and controller log events: UTC time, machine, severity, code, message.",
        lambda lake, run_id: build_silver(lake, sources, run_id),
        lambda data, lake: [invariants.unique_keys(data, transforms.EVENT_KEYS)],
        "One event per file line",
    )  # fmt: skip

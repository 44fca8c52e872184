"""Machine logs: one bronze asset per log folder, one silver table of machine events."""

from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds

from plantlake.assets.factory import Build, bronze_asset, silver_assets
from plantlake.assets.results import Step
from plantlake.assets.steps import merge_validated
from plantlake.config import LogSource
from plantlake.connectors import log_files, logs
from plantlake.lake import bronze, delta, silver, transforms
from plantlake.lake.layout import Ingestion, Lake
from plantlake.quality import invariants, suites

MACHINE_EVENTS = dg.AssetKey(["silver", "machine_events"])
POSITIONS = "positions"


def bronze_key(source: LogSource) -> dg.AssetKey:
    return dg.AssetKey(["bronze", f"{source.name}_events"])


def log_format(source: LogSource) -> logs.LogFormat:
    return logs.LogFormat(source.format, source.pattern, source.timestamp_format, source.timezone, source.severity_map)


def plan_reads(
    source: LogSource, known: dict[str, log_files.Position], now: datetime
) -> list[tuple[Path, log_files.Position, bool]]:
    """Which files to read from where: one path per file identity, oldest rotation first.

    A file is read to its end (`final`) when it is rotated or has been quiet `settle_seconds`;
    otherwise its newest entry waits, as more lines of it may still come.
    """
    chosen: dict[str, tuple[Path, log_files.Position, bool]] = {}
    modified = {path: path.stat().st_mtime for path in source.path.glob(source.glob) if path.is_file()}
    for path in sorted(modified, key=modified.__getitem__):
        position = log_files.identify(path, known)
        if position is None:
            continue
        quiet = now.timestamp() - modified[path] >= source.settle_seconds
        final = log_files.is_rotated(path) or quiet
        if position.file_id not in chosen or (chosen[position.file_id][0].suffix == ".gz" and path.suffix != ".gz"):
            chosen[position.file_id] = (path, position, final)  # the same content plain and gzipped: read the plain one
    return list(chosen.values())


def load_bronze(lake: Lake, source: LogSource, run_id: str, now: datetime | None = None) -> Step:
    """Parse what is new in each file since the committed positions; rotated files are not read twice."""
    path = lake.table("bronze", f"{source.name}_events")
    known = {
        file_id: log_files.Position(**stored)
        for file_id, stored in (delta.read_state(path, POSITIONS, required=True) or {}).items()
    }
    plan = plan_reads(source, known, now or datetime.now(UTC))
    positions = dict(known)
    style = log_format(source)

    def batches() -> Iterator[pa.RecordBatch]:
        for file, start, final in plan:
            reference = datetime.fromtimestamp(file.stat().st_mtime, tz=UTC)
            for batch, position in log_files.read_new(file, start, style, final, reference):
                positions[position.file_id] = position
                yield batch

    # lines past each file's committed position; only they can already be in bronze after a failed run
    window = None
    for _, start, _ in plan:
        condition = (ds.field("file_id") == start.file_id) & (ds.field("line_number") > start.lines)
        window = condition if window is None else window | condition
    with bronze.spooled(batches(), logs.EVENTS_SCHEMA, lake.root / "_spool") as spooled:
        state = {POSITIONS: {file_id: asdict(position) for file_id, position in positions.items()}}
        landed = bronze.land(
            path,
            spooled,
            logs.EVENTS_SCHEMA,
            ["file_id", "line_number"],
            Ingestion.now(run_id),
            source.name,
            state,
            window if window is not None else ds.field("line_number") < 0,
        )
    return Step(
        path,
        {
            "files_read": len(plan),
            "lines_read": sum(p.lines for p in positions.values()) - sum(p.lines for p in known.values()),
            "events_read": landed.rows_read,
            "events_inserted": landed.rows_inserted,
        },
    )


def build_silver(lake: Lake, sources: list[LogSource], run_id: str) -> Step:
    """Events with UTC time, machine id, severity and code; unparseable lines to quarantine."""
    path = lake.table("silver", "machine_events")
    bronze_tables = {
        f"{s.name}_events": silver.BronzeInput(lake.table("bronze", f"{s.name}_events"), ["file_id", "line_number"])
        for s in sources
    }
    maps = {f"{s.name}_events": s.machine_map for s in sources}
    return merge_validated(
        lake,
        path,
        silver.pending_chunks(path, bronze_tables),
        lambda work: transforms.event_rows(work.rows, maps),
        suites.event_suite,
        transforms.EVENT_KEYS,
        run_id,
    )


def _landing(source: LogSource) -> Build:
    return lambda lake, run_id, now: load_bronze(lake, source, run_id, now)


def log_assets(sources: list[LogSource]) -> list:
    if not sources:
        return []
    bronze_assets = [
        bronze_asset(
            bronze_key(source),
            "logs",
            set(),
            f"Parsed entries of {source.format} logs {source.glob} in {source.path.name}/, raw text kept.",
            _landing(source),
        )
        for source in sources
    ]
    return bronze_assets + silver_assets(
        MACHINE_EVENTS,
        [bronze_key(s) for s in sources],
        "logs",
        "Machine and controller log events: UTC time, machine, severity, code, message.",
        lambda lake, run_id, now: build_silver(lake, sources, run_id),
        lambda data, lake: [invariants.unique_keys(data, transforms.EVENT_KEYS)],
        "One event per entry of a log file",
    )

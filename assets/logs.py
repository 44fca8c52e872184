"""Machine logs: one bronze asset per log folder, one silver table of machine events."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from plantlake.assets.factory import Build, bronze_asset, owners_of, silver_assets
from plantlake.assets.results import Step
from plantlake.assets.steps import merge_validated
from plantlake.config import LogSource
from plantlake.connectors import log_files, log_identity, logs
from plantlake.lake import bronze, catalog, delta, drift, silver, transforms
from plantlake.lake import state as state_module
from plantlake.lake.layout import INGESTION_FIELDS, Ingestion, Lake
from plantlake.quality import invariants, suites

MACHINE_EVENTS = dg.AssetKey(["silver", "machine_events"])
POSITIONS = "positions"
INGESTION_NAMES = frozenset(field.name for field in INGESTION_FIELDS)


def bronze_key(source: LogSource) -> dg.AssetKey:
    return dg.AssetKey(["bronze", f"{source.name}_events"])


def log_format(source: LogSource) -> logs.LogFormat:
    return logs.LogFormat(
        source.format,
        source.pattern,
        source.timestamp_format,
        source.timezone,
        source.severity_map,
        source.dst,
        source.encoding,
    )


def plan_reads(
    source: LogSource, known: dict[str, log_identity.Position], now: datetime
) -> tuple[list[tuple[Path, log_identity.Position, bool]], list[Path]]:
    """Which files to read from where (one path per file identity, oldest first), and the live files
    still too short to identify.

    A file is read to its end (`final`) when it is rotated or has been quiet `settle_seconds`;
    otherwise its newest entry waits, as more lines of it may still come.
    """
    modified = {path: path.stat().st_mtime for path in source.path.glob(source.glob) if path.is_file()}
    found = log_identity.plan(sorted(modified, key=modified.__getitem__), known, source.fingerprint_bytes)
    reads = []
    for file, position in found.reads:
        quiet = now.timestamp() - modified[file.path] >= source.settle_seconds
        reads.append((file.path, position, file.rotated or quiet))
    return reads, found.waiting


@dataclass
class _Tally:
    """What the landed events say about the read, counted as they stream by."""

    invalid_bytes: int = 0
    entries_with_invalid_bytes: int = 0
    dst_flagged: int = 0

    def count(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        invalid = batch.column("invalid_bytes")
        self.invalid_bytes += pc.sum(invalid).as_py() or 0
        self.entries_with_invalid_bytes += pc.sum(pc.greater(invalid, 0)).as_py() or 0
        self.dst_flagged += len(batch) - batch.column("dst_flag").null_count
        return batch


def load_bronze(lake: Lake, source: LogSource, run_id: str, now: datetime | None = None) -> Step:
    """Parse what is new in each file since the committed positions; rotated files are not read twice."""
    path = lake.table("bronze", f"{source.name}_events")
    known = {
        file_id: log_identity.Position(**stored)
        for file_id, stored in (delta.read_state(path, POSITIONS, required=True) or {}).items()
    }
    plan, waiting = plan_reads(source, known, now or datetime.now(UTC))
    positions = dict(known)
    style, tally = log_format(source), _Tally()
    change = drift.compare(delta.schema(path), logs.EVENTS_SCHEMA, f"bronze.{path.name}", INGESTION_NAMES)
    drift.record(lake, f"bronze.{path.name}", change, run_id)

    def batches() -> Iterator[pa.RecordBatch]:
        for file, start, final in plan:
            reference = datetime.fromtimestamp(file.stat().st_mtime, tz=UTC)
            positions[start.file_id] = start  # where it is found now, even if nothing is new in it
            for batch, position in log_files.read_new(file, start, style, final, reference):
                positions[position.file_id] = position
                yield tally.count(batch)

    # lines past each file's committed position; only they can already be in bronze after a failed run
    window = None
    for _, start, _ in plan:
        condition = (ds.field("file_id") == start.file_id) & (ds.field("line_number") > start.lines)
        window = condition if window is None else window | condition
    with bronze.spooled(batches(), logs.EVENTS_SCHEMA, lake.spool) as spooled:
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
    if landed.rows_read == 0 and positions != known:
        state_module.write(path, state)  # nothing new to commit, but files were found where they moved to
    return Step(
        path,
        {
            "files_read": len(plan),
            "files_waiting": len(waiting),
            "lines_read": sum(p.lines for p in positions.values()) - sum(p.lines for p in known.values()),
            "events_read": landed.rows_read,
            "events_inserted": landed.rows_inserted,
            "invalid_bytes": tally.invalid_bytes,
            "entries_with_invalid_bytes": tally.entries_with_invalid_bytes,
            "events_dst_flagged": tally.dst_flagged,
            "schema_drift": change.describe(),
        },
    )


def build_silver(lake: Lake, sources: list[LogSource], run_id: str) -> Step:
    """Events with UTC time, machine id, severity and code; unparseable lines to quarantine.

    Hosts the machine maps do not name are counted per run and noted for the catalog.
    """
    path = lake.table("silver", "machine_events")
    bronze_tables = {
        f"{s.name}_events": silver.BronzeInput(lake.table("bronze", f"{s.name}_events"), ["file_id", "line_number"])
        for s in sources
    }
    machines = {f"{s.name}_events": transforms.Machines(s.machine_map, s.host_match == "ignore_case") for s in sources}
    change = drift.compare(delta.schema(path), transforms.EVENT_SCHEMA, "silver.machine_events")
    drift.record(lake, "silver.machine_events", change, run_id)
    unmapped: Counter[tuple[str, str]] = Counter()
    step = merge_validated(
        lake,
        path,
        silver.pending_chunks(path, bronze_tables),
        lambda work: transforms.event_rows(work.rows, machines, unmapped),
        suites.event_suite,
        transforms.EVENT_KEYS,
        run_id,
    )
    noted: dict[str, dict[str, int]] = {}
    for (table, host), events in sorted(unmapped.items()):
        noted.setdefault(table.removesuffix("_events"), {})[host] = events
    if step.metadata.get("rows_new"):  # a run with no new events leaves the last note standing
        state_module.write(path, {catalog.UNMAPPED_HOSTS: noted})
    shown = [f"{name}: {host} ({events} events)" for name, hosts in noted.items() for host, events in hosts.items()]
    step.metadata["unmapped_hosts"] = "; ".join(shown) or "none"
    return step


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
            owners_of([source]),
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
        owners_of(sources),
    )

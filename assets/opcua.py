"""OPC-UA historians: one bronze asset per server, one silver table of all sensor readings."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds

from plantlake.assets.factory import Build, bronze_asset, owners_of, silver_assets
from plantlake.assets.results import Step
from plantlake.assets.steps import merge_validated
from plantlake.config import OpcuaSource
from plantlake.connectors import opcua, opcua_stream
from plantlake.lake import bronze, delta, silver, transforms
from plantlake.lake.layout import Ingestion, Lake, constant
from plantlake.lake.storage import Location
from plantlake.quality import invariants, suites

SENSOR_READINGS = dg.AssetKey(["silver", "sensor_readings"])


def bronze_key(source: OpcuaSource) -> dg.AssetKey:
    return dg.AssetKey(["bronze", f"{source.name}_readings"])


def bronze_path(lake: Lake, source: OpcuaSource) -> Location:
    return lake.table("bronze", f"{source.name}_readings")


def credentials(source: OpcuaSource) -> opcua_stream.Credentials:
    security = source.security
    return opcua_stream.Credentials(
        security.mode if security else None,
        security.certificate if security else None,
        security.private_key if security else None,
        source.username,
        source.password,
    )


def read_history(
    source: OpcuaSource,
    start_for: Callable[[str], datetime] | datetime,
    end: datetime,
    failures: dict[str, str],
    link_losses: list[str],
    **options: bool,
) -> tuple[list[opcua.Tag], Iterator[pa.RecordBatch]]:
    """The source's tags and their history from `start_for` to `end`, read with its own settings."""
    return opcua_stream.read_history_blocking(
        source.endpoint,
        source.roots,
        start_for,
        end,
        source.values_per_request,
        source.nodes_per_request,
        source.timeout_s,
        source.include,
        source.exclude,
        failures,
        source.reconnect_attempts,
        source.backoff_s,
        link_losses,
        credentials(source),
        **options,
    )


def _window(tags: list[opcua.Tag], earliest: datetime) -> ds.Expression:
    """The bronze rows this read can meet again: history from the earliest start, and every snapshot."""
    window = ds.field("source_timestamp") >= earliest
    snapshots = [tag.node_id for tag in tags if not tag.historized]
    return window | ds.field("node_id").isin(snapshots) if snapshots else window


def load_bronze(lake: Lake, source: OpcuaSource, run_id: str, now: datetime | None = None) -> Step:
    """Read each tag's history from where its last committed read ended (first run: `history_days` back).

    A tag the server answers Bad for keeps its mark and is read again next run; the others go on.
    Marks are kept for the tags the server has now, so those that left it are pruned.
    """
    path = bronze_path(lake, source)
    end = now or datetime.now(UTC)
    first_start = (end - timedelta(days=source.history_days)).isoformat()
    previous = delta.read_state(
        path, "read_until", required=True
    )  # per tag; a single time in lakes from before per-tag marks
    ends = previous if isinstance(previous, dict) else {}
    fallback = previous if isinstance(previous, str) else first_start

    def start_of(node_id: str) -> datetime:
        return datetime.fromisoformat(ends.get(node_id, fallback))

    failures: dict[str, str] = {}
    link_losses: list[str] = []
    tags, batches = read_history(source, start_of, end, failures, link_losses)
    delta.overwrite(lake.table("bronze", f"{source.name}_tags"), opcua.tag_table(tags))
    earliest = min((start_of(tag.node_id) for tag in tags), default=end)
    with bronze.spooled(batches, opcua.READINGS_SCHEMA, lake.spool) as spooled:  # failures known after reading
        marks = {
            tag.node_id: (ends.get(tag.node_id, fallback) if tag.node_id in failures else end.isoformat())
            for tag in tags
        }
        landed = bronze.land(
            path,
            spooled,
            opcua.READINGS_SCHEMA,
            ["node_id", "source_timestamp"],
            Ingestion.now(run_id),
            source.name,
            {"read_until": marks},
            _window(tags, earliest),
        )
    return Step(
        path,
        {
            "tags": len(tags),
            "read_from": earliest.isoformat(),
            "read_until": end.isoformat(),
            "values_read": landed.rows_read,
            "values_inserted": landed.rows_inserted,
            "tags_failed": dg.MetadataValue.json(failures),
            "link_losses": len(link_losses),
        },
    )


def refresh_tag_registry(lake: Lake, sources: list[OpcuaSource]) -> int:
    """silver.opcua_tags: the tags every server last reported, with units, range and description."""
    parts = []
    for source in sources:
        landed = delta.read(lake.table("bronze", f"{source.name}_tags"))
        if landed is not None:
            parts.append(landed.append_column("source", constant(source.name, pa.string(), landed.num_rows)))
    if not parts:
        return 0
    registry = pa.concat_tables(parts)
    delta.overwrite(lake.table("silver", "opcua_tags"), registry)
    return registry.num_rows


def build_silver(lake: Lake, sources: list[OpcuaSource], run_id: str) -> Step:
    """Readings of every server in long form: timestamp, machine, tag, value, status; and the tag registry."""
    refresh_tag_registry(lake, sources)
    path = lake.table("silver", "sensor_readings")
    bronze_tables = {
        f"{s.name}_readings": silver.BronzeInput(
            lake.table("bronze", f"{s.name}_readings"), ["node_id", "source_timestamp"]
        )
        for s in sources
    }
    return merge_validated(
        lake,
        path,
        silver.pending_chunks(path, bronze_tables),
        lambda work: (transforms.sensor_rows(work.rows), []),
        suites.sensor_suite,
        transforms.SENSOR_KEYS,
        run_id,
        window_key="timestamp",
    )


def _landing(source: OpcuaSource) -> Build:
    return lambda lake, run_id, now: load_bronze(lake, source, run_id, now)


def opcua_assets(sources: list[OpcuaSource]) -> list:
    if not sources:
        return []
    bronze = [
        bronze_asset(
            bronze_key(source),
            "opcua",
            set(),
            f"Raw history of every historized variable below {source.roots} on {source.endpoint}.",
            _landing(source),
            owners_of([source]),
        )
        for source in sources
    ]
    return bronze + silver_assets(
        SENSOR_READINGS,
        [bronze_key(s) for s in sources],
        "opcua",
        "Sensor history of all OPC-UA servers in long form (timestamp, machine, tag, value, status).",
        lambda lake, run_id, now: build_silver(lake, sources, run_id),
        lambda data, lake: [invariants.unique_keys(data, transforms.SENSOR_KEYS), invariants.not_empty(data)],
        "One reading per tag and timestamp, and not empty",
        owners_of(sources),
    )

"""OPC-UA historians: one bronze asset per server, one silver table of all sensor readings."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.resources import PlantlakeResource
from assets.results import OWNERS, Step, expectation_spec, invariants_result, materialize
from assets.steps import merge_validated
from connectors import opcua
from lake import bronze, delta, silver, transforms
from lake.layout import Ingestion, Lake
from pipelines.config import OpcuaSource
from quality import invariants, suites

SENSOR_READINGS = dg.AssetKey(["silver", "sensor_readings"])


def bronze_key(source: OpcuaSource) -> dg.AssetKey:
    return dg.AssetKey(["bronze", f"{source.name}_readings"])


def load_bronze(lake: Lake, source: OpcuaSource, run_id: str, now: datetime | None = None) -> Step:
    """Read history from where the last committed read ended (first run: `history_days` back)."""
    path = lake.table("bronze", f"{source.name}_readings")
    end = now or datetime.now(UTC)
    previous = delta.read_state(path, "read_until")
    start = datetime.fromisoformat(previous) if previous else end - timedelta(days=source.history_days)
    tags, batches = opcua.read_history_blocking(
        source.endpoint, source.roots, start, end, source.values_per_request, source.nodes_per_request, source.timeout_s
    )
    landed = bronze.land(path, batches, opcua.READINGS_SCHEMA, ["node_id", "source_timestamp"],
                         Ingestion.now(run_id), source.name, {"read_until": end.isoformat()})  # fmt: skip
    return Step(path, {"tags": len(tags), "read_from": start.isoformat(), "read_until": end.isoformat(),
                       "values_read": landed.rows_read, "values_inserted": landed.rows_inserted})  # fmt: skip


def build_silver(lake: Lake, sources: list[OpcuaSource], run_id: str) -> Step:
    """Readings of every server in long form: timestamp, machine, tag, value, status."""
    path = lake.table("silver", "sensor_readings")
    work = silver.pending(path, {f"{s.name}_readings": lake.table("bronze", f"{s.name}_readings") for s in sources})
    incoming = transforms.sensor_rows(work.rows)
    return merge_validated(lake, path, work, incoming, suites.sensor_suite(incoming.schema), transforms.SENSOR_KEYS, run_id)


def opcua_assets(sources: list[OpcuaSource]) -> list:
    if not sources:
        return []
    definitions: list = [_bronze_asset(source) for source in sources]

    @dg.asset(key=SENSOR_READINGS, deps=[bronze_key(s) for s in sources], group_name="sensors", owners=OWNERS,
              kinds={"delta"}, check_specs=[expectation_spec(SENSOR_READINGS)],
              description="Sensor history of all OPC-UA servers in long form (timestamp, machine, tag, value, status).")  # fmt: skip
    def sensor_readings(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Merge new readings into the long silver table."""
        return materialize(context, plantlake.lake, build_silver(plantlake.lake, sources, context.run.run_id))

    @dg.asset_check(asset=SENSOR_READINGS, name="invariants", blocking=True, description="One reading per tag and timestamp")
    def sensor_invariants(context: dg.AssetCheckExecutionContext, plantlake: PlantlakeResource) -> dg.AssetCheckResult:
        """Unique (source, node, timestamp) over the whole table."""
        path = plantlake.lake.table("silver", "sensor_readings")
        return invariants_result(context, plantlake.lake, SENSOR_READINGS, path, lambda data: [
            invariants.unique_keys(data, transforms.SENSOR_KEYS), invariants.not_empty(data)], blocking=False)  # fmt: skip

    return [*definitions, sensor_readings, sensor_invariants]


def _bronze_asset(source: OpcuaSource) -> dg.AssetsDefinition:
    @dg.asset(key=bronze_key(source), group_name="sensors", owners=OWNERS, kinds={"opcua", "delta"},
              description=f"Raw history of every historized variable below {source.roots} on {source.endpoint}.")  # fmt: skip
    def readings(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Land new history values of one OPC-UA server."""
        return materialize(context, plantlake.lake, load_bronze(plantlake.lake, source, context.run.run_id))

    return readings

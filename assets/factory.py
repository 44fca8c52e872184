"""The two asset shapes every source kind uses: a bronze landing, and a silver table with its checks."""

from collections.abc import Callable, Sequence
from datetime import datetime

import dagster as dg
import pyarrow.dataset as ds

from plantlake.assets.resources import PlantlakeResource
from plantlake.assets.results import (
    OWNERS,
    Step,
    expectation_spec,
    invariants_result,
    materialize,
    refreshed,
)
from plantlake.config.sources import OwnedSource
from plantlake.lake.layout import Lake
from plantlake.quality.invariants import InvariantResult

# (lake, run id, the present the run assumes) -> what the step did
Build = Callable[[Lake, str, datetime], Step]
Invariants = Callable[[ds.Dataset, Lake], list[InvariantResult]]


def table_pool(key: dg.AssetKey) -> str:
    """The Dagster pool of the steps that write the table `key` names (`plantlake/silver.machine_events`).

    A step claims a slot of its pool in the instance before it starts, whichever executor and
    worker runs it; the shipped dagster.yaml gives every pool one slot, so two steps that write
    the same table, in two runs or on two workers, never run at once. The tables many steps write
    beside their own (quarantine, meta) take no pool: their writers retry a commit that loses a race.
    """
    return f"plantlake/{'.'.join(key.path)}"


def owners_of(sources: Sequence[OwnedSource]) -> list[str]:
    """The owners the YAML names for these sources, each once, in their order."""
    return list(dict.fromkeys(source.owner for source in sources)) or OWNERS


def bronze_asset(
    key: dg.AssetKey, kind: str, kinds: set[str], description: str, build: Build, owners: list[str] = OWNERS
) -> dg.AssetsDefinition:
    """A bronze landing, in the group of its layer; `kind` (erp, opcua, logs, suppliers) is one of its kinds."""

    @dg.asset(
        key=key,
        group_name=key.path[0],
        owners=owners,
        kinds=kinds | {kind, "delta"},
        description=description,
        pool=table_pool(key),
    )
    def land(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Land what is new in the source."""
        lake, run_id = plantlake.lake, context.run.run_id
        now = plantlake.present()
        return materialize(context, lake, refreshed(lake, key, run_id, lambda: build(lake, run_id, now)))

    return land


def silver_assets(
    key: dg.AssetKey,
    deps: list[dg.AssetKey],
    kind: str,
    description: str,
    build: Build,
    invariants: Invariants,
    invariants_description: str,
    owners: list[str] = OWNERS,
) -> list:
    """The silver asset (GX on each new batch as its own check) and its blocking DuckDB invariants check,
    in the group of its layer (`silver`)."""

    @dg.asset(
        key=key,
        deps=deps,
        group_name=key.path[0],
        owners=owners,
        kinds={kind, "delta"},
        check_specs=[expectation_spec(key)],
        description=description,
        pool=table_pool(key),
    )
    def merge(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Validate new bronze rows and merge them into silver."""
        lake, run_id, now = plantlake.lake, context.run.run_id, plantlake.present()
        return materialize(context, lake, refreshed(lake, key, run_id, lambda: build(lake, run_id, now)))

    @dg.asset_check(asset=key, name="invariants", blocking=True, description=invariants_description)
    def check(context: dg.AssetCheckExecutionContext, plantlake: PlantlakeResource) -> dg.AssetCheckResult:
        """DuckDB invariants over the whole silver table."""
        lake = plantlake.lake
        return invariants_result(context, lake, key, lake.table(*key.path), lambda data: invariants(data, lake), False)

    return [merge, check]

"""Gold feature tables for analysts and AI teams."""

import dagster as dg

from assets.resources import PlantlakeResource
from assets.results import (
    OWNERS,
    Step,
    expectation_spec,
    invariants_result,
    materialize,
)
from lake import delta, gold
from lake.layout import Lake
from pipelines.config import PlantlakeConfig
from quality import expectations, invariants, suites

MACHINE_HOUR_FEATURES = dg.AssetKey(["gold", "machine_hour_features"])
FEATURE_KEYS = ["machine_id", "hour"]


def build_machine_hour_features(lake: Lake, config: PlantlakeConfig) -> Step:
    """Recompute the features from silver; publish them only if every expectation holds."""
    path = lake.table("gold", "machine_hour_features")
    inputs = {
        "sensor_readings": delta.dataset(lake.table("silver", "sensor_readings")),
        "machine_events": delta.dataset(lake.table("silver", "machine_events")),
        "production_orders": delta.dataset(lake.table("silver", config.gold.production_orders)),
        "material_lots": delta.dataset(lake.table("silver", "material_lots")),
    }
    features = gold.machine_hour_features(inputs)
    validation = expectations.validate(features, suites.machine_hour_suite(features.schema), "gold.machine_hour_features")
    if validation.success:
        delta.overwrite(path, features)
    missing = sorted(name for name, data in inputs.items() if data is None)
    return Step(path, {"rows_computed": features.num_rows, "published": validation.success,
                       "inputs_missing": ", ".join(missing) or "none"}, validation)  # fmt: skip


def gold_assets(config: PlantlakeConfig) -> list:
    upstream = [dg.AssetKey(["silver", name]) for name in ("sensor_readings", "machine_events", config.gold.production_orders, "material_lots")]

    @dg.asset(key=MACHINE_HOUR_FEATURES, deps=upstream, group_name="gold", owners=OWNERS, kinds={"duckdb", "delta"},
              check_specs=[expectation_spec(MACHINE_HOUR_FEATURES, blocking=True)],
              description="Per machine and hour: sensor aggregates, the production order then running, "
                          "its material lot and supplier, and the alarm count.")  # fmt: skip
    def machine_hour_features(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Recompute machine-hour features from silver."""
        step = build_machine_hour_features(plantlake.lake, plantlake.config)
        return materialize(context, plantlake.lake, step, blocking=True)

    @dg.asset_check(asset=MACHINE_HOUR_FEATURES, name="invariants", blocking=True,
                    description="One row per machine and hour")  # fmt: skip
    def feature_invariants(context: dg.AssetCheckExecutionContext, plantlake: PlantlakeResource) -> dg.AssetCheckResult:
        """Unique (machine_id, hour) and not empty."""
        path = plantlake.lake.table("gold", "machine_hour_features")
        return invariants_result(context, plantlake.lake, MACHINE_HOUR_FEATURES, path, lambda data: [
            invariants.unique_keys(data, FEATURE_KEYS), invariants.not_empty(data)], blocking=True)  # fmt: skip

    return [machine_hour_features, feature_invariants]

"""Gold feature tables for analysts and AI teams."""

import dagster as dg

from plantlake.assets.resources import PlantlakeResource
from plantlake.assets.results import (
    OWNERS,
    Step,
    expectation_spec,
    invariants_result,
    materialize,
    refreshed,
)
from plantlake.config import PlantlakeConfig
from plantlake.lake import delta, gold
from plantlake.lake.layout import Lake
from plantlake.quality import expectations, invariants, suites

MACHINE_HOUR_FEATURES = dg.AssetKey(["gold", "machine_hour_features"])
FEATURE_KEYS = ["machine_id", "hour"]


def configured_inputs(config: PlantlakeConfig) -> dict[str, str]:
    """The silver tables the features read that some configured source fills, by role."""
    inputs = {}
    if config.sources.opcua:
        inputs["sensor_readings"] = "sensor_readings"
    if config.sources.logs:
        inputs["machine_events"] = "machine_events"
    erp_tables = {source.lake_table(table) for source in config.sources.erp for table in source.tables}
    if config.gold.production_orders in erp_tables:
        inputs["production_orders"] = config.gold.production_orders
    if any(source.target == "material_lots" for source in config.sources.suppliers):
        inputs["material_lots"] = "material_lots"
    return inputs


def build_machine_hour_features(lake: Lake, config: PlantlakeConfig) -> Step:
    """Recompute the features from silver; publish them only if every expectation holds."""
    path = lake.table("gold", "machine_hour_features")
    inputs = {role: lake.table("silver", name) for role, name in configured_inputs(config).items()}
    features = gold.machine_hour_features(inputs)
    validation = expectations.validate(
        features, suites.machine_hour_suite(features.schema), "gold.machine_hour_features"
    )
    # published unless a rule that keeps rows out failed; a rule that only warns does not hold gold back
    committed = delta.overwrite(path, features) if validation.holds else False
    missing = sorted(
        role
        for role in ("sensor_readings", "machine_events", "production_orders", "material_lots")
        if role not in inputs or delta.open_table(inputs[role]) is None
    )
    return Step(
        path,
        {
            "rows_computed": features.num_rows,
            "published": validation.holds,
            "changed": committed,
            "inputs_missing": ", ".join(missing) or "none",
        },
        validation,
    )


def gold_assets(config: PlantlakeConfig) -> list:
    """The feature table, when sensor readings (what it is built around) are configured; else nothing."""
    inputs = configured_inputs(config)
    if "sensor_readings" not in inputs:
        return []
    upstream = [dg.AssetKey(["silver", name]) for name in inputs.values()]

    @dg.asset(
        key=MACHINE_HOUR_FEATURES,
        deps=upstream,
        group_name="gold",
        owners=OWNERS,
        kinds={"duckdb", "delta"},
        check_specs=[expectation_spec(MACHINE_HOUR_FEATURES, blocking=True)],
        description="Per machine and hour: sensor aggregates, the production order then running, "
        "its material lot and supplier, and the alarm count.",
    )
    def machine_hour_features(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Recompute machine-hour features from silver."""
        lake = plantlake.lake
        step = refreshed(
            lake, MACHINE_HOUR_FEATURES, context.run.run_id, lambda: build_machine_hour_features(lake, plantlake.config)
        )
        return materialize(context, lake, step, blocking=True)

    @dg.asset_check(
        asset=MACHINE_HOUR_FEATURES, name="invariants", blocking=True, description="One row per machine and hour"
    )
    def feature_invariants(context: dg.AssetCheckExecutionContext, plantlake: PlantlakeResource) -> dg.AssetCheckResult:
        """Unique (machine_id, hour) and not empty."""
        path = plantlake.lake.table("gold", "machine_hour_features")
        return invariants_result(
            context,
            plantlake.lake,
            MACHINE_HOUR_FEATURES,
            path,
            lambda data: [invariants.unique_keys(data, FEATURE_KEYS), invariants.not_empty(data)],
            blocking=True,
        )

    return [machine_hour_features, feature_invariants]

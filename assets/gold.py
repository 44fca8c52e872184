"""Gold models: one asset per model file the YAML's `gold.models` folder holds, with its checks."""

import functools
import logging
from datetime import UTC, datetime, time, timedelta

import dagster as dg
import pyarrow as pa

from plantlake.assets.factory import table_pool
from plantlake.assets.resources import PlantlakeResource
from plantlake.assets.results import (
    OWNERS,
    WRITES_TAG,
    Step,
    expectation_spec,
    invariants_result,
    materialize,
    refreshed,
)
from plantlake.config import PlantlakeConfig
from plantlake.config.models import ModelSpec, load_models
from plantlake.lake import delta, gold, gold_plan, signals
from plantlake.lake.layout import Lake
from plantlake.quality import expectations, invariants, suites

log = logging.getLogger(__name__)
DAY = timedelta(days=1)


def silver_tables(config: PlantlakeConfig) -> set[str]:
    """The silver tables some configured source fills."""
    tables = {source.lake_table(table) for source in config.sources.erp for table in source.tables}
    tables |= {source.target for source in config.sources.suppliers}
    if config.sources.opcua:
        tables |= {signals.SENSOR_READINGS, signals.OPCUA_TAGS}
    if config.sources.logs:
        tables.add(signals.MACHINE_EVENTS)
    return tables


def _views(silver: set[str]) -> dict[str, tuple[str, ...]]:
    """The views a model may read, by the silver tables each needs."""
    found: dict[str, tuple[str, ...]] = {"machine_alias": ()}
    for view, sources in gold_plan.VIEW_INPUTS.items():
        if sources[0] in silver:
            found[view] = sources
    return found


# each model whose inputs are configured, with the silver tables behind each of its inputs
Buildable = list[tuple[ModelSpec, dict[str, tuple[str, ...]]]]


def buildable_models(config: PlantlakeConfig) -> Buildable:
    """Each model whose inputs are all configured, with the silver tables behind each input.

    A model naming a table no source fills is left out (and said so in the log), as is every
    model that reads it.
    """
    silver = silver_tables(config)
    views = _views(silver)
    built: Buildable = []
    for model in load_models(config.gold.models):
        available = silver | set(views) | {other.name for other, _ in built}
        found, missing = gold.inputs_of(model, available)
        if missing:
            log.warning("gold model %s is not built: %s not configured", model.name, ", ".join(sorted(missing)))
            continue
        built.append((model, {name: views.get(name, (name,)) for name in found}))
    return built


def model_inputs(lake: Lake, model_names: set[str], inputs: dict[str, tuple[str, ...]]) -> gold.Inputs:
    silver = {table: lake.table("silver", table) for name, tables in inputs.items() for table in tables}
    models = {name: lake.table("gold", name) for name in inputs if name in model_names}
    return gold.Inputs({name: path for name, path in silver.items() if name not in model_names}, models)


def build_model(
    lake: Lake,
    config: PlantlakeConfig,
    model: ModelSpec,
    inputs: gold.Inputs,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Step:
    """Recompute the windows new silver rows touch (or a range); append changed windows if they pass."""
    path = lake.table("gold", model.name)
    validations: list[expectations.Validation] = []

    def gate(rows: pa.Table) -> bool:
        validation = expectations.validate(rows, suites.model_suite(model, rows.schema), f"gold.{model.name}")
        validations.append(validation)
        return validation.holds

    done = gold.refresh(path, model, config.gold, inputs, now, start, end, gate)
    validation = expectations.Validation.combine(validations) if validations else expectations.Validation.nothing_new()
    return Step(
        path,
        {
            "windows_from": str(done.windows_from),
            "windows_to": str(done.windows_to),
            "full_build": done.full,
            "rows_computed": done.rows_computed,
            "versions_added": done.versions_added,
            "published": done.published,
            "inputs_read": dg.MetadataValue.json(done.inputs_read),
            "definition": model.definition_hash,
        },
        validation,
    )


def column_schema(model: ModelSpec, schema: pa.Schema | None) -> dg.TableSchema:
    """The feature dictionary (`gold.feature_notes`): type, description with its unit, and as tags
    the unit, where it comes from and whether it is known at the window's end."""
    columns = []
    for field in schema or []:
        notes = gold.feature_notes(model, field.name)
        description = notes.get("description", "(not documented in the model file)")
        description += f" [{notes['unit']}]" if "unit" in notes else ""
        tags = (
            {"unit": notes.get("unit", ""), "from": notes["from"], "known_at_window_end": notes["known_at_window_end"]}
            if "known_at_window_end" in notes  # a documented feature, not a version column
            else {}
        )
        columns.append(dg.TableColumn(field.name, str(field.type), description=description, tags=tags))
    return dg.TableSchema(columns=columns)


def _model_assets(model: ModelSpec, inputs: dict[str, tuple[str, ...]], names: set[str]) -> list:
    key = dg.AssetKey(["gold", model.name])
    deps = sorted(
        {dg.AssetKey(["gold", name]) for name in inputs if name in names}
        | {
            dg.AssetKey(["silver", table])
            for name, tables in inputs.items()
            if name not in names
            for table in tables
            if table != signals.OPCUA_TAGS  # the tag registry is published, but not an asset
        }
    )

    @dg.asset(
        key=key,
        deps=deps,
        group_name="gold",
        owners=OWNERS,
        kinds={"duckdb", "delta"},
        check_specs=[expectation_spec(key, blocking=True)],
        description=model.description.strip(),
        metadata={"model_file": model.path.name, "grain": model.grain, "late_arrival": model.late_arrival},
        pool=table_pool(key),
    )
    def model_asset(context: dg.AssetExecutionContext, plantlake: PlantlakeResource) -> dg.MaterializeResult:
        """Recompute the model's changed windows from silver and append new versions."""
        lake, now = plantlake.lake, plantlake.present()
        step = refreshed(
            lake,
            key,
            context.run.run_id,
            lambda: build_model(lake, plantlake.config, model, model_inputs(lake, names, inputs), now),
        )
        result = materialize(context, lake, step, blocking=True)
        table = delta.open_table(step.table)
        schema = None if table is None else pa.schema(table.schema().to_arrow())
        result.metadata["dagster/column_schema"] = column_schema(model, schema)  # type: ignore[index]
        return result

    @dg.asset_check(asset=key, name="invariants", blocking=True, description="One version per window and known time")
    def model_invariants(context: dg.AssetCheckExecutionContext, plantlake: PlantlakeResource) -> dg.AssetCheckResult:
        """Unique (key, window, known_at), and not empty."""
        return invariants_result(
            context,
            plantlake.lake,
            key,
            plantlake.lake.table("gold", model.name),
            lambda data: [
                invariants.unique_keys(data, [*model.key, model.time, gold.KNOWN_AT]),
                invariants.not_empty(data),
            ],
            blocking=True,
        )

    return [model_asset, model_invariants]


def gold_assets(models: Buildable) -> list:
    """An asset and its checks per buildable model (`buildable_models`)."""
    names = {model.name for model, _ in models}
    return [definition for model, inputs in models for definition in _model_assets(model, inputs, names)]


def rebuild_job(models: Buildable, first_day: str = "2024-01-01") -> dg.JobDefinition | None:
    """A job partitioned by day that recomputes every model's windows of a day; a range is a backfill in the UI."""
    if not models:
        return None
    names = {model.name for model, _ in models}
    days = dg.DailyPartitionsDefinition(start_date=first_day, timezone="UTC")

    @dg.op(description="Recompute every gold model's windows of the partition's day and append what changed.")
    def rebuild_gold_day(context: dg.OpExecutionContext, plantlake: PlantlakeResource) -> None:
        """Models in dependency order, so a model reads the rebuilt versions of those it reads."""
        day = context.partition_time_window.start.date()
        start = datetime.combine(day, time.min, UTC)
        lake, now = plantlake.lake, plantlake.present()
        for model, inputs in models:
            key = dg.AssetKey(["gold", model.name])
            rebuild = functools.partial(
                build_model, lake, plantlake.config, model, model_inputs(lake, names, inputs), now, start, start + DAY
            )
            step = refreshed(lake, key, context.run.run_id, rebuild)
            context.log_event(
                dg.AssetMaterialization(asset_key=key, metadata={**step.metadata, "rebuilt_day": day.isoformat()})
            )

    @dg.job(name="rebuild_gold", partitions_def=days, tags=WRITES_TAG, description="Rebuild gold for a range of days.")
    def rebuild_gold() -> None:
        rebuild_gold_day()

    return rebuild_gold

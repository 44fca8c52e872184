"""ERP tables: one bronze and one silver asset per table declared in the YAML."""

import functools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds
import sqlalchemy as sa
from deltalake import DeltaTable

from plantlake.assets.erp_preflight import check_table
from plantlake.assets.factory import bronze_asset, owners_of, silver_assets
from plantlake.assets.results import Step
from plantlake.assets.steps import link_validated, merge_validated
from plantlake.config import ErpSource, ErpTable
from plantlake.config.names import lake_identifier
from plantlake.connectors import sql, sql_fast
from plantlake.connectors.arrow_types import to_utc
from plantlake.lake import bronze, deletes, delta, drift, silver, transforms
from plantlake.lake.layout import INGESTION_FIELDS, RUN_ID, SOURCE, Ingestion, Lake
from plantlake.lake.storage import Location
from plantlake.quality import invariants, suites

BOOKKEEPING = {field.name for field in INGESTION_FIELDS} | {deletes.DELETED_AT}


def table_name(source: ErpSource, table: ErpTable) -> str:
    """The table's name in the lake and its asset keys (see `config.names` for the rule, `lake_name:` overrides it)."""
    return source.lake_table(table)


def _referenced_table(source: ErpSource, name: str) -> str:
    """The lake name of a table of the same source, by its source name (a declared table's own lake name)."""
    declared = next((table for table in source.tables if table.name == name), None)
    return table_name(source, declared) if declared else f"{source.name}_{lake_identifier(name)}"


def columns_to_land(source_table: sa.Table, table: ErpTable) -> list[str]:
    """The columns to land: all, or `include`, minus `exclude`; the declaration is checked against the source first."""
    present = list(source_table.c.keys())
    chosen = [name for name in (table.include or present) if name not in table.exclude]
    check_table(source_table, table, chosen)
    return chosen


def _source_schema(source_table: sa.Table, source: ErpSource, table: ErpTable) -> pa.Schema:
    schema = sql.source_schema(source_table, columns_to_land(source_table, table), source.timezone)
    tagged = [
        f.with_metadata({**f.metadata, b"personal_data": b"true"}) if f.name in table.personal_data else f
        for f in schema
    ]
    return pa.schema(tagged)


def _lower_bound(watermark: Any, table: ErpTable) -> Any:
    """Where this run starts reading: the watermark, minus the look-back for late commits."""
    lookback = table.lookback_value()
    if watermark is None or lookback is None:
        return watermark
    try:
        return watermark - lookback
    except TypeError:
        raise TypeError(
            f"{table.config_key}.lookback {table.lookback!r} does not fit cursor {table.cursor!r} "
            f"(watermark {watermark!r}); use a duration for time cursors, a number otherwise"
        ) from None


def _lowest(lower: object, field: pa.Field, timezone: str) -> pa.Scalar | None:
    """The lowest cursor value in bronze a read from `lower` can meet again, in the lake's terms (UTC)."""
    if lower is None:
        return None
    if pa.types.is_timestamp(field.type):
        return to_utc(pa.array([lower]), timezone)[0]
    return pa.scalar(lower, field.type)


@contextmanager
def _engine(source: ErpSource) -> Iterator[sa.Engine]:
    """An engine for one step, its connections closed when the step ends."""
    engine = sa.create_engine(source.url)
    try:
        yield engine
    finally:
        engine.dispose()


def _fast_connection_ahead(source: ErpSource, engine: sa.Engine) -> AbstractContextManager[None]:
    """The fast path's connection opened while the table is reflected (see `sql_fast.connecting_ahead`)."""
    return sql_fast.connecting_ahead(engine) if source.fast_path else nullcontext()  # it does nothing off PostgreSQL


def _conditions(table: ErpTable) -> list[sql.Condition]:
    return [(condition.column, condition.op, condition.value) for condition in table.where]


def _bronze_facts(path: Location, table: ErpTable) -> tuple[pa.Schema | None, Any]:
    """Bronze's schema and its committed watermark."""
    watermark = delta.read_state(path, "watermark", required=table.cursor is not None)
    return delta.schema(path), bronze.decode_watermark(watermark)


def load_bronze(lake: Lake, source: ErpSource, table: ErpTable, run_id: str) -> Step:
    """Land rows changed since the committed watermark (less the look-back), up to the cursor's maximum now."""
    name = table_name(source, table)
    path = lake.table("bronze", name)
    with (
        _engine(source) as engine,
        _fast_connection_ahead(source, engine),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="plantlake-bronze-facts") as lake_side,
    ):
        facts = lake_side.submit(_bronze_facts, path, table)  # read while the source table is reflected
        source_table = sql.reflect_table(engine, table.name)
        lake_schema, watermark = facts.result()
        change = drift.compare(lake_schema, _source_schema(source_table, source, table), f"bronze.{name}", BOOKKEEPING)
        lower = _lower_bound(watermark, table)
        until = sql.max_cursor(engine, source_table, table.cursor) if table.cursor else None
        # in key order on a cursor's first read, which the primary key's index serves and silver
        # links as landed; a later read holds a night's changes, which the source would have to
        # sort (45 of its 54 ms on 50,000 rows, spilled to disk) while silver orders them itself.
        # A table read whole every night is not sorted either: its index scan costs the source
        order = table.primary_key if table.cursor and lower is None else []
        read = sql.TableRead(source_table, change.schema.names, _conditions(table), table.cursor, lower, until, order)
        drift.record(lake, f"bronze.{name}", change, run_id)
        drift.apply(path, change)
        batches = sql.read_batches(engine, read, change.schema, source.timezone, source.batch_rows, source.fast_path)
        keys = [*table.primary_key, table.cursor] if table.cursor else change.schema.names
        lowest = _lowest(lower, change.schema.field(table.cursor), source.timezone) if table.cursor else None
        since = (table.cursor, lowest) if table.cursor and lowest is not None else None
        newest = until if until is not None else watermark
        state = {"watermark": bronze.encode_watermark(newest)} if table.cursor else None
        window = ds.field(table.cursor) >= lowest if since else None
        ingestion = Ingestion.now(run_id)
        landed = bronze.land(path, batches, change.schema, keys, ingestion, source.name, state, window, since)
        reader = sql_fast.reader_name(engine) if source.fast_path and sql_fast.supports(engine) else "sqlalchemy"
    return Step(
        path,
        {
            "rows_read": landed.rows_read,
            "rows_inserted": landed.rows_inserted,
            "watermark": str(newest),
            "read_from": str(lower),
            "schema_drift": change.describe(),
            "reader": reader,
            "source_timezone": source.timezone,
        },
    )


def _silver_drift(
    lake: Lake, name: str, run_id: str, silver_table: DeltaTable | None, bronze_table: DeltaTable | None
) -> drift.Drift:
    """Bring silver's schema up to bronze's (new and widened columns) before merging (the tables
    as the step opened them)."""
    path, bronze_schema = lake.table("silver", name), delta.schema(lake.table("bronze", name), bronze_table)
    if bronze_schema is None:
        return drift.Drift(pa.schema([]))
    wanted = pa.schema([f for f in bronze_schema if f.name not in (RUN_ID, SOURCE)] + [deletes.DELETED_FIELD])
    change = drift.compare(delta.schema(path, silver_table), wanted, f"silver.{name}", BOOKKEEPING)
    drift.record(lake, f"silver.{name}", change, run_id)
    drift.apply(path, change)
    return change


def _reconcile_deletes(path: Location, source: ErpSource, table: ErpTable, now: datetime) -> dict[str, object]:
    """Compare primary keys with the source when due; mark or remove the rows it no longer has."""
    if table.deletes is None:
        return {"rows_deleted": 0, "deletes_checked": False}
    silver_schema = delta.schema(path)
    if silver_schema is None or not deletes.due(path, table.deletes.every_hours, now):
        return {"rows_deleted": 0, "deletes_checked": False}
    key_schema = pa.schema([silver_schema.field(key) for key in table.primary_key])
    with _engine(source) as engine:
        read = sql.TableRead(sql.reflect_table(engine, table.name), table.primary_key, _conditions(table))
        keys = sql.read_batches(engine, read, key_schema, source.timezone, source.batch_rows, source.fast_path)
        gone = deletes.deleted_keys(path, keys, key_schema, table.primary_key)
    count = deletes.apply(path, gone, table.primary_key, remove=table.deletes.action == "remove", now=now)
    return {"rows_deleted": count, "deletes_checked": True}


def build_silver(lake: Lake, source: ErpSource, table: ErpTable, run_id: str, now: datetime | None = None) -> Step:
    """Newest version per primary key, validated (failing rows go to quarantine), deletes marked."""
    name, keys = table_name(source, table), table.primary_key
    path, bronze_path = lake.table("silver", name), lake.table("bronze", name)
    existing, landed = delta.open_table(path), delta.open_table(bronze_path)  # each opened once for the step
    change = _silver_drift(lake, name, run_id, existing, landed)
    if change.widened:
        existing = delta.open_table(path)  # rewritten
    # bronze as opened, where silver exists (the link below is then not tried); a first load's
    # usual path opens it anew, after a bronze commit may have refused the link
    bronze_input = silver.BronzeInput(bronze_path, keys, landed if existing is not None else None)
    suite = functools.partial(suites.erp_suite, keys, table.expect)
    step = link_validated(
        path, name, bronze_input, change.schema, suite, source.name, opened=existing
    ) or merge_validated(
        lake,
        path,
        silver.pending_chunks(path, {name: bronze_input}),
        lambda work: (transforms.erp_rows(work.rows[name], keys, table.cursor), []),
        suite,
        keys,
        run_id,
        source.name,
        opened=existing,
    )
    step.metadata.update(
        _reconcile_deletes(path, source, table, now or datetime.now(UTC)), schema_drift=change.describe()
    )
    return step


def silver_invariants(
    data: ds.Dataset, lake: Lake, source: ErpSource, table: ErpTable
) -> list[invariants.InvariantResult]:
    """Unique primary key, references to other tables, and the source's row count (rows not deleted)."""
    found = [invariants.unique_keys(data, table.primary_key)]
    for column, target in table.references.items():
        parent_table, parent_column = target.split(".")
        parent = delta.dataset(lake.table("silver", _referenced_table(source, parent_table)))
        if parent is not None:
            found.append(invariants.references(data, column, parent, parent_column, f"{source.name}.{parent_table}"))
    with _engine(source) as engine:
        expected = sql.count_rows(engine, sql.reflect_table(engine, table.name), _conditions(table))
    live = ds.field(deletes.DELETED_AT).is_null() if deletes.DELETED_AT in data.schema.names else None
    found.append(invariants.row_count_matches(data, expected, f"source table {table.name}", live))
    return found


def erp_assets(source: ErpSource) -> list:
    return [definition for table in source.tables for definition in _table_assets(source, table)]


def _table_assets(source: ErpSource, table: ErpTable) -> list:
    name = table_name(source, table)
    bronze_key, silver_key = dg.AssetKey(["bronze", name]), dg.AssetKey(["silver", name])
    return [
        bronze_asset(
            bronze_key,
            "erp",
            {"sql"},
            f"Rows of ERP table {table.name} as landed from {source.name}. {table.description}",
            lambda lake, run_id, now: load_bronze(lake, source, table, run_id),
            owners_of([source]),
        ),
        *silver_assets(
            silver_key,
            [bronze_key],
            "erp",
            f"ERP table {table.name}, newest version per key. {table.description}",
            lambda lake, run_id, now: build_silver(lake, source, table, run_id, now),
            lambda data, lake: silver_invariants(data, lake, source, table),
            "Unique keys, references, source row count",
            owners_of([source]),
        ),
    ]

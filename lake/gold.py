"""Gold: declared feature models computed with DuckDB, by window, kept as versions.

A model (`config.models.ModelSpec`) is a SELECT over silver, the `signals` and `events` views
(`lake.signals`) and other models. A night recomputes only the windows that new silver rows
touch, from the declared late-arrival allowance on, and compares each window's row with its
newest version: what changed is appended in one commit as a new version with `known_at` (when
gold learned it) and `feature_time` (the window's end). Nothing is overwritten, so the value as
of any past moment can be read back (`lake.training`), and an unchanged recompute commits nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from plantlake.config.gold import GoldConfig
from plantlake.config.models import ModelSpec
from plantlake.lake import delta, signals
from plantlake.lake import state as lake_state
from plantlake.lake.delta import quote
from plantlake.lake.gold_plan import (
    BUILT_THROUGH,
    CONSUMED,
    Inputs,
    Plan,
    grain_length,
    ingested_marks,
    input_versions,
    plan,
    window_origin,
    window_start,
)
from plantlake.lake.storage import Location

FEATURE_TIME, KNOWN_AT, ROW_HASH, DEFINITION = "feature_time", "known_at", "_row_hash", "_definition"
VERSION_COLUMNS = (FEATURE_TIME, KNOWN_AT, ROW_HASH, DEFINITION)
VERSION_NOTES = {
    FEATURE_TIME: "End of the window: the earliest time the row's values can describe (Feast: event timestamp)",
    KNOWN_AT: "When gold computed this version; a later correction adds a newer one (Feast: created timestamp)",
    ROW_HASH: "Hash of the row's values, to tell a changed window from an unchanged one",
    DEFINITION: "Hash of the model file that computed the row",
}
SHAPE = "model"
SLICE = timedelta(days=31)  # a rebuild computes at most this much at once: memory follows the slice


def inputs_of(model: ModelSpec, available: set[str]) -> tuple[set[str], set[str]]:
    """The relations the model's SQL names that are available, and those that are not."""
    scratch = duckdb.connect()
    _window_macros(scratch, timedelta(hours=1), datetime(2000, 1, 3, tzinfo=UTC))
    named = {name for name in scratch.get_table_names(model.sql, qualified=False) if name != model.name}
    scratch.close()
    return named & available, named - available


def _window_macros(connection: duckdb.DuckDBPyConnection, length: timedelta, origin: datetime) -> None:
    """`window_of(ts)` and `window_end_of(ts)`: the start and end of the model's window holding `ts`."""
    interval = f"INTERVAL '{int(length.total_seconds())} seconds'"
    connection.execute(f"CREATE MACRO window_of(ts) AS time_bucket({interval}, ts, TIMESTAMPTZ '{origin.isoformat()}')")
    connection.execute(f"CREATE MACRO window_end_of(ts) AS window_of(ts) + {interval}")


def _connect(model: ModelSpec, config: GoldConfig, inputs: Inputs) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    length, origin = grain_length(model, config), window_origin(model, config)
    _window_macros(connection, length, origin)
    silver = inputs.existing_silver()
    for name, table in silver.items():
        delta.create_view(connection, quote(name), table)
    signals.register_views(connection, silver, config)
    for name, path in inputs.gold.items():
        model_table = inputs.open(path)
        if model_table is not None:
            register_latest(connection, quote(name), quote(f"{name}__versions"), path, model_table)
    return connection


def register_latest(
    connection: duckdb.DuckDBPyConnection, latest: str, versions: str, path: Location, table: DeltaTable | None = None
) -> str:
    """Views of a gold table (its current version, or `table`): `versions` holds every version,
    `latest` the newest of each window without the bookkeeping columns. Both identifiers are
    quoted SQL (`delta.quote`). Returns the window's columns (its key and time), as quoted SQL."""
    shape = delta.read_state(path, SHAPE) or {}
    delta.create_view(connection, versions, table or delta.load(path))
    partition = ", ".join(quote(column) for column in [*shape.get("key", []), shape.get("time", FEATURE_TIME)])
    connection.execute(
        f"CREATE OR REPLACE VIEW {latest} AS SELECT * EXCLUDE ({ROW_HASH}, {DEFINITION}) FROM {versions} "
        f"QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY {KNOWN_AT} DESC) = 1"
    )
    return partition


def compute(
    model: ModelSpec, config: GoldConfig, inputs: Inputs, start: datetime, end: datetime, now: datetime
) -> pa.Table:
    """The model's rows for the windows in [start, end), with `feature_time` and a hash of each row's values.

    The SELECT sees `getvariable('now')`: an order still running (no end time) runs until then.
    """
    length = grain_length(model, config)
    connection = _connect(model, config, inputs)
    try:
        moments = {"window_start": start, "window_end": end, "read_from": start - length, "now": now}
        for name, value in moments.items():
            connection.execute(f"SET VARIABLE {name} = TIMESTAMPTZ '{value.isoformat()}'")
        relation = connection.sql(model.sql)
        columns = [column for column in relation.columns if column not in VERSION_COLUMNS]
        undocumented = [column for column in columns if column not in model.columns]
        if undocumented:
            raise ValueError(
                f"{model.path}: columns {', '.join(undocumented)} have no entry under `columns:` in the header; "
                "give each a description (and a unit where it has one): it is the feature dictionary"
            )
        missing = [column for column in [*model.key, model.time] if column not in columns]
        if missing:
            raise ValueError(
                f"{model.path}: the SELECT has no column {missing[0]!r}, which the header names as key or time"
            )
        hashed = ", ".join(quote(column) for column in columns)
        connection.register("computed", relation.to_arrow_table())
        time, seconds = quote(model.time), int(length.total_seconds())
        return connection.sql(
            f"SELECT {hashed}, {time} + INTERVAL '{seconds} seconds' AS {FEATURE_TIME}, "
            f"CAST(hash({hashed}) >> 1 AS BIGINT) AS {ROW_HASH} FROM computed "
            f"WHERE {time} >= getvariable('window_start') AND {time} < getvariable('window_end') "
            f"ORDER BY {', '.join(quote(column) for column in [*model.key, model.time])}"
        ).to_arrow_table()
    finally:
        connection.close()


def _changed(path: Location, rows: pa.Table, model: ModelSpec, start: datetime, end: datetime) -> pa.Table:
    """The rows whose window has no version of this definition yet, or whose newest holds other
    values; with `corrects`: whether the window had such a version (the row is then a correction)."""
    window = (ds.field(model.time) >= start) & (ds.field(model.time) < end)
    window &= ds.field(DEFINITION) == model.definition_hash
    held = (
        delta.read(path, columns=[*model.key, model.time, KNOWN_AT, ROW_HASH], filter=window) if rows.num_rows else None
    )
    if held is None or held.num_rows == 0:  # no table, nothing computed, or no window held yet
        return rows.append_column("corrects", pa.repeat(pa.scalar(False), rows.num_rows))
    keys = ", ".join(quote(column) for column in [*model.key, model.time])
    same = " AND ".join(f"n.{quote(column)} = c.{quote(column)}" for column in [*model.key, model.time])
    with duckdb.connect() as connection:
        connection.register("computed", rows)
        connection.register("held", held)
        return connection.sql(
            f"WITH newest AS (SELECT {keys}, {ROW_HASH} FROM held "
            f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {KNOWN_AT} DESC) = 1) "
            f"SELECT c.*, n.{ROW_HASH} IS NOT NULL AS corrects FROM computed c LEFT JOIN newest n ON {same} "
            f"WHERE n.{ROW_HASH} IS NULL OR n.{ROW_HASH} <> c.{ROW_HASH} ORDER BY {keys}"
        ).to_arrow_table()


def feature_notes(model: ModelSpec, column: str) -> dict[str, str]:
    """A column's entry of the feature dictionary: the model, and as its header gives them its
    description, unit, sources and whether it is known at the window's end."""
    doc = model.columns.get(column)
    notes = {"model": model.name}
    if column in VERSION_NOTES:
        notes["description"] = VERSION_NOTES[column]
    elif doc is not None:
        notes |= {"description": doc.description, "from": ", ".join(doc.sources)}
        notes |= {"unit": doc.unit} if doc.unit else {}
        notes["known_at_window_end"] = str(doc.known_at_window_end).lower()
    return notes


def documented(rows: pa.Table, model: ModelSpec) -> pa.Table:
    """The rows with each column's `feature_notes` as field metadata, which the Delta schema keeps
    and the catalog shows."""
    return rows.cast(pa.schema([column.with_metadata(feature_notes(model, column.name)) for column in rows.schema]))


def known_at(changed: pa.Table, now: datetime, backfill_before: datetime | None) -> pa.Array:
    """When each version became known: `now`, except in a full build or a rebuild (`backfill_before`
    set), where a window seen for the first time under this definition counts as known when it
    ended, as a live run would have computed it then. Corrections are always known `now`."""
    moment = pa.scalar(now, pa.timestamp("us", "UTC"))
    if backfill_before is None:
        return pa.repeat(moment, changed.num_rows)
    ended = changed[FEATURE_TIME].cast(pa.timestamp("us", "UTC"))
    history = pc.and_(pc.invert(changed["corrects"]), pc.less_equal(ended, pa.scalar(backfill_before, ended.type)))
    return pc.if_else(history, ended, moment)


@dataclass
class Refresh:
    windows_from: datetime | None
    windows_to: datetime | None
    rows_computed: int = 0
    versions_added: int = 0
    full: bool = False
    published: bool = True
    inputs_read: dict[str, int] = field(default_factory=dict)


def refresh(
    path: Location,
    model: ModelSpec,
    config: GoldConfig,
    inputs: Inputs,
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    gate: Callable[[pa.Table], bool] | None = None,
) -> Refresh:
    """Recompute the windows changed silver rows touch (or [start, end) for a rebuild) and append what changed.

    `gate` sees each slice's changed rows before they are committed; when it refuses them, the
    refresh stops there, commits nothing more and keeps its marks, so the next run tries again.

    Only complete windows (ending by `now`) are computed. Each slice of windows is one commit;
    the marks of what was consumed are saved after the last, so a rerun after a failure
    computes the same windows again and adds nothing twice (unchanged rows add no version).
    """
    rebuild = start is not None
    last = min(end or now, window_start(now, model, config))
    planned = Plan(start, False) if rebuild else plan(path, model, config, inputs, now)
    if planned.start is None:
        return Refresh(None, None)
    first = window_start(planned.start, model, config)
    marks, ingested = input_versions(inputs), ingested_marks(inputs)
    backfill_before = last if planned.full or rebuild else None  # a nightly run's new windows are known now
    result = Refresh(first, last, full=planned.full)
    for low, high in _slices(first, last):
        rows = compute(model, config, inputs, low, high, now)
        changed = _changed(path, rows, model, low, high)
        result.rows_computed += rows.num_rows
        result.versions_added += changed.num_rows
        if changed.num_rows and gate is not None and not gate(changed.drop_columns("corrects")):
            result.published = False
            return result
        if changed.num_rows:
            versions = changed.append_column(KNOWN_AT, known_at(changed, now, backfill_before)).drop_columns("corrects")
            versions = documented(versions, model)
            delta.append(path, versions, constants={DEFINITION: pa.scalar(model.definition_hash)})
    result.inputs_read = marks
    if delta.open_table(path) is None:
        return result
    saved: dict[str, Any] = {SHAPE: _shape(model)}
    if not rebuild:
        saved |= {
            CONSUMED: {"versions": marks, "ingested": ingested, "definition": model.definition_hash},
            BUILT_THROUGH: last.isoformat(),
        }
    lake_state.write(path, saved)
    return result


def _shape(model: ModelSpec) -> dict[str, Any]:
    return {"key": model.key, "time": model.time, "grain": model.grain}


def _slices(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    low = start
    while low < end:
        yield low, min(low + SLICE, end)
        low += SLICE


def latest(path: Location) -> pa.Table:
    """The newest version of each window of a gold table, ordered by its key and window."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    try:
        window = register_latest(connection, "latest", "versions", path)
        return connection.sql(f"SELECT * FROM latest ORDER BY {window}").to_arrow_table()
    finally:
        connection.close()

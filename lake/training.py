"""Training sets for AI teams: features joined as of each label time, with a manifest that rebuilds them.

A feature row is usable at a label time when its window has ended and gold had computed that
version by then (`known_at`). Per entity, the versions in order of when they became known form a
timeline of "the newest window known so far, in its newest version"; DuckDB's ASOF join picks,
for each label, the timeline's state at the label time. So a correction made after the label
time is never seen, and a correction of an older window never hides a newer window.

The manifest names the Delta version of every table read, the models' definition hashes, and
the label; `rebuild` reads those versions again (time travel) and returns the same frame.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from plantlake.lake import delta, gold
from plantlake.lake.delta import quote
from plantlake.lake.layout import Lake
from plantlake.lake.storage import Location

LABEL_TIME = "label_time"
ROW = "__row"


@dataclass(frozen=True)
class EventWithin:
    """A declared label: does an event of `severities` start on the entity within `hours` after the label time?

    Label times are the ends of the windows of `model` (one label per entity and window); a label
    whose horizon has not fully passed by `until` is left out, as its outcome is not known yet.
    """

    model: str
    hours: float
    severities: tuple[str, ...] = ("emergency", "alert", "critical", "error")
    entity: str = "machine_id"


@dataclass
class Manifest:
    features: dict[str, list[str]]
    versions: dict[str, int]
    definitions: dict[str, list[str]]
    point_in_time: bool = True
    max_age_s: float | None = None
    label: dict[str, Any] | None = None
    entities_sha256: str | None = None
    until: str | None = None
    rows: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls(**json.loads(text))


def entity_frame(lake: Lake, model: str, every: timedelta) -> pa.Table:
    """Every entity of a model with a label time each `every`, from its first window's end to its last."""
    path = lake.table("gold", model)
    keys = (delta.read_state(path, gold.SHAPE) or {}).get("key", [])
    key_list = ", ".join(quote(k) for k in keys)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    try:
        delta.create_view(connection, "versions", delta.load(path))
        return connection.sql(
            f"SELECT {key_list}, unnest(range(low, high + INTERVAL 1 SECOND, INTERVAL '{every.total_seconds()} "
            f"seconds')) AS {LABEL_TIME} FROM (SELECT {key_list}, min({gold.FEATURE_TIME}) AS low, "
            f"max({gold.FEATURE_TIME}) AS high FROM versions GROUP BY ALL) ORDER BY ALL"
        ).to_arrow_table()
    finally:
        connection.close()


def _features_by_model(lake: Lake, features: list[str]) -> dict[str, list[str]]:
    """'model.column' (or 'model.*') by model; a name that is no gold column says which ones there are."""
    chosen: dict[str, list[str]] = {}
    for name in features:
        model, _, column = name.partition(".")
        schema = delta.schema(lake.table("gold", model))
        if schema is None:
            raise ValueError(f"feature {name!r}: there is no gold table {model!r}; build it first")
        usable = [f.name for f in schema if f.name not in gold.VERSION_COLUMNS]
        columns = usable if column == "*" else [column]
        unknown = [c for c in columns if c not in usable]
        if unknown:
            raise ValueError(f"feature {name!r}: gold.{model} has no column {unknown[0]!r}; it has {', '.join(usable)}")
        chosen.setdefault(model, []).extend(c for c in columns if c not in chosen.get(model, []))
    return chosen


def _version_view(connection: duckdb.DuckDBPyConnection, name: str, path: Location, version: int) -> None:
    delta.create_view(connection, quote(name), delta.load(path, version))


def training_set(
    lake: Lake,
    features: list[str],
    entities: pa.Table | None = None,
    label: EventWithin | None = None,
    max_age: timedelta | None = None,
    point_in_time: bool = True,
    until: datetime | None = None,
) -> tuple[pa.Table, Manifest]:
    """The training frame and its manifest.

    `entities` holds the models' key columns and `label_time` (and any label columns, kept as they
    are); or `label` declares the labels and builds the entities. `max_age`: a feature whose window
    ended longer before the label time is null. `point_in_time=False` joins the newest version
    whatever its time (for comparison only: it leaks). `until` (default now) bounds declared labels.
    """
    chosen = _features_by_model(lake, features)
    versions = {f"gold.{model}": delta.load(lake.table("gold", model)).version() for model in chosen}
    if label is not None:
        versions[f"gold.{label.model}"] = delta.load(lake.table("gold", label.model)).version()
        events = lake.table("silver", "machine_events")
        versions["silver.machine_events"] = delta.load(events).version()
    manifest = Manifest(
        features=chosen,
        versions=versions,
        definitions={},
        point_in_time=point_in_time,
        max_age_s=max_age.total_seconds() if max_age else None,
        label=asdict(label) if label else None,
        until=(until or datetime.now().astimezone()).isoformat() if label else None,
    )
    return _build(lake, manifest, entities)


def rebuild(lake: Lake, manifest: Manifest, entities: pa.Table | None = None) -> pa.Table:
    """The frame `manifest` describes, from the table versions it names; the same entities if it was given some."""
    if manifest.entities_sha256 is not None and (entities is None or _digest(entities) != manifest.entities_sha256):
        raise ValueError("this manifest was built from an entity frame: pass the same frame (its hash differs)")
    frame, _ = _build(lake, manifest, entities)
    return frame


def _digest(entities: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, entities.schema) as writer:
        writer.write_table(entities)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _build(lake: Lake, manifest: Manifest, entities: pa.Table | None) -> tuple[pa.Table, Manifest]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    try:
        for qualified, version in manifest.versions.items():
            layer, name = qualified.split(".", 1)
            _version_view(connection, f"{layer}__{name}", lake.table(layer, name), version)
        if entities is None:
            if manifest.label is None:
                raise ValueError("give an entity frame (keys and label_time) or a declared label")
            declared = EventWithin(**{**manifest.label, "severities": tuple(manifest.label["severities"])})
            entities = _declared_labels(connection, declared, datetime.fromisoformat(manifest.until or ""))
        else:
            manifest.entities_sha256 = _digest(entities)
        if LABEL_TIME not in entities.column_names:
            raise ValueError(f"the entity frame needs a {LABEL_TIME!r} column: when each label was to be predicted")
        connection.register("entities_input", entities)
        current = "entities_0"
        connection.execute(
            f"CREATE TEMP TABLE {current} AS SELECT *, row_number() OVER () AS {ROW} FROM entities_input"
        )
        for index, (model, columns) in enumerate(manifest.features.items()):
            shape = delta.read_state(lake.table("gold", model), gold.SHAPE) or {}
            keys = shape.get("key", [])
            missing = [key for key in keys if key not in entities.column_names]
            if missing:
                raise ValueError(f"gold.{model} is keyed on {keys}: the entity frame lacks {missing}")
            if model not in manifest.definitions:  # the definition of the newest version read
                manifest.definitions[model] = [
                    row[0]
                    for row in connection.sql(
                        f"SELECT {gold.DEFINITION} FROM gold__{model} ORDER BY {gold.KNOWN_AT} DESC LIMIT 1"
                    ).fetchall()
                ]
            listed = ", ".join(delta.literal(definition) for definition in manifest.definitions[model])
            connection.execute(
                f"CREATE TEMP VIEW gold__{model}__defined AS SELECT * FROM gold__{model} "
                f"WHERE {gold.DEFINITION} IN ({listed or 'NULL'})"
            )
            joined = _join_model(f"gold__{model}__defined", current, model, keys, columns, manifest)
            current = f"entities_{index + 1}"
            connection.execute(f"CREATE TEMP TABLE {current} AS {joined}")
        result = connection.sql(f"SELECT * EXCLUDE ({ROW}) FROM {current} ORDER BY {ROW}").to_arrow_table()
        manifest.rows = result.num_rows
        return result, manifest
    finally:
        connection.close()


def _join_model(table: str, current: str, model: str, keys: list[str], columns: list[str], manifest: Manifest) -> str:
    """SQL: the rows of `current` with `columns` of one model as of each label time, and the
    version's `<model>__feature_time` and `<model>__known_at` (so an audit can see what was known)."""
    key_list = ", ".join(quote(k) for k in keys)
    same_keys = " AND ".join(f"{{a}}.{quote(k)} = {{b}}.{quote(k)}" for k in keys)
    ft, ka = gold.FEATURE_TIME, gold.KNOWN_AT
    # point in time: per entity, at each moment a version became known, the newest window known so far in
    # its newest version; otherwise the newest version of every window as if known when it ended (it leaks)
    available = f"greatest({ft}, {ka})" if manifest.point_in_time else ft
    moments = (
        f"SELECT {key_list}, {available} AS available_at, max(struct_pack(ft := {ft}, ka := {ka})) AS best "
        f"FROM {table} GROUP BY ALL"
    )
    timeline = (
        f"SELECT {key_list}, available_at, max(best) OVER (PARTITION BY {key_list} ORDER BY available_at "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS best FROM ({moments})"
    )
    age = f" AND e.{LABEL_TIME} - v.{ft} <= INTERVAL '{manifest.max_age_s} seconds'" if manifest.max_age_s else ""
    picked = ", ".join(
        [f"v.{quote(c)} AS {quote(f'{model}__{c}' if c in keys else c)}" for c in columns if c not in keys]
        + [f"v.{ft} AS {quote(model + '__feature_time')}", f"v.{ka} AS {quote(model + '__known_at')}"]
    )
    return (
        f"WITH timeline AS ({timeline}), "
        f"as_of AS (SELECT e.{ROW}, t.* FROM {current} e ASOF LEFT JOIN timeline t "
        f"ON {same_keys.format(a='e', b='t')} AND e.{LABEL_TIME} >= t.available_at) "
        f"SELECT e.*, {picked} FROM {current} e LEFT JOIN as_of t ON t.{ROW} = e.{ROW} "
        f"LEFT JOIN {table} v ON {same_keys.format(a='v', b='t')} AND v.{ft} = t.best.ft AND v.{ka} = t.best.ka{age}"
    )


def _declared_labels(connection: duckdb.DuckDBPyConnection, label: EventWithin, until: datetime) -> pa.Table:
    """Per entity and window end of `label.model`: whether an event starts within the horizon after it."""
    severities = ", ".join(delta.literal(s) for s in label.severities)
    horizon = f"INTERVAL '{label.hours * 3600} seconds'"
    entity = quote(label.entity)
    return connection.sql(
        f"WITH windows AS (SELECT DISTINCT {entity}, {gold.FEATURE_TIME} AS {LABEL_TIME} FROM gold__{label.model} "
        f"WHERE {gold.FEATURE_TIME} + {horizon} <= TIMESTAMPTZ '{until.isoformat()}'), "
        f'alarms AS (SELECT DISTINCT machine_id, "timestamp" FROM silver__machine_events '
        f"WHERE severity IN ({severities})) "
        f"SELECT w.{entity}, w.{LABEL_TIME}, EXISTS (SELECT 1 FROM alarms a WHERE a.machine_id = w.{entity} "
        f'AND a."timestamp" > w.{LABEL_TIME} AND a."timestamp" <= w.{LABEL_TIME} + {horizon}) AS label '
        f"FROM windows w ORDER BY w.{entity}, w.{LABEL_TIME}"
    ).to_arrow_table()

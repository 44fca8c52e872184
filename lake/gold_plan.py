"""Which windows of a gold model a refresh computes: the model's grain, what its inputs hold that
is new since the last refresh (by table version and ingestion time), and from where to recompute."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from plantlake.config.gold import GoldConfig
from plantlake.config.models import ModelSpec
from plantlake.lake import delta, signals
from plantlake.lake.layout import INGESTED_AT
from plantlake.lake.storage import Location

CONSUMED, BUILT_THROUGH = "consumed", "built_through"
FEATURE_TIME = "feature_time"
VIEW_INPUTS = {"signals": (signals.SENSOR_READINGS, signals.OPCUA_TAGS), "events": (signals.MACHINE_EVENTS,)}


def grain_length(model: ModelSpec, config: GoldConfig) -> timedelta:
    return {"hour": timedelta(hours=1), "day": timedelta(days=1), "shift": timedelta(hours=config.shifts.hours)}[
        model.grain
    ]


def window_origin(model: ModelSpec, config: GoldConfig) -> datetime:
    """Windows start at this moment plus whole windows (shifts from the first shift's start, UTC)."""
    hours, minutes = (int(part) for part in config.shifts.first_start.split(":"))
    offset = timedelta(hours=hours, minutes=minutes) if model.grain == "shift" else timedelta()
    return datetime(2000, 1, 3, tzinfo=UTC) + offset


def window_start(moment: datetime, model: ModelSpec, config: GoldConfig) -> datetime:
    """The start of the window that holds `moment`."""
    length, origin = grain_length(model, config), window_origin(model, config)
    return origin + ((moment - origin) // length) * length


@dataclass
class Inputs:
    """Where the model's relations live: silver tables by name, and other models' gold tables."""

    silver: Mapping[str, Location]
    gold: Mapping[str, Location] = field(default_factory=dict)
    _opened: dict[Location, DeltaTable | None] = field(default_factory=dict, repr=False)

    def open(self, path: Location) -> DeltaTable | None:
        """The table as this refresh first saw it: its plan, its marks and its reads meet one version."""
        if path not in self._opened:
            self._opened[path] = delta.open_table(path)
        return self._opened[path]

    def existing_silver(self) -> dict[str, DeltaTable]:
        return {name: table for name, path in self.silver.items() if (table := self.open(path)) is not None}


def input_versions(inputs: Inputs) -> dict[str, int]:
    """Each input table's current version: an input whose version has not moved has nothing new."""
    found = {}
    for layer, tables in (("silver", inputs.silver), ("gold", inputs.gold)):
        for name, path in tables.items():
            table = inputs.open(path)
            if table is not None:
                found[f"{layer}.{name}"] = table.version()
    return found


def _earliest_change(table: DeltaTable, columns: list[str], since: str | None) -> datetime | None:
    """The earliest value of `columns` among rows ingested after `since`; for all rows (`since`
    None) from the file statistics alone. The scan holds one batch at a time."""
    names = pa.schema(table.schema().to_arrow()).names
    present = [column for column in columns if column in names]
    if since is None or INGESTED_AT not in names:
        files = pa.table(table.get_add_actions(flatten=True))
        lows = [pc.min(files[f"min.{column}"]).as_py() for column in present if f"min.{column}" in files.column_names]
    else:
        newer = ds.field(INGESTED_AT) > pa.scalar(datetime.fromisoformat(since), pa.timestamp("us", "UTC"))
        data = table.to_pyarrow_dataset()
        lows = [
            pc.min(batch.column(column)).as_py() for batch in delta.scan(data, present, newer) for column in present
        ]
    found = [_as_utc(low) for low in lows if low is not None]
    return min(found) if found else None


def _as_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):  # a statistic as the log keeps it
        return _as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return datetime(value.year, value.month, value.day, tzinfo=UTC)  # a date


@dataclass(frozen=True)
class Plan:
    """The windows a refresh computes: from `start` (None: nothing to do), and whether all of history."""

    start: datetime | None
    full: bool


def plan(path: Location, model: ModelSpec, config: GoldConfig, inputs: Inputs, now: datetime) -> Plan:
    """From the earliest window a changed input row touches, or the late-arrival allowance.

    A new or changed definition, or a changed input with no declared time columns, is a full build.
    An input whose table version has not moved since the last refresh is not read at all.
    """
    consumed = delta.read_state(path, CONSUMED) or {}
    versions, ingested = consumed.get("versions", {}), consumed.get("ingested", {})
    built = delta.read_state(path, BUILT_THROUGH)
    full = delta.open_table(path) is None or consumed.get("definition") != model.definition_hash
    earliest: list[datetime] = []
    moved = False
    for qualified, input_path, columns in _inputs_with_times(model, inputs):
        table = inputs.open(input_path)
        if table is None or (not full and versions.get(qualified) == table.version()):
            continue
        moved = True
        if columns is None:
            full = True
            continue
        change = _earliest_change(table, columns, None if full else ingested.get(qualified))
        if change is not None:
            earliest.append(change)
    if full:
        return Plan(min(earliest) if earliest else None, True)
    current = window_start(now, model, config)
    if not moved and built is not None and datetime.fromisoformat(built) >= current:
        return Plan(None, False)  # nothing new, and every complete window is built
    due = current - model.late
    if built is not None:
        due = min(due, datetime.fromisoformat(built) - model.late)
    return Plan(min([*earliest, due]), False)


def _inputs_with_times(model: ModelSpec, inputs: Inputs) -> Iterator[tuple[str, Location, list[str] | None]]:
    """Each input table, and its columns that place a changed row in time (None: every window)."""
    for name, path in inputs.silver.items():
        view = next((view for view, sources in VIEW_INPUTS.items() if name in sources), None)
        if name == signals.OPCUA_TAGS:
            yield f"silver.{name}", path, []  # a unit or a tag's description changes nothing already computed
        elif view is not None:
            yield f"silver.{name}", path, model.time_columns(view)
        else:
            yield f"silver.{name}", path, model.time_columns(name)
    for name, path in inputs.gold.items():
        yield f"gold.{name}", path, [FEATURE_TIME]


def ingested_marks(inputs: Inputs) -> dict[str, str]:
    """The newest ingestion time of each silver input, to find the rows that arrive after it."""
    found = {}
    for name, table in inputs.existing_silver().items():
        newest = _newest_ingested(table)
        if newest is not None:
            found[f"silver.{name}"] = newest.isoformat()
    return found


def _newest_ingested(table: DeltaTable) -> datetime | None:
    """From the file statistics alone: no row is read."""
    files = pa.table(table.get_add_actions(flatten=True))
    column = f"max.{INGESTED_AT}"
    if column not in files.column_names or files.num_rows == 0:
        return None
    newest = pc.max(files[column]).as_py()
    return None if newest is None else _as_utc(newest)

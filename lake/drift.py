"""Schema drift between what a lake table holds and what its source now delivers.

A new source column is added to the table. A column whose type widened (a decimal with
more digits, a date that became a timestamp) is rewritten to the wider type in one commit.
A column that narrowed keeps the lake's wider type. Any other change stops the table with
an error that names the column, both types and the ways forward; other tables load on.
Every change is recorded once in `meta.schema_changes`, which the catalog shows.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from plantlake.lake import delta
from plantlake.lake.layout import Lake
from plantlake.lake.storage import Location

SCHEMA_CHANGES = "schema_changes"
SCHEMA = pa.schema(
    [
        pa.field("table_name", pa.string()),
        pa.field("column_name", pa.string()),
        pa.field("change", pa.string()),
        pa.field("old_type", pa.string()),
        pa.field("new_type", pa.string()),
        pa.field("detected_at", pa.timestamp("us", tz="UTC")),
        pa.field("run_id", pa.string()),
    ]
)
_KEYS = ["table_name", "column_name", "change", "new_type"]


class SchemaDriftError(TypeError):
    """A source column changed type in a way the lake cannot take in place."""


def widens(old: pa.DataType, new: pa.DataType) -> bool:
    """Whether every value of type `old` is held exactly by `new`."""
    if old == new:
        return True
    if pa.types.is_decimal(old) and pa.types.is_decimal(new):
        return new.scale >= old.scale and new.precision - new.scale >= old.precision - old.scale
    if pa.types.is_integer(old) and pa.types.is_decimal(new):
        return new.precision - new.scale >= 19
    if pa.types.is_date(old) and pa.types.is_timestamp(new):
        return True
    if pa.types.is_timestamp(old) and pa.types.is_timestamp(new):
        return old.tz == new.tz
    return False


@dataclass
class Drift:
    """How the source's schema differs from the lake's, and the schema to land with."""

    schema: pa.Schema
    added: list[str] = field(default_factory=list)
    widened: dict[str, tuple[pa.DataType, pa.DataType]] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.widened or self.removed)

    def describe(self) -> str:
        parts = [f"added {', '.join(self.added)}"] if self.added else []
        parts += [f"widened {name} {old} -> {new}" for name, (old, new) in self.widened.items()]
        parts += [f"removed {', '.join(self.removed)} (kept in the lake, null from now on)"] if self.removed else []
        return "; ".join(parts) or "none"


def compare(
    lake_schema: pa.Schema | None, source: pa.Schema, table: str, ignore: AbstractSet[str] = frozenset()
) -> Drift:
    """The drift from `lake_schema` to `source`; raises SchemaDriftError on an incompatible change."""
    if lake_schema is None:
        return Drift(source)
    drift, fields = Drift(source), []
    for incoming in source:
        if incoming.name not in lake_schema.names:
            drift.added.append(incoming.name)
            fields.append(incoming)
            continue
        landed = lake_schema.field(incoming.name)
        kept = landed.type
        if widens(incoming.type, kept):
            fields.append(landed)  # the lake's type and notes: delta-rs refuses to merge differing field metadata
        elif widens(kept, incoming.type):
            drift.widened[incoming.name] = (kept, incoming.type)
            fields.append(incoming)
        else:
            raise SchemaDriftError(
                f"{table}: column {incoming.name!r} changed from {kept} in the lake to {incoming.type} in the "
                f"source, which cannot hold the values already landed. Other tables still load. To go on, "
                f"either exclude the column in the config (exclude: [{incoming.name}]), cast it back in a "
                f"source view, or reload the table: delete its bronze and silver folders and run again."
            )
    drift.removed = [name for name in lake_schema.names if name not in source.names and name not in ignore]
    drift.schema = pa.schema(fields, metadata=source.metadata)
    return drift


def apply(path: Location, drift: Drift) -> None:
    """Rewrite widened columns in place; added columns arrive with the next write."""
    if drift.widened:
        delta.widen(path, {name: drift.schema.field(name) for name in drift.widened})


def record(lake: Lake, table_name: str, drift: Drift, run_id: str) -> None:
    """Note each change once in `meta.schema_changes` (a rerun finds the same rows already there)."""
    if not drift:
        return
    now = datetime.now(UTC)
    rows = [(name, "added", "", str(drift.schema.field(name).type)) for name in drift.added]
    rows += [(name, "widened", str(old), str(new)) for name, (old, new) in drift.widened.items()]
    rows += [(name, "removed", "", "") for name in drift.removed]
    table = pa.table(
        {
            "table_name": [table_name] * len(rows),
            "column_name": [row[0] for row in rows],
            "change": [row[1] for row in rows],
            "old_type": [row[2] for row in rows],
            "new_type": [row[3] for row in rows],
            "detected_at": [now] * len(rows),
            "run_id": [run_id] * len(rows),
        },
        schema=SCHEMA,
    )
    delta.merge(lake.table("meta", SCHEMA_CHANGES), table, _KEYS, update=False)

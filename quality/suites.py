"""What each silver and gold table must satisfy, row by row.

Suites are plain data here; `quality.expectations` turns them into GX expectations only
when a batch is validated, so importing this module does not import GX.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pyarrow as pa

from plantlake.config import ColumnMapping, TableExpectations

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Expect:
    kind: Literal["not_null", "between", "in_set"]
    column: str
    min: Any = None
    max: Any = None
    values: tuple[str, ...] = ()
    condition: str | None = None
    label: str | None = None

    @property
    def name(self) -> str:
        """Stable across runs: quarantine rows are keyed by it, so it must not embed the clock."""
        if self.label:
            return self.label
        where = f" where {self.condition}" if self.condition else ""
        if self.kind == "between":
            return f"{self.column} between {self.min} and {self.max}{where}"
        if self.kind == "in_set":
            return f"{self.column} in {list(self.values)}{where}"
        return f"{self.column} not null{where}"


def not_null(*columns: str) -> list[Expect]:
    return [Expect("not_null", column) for column in columns]


def timestamps_sane(schema: pa.Schema, now: datetime | None = None) -> list[Expect]:
    """Every timestamp column between 2000 and tomorrow: catches epoch zeros and clock errors."""
    latest = (now or datetime.now(UTC)) + timedelta(days=1)
    return [
        Expect("between", field.name, EARLIEST, latest, label=f"{field.name} between 2000-01-01 and tomorrow")
        for field in schema
        if pa.types.is_timestamp(field.type) and not field.name.startswith("_")
    ]


def erp_suite(primary_key: list[str], expect: TableExpectations, schema: pa.Schema) -> list[Expect]:
    """Keys and declared columns not null, declared ranges and allowed values, sane timestamps."""
    suite = not_null(*dict.fromkeys([*primary_key, *expect.not_null]))
    suite += [Expect("between", column, low, high) for column, (low, high) in expect.ranges.items()]
    suite += [Expect("in_set", column, values=tuple(values)) for column, values in expect.allowed.items()]
    return suite + timestamps_sane(schema)


SENSOR_RANGES = {"Temperature": (-50, 400), "Vibration": (0, 100), "SpindleSpeed": (0, 40_000), "State": (0, 3)}


def sensor_suite(schema: pa.Schema) -> list[Expect]:
    suite = not_null("source", "node_id", "tag", "timestamp", "status")
    suite.append(Expect("in_set", "status", values=("Good", "Uncertain", "Bad")))
    suite += [
        Expect("between", "value", low, high, condition=f'tag=="{tag}" and status=="Good"')
        for tag, (low, high) in SENSOR_RANGES.items()
    ]
    return suite + timestamps_sane(schema)


def event_suite(schema: pa.Schema) -> list[Expect]:
    suite = not_null("timestamp", "machine_id", "severity")
    suite.append(
        Expect(
            "in_set",
            "severity",
            values=("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"),
        )
    )
    return suite + timestamps_sane(schema)


def supplier_suite(columns: Mapping[str, ColumnMapping], key: list[str], schema: pa.Schema) -> list[Expect]:
    required = [spec.name for spec in columns.values() if spec.required]
    suite = not_null(*dict.fromkeys([*key, *required]))
    suite += [
        Expect("between", spec.name, 0, 1_000_000)
        for spec in columns.values()
        if spec.type in ("decimal", "float", "int") and spec.name.startswith("quantity")
    ]
    return suite + timestamps_sane(schema)


def machine_hour_suite(schema: pa.Schema) -> list[Expect]:
    suite = not_null("machine_id", "hour", "alarm_count", "readings")
    suite += [
        Expect("between", "running_share", 0, 1),
        Expect("between", "fault_share", 0, 1),
        Expect("between", "alarm_count", 0, 3_600),
        Expect("between", "parts_produced", 0, 100_000),
    ]
    return suite + timestamps_sane(schema)

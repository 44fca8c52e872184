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
from plantlake.config.models import ModelSpec
from plantlake.config.sources import OnFail

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
    # quarantine: the row is kept out; warn: it is kept and the check warns; fail: the step stops.
    # Generic rules (not declared in the YAML) warn: a replica keeps every row its source has.
    on_fail: OnFail = "quarantine"

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


def timestamps_sane(schema: pa.Schema, now: datetime | None = None, on_fail: OnFail = "warn") -> list[Expect]:
    """Every timestamp column between 2000 and tomorrow: points at epoch zeros and clock errors.

    A generic rule, so it warns by default: an ERP plans work orders ahead, and a planned start
    next year is a value of the source like any other.
    """
    latest = (now or datetime.now(UTC)) + timedelta(days=1)
    return [
        Expect(
            "between",
            field.name,
            EARLIEST,
            latest,
            label=f"{field.name} between 2000-01-01 and tomorrow",
            on_fail=on_fail,
        )
        for field in schema
        if pa.types.is_timestamp(field.type) and not field.name.startswith("_")
    ]


def erp_suite(primary_key: list[str], expect: TableExpectations, schema: pa.Schema) -> list[Expect]:
    """Keys not null (a row without its key cannot be merged), the rules the YAML declares with their
    `on_fail`, and the generic timestamp rule (`expect.timestamps_sane`, warn by default)."""
    declared = dict(expect.not_null_rules())
    suite = [Expect("not_null", column) for column in primary_key]
    suite += [
        Expect("not_null", column, on_fail=on_fail) for column, on_fail in declared.items() if column not in primary_key
    ]
    suite += [
        Expect("between", column, low, high, on_fail=on_fail) for column, low, high, on_fail in expect.range_rules()
    ]
    suite += [
        Expect("in_set", column, values=tuple(values), on_fail=on_fail)
        for column, values, on_fail in expect.allowed_rules()
    ]
    return suite + timestamps_sane(schema, on_fail=expect.timestamps_sane)


SENSOR_RANGES = {"Temperature": (-50, 400), "Vibration": (0, 100), "SpindleSpeed": (0, 40_000), "State": (0, 3)}


def sensor_suite(schema: pa.Schema) -> list[Expect]:
    suite = not_null("source", "node_id", "tag", "timestamp", "status")
    suite.append(Expect("in_set", "status", values=("Good", "Uncertain", "Bad")))
    suite += [
        Expect("between", "value", low, high, condition=f'tag=="{tag}" and status=="Good"', on_fail="warn")
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
        Expect("between", spec.name, 0, 1_000_000, on_fail="warn")
        for spec in columns.values()
        if spec.type in ("decimal", "float", "int") and spec.name.startswith("quantity")
    ]
    return suite + timestamps_sane(schema)


def model_suite(model: ModelSpec, schema: pa.Schema) -> list[Expect]:
    """A gold model's key and window not null, and what its header's `expect` declares (fail by default)."""
    keys = [Expect("not_null", column, on_fail="fail") for column in [*model.key, model.time]]
    declared = erp_suite([], model.expect, schema)
    return keys + [
        expect for expect in declared if (expect.kind, expect.column) not in {("not_null", k.column) for k in keys}
    ]

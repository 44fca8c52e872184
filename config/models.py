"""Gold model files: a DuckDB SELECT with its configuration beside it, in a YAML header.

    /* ---
    description: Per machine and hour ...
    key: [machine_id]
    time: hour
    grain: hour
    late_arrival: 6h
    changes_from: {erp_production_orders: actual_start}
    expect: {not_null: [machine_id], ranges: {running_share: [0, 1]}, on_fail: fail}
    columns:
      temperature_mean: {description: ..., unit: degC, from: [signals.temperature]}
    --- */
    SELECT ...

The SELECT reads `getvariable('window_start')` and `getvariable('window_end')`: the windows to
compute. Its inputs are the tables it names (see `lake.models`).
"""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from plantlake.config.gold import duration
from plantlake.config.sources import ConfigError, Strict, TableExpectations

_HEADER = re.compile(r"^\s*/\*\s*---\s*\n(?P<yaml>.*?)\n\s*---\s*\*/(?P<sql>.*)$", re.DOTALL)
Grain = Literal["hour", "shift", "day"]


class ColumnDoc(Strict):
    description: str = Field(min_length=1)
    unit: str | None = None
    sources: list[str] = Field(
        default_factory=list, alias="from", description="signals or tables it comes from, e.g. signals.temperature"
    )
    known_at_window_end: bool = Field(
        default=True, description="false: its value may become known only later (an ERP entry made afterwards)"
    )


class ModelSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    key: list[str] = Field(min_length=1, description="the entity columns, e.g. [machine_id]")
    time: str = Field(description="the column holding each window's start")
    grain: Grain
    late_arrival: str = Field(default="0s", description="how far back a night recomputes windows, e.g. 6h")
    changes_from: dict[str, str | list[str] | None] = Field(
        default_factory=dict,
        description="per input table, the time columns whose values say which windows a changed row touches; "
        "an input not named here (other than signals and events) touches every window",
    )
    expect: TableExpectations = Field(default_factory=lambda: TableExpectations(on_fail="fail"))
    columns: dict[str, ColumnDoc] = Field(default_factory=dict)
    sql: str
    path: Path

    @field_validator("late_arrival")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        duration(value, "late_arrival")
        return value

    @property
    def late(self) -> timedelta:
        return duration(self.late_arrival, f"{self.path}: late_arrival")

    @property
    def definition_hash(self) -> str:
        """Changes with the SQL or its header: a rebuild after a change writes new versions."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]

    def time_columns(self, table: str) -> list[str] | None:
        """The columns of `table` that place a changed row in time; None: a change touches every window."""
        if table in ("signals", "events") and table not in self.changes_from:
            return ["timestamp"]
        columns = self.changes_from.get(table)
        if columns is None:
            return None
        return [columns] if isinstance(columns, str) else columns


def load_model(path: Path) -> ModelSpec:
    """The model in `path`; a clear error names the file and the key that is wrong."""
    text = path.read_text(encoding="utf-8")
    found = _HEADER.match(text)
    if found is None:
        raise ConfigError(f"{path}: a model starts with its YAML header between '/* ---' and '--- */'")
    try:
        header = yaml.safe_load(found["yaml"]) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: the header is not valid YAML: {exc}") from exc
    if not isinstance(header, dict):
        raise ConfigError(f"{path}: the header must be a mapping of keys such as key, time, grain")
    if "expect" in header and isinstance(header["expect"], dict):
        header["expect"] = {"on_fail": "fail", **header["expect"]}
    try:
        model = ModelSpec(name=path.stem, sql=found["sql"].strip().rstrip(";"), path=path, **header)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None
    if (
        any(on_fail == "quarantine" for *_, on_fail in model.expect.range_rules())
        or model.expect.on_fail == "quarantine"
    ):
        raise ConfigError(f"{path}: expect.on_fail: gold keeps no quarantine; use warn or fail")
    return model


def load_models(folder: Path | None) -> list[ModelSpec]:
    """Every model file in `folder`, by name; none when no folder is configured."""
    if folder is None:
        return []
    if not folder.is_dir():
        raise ConfigError(f"gold.models: {folder} is not a folder")
    return [load_model(path) for path in sorted(folder.glob("*.sql"))]

"""The plantlake YAML: one file declares the lake and every source.

`${VAR}` and `${VAR:-default}` are replaced from the environment before validation, so
secrets never live in the file. Relative paths are taken relative to the YAML file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^${}]*))?\}")
_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"


class ConfigError(ValueError):
    """The YAML is missing something or holds a value of the wrong kind."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableExpectations(_Strict):
    """Row-level expectations for one silver table, beyond the generic ones."""

    ranges: dict[str, tuple[float | None, float | None]] = Field(default_factory=dict)
    allowed: dict[str, list[str]] = Field(default_factory=dict)
    not_null: list[str] = Field(default_factory=list)


class ErpTable(_Strict):
    name: str
    primary_key: list[str] = Field(min_length=1)
    cursor: str | None = None
    description: str = ""
    expect: TableExpectations = Field(default_factory=TableExpectations)
    references: dict[str, str] = Field(
        default_factory=dict, description="column -> 'table.column' of another table of the same source"
    )

    @field_validator("references")
    @classmethod
    def _dotted(cls, value: dict[str, str]) -> dict[str, str]:
        for column, target in value.items():
            if target.count(".") != 1:
                raise ValueError(f"references.{column}: expected 'table.column', got {target!r}")
        return value


class ErpSource(_Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    url: str
    batch_rows: int = Field(default=50_000, gt=0)
    tables: list[ErpTable] = Field(min_length=1)


class OpcuaSource(_Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    endpoint: str
    roots: list[str] = Field(min_length=1, description="Browse paths below Objects, e.g. '2:Plant'")
    history_days: float = Field(default=7, gt=0, description="How far back the first load reads")
    values_per_request: int = Field(default=5_000, gt=0)
    nodes_per_request: int = Field(default=50, gt=0)
    timeout_s: float = Field(default=30, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _opc_scheme(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError(f"expected an opc.tcp:// endpoint, got {value!r}")
        return value


class LogSource(_Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    path: Path
    glob: str = "*.log"
    format: Literal["syslog", "jsonl"]
    machine_map: dict[str, str] = Field(
        default_factory=dict, description="host name in the log -> machine id used by ERP and OPC-UA"
    )


class ColumnMapping(_Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    type: Literal["string", "int", "decimal", "float", "date", "timestamp"] = "string"
    required: bool = False
    scale: int = Field(default=3, ge=0, le=18, description="digits after the point for decimals")


class CsvOptions(_Strict):
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    decimal: Literal[".", ","] = "."
    encoding: str = "utf-8"
    date_format: str = "%Y-%m-%d"


class SupplierSource(_Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    path: Path
    glob: str
    format: Literal["csv", "xlsx", "json"]
    target: str = Field(default="material_lots", pattern=_NAME_PATTERN)
    key: list[str] = Field(min_length=1)
    csv: CsvOptions = Field(default_factory=CsvOptions)
    sheet: str | None = None
    columns: dict[str, ColumnMapping] = Field(min_length=1, description="source column -> lake column")


class Sources(_Strict):
    erp: list[ErpSource] = Field(default_factory=list)
    opcua: list[OpcuaSource] = Field(default_factory=list)
    logs: list[LogSource] = Field(default_factory=list)
    suppliers: list[SupplierSource] = Field(default_factory=list)


class GoldConfig(_Strict):
    production_orders: str = Field(
        default="erp_production_orders",
        description="silver table with machine_id, actual_start, actual_end, material_lot",
    )


class LakeConfig(_Strict):
    root: Path


class SimulatorConfig(_Strict):
    seed: int = 42
    output: Path
    lines: int = Field(default=2, gt=0)
    machines_per_line: int = Field(default=3, gt=0)
    history_days: float = Field(default=2, gt=0)
    sample_seconds: int = Field(default=60, gt=0)
    opcua_port: int = 48400


class ScheduleConfig(_Strict):
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    supplier_sensor_seconds: int = Field(default=60, gt=0)


class PlantlakeConfig(_Strict):
    lake: LakeConfig
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    sources: Sources
    gold: GoldConfig = Field(default_factory=GoldConfig)
    simulator: SimulatorConfig | None = None
    path: Path | None = Field(default=None, exclude=True)


def substitute_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace `${VAR}` and `${VAR:-default}`; a missing variable without default is an error."""
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (used as ${{{name}}} in the config)")

    # innermost first, so a default may itself hold a ${VAR:-default}
    for _ in range(10):
        replaced = _ENV_PATTERN.sub(replace, text)
        if replaced == text:
            return replaced
        text = replaced
    return text


def _resolve_paths(config: PlantlakeConfig, base: Path) -> None:
    def resolve(path: Path) -> Path:
        return path if path.is_absolute() else (base / path).resolve()

    config.lake.root = resolve(config.lake.root)
    for source in [*config.sources.logs, *config.sources.suppliers]:
        source.path = resolve(source.path)
    if config.simulator:
        config.simulator.output = resolve(config.simulator.output)
    for erp in config.sources.erp:
        if erp.url.startswith("sqlite:///") and not erp.url.startswith("sqlite:////"):
            erp.url = "sqlite:///" + str(resolve(Path(erp.url.removeprefix("sqlite:///"))))


def _check_unique_names(config: PlantlakeConfig) -> None:
    seen: set[str] = set()
    for kind in ("erp", "opcua", "logs", "suppliers"):
        for source in getattr(config.sources, kind):
            if source.name in seen:
                raise ConfigError(f"sources.{kind}: the name {source.name!r} is used twice; names must be unique")
            seen.add(source.name)


def parse_config(text: str, base: Path, origin: str = "<string>") -> PlantlakeConfig:
    """Validate YAML text; errors name the key path and what was expected."""
    try:
        raw = yaml.safe_load(substitute_env(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: expected a mapping with 'lake' and 'sources' at the top")
    try:
        config = PlantlakeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{origin}: {problems}") from None
    _check_unique_names(config)
    _resolve_paths(config, base)
    return config


def load_config(path: str | Path | None = None) -> PlantlakeConfig:
    """Load the YAML named by `path`, else $PLANTLAKE_CONFIG, else ./plantlake.yaml."""
    chosen = Path(path or os.environ.get("PLANTLAKE_CONFIG") or "plantlake.yaml").resolve()
    if not chosen.is_file():
        raise ConfigError(f"config file {chosen} not found; set PLANTLAKE_CONFIG or pass a path")
    config = parse_config(chosen.read_text(encoding="utf-8"), chosen.parent, origin=str(chosen))
    config.path = chosen
    return config

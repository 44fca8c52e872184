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
from pydantic import Field, ValidationError, field_validator

from plantlake.config.gold import GoldConfig
from plantlake.config.sources import ConfigError, Sources, Strict

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^${}]*))?\}")


class S3Config(Strict):
    """How to reach the S3-compatible store of an `s3://` lake root (read from the environment)."""

    endpoint: str = Field(default="", description="e.g. http://seaweedfs:8333; empty: AWS itself")
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = Field(default="", repr=False)

    @field_validator("endpoint", "region", "access_key_id", "secret_access_key", mode="before")
    @classmethod
    def _unset_is_empty(cls, value: object) -> object:
        """`${AWS_REGION:-}` with the variable unset leaves the key empty, which YAML reads as null."""
        return "" if value is None else value


class LakeConfig(Strict):
    root: str = Field(description="a local folder, or s3://bucket/prefix on S3-compatible storage (see s3)")
    local: Path | None = Field(
        default=None,
        description="this machine's working folder (catalog, quality docs, spool); default: the root itself, "
        "which an s3:// root must not be",
    )
    s3: S3Config = Field(default_factory=S3Config)

    @field_validator("local", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`${PLANTLAKE_LAKE_LOCAL:-}` with the variable unset: no local folder of its own (the root's)."""
        return None if value == "" else value

    @property
    def in_object_storage(self) -> bool:
        return "://" in self.root

    @property
    def storage_options(self) -> dict[str, str]:
        """The AWS_* options delta-rs and Arrow use for an s3:// root (empty for a local one)."""
        if not self.in_object_storage:
            return {}
        s3 = self.s3
        options = {
            "AWS_ENDPOINT_URL": s3.endpoint,
            "AWS_REGION": s3.region or "us-east-1",
            "AWS_ACCESS_KEY_ID": s3.access_key_id,
            "AWS_SECRET_ACCESS_KEY": s3.secret_access_key,
            "AWS_ALLOW_HTTP": "true" if s3.endpoint.startswith("http://") else "",
        }
        return {key: value for key, value in options.items() if value}

    @property
    def local_folder(self) -> Path:
        """Where this machine keeps the lake's local files: `local`, else the (local) root."""
        if self.local is not None:
            return self.local
        if self.in_object_storage:
            raise ConfigError(f"lake.root {self.root} is in object storage: set lake.local, a folder on this machine")
        return Path(self.root)


class SimulatorConfig(Strict):
    seed: int = 42
    output: Path
    lines: int = Field(default=2, gt=0)
    machines_per_line: int = Field(default=3, gt=0)
    history_days: float = Field(default=2, gt=0)
    sample_seconds: int = Field(default=60, gt=0)
    opcua_port: int = 48400


class ScheduleConfig(Strict):
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    supplier_sensor_seconds: int = Field(default=60, gt=0)
    automation: Literal["off", "on"] = Field(
        default="off",
        description="on: the schedules and sensors start switched on (production, $PLANTLAKE_AUTOMATION=on); "
        "off: they wait to be turned on in the UI (development). Once toggled in the UI, the UI's state wins",
    )

    @field_validator("automation", mode="before")
    @classmethod
    def _yaml_boolean(cls, value: object) -> object:
        """YAML reads a bare off/on (also no/yes, false/true) as a boolean."""
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @property
    def automated(self) -> bool:
        """Whether the schedules and sensors start switched on."""
        return self.automation == "on"


class MaintenanceConfig(Strict):
    """The weekly housekeeping job: compaction, checkpoints, log cleanup and vacuum."""

    cron: str = Field(default="0 4 * * 0", description="when the maintenance job runs (default Sundays 04:00)")
    retention_days: float = Field(
        default=7,
        ge=0,
        description="time travel reaches this far back; vacuum keeps "
        "what it needs (never less than the longest run still going)",
    )
    target_file_mb: int = Field(default=128, gt=0, description="compaction writes files of about this size")


class ExecutionConfig(Strict):
    """How a run executes its steps; the same for scheduled, sensor and UI runs."""

    executor: Literal["in_process", "multiprocess", "celery"] = Field(
        default="in_process",
        description="in_process: one process, no per-step start-up (fastest on one machine); "
        "multiprocess: steps in parallel processes forked from a server that has plantlake imported; "
        "celery: each step a task for the Celery workers listening on `queue` (on this or other machines)",
    )
    max_concurrent: int = Field(default=2, gt=0, description="multiprocess: steps at once")
    broker: str = Field(
        default="pyamqp://guest:guest@127.0.0.1:5672//",
        min_length=1,
        description="celery: the broker's URL (RabbitMQ: pyamqp://user:password@host:5672/vhost)",
    )
    backend: str = Field(
        default="rpc://", min_length=1, description="celery: where the workers send each step's events back"
    )
    queue: str = Field(
        default="plantlake",
        pattern=r"^\S+$",
        description="celery: the queue the steps go to and the workers listen on",
    )


class PlantlakeConfig(Strict):
    lake: LakeConfig
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    maintenance: MaintenanceConfig = Field(default_factory=MaintenanceConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    sources: Sources
    gold: GoldConfig = Field(default_factory=GoldConfig)
    simulator: SimulatorConfig | None = None
    path: Path | None = Field(default=None, exclude=True)


def substitute_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace `${VAR}` and `${VAR:-default}`; a missing variable without default is an error.

    Lines that are comments are left as they are."""
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (used as ${{{name}}} in the config)")

    def substituted(line: str) -> str:
        if line.lstrip().startswith("#"):  # a commented-out example may name a variable this site does not set
            return line
        # innermost first, so a default may itself hold a ${VAR:-default}
        for _ in range(10):
            replaced = _ENV_PATTERN.sub(replace, line)
            if replaced == line:
                return replaced
            line = replaced
        return line

    return "".join(substituted(line) for line in text.splitlines(keepends=True))


def _resolve_paths(config: PlantlakeConfig, base: Path) -> None:
    def resolve(path: Path) -> Path:
        return path if path.is_absolute() else (base / path).resolve()

    if not config.lake.in_object_storage:
        config.lake.root = str(resolve(Path(config.lake.root)))
    config.lake.local = resolve(config.lake.local) if config.lake.local is not None else None
    for log in config.sources.logs:
        log.path = resolve(log.path)
    for server in config.sources.opcua:
        if server.security is not None:
            server.security.certificate = resolve(server.security.certificate)
            server.security.private_key = resolve(server.security.private_key)
    for supplier in config.sources.suppliers:
        supplier.path = resolve(supplier.path)
        supplier.archive = resolve(supplier.archive) if supplier.archive else None
        supplier.rejected = resolve(supplier.rejected) if supplier.rejected else None
    if config.simulator:
        config.simulator.output = resolve(config.simulator.output)
    if config.gold.models is not None:
        config.gold.models = resolve(config.gold.models)
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
        problems = "; ".join(f"{'.'.join(str(part) for part in err['loc'])}: {err['msg']}" for err in exc.errors())
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

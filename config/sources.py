"""The sources a plantlake YAML declares: ERP tables, OPC-UA servers, log folders, supplier drops."""

from __future__ import annotations

import codecs
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from plantlake.config.names import LAKE_NAME_PATTERN, lake_identifier

_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
SUPPLIER_COLUMN = "source"  # silver's column naming the supplier source of each drop-folder row


class ConfigError(ValueError):
    """The YAML is missing something or holds a value of the wrong kind."""


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


OnFail = Literal["quarantine", "warn", "fail"]
_ON_FAIL = (
    "quarantine: the row goes to quarantine.rows; warn: the row is kept and the check warns; fail: the step stops"
)


class RangeRule(Strict):
    """A range rule with its own on_fail; `[low, high]` is the short form."""

    min: float | None = None
    max: float | None = None
    on_fail: OnFail | None = Field(default=None, description=f"default: expect.on_fail. {_ON_FAIL}")


class AllowedRule(Strict):
    """Allowed values with their own on_fail; a plain list is the short form."""

    values: list[str]
    on_fail: OnFail | None = Field(default=None, description=f"default: expect.on_fail. {_ON_FAIL}")


class NotNullRule(Strict):
    """A column that must hold a value, with its own on_fail; the column's name is the short form."""

    column: str
    on_fail: OnFail | None = Field(default=None, description=f"default: expect.on_fail. {_ON_FAIL}")


class TableExpectations(Strict):
    """Row-level expectations for one silver table, beyond the generic ones."""

    on_fail: OnFail = Field(default="quarantine", description=f"what breaking a rule declared here does. {_ON_FAIL}")
    ranges: dict[str, tuple[float | None, float | None] | RangeRule] = Field(default_factory=dict)
    allowed: dict[str, list[str] | AllowedRule] = Field(default_factory=dict)
    not_null: list[str | NotNullRule] = Field(default_factory=list)
    timestamps_sane: OnFail = Field(
        default="warn",
        description="the generic rule 'every timestamp between 2000-01-01 and tomorrow' (planned dates may lie "
        f"ahead; warn keeps the row). {_ON_FAIL}",
    )

    def range_rules(self) -> list[tuple[str, float | None, float | None, OnFail]]:
        """(column, low, high, on_fail) of every declared range."""
        found = []
        for column, rule in self.ranges.items():
            if isinstance(rule, RangeRule):
                found.append((column, rule.min, rule.max, rule.on_fail or self.on_fail))
            else:
                found.append((column, rule[0], rule[1], self.on_fail))
        return found

    def allowed_rules(self) -> list[tuple[str, list[str], OnFail]]:
        """(column, allowed values, on_fail) of every declared value set."""
        return [
            (column, rule.values, rule.on_fail or self.on_fail)
            if isinstance(rule, AllowedRule)
            else (column, rule, self.on_fail)
            for column, rule in self.allowed.items()
        ]

    def not_null_rules(self) -> list[tuple[str, OnFail]]:
        """(column, on_fail) of every column declared not null."""
        return [
            (rule.column, rule.on_fail or self.on_fail) if isinstance(rule, NotNullRule) else (rule, self.on_fail)
            for rule in self.not_null
        ]

    def columns(self) -> list[str]:
        """Every column a rule here names."""
        return [
            *(column for column, *_ in self.range_rules()),
            *(column for column, *_ in self.allowed_rules()),
            *(column for column, _ in self.not_null_rules()),
        ]


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
RowFilterOp = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null"]


class RowFilter(Strict):
    """One condition every landed row must meet; the value is bound as a parameter, never pasted into SQL."""

    column: str
    op: RowFilterOp = "="
    value: str | int | float | bool | list[str | int | float] | None = None


class DeleteDetection(Strict):
    """Find rows deleted in the source by comparing primary keys (keys only, so it is cheap)."""

    every_hours: float = Field(default=24, ge=0, description="0 = on every run")
    action: Literal["mark", "remove"] = Field(
        default="mark", description="mark: set _deleted_at in silver; remove: delete the row from silver"
    )


class ErpTable(Strict):
    """One source table, declared in one place: keys, cursor, look-back, filter, columns, personal data."""

    name: str = Field(min_length=1, description="the table's name in the source, exactly (spaces and all)")
    lake_name: str | None = Field(
        default=None,
        pattern=LAKE_NAME_PATTERN,
        description="the table's name in the lake and Dagster, after '<source>_'; default: derived from name "
        "(lower case, accents dropped, other characters to '_')",
    )
    primary_key: list[str] = Field(min_length=1)
    cursor: str | None = Field(default=None, description="column that grows on every insert and update")
    lookback: str | int | None = Field(
        default=None,
        description="re-read this far behind the watermark for late commits: '15m', '2h', '1d' for "
        "time cursors, a number for numeric cursors",
    )
    where: list[RowFilter] = Field(default_factory=list, description="land only rows meeting all conditions")
    include: list[str] = Field(default_factory=list, description="land only these columns (default: all)")
    exclude: list[str] = Field(default_factory=list, description="never land these columns")
    personal_data: list[str] = Field(default_factory=list, description="columns tagged as personal data")
    deletes: DeleteDetection | None = Field(default_factory=DeleteDetection)
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

    @field_validator("lookback")
    @classmethod
    def _duration_or_number(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, str) and not _DURATION.match(value.strip()):
            raise ValueError(f"expected a duration such as '90s', '15m', '2h', '1d' or a number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _columns_agree(self) -> ErpTable:
        if self.include and self.exclude:
            raise ValueError("give either include or exclude, not both")
        kept = set(self.include) if self.include else None
        needed = [*self.primary_key, *([self.cursor] if self.cursor else [])]
        for column in needed:
            if column in self.exclude or (kept is not None and column not in kept):
                raise ValueError(f"column {column!r} is a key or the cursor, so it cannot be left out")
        return self

    _config_key: str = PrivateAttr(default="")

    @property
    def config_key(self) -> str:
        """Where the table is declared, e.g. `sources.erp[0].tables[2]`, for error messages."""
        return self._config_key or f"table {self.name!r}"

    def lookback_value(self) -> timedelta | int | float | None:
        """The look-back as a timedelta (durations) or a number (numeric cursors)."""
        if isinstance(self.lookback, str):
            parsed = _DURATION.match(self.lookback.strip())
            if parsed is None:  # the field's validator let it through, so this is a bug, not bad input
                raise ValueError(f"lookback {self.lookback!r} is not a duration such as 30m, 2h or 1d")
            amount, unit = parsed.groups()
            return timedelta(**{_DURATION_UNITS[unit]: float(amount)})
        return self.lookback


def known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'") from None
    return value


class OwnedSource(Strict):
    """A source whose tables someone answers for, named in Dagster and the catalog."""

    owner: str = Field(
        default="team:data-engineering",
        pattern=r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+)$",
        description="who answers for this source's tables: team:<name> or an e-mail address",
    )


class ErpSource(OwnedSource):
    name: str = Field(pattern=_NAME_PATTERN)
    url: str
    batch_rows: int = Field(default=100_000, gt=0)
    timezone: str = Field(default="UTC", description="zone of the source's timestamps without a zone")
    fast_path: bool = Field(
        default=True, description="read PostgreSQL through ADBC and MariaDB/MySQL through connectorx"
    )
    tables: list[ErpTable] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    def lake_table(self, table: ErpTable) -> str:
        """The table's name in the lake and in Dagster's asset keys: `<source>_<lake name>`."""
        return f"{self.name}_{table.lake_name or lake_identifier(table.name)}"

    @model_validator(mode="after")
    def _lake_names_unique(self) -> ErpSource:
        seen: dict[str, int] = {}
        for index, table in enumerate(self.tables):
            table._config_key = f"tables[{index}]"
            name = self.lake_table(table)
            if name in seen:
                first = self.tables[seen[name]]
                raise ValueError(
                    f"tables[{seen[name]}] {first.name!r} and tables[{index}] {table.name!r} would both be lake "
                    f"table {name!r}; give one of them a lake_name:"
                )
            seen[name] = index
        return self


class OpcuaSecurity(Strict):
    """A secured connection: Basic256Sha256 with this client's certificate and key (made when missing)."""

    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: Path = Field(description="client certificate (DER or PEM)")
    private_key: Path = Field(description="client private key (PEM)")


class OpcuaSource(OwnedSource):
    name: str = Field(pattern=_NAME_PATTERN)
    endpoint: str
    roots: list[str] = Field(min_length=1, description="Browse paths below Objects, e.g. '2:Plant'")
    include: list[str] = Field(
        default_factory=list, description="browse path patterns of tags to read, e.g. 'Plant/*/M-1*/*'"
    )
    exclude: list[str] = Field(default_factory=list, description="browse path patterns of tags to leave out")
    history_days: float = Field(default=7, gt=0, description="How far back the first load reads")
    backfill_from: date = Field(default=date(2024, 1, 1), description="first day of the daily backfill partitions")
    values_per_request: int = Field(default=5_000, gt=0)
    nodes_per_request: int = Field(default=50, gt=0)
    timeout_s: float = Field(default=30, gt=0)
    security: OpcuaSecurity | None = Field(default=None, description="None: no security (plain TCP)")
    username: str | None = Field(default=None, description="user of the session; anonymous when not set")
    password: str | None = Field(default=None, repr=False, description="give it as ${VAR}, from the environment")
    reconnect_attempts: int = Field(default=5, ge=0, description="tries to connect again after the link drops")
    backoff_s: float = Field(default=1.0, gt=0, description="wait before the first try; doubled for each next one")

    @field_validator("endpoint")
    @classmethod
    def _opc_scheme(cls, value: str) -> str:
        if not value.startswith("opc.tcp://"):
            raise ValueError(f"expected an opc.tcp:// endpoint, got {value!r}")
        return value


class LogSource(OwnedSource):
    name: str = Field(pattern=_NAME_PATTERN)
    path: Path
    glob: str = Field(default="*.log*", description="match the rotated files too: app.log, app.log.1, app.log.2.gz")
    format: Literal["syslog", "jsonl", "regex"]
    pattern: str | None = Field(
        default=None,
        description="regex format: named groups timestamp, host, severity, code, message; other groups go to extra",
    )
    timestamp_format: str | None = Field(
        default=None,
        description="strptime format, or epoch_s, epoch_ms, epoch_us (a number or a string of digits); when not "
        "set: ISO 8601, or epoch seconds, milliseconds or microseconds told by their number of digits",
    )
    timezone: str = Field(default="UTC", description="zone of timestamps written without an offset")
    dst: Literal["earlier", "later", "quarantine"] = Field(
        default="earlier",
        description="a local time the change from or to daylight saving time makes ambiguous (the repeated hour) "
        "or non-existent (the skipped hour): the earlier or the later of the two instants it can mean, or "
        "quarantine; the event's dst_flag says which it was",
    )
    encoding: str = Field(
        default="auto",
        description="auto: per file as for supplier files (a BOM, UTF-16, else UTF-8 when the bytes are UTF-8, "
        "else cp1252); or a codec such as utf-8, cp1252, utf-16-le. Bytes it cannot read are kept escaped "
        "as \\xNN and counted",
    )
    severity_map: dict[str, str] = Field(default_factory=dict, description="vendor level -> syslog severity name")
    settle_seconds: float = Field(default=300, ge=0, description="a live file quiet this long has its last entry read")
    fingerprint_bytes: int = Field(
        default=1024,
        ge=16,
        description="a file is known by a hash of this many first bytes with its device and inode; a live file "
        "shorter than that waits (read from its start once it holds them)",
    )
    machine_map: dict[str, str] = Field(
        default_factory=dict, description="host name in the log -> machine id used by ERP and OPC-UA"
    )
    host_match: Literal["ignore_case", "exact"] = Field(
        default="ignore_case", description="how hosts are matched to the keys of machine_map"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @field_validator("encoding")
    @classmethod
    def _line_encoding(cls, value: str) -> str:
        """A codec whose line end is the byte 0x0A (in one, two or four bytes), as the log reader splits on it."""
        if value == "auto":
            return value
        try:
            name = codecs.lookup(value).name
            newline = "\n".encode(name + "-le" if name in ("utf-16", "utf-32") else name.removesuffix("-sig"))
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}; use auto, utf-8, cp1252, utf-16-le, ...") from None
        if newline.strip(b"\x00") != b"\n" or len(newline) not in (1, 2, 4):
            raise ValueError(
                f"encoding {value!r} does not end its lines with the byte 0x0A; it cannot be read as a log"
            )
        return value

    @field_validator("machine_map")
    @classmethod
    def _one_machine_per_host(cls, value: dict[str, str]) -> dict[str, str]:
        """Under host_match ignore_case (the default), two spellings of one host must name one machine."""
        seen: dict[str, str] = {}
        for host, machine in value.items():
            other = seen.setdefault(host.lower(), host)
            if other != host and value[other] != machine:
                raise ValueError(
                    f"machine_map: {other!r} and {host!r} are one host when case is ignored but map to "
                    f"{value[other]!r} and {machine!r}; remove one, or set host_match: exact"
                )
        return value

    @model_validator(mode="after")
    def _pattern_for_regex(self) -> LogSource:
        if (self.format == "regex") != (self.pattern is not None):
            raise ValueError("format regex takes a pattern, and only it does")
        if self.pattern is not None:
            import pyarrow as pa
            import pyarrow.compute as pc

            try:
                pc.extract_regex(pa.array([], pa.string()), self.pattern)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(
                    f"pattern is not a usable regular expression with named groups (RE2 syntax): {exc}"
                ) from None
        return self


class ColumnMapping(Strict):
    name: str = Field(pattern=_NAME_PATTERN)
    type: Literal["string", "int", "decimal", "float", "date", "timestamp"] = "string"
    required: bool = False
    scale: int = Field(default=3, ge=0, le=18, description="digits after the point for decimals")
    unit: str | None = Field(default=None, description="unit of the lake column, noted in the catalog")
    factor: float | None = Field(default=None, description="multiplies the value, e.g. 0.001 for g -> kg")

    @model_validator(mode="after")
    def _factor_on_numbers(self) -> ColumnMapping:
        if self.factor is not None and self.type not in ("decimal", "float"):
            raise ValueError(f"factor converts units of decimal or float columns; {self.name!r} is {self.type}")
        return self


class CsvOptions(Strict):
    """How a supplier writes CSV; what is left out is detected from the file."""

    delimiter: str | None = Field(default=None, min_length=1, max_length=1, description="detected when not set")
    quote: str = Field(default='"', min_length=1, max_length=1)
    decimal: Literal[".", ","] | None = Field(default=None, description="detected from the numbers when not set")
    thousands: Literal[".", ",", " ", "'", ""] | None = Field(default=None, description="default: the other mark")
    encoding: str = Field(default="auto", description="auto: UTF-8 (with or without BOM), else cp1252 or latin-1")
    date_format: str = "%Y-%m-%d"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        if value != "auto":
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}; use auto, utf-8, cp1252, latin-1, ...") from None
        return value


SupplierFormat = Literal["csv", "xlsx", "json", "jsonl", "parquet"]


class SupplierSource(OwnedSource):
    name: str = Field(pattern=_NAME_PATTERN)
    path: Path
    glob: str = Field(default="*", description="which files of the folder are deliveries (with formats: of those)")
    format: SupplierFormat | None = Field(default=None, description="the format of every file; or give formats")
    formats: dict[str, SupplierFormat] = Field(
        default_factory=dict,
        description="format by file extension, e.g. {.csv: csv, .xlsx: xlsx}; files with other extensions are "
        "left alone",
    )
    settle_seconds: float = Field(
        default=5,
        ge=0,
        description="a file is read once its size and modification time have not moved this long and no process "
        "holds it open for writing; 0: read files as they are",
    )
    target: str = Field(default="material_lots", pattern=_NAME_PATTERN)
    key: list[str] = Field(min_length=1)
    csv: CsvOptions = Field(default_factory=CsvOptions)
    sheet: str | None = None
    header_row: int | None = Field(
        default=None, ge=1, description="row of the header; found by the mapped names when not set"
    )
    summary_rows: str | None = Field(
        default=None,
        description="a pattern (RE2) on a row's first cell marking more totals rows, besides the labels known in "
        "English, German, Swedish, Danish, Norwegian, Finnish, Dutch, French, Italian, Spanish and Polish",
    )
    archive: Path | None = Field(default=None, description="loaded files move here; default <path>/archive")
    rejected: Path | None = Field(default=None, description="rejected files and their reports; default <path>/rejected")
    columns: dict[str, ColumnMapping] = Field(min_length=1, description="source column -> lake column")

    @model_validator(mode="after")
    def _key_is_mapped(self) -> SupplierSource:
        mapped = {spec.name for spec in self.columns.values()}
        if SUPPLIER_COLUMN in mapped:
            column = next(source for source, spec in self.columns.items() if spec.name == SUPPLIER_COLUMN)
            raise ValueError(
                f"column {column!r} maps to {SUPPLIER_COLUMN!r}, the lake's column naming the supplier source; "
                "give it another name"
            )
        missing = [name for name in self.key if name not in mapped]
        if missing:
            raise ValueError(f"key columns {missing} are not among the mapped lake columns {sorted(mapped)}")
        if self.summary_rows is not None:
            import pyarrow as pa
            import pyarrow.compute as pc

            try:
                pc.match_substring_regex(pa.array([""]), self.summary_rows)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"summary_rows is not a usable pattern (RE2 syntax): {exc}") from None
        return self

    @field_validator("formats")
    @classmethod
    def _extensions(cls, value: dict[str, str]) -> dict[str, str]:
        for extension in value:
            if not re.fullmatch(r"\.[^./\\*?\[\]]+", extension):
                raise ValueError(f"{extension!r} is not an extension; write it as '.csv'")
        return {extension.lower(): kind for extension, kind in value.items()}

    @model_validator(mode="after")
    def _one_way_to_a_format(self) -> SupplierSource:
        if (self.format is None) == (not self.formats):
            raise ValueError("give format or formats (by extension), one of them")
        return self

    def format_of(self, file: Path) -> str | None:
        """The format `file` is read as: by its extension with formats, else the one format; None: not ours."""
        return self.formats.get(file.suffix.lower()) if self.formats else self.format

    @property
    def suffixes(self) -> list[str] | None:
        """The extensions of the files this source takes; None: any file the glob matches."""
        return list(self.formats) if self.formats else None

    @property
    def file_formats(self) -> list[str]:
        return sorted(set(self.formats.values())) if self.formats else [str(self.format)]

    @property
    def archive_folder(self) -> Path:
        return self.archive or self.path / "archive"

    @property
    def rejected_folder(self) -> Path:
        return self.rejected or self.path / "rejected"


class Sources(Strict):
    erp: list[ErpSource] = Field(default_factory=list)
    opcua: list[OpcuaSource] = Field(default_factory=list)
    logs: list[LogSource] = Field(default_factory=list)
    suppliers: list[SupplierSource] = Field(default_factory=list)

    @model_validator(mode="after")
    def _erp_tables_apart(self) -> Sources:
        """Name each ERP table's config key, and refuse an ERP lake table another source kind also writes."""
        others = self._lake_tables_of_other_kinds()
        for source_index, source in enumerate(self.erp):
            for index, table in enumerate(source.tables):
                table._config_key = f"sources.erp[{source_index}].tables[{index}]"
                name = source.lake_table(table)
                for layer in ("bronze", "silver"):
                    if f"{layer}.{name}" in others:
                        raise ValueError(
                            f"erp.{source_index}.tables.{index}: {table.name!r} would be lake table {layer}.{name}, "
                            f"which {others[f'{layer}.{name}']} writes; give it a lake_name:"
                        )
        return self

    def _lake_tables_of_other_kinds(self) -> dict[str, str]:
        """'layer.name' -> which source writes it, as the assets of OPC-UA, logs and suppliers name their tables."""
        tables: dict[str, str] = {}
        for server in self.opcua:
            tables |= {f"bronze.{server.name}_readings": f"opcua {server.name!r}", "silver.sensor_readings": "opcua"}
            tables |= {f"bronze.{server.name}_tags": f"opcua {server.name!r}", "silver.opcua_tags": "opcua"}
        for log in self.logs:
            tables |= {f"bronze.{log.name}_events": f"logs {log.name!r}", "silver.machine_events": "logs"}
        for supplier in self.suppliers:
            tables |= {f"bronze.{supplier.name}_rows": f"suppliers {supplier.name!r}"}
            tables |= {f"silver.{supplier.target}": f"suppliers {supplier.name!r}"}
        return tables

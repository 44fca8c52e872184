"""Where each table lives under the lake root, and the columns every landed row carries."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from plantlake.config.plantlake import LakeConfig
from plantlake.lake.storage import Location

LAYERS = ("bronze", "silver", "gold")
INGESTED_AT, RUN_ID, SOURCE = "_ingested_at", "_run_id", "_source"


def whole_milliseconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def next_millisecond(moment: datetime) -> datetime:
    """The first whole millisecond after `moment`."""
    return whole_milliseconds(moment) + timedelta(milliseconds=1)


INGESTION_FIELDS = [
    pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field(RUN_ID, pa.string(), nullable=False),
    pa.field(SOURCE, pa.string(), nullable=False),
]


@dataclass(frozen=True, init=False)
class Lake:
    """The tables under `root` (a local folder or `s3://bucket/prefix`), and this machine's working
    folder `local`: the catalog, the quality docs, spool files. A local lake works in its root."""

    root: Location
    local: Path

    def __init__(self, root: str | os.PathLike[str] | Location, local: str | os.PathLike[str] | None = None) -> None:
        where = Location.of(root)
        if local is None and not where.is_local:
            raise ValueError(f"the lake at {where} is in object storage: give it a local working folder (lake.local)")
        object.__setattr__(self, "root", where)
        object.__setattr__(self, "local", Path(local).absolute() if local is not None else where.path)

    @classmethod
    def from_config(cls, config: LakeConfig) -> Lake:
        return cls(Location.of(config.root, config.storage_options), config.local_folder)

    def table(self, layer: str, name: str) -> Location:
        if layer not in (*LAYERS, "quarantine", "meta"):
            raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS} or quarantine, meta")
        return self.root / layer / name

    @property
    def quarantine(self) -> Location:
        return self.table("quarantine", "rows")

    @property
    def quality_results(self) -> Location:
        return self.table("meta", "quality_results")

    @property
    def catalog_file(self) -> Path:
        return self.local / "catalog.duckdb"

    @property
    def catalog_page(self) -> Path:
        """The catalog as one self-contained HTML page, rebuilt with `catalog.duckdb`."""
        return self.local / "catalog" / "index.html"

    @property
    def data_docs_dir(self) -> Path:
        return self.local / "quality_docs"

    @property
    def spool(self) -> Path:
        """Where a step spools what it reads before it writes (always local disk)."""
        return self.local / "_spool"

    def tables(self) -> Iterator[tuple[str, str, Location]]:
        """(layer, name, location) of every Delta table present."""
        for layer in (*LAYERS, "quarantine", "meta"):
            for path in (self.root / layer).children():
                if (path / "_delta_log").is_folder():
                    yield layer, path.name, path


def constant(value: object, type_: pa.DataType, count: int) -> pa.Array:
    """One value repeated, built in Arrow rather than through a Python list."""
    return pa.repeat(pa.scalar(value, type_), count)


@dataclass(frozen=True)
class Ingestion:
    """One run's stamp on the rows it lands, in whole milliseconds.

    Silver reads the rows stamped after the newest it consumed. Delta keeps a timestamp's
    statistics to the millisecond, so a stamp of whole milliseconds is exact in them, and the
    files of rows already consumed are skipped unread (see `lake.delta.dataset`).
    """

    run_id: str
    ingested_at: datetime

    @classmethod
    def now(cls, run_id: str) -> Ingestion:
        return cls(run_id, whole_milliseconds(datetime.now(UTC)))

    def after(self, newest: datetime | None) -> Ingestion:
        """This stamp, or the next millisecond after `newest` (a table's newest stamp) if not later:
        a row stamped at or before what silver consumed would never reach it (a clock set back, a
        second machine's clock behind, two runs in one millisecond)."""
        if newest is None or self.ingested_at > newest:
            return self
        return Ingestion(self.run_id, next_millisecond(newest))

    def constants(self, source: str) -> dict[str, pa.Scalar]:
        """The stamp, one value per column (`lake.delta.append` stores them once per row group)."""
        values = (self.ingested_at, self.run_id, source)
        return {field.name: pa.scalar(value, field.type) for field, value in zip(INGESTION_FIELDS, values, strict=True)}

    def stamp(self, batch: pa.RecordBatch, source: str) -> pa.RecordBatch:
        columns = [pa.repeat(value, batch.num_rows) for value in self.constants(source).values()]
        return pa.RecordBatch.from_arrays(
            [*batch.columns, *columns], schema=pa.schema([*batch.schema, *INGESTION_FIELDS])
        )

    def stamp_all(self, batches: Iterable[pa.RecordBatch], source: str) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield self.stamp(batch, source)

"""Where each table lives under the lake root, and the columns every landed row carries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

LAYERS = ("bronze", "silver", "gold")
INGESTED_AT, RUN_ID, SOURCE = "_ingested_at", "_run_id", "_source"
INGESTION_FIELDS = [
    pa.field(INGESTED_AT, pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field(RUN_ID, pa.string(), nullable=False),
    pa.field(SOURCE, pa.string(), nullable=False),
]


@dataclass(frozen=True)
class Lake:
    root: Path

    def table(self, layer: str, name: str) -> Path:
        if layer not in (*LAYERS, "quarantine", "meta"):
            raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS} or quarantine, meta")
        return self.root / layer / name

    @property
    def quarantine(self) -> Path:
        return self.table("quarantine", "rows")

    @property
    def quality_results(self) -> Path:
        return self.table("meta", "quality_results")

    @property
    def catalog_file(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def catalog_page(self) -> Path:
        """The catalog as one self-contained HTML page, rebuilt with `catalog.duckdb`."""
        return self.root / "catalog" / "index.html"

    @property
    def data_docs_dir(self) -> Path:
        return self.root / "quality_docs"

    def tables(self) -> Iterator[tuple[str, str, Path]]:
        """(layer, name, path) of every Delta table present."""
        for layer in (*LAYERS, "quarantine", "meta"):
            folder = self.root / layer
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if (path / "_delta_log").is_dir():
                        yield layer, path.name, path


def constant(value: object, type_: pa.DataType, count: int) -> pa.Array:
    """One value repeated, built in Arrow rather than through a Python list."""
    return pa.repeat(pa.scalar(value, type_), count)


@dataclass(frozen=True)
class Ingestion:
    """One run's stamp on the rows it lands."""

    run_id: str
    ingested_at: datetime

    @classmethod
    def now(cls, run_id: str) -> Ingestion:
        return cls(run_id, datetime.now(UTC))

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

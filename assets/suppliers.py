"""Supplier drop folders: one bronze asset per folder, one silver table per target (e.g. material_lots)."""

from collections import defaultdict
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.factory import bronze_asset, silver_assets
from assets.results import Step
from assets.steps import merge_validated
from connectors import files
from lake import bronze, delta, quarantine, silver, transforms
from lake.layout import Ingestion, Lake
from lake.quarantine import Rejection
from pipelines.config import SupplierSource
from quality import invariants, suites


def bronze_key(source: SupplierSource) -> dg.AssetKey:
    return dg.AssetKey(["bronze", f"{source.name}_rows"])


def silver_key(target: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", target])


def drop_files(source: SupplierSource) -> list[Path]:
    return sorted(path for path in source.path.glob(source.glob) if path.is_file())


def _loaded_hashes(path: Path) -> set[str]:
    landed = delta.read(path, columns=[transforms.FILE_HASH])
    return set() if landed is None else set(pc.unique(landed[transforms.FILE_HASH]).to_pylist())


def _read_file(source: SupplierSource, path: Path, digest: str) -> pa.Table:
    table = files.read_supplier_file(path, source.format, source.csv.delimiter, source.csv.encoding, source.sheet)
    files.check_header(table, list(source.columns), path)
    table = table.append_column(transforms.FILE, pa.array([str(path)] * table.num_rows, pa.string()))
    return table.append_column(transforms.FILE_HASH, pa.array([digest] * table.num_rows, pa.string()))


def load_bronze(lake: Lake, source: SupplierSource, run_id: str) -> Step:
    """Land every file not landed before (by content hash); a file that cannot be read is rejected whole."""
    path = lake.table("bronze", f"{source.name}_rows")
    known = _loaded_hashes(path)
    tables, rejections, skipped = [], [], 0
    for file in drop_files(source):
        digest = files.content_hash(file)
        if digest in known:
            skipped += 1
            continue
        try:
            tables.append(_read_file(source, file, digest))
        except files.FileRejected as exc:
            rejections.append(Rejection(table_name=f"bronze.{path.name}", check="file", reason=str(exc),
                                        record={"file": str(file), "sha256": digest}, source=source.name, file=str(file)))  # fmt: skip
        known.add(digest)
    quarantine.write(lake, rejections, run_id)
    rows = pa.concat_tables(tables, promote_options="default") if tables else None
    landed = bronze.Landed(path, 0, 0)
    if rows is not None:
        landed = bronze.land(path, iter(rows.to_batches()), rows.schema, [transforms.FILE_HASH, files.LINE],
                             Ingestion.now(run_id), source.name)  # fmt: skip
    return Step(path, {"files_loaded": len(tables), "files_rejected": len(rejections), "files_already_loaded": skipped,
                       "rows_read": landed.rows_read, "rows_inserted": landed.rows_inserted})  # fmt: skip


def _source_key(source: SupplierSource) -> list[str]:
    """The supplier's own column names that map to the target's key."""
    by_target = {spec.name: column for column, spec in source.columns.items()}
    return [by_target[name] for name in source.key]


def _typed_rows(work: silver.Pending, target: str, sources: list[SupplierSource]) -> tuple[pa.Table, list[Rejection]]:
    parts, rejected = [], []
    for source in sources:
        landed = work.rows.get(f"{source.name}_rows")
        if landed is not None and landed.num_rows:
            typed, bad = transforms.supplier_rows(
                landed, source.columns, source=source.name, table_name=f"silver.{target}",
                decimal_mark=source.csv.decimal if source.format == "csv" else ".", date_format=source.csv.date_format,
            )  # fmt: skip
            parts.append(typed)
            rejected += bad
    return transforms.combine_suppliers(parts, sources[0].key, transforms.supplier_schema(sources[0].columns)), rejected


def build_silver(lake: Lake, target: str, sources: list[SupplierSource], run_id: str) -> Step:
    """Rows of all suppliers of `target`, typed by each one's mapping; bad values to quarantine."""
    path = lake.table("silver", target)
    bronze_tables = {f"{s.name}_rows": silver.BronzeInput(lake.table("bronze", f"{s.name}_rows"), _source_key(s))
                     for s in sources}  # fmt: skip
    key = sources[0].key
    return merge_validated(lake, path, silver.pending_chunks(path, bronze_tables),
                           lambda work: _typed_rows(work, target, sources),
                           lambda schema: suites.supplier_suite(sources[0].columns, key, schema), key, run_id)  # fmt: skip


def supplier_assets(sources: list[SupplierSource]) -> list:
    by_target: dict[str, list[SupplierSource]] = defaultdict(list)
    for source in sources:
        by_target[source.target].append(source)
    definitions: list = [
        bronze_asset(bronze_key(source), "suppliers", {source.format},
                     f"Rows of {source.format} files {source.glob} dropped by supplier {source.name}, as text.",
                     lambda lake, run_id, source=source: load_bronze(lake, source, run_id))  # fmt: skip
        for source in sources
    ]
    for target, members in by_target.items():
        definitions += silver_assets(
            silver_key(target), [bronze_key(s) for s in members], "suppliers",
            f"{target} from suppliers {', '.join(s.name for s in members)}, typed and merged on {members[0].key}.",
            lambda lake, run_id, target=target, members=members: build_silver(lake, target, members, run_id),
            lambda data, lake, members=members: [invariants.unique_keys(data, members[0].key)],
            "One row per key",
        )  # fmt: skip
    return definitions

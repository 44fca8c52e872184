"""Supplier drop folders: one bronze asset per folder, one silver table per target (e.g. material_lots).

Each file is taken once, by content: read, typed by the folder's mapping, its good rows
appended to bronze and its bad rows quarantined, then registered in `meta.supplier_files`
with its row counts and moved to the archive (or, if rejected whole, to the rejected folder
beside a report that says why).
"""

import hashlib
import itertools
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from plantlake.assets.factory import Build, Invariants, bronze_asset, owners_of, silver_assets
from plantlake.assets.resources import PlantlakeResource
from plantlake.assets.results import Step
from plantlake.assets.steps import link_validated, merge_validated
from plantlake.config import SupplierSource
from plantlake.connectors import drop_folder, file_formats, files
from plantlake.lake import bronze, delta, file_registry, mapping, quarantine, silver, transforms
from plantlake.lake.file_registry import FileEntry, RowCounts
from plantlake.lake.layout import Ingestion, Lake
from plantlake.lake.prefetch import prefetched
from plantlake.lake.quarantine import Rejection
from plantlake.lake.storage import Location
from plantlake.quality import invariants, suites

FILE_FIELDS = [
    pa.field(transforms.FILE, pa.string(), nullable=False),
    pa.field(transforms.FILE_HASH, pa.string(), nullable=False),
    pa.field(transforms.FILE_MODIFIED, pa.timestamp("us", tz="UTC"), nullable=False),
]


def bronze_key(source: SupplierSource) -> dg.AssetKey:
    return dg.AssetKey(["bronze", f"{source.name}_rows"])


def silver_key(target: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", target])


def rows_schema(source: SupplierSource) -> pa.Schema:
    """A file's typed rows with their line; bronze adds the file's and the run's columns."""
    return pa.schema([*mapping.lake_schema(source.columns), pa.field(files.LINE, pa.int64(), nullable=False)])


def _layout(source: SupplierSource) -> files.Layout:
    return files.Layout(
        expected=list(source.columns),
        delimiter=source.csv.delimiter,
        quote=source.csv.quote,
        encoding=source.csv.encoding,
        sheet=source.sheet,
        header_row=source.header_row,
        summary_rows=source.summary_rows,
    )


def _destination(folder: Path, file: Path, digest: str) -> Path:
    """Where a handled file goes: its name with the start of its hash, so versions never collide."""
    return folder / f"{file.stem}.{digest[:10]}{file.suffix}"


class _Ingest:
    """One file's way into bronze: typed batches out, problems and counts collected on the way."""

    def __init__(self, source: SupplierSource, file: Path, scan: files.Scan, ingestion: Ingestion) -> None:
        self.source, self.file, self.scan, self.ingestion = source, file, scan, ingestion
        self.rows_read = self.rows_loaded = 0
        self.problems: list[Rejection] = []
        self.quarantined_lines: set[int] = set()
        self.failure: Exception | None = None
        self.opened: files.TextFile | None = None

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The file's typed rows; any failure is the file's (noted, so that it is not taken for the lake's)."""
        try:
            yield from self._typed()
            if files.fingerprint(self.file) != self.scan.identity:  # before the commit: nothing of it lands
                raise files.FileChanged(f"{self.file} changed while it was read")
        except Exception as exc:
            self.failure = exc
            raise

    def _typed(self) -> Iterator[pa.RecordBatch]:
        source = self.source
        self.opened = file_formats.read_file(self.file, str(source.format_of(self.file)), _layout(source), self.scan)
        first = next(self.opened.batches, None)
        numeric = [name for name, spec in source.columns.items() if spec.type in ("int", "decimal", "float")]
        marks = mapping.number_format(source.csv.decimal, source.csv.thousands, first, numeric)
        self.opened.layout["decimal"] = marks.decimal
        schema = rows_schema(source)
        for text in prefetched(itertools.chain([first] if first is not None else [], self.opened.batches), depth=4):
            self.rows_read += text.num_rows
            typed, problems = mapping.type_batch(text, source.columns, marks, source.csv.date_format)
            self._quarantine(text, problems)
            self.rows_loaded += typed.num_rows
            yield typed.cast(schema)
        for bad in self.opened.tally.bad_rows:
            self.rows_read += 1
            self.quarantined_lines.add(bad.line)
            self.problems.append(
                self._rejection(
                    "structure", bad.reason, {"line": bad.line, "text": bad.text}, bad.line, None, bad.text[:500]
                )
            )

    def constants(self) -> dict[str, pa.Scalar]:
        """The columns with one value for the whole file: where its rows came from, and which run landed them.

        The supplier's name twice: as bronze's bookkeeping (`_source`) and as silver's column
        (`source`), so that silver's first load can link bronze's files (`link_validated`).
        """
        values = (str(self.file), self.scan.sha256, self.scan.modified)
        fixed = {field.name: pa.scalar(value, field.type) for value, field in zip(values, FILE_FIELDS, strict=True)}
        named = {transforms.SUPPLIER: pa.scalar(self.source.name, pa.string())}
        return {**fixed, **named, **self.ingestion.constants(self.source.name)}

    def _quarantine(self, text: pa.RecordBatch, problems: list[mapping.Problem]) -> None:
        if not problems:
            return
        lines = sorted({problem.line for problem in problems})
        rows = text.filter(pc.is_in(text.column(files.LINE), value_set=pa.array(lines, pa.int64()))).to_pylist()
        by_line = {row[files.LINE]: row for row in rows}
        for problem in problems:
            record = {**by_line[problem.line], transforms.FILE_HASH: self.scan.sha256}
            self.problems.append(
                self._rejection("mapping", problem.reason, record, problem.line, problem.column, problem.value)
            )
        self.quarantined_lines.update(lines)

    def _rejection(
        self, check: str, reason: str, record: dict, line: int | None, column: str | None, value: str | None
    ) -> Rejection:
        return Rejection(
            table_name=f"bronze.{self.source.name}_rows",
            check=check,
            reason=reason,
            record=record,
            source=self.source.name,
            file=str(self.file),
            row=None if line is None else str(line),
            field=column,
            value=value,
        )


def _landed_before(path: Location, digest: str) -> bool:
    """A run that died after its bronze commit but before registering the file left its rows here."""
    data = delta.dataset(path)
    return data is not None and data.count_rows(filter=ds.field(transforms.FILE_HASH) == digest) > 0


def _no_rows() -> RowCounts:
    return {"rows_read": 0, "rows_loaded": 0, "rows_quarantined": 0, "rows_skipped": 0}


def ingest_file(
    lake: Lake, source: SupplierSource, file: Path, scan: files.Scan, version: int, run_id: str
) -> FileEntry | None:
    """Land one new file's good rows in bronze and its bad rows in quarantine; its registry entry.

    Whatever goes wrong while the file is read or typed rejects that file, with the reason; None
    when the file changed while it was read (it is still being written: nothing of it is kept).
    """
    path = lake.table("bronze", f"{source.name}_rows")
    ingestion = bronze.stamped_after_newest(path, delta.open_table(path), Ingestion.now(run_id))
    work = _Ingest(source, file, scan, ingestion)
    reason = None
    try:
        if _landed_before(path, scan.sha256):
            for _ in work.batches():  # count and quarantine again; the rows are in bronze already
                pass
        else:
            delta.append(
                path,
                pa.RecordBatchReader.from_batches(rows_schema(source), work.batches()),
                state=bronze.stamp_state(ingestion),
                constants=work.constants(),
                file_rows=bronze.FILE_ROWS,
            )
    except Exception as exc:
        failure = work.failure or (exc if isinstance(exc, files.FileRejected) else None)
        if failure is None:
            raise  # the lake's failure, not the file's
        if isinstance(failure, files.FileChanged) or _changed(file, scan):
            return None
        reason = _reason(file, failure)
    if reason is not None:
        rejection = Rejection(
            table_name=f"bronze.{path.name}",
            check="file",
            reason=reason,
            source=source.name,
            file=str(file),
            record={"file": str(file), "sha256": scan.sha256},
        )
        quarantine.write(lake, [rejection], run_id)
        status, folder, counts = file_registry.REJECTED, source.rejected_folder, _no_rows()
    else:
        quarantine.write(lake, work.problems, run_id)
        quarantined = len(work.quarantined_lines)
        status = file_registry.PARTLY_QUARANTINED if quarantined else file_registry.LOADED
        folder = source.archive_folder
        counts = {
            "rows_read": work.rows_read,
            "rows_loaded": work.rows_loaded,
            "rows_quarantined": quarantined,
            "rows_skipped": work.opened.tally.rows_skipped if work.opened else 0,
        }
    layout = json.dumps(work.opened.layout) if work.opened else None
    return FileEntry(
        sha256=scan.sha256,
        source=source.name,
        file_name=file.name,
        version=version,
        status=status,
        reason=reason,
        layout=layout,
        size_bytes=scan.size,
        modified_at=scan.modified,
        dropped_as=str(file),
        moved_to=str(_destination(folder, file, scan.sha256)),
        run_id=run_id,
        **counts,
    )


def _changed(file: Path, scan: files.Scan) -> bool:
    try:
        return files.fingerprint(file) != scan.identity
    except OSError:
        return True


def _reason(file: Path, failure: Exception) -> str:
    """Why a file was rejected: a FileRejected says it; anything else is named, its message cut short."""
    if isinstance(failure, files.FileRejected):
        return str(failure)
    return f"{file}: {type(failure).__name__}: {files.snippet(str(failure), 200)}"


def _report(entry: FileEntry, reason: str) -> str:
    return (
        f"file: {entry.file_name}\nsha256: {entry.sha256}\nsource: {entry.source}\nrun: {entry.run_id}\n"
        f"when: {entry.registered_at.isoformat()}\n\nwhy it was not loaded:\n{reason}\n\n"
        "what to do: correct the file and drop it again; a corrected file is loaded as a new version.\n"
    )


def move_aside(file: Path, destination: Path, report: str | None = None) -> None:
    """Move a handled file (or link) out of the drop folder (a copy already there with the same content is kept)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    if report is not None:
        destination.with_name(destination.name + ".txt").write_text(report, encoding="utf-8")
    if os.path.lexists(destination):
        file.unlink()
    else:
        shutil.move(file, destination)


def _entry(source: SupplierSource, file: Path, digest: str, status: str, reason: str, run_id: str) -> FileEntry:
    """The registry row of a file set aside unread, or as a duplicate of `digest`'s content."""
    stat = file.lstat()
    folder = source.rejected_folder
    return FileEntry(
        sha256=digest,
        source=source.name,
        file_name=file.name,
        version=0,
        status=status,
        reason=reason,
        layout=None,
        size_bytes=stat.st_size,
        modified_at=datetime.fromtimestamp(stat.st_mtime_ns / 1e9, tz=UTC),
        dropped_as=str(file),
        moved_to=str(_destination(folder, file, digest)),
        run_id=run_id,
        **_no_rows(),
    )


def _unread(source: SupplierSource, file: Path, why: str, run_id: str) -> FileEntry:
    """A file rejected without reading it; registered under a hash of its name and place, not of its content."""
    digest = hashlib.sha256(f"unread {file} {file.lstat().st_mtime_ns}".encode()).hexdigest()
    return _entry(source, file, digest, file_registry.REJECTED, f"{file}: {why}", run_id)


def _move(file: Path, destination: Path, report: str | None, stuck: list[str]) -> None:
    """Move a registered file aside; one that cannot be moved stays, is named in `stuck`, and the next run moves it."""
    try:
        move_aside(file, destination, report)
    except OSError as exc:
        stuck.append(f"{file.name}: {type(exc).__name__}: {exc}")


def _known_again(
    lake: Lake,
    source: SupplierSource,
    file: Path,
    scan: files.Scan,
    known: file_registry.Known,
    run_id: str,
    stuck: list[str],
) -> str:
    """A file whose content is registered: the same file (a move a run did not finish) or a duplicate."""
    same = known.named.get((scan.sha256, file.name))
    if same is not None:
        _move(file, Path(same.moved_to), None, stuck)
        return "files_already_loaded"
    original = known.originals[scan.sha256]
    reason = (
        f"same content as {original.file_name} (version {original.version}, {original.status} in run "
        f"{original.run_id}); not loaded again"
    )
    duplicate = _entry(source, file, scan.sha256, file_registry.DUPLICATE, reason, run_id)
    duplicate.version = known.next_version(file.name)
    file_registry.record(lake, duplicate)
    known.add(duplicate)
    _move(file, Path(duplicate.moved_to), _report(duplicate, reason), stuck)
    return "files_duplicate"


Taken = tuple[str, FileEntry | None]  # what became of a file (a key of the step's metadata), its new entry


def _take(
    lake: Lake,
    source: SupplierSource,
    file: drop_folder.DropFile,
    known: file_registry.Known,
    run_id: str,
    stuck: list[str],
) -> Taken:
    """Take one settled file in, or set it aside."""
    if file.outside is not None:
        why = f"a symbolic link to a file outside the drop folder ({files.snippet(file.outside, 200)}); not followed"
        return _set_aside(lake, file.path, _unread(source, file.path, why, run_id), known, stuck)
    try:
        scan = files.scan(file.path)
    except FileNotFoundError:
        return "files_gone", None  # taken away meanwhile
    except OSError as exc:
        why = f"cannot be read: {type(exc).__name__}: {files.snippet(str(exc), 200)}"
        return _set_aside(lake, file.path, _unread(source, file.path, why, run_id), known, stuck)
    if scan.sha256 in known.originals:
        return _known_again(lake, source, file.path, scan, known, run_id, stuck), None
    entry = ingest_file(lake, source, file.path, scan, known.next_version(file.path.name), run_id)
    return ("files_changed", None) if entry is None else _set_aside(lake, file.path, entry, known, stuck)


def _set_aside(lake: Lake, file: Path, entry: FileEntry, known: file_registry.Known, stuck: list[str]) -> Taken:
    """Register a file and move it to the archive, or with a report to the rejected files."""
    file_registry.record(lake, entry)
    known.add(entry)
    _move(file, Path(entry.moved_to), _report(entry, entry.reason) if entry.reason else None, stuck)
    return ("files_rejected" if entry.status == file_registry.REJECTED else "files_loaded"), entry


def _survey(source: SupplierSource, clock: drop_folder.Clock, seen: drop_folder.Seen | None = None):
    return drop_folder.survey(source.path, source.glob, source.suffixes, source.settle_seconds, clock.now(), seen)


def load_bronze(
    lake: Lake, source: SupplierSource, run_id: str, clock: drop_folder.Clock = drop_folder.SYSTEM_CLOCK
) -> Step:
    """Land every settled file not landed before (by content hash), register it, and move it aside.

    A file still being written waits. If one would settle within `settle_seconds`, the run waits
    for it once (a file dropped just as the run started is not left for the next run), then takes
    what has settled; the others, and a file that changed while it was read, wait for the next run.
    """
    path = lake.table("bronze", f"{source.name}_rows")
    known = file_registry.Known(lake, source.name)
    counts: Counter[str] = Counter()
    stuck: list[str] = []

    def take(survey: drop_folder.Survey) -> None:
        for file in survey.ready:
            outcome, entry = _take(lake, source, file, known, run_id, stuck)
            counts[outcome] += 1
            for key in ("rows_read", "rows_loaded", "rows_quarantined", "rows_skipped"):
                counts[key] += getattr(entry, key) if entry else 0

    take(_survey(source, clock))
    left = _survey(source, clock) if source.settle_seconds else drop_folder.Survey()
    soon = [waiting.settles_in for waiting in left.waiting if waiting.settles_in is not None]
    if soon:
        clock.sleep(min(source.settle_seconds, max(soon)))
        take(_survey(source, clock, left.seen))
    metadata: dict[str, int | list[str]] = {
        key: counts.get(key, 0)
        for key in (
            "files_loaded",
            "files_rejected",
            "files_already_loaded",
            "files_duplicate",
            "rows_read",
            "rows_loaded",
            "rows_quarantined",
            "rows_skipped",
        )
    }
    metadata["files_waiting"] = len(drop_folder.listed(source.path, source.glob, source.suffixes))
    if stuck:
        metadata["files_not_moved"] = stuck
    return Step(path, metadata)


def files_accounted(lake: Lake, source: str) -> tuple[bool, dict]:
    """Every registered file of `source`: rows loaded plus quarantined equals rows read."""
    registry = delta.read(file_registry.registry_path(lake), filter=ds.field("source") == source)
    if registry is None:
        return True, {"files": 0}
    off = registry.filter(
        pc.not_equal(pc.add(registry["rows_loaded"], registry["rows_quarantined"]), registry["rows_read"])
    )
    return off.num_rows == 0, {"files": registry.num_rows, "files_not_accounted": off.column("file_name").to_pylist()}


def _typed_rows(work: silver.Pending, sources: list[SupplierSource]) -> tuple[pa.Table, list[Rejection]]:
    parts = [
        transforms.supplier_rows(work.rows[f"{source.name}_rows"], source.columns, source.name)
        for source in sources
        if f"{source.name}_rows" in work.rows
    ]
    return transforms.combine_suppliers(parts, sources[0].key, transforms.supplier_schema(sources[0].columns)), []


def build_silver(lake: Lake, target: str, sources: list[SupplierSource], run_id: str) -> Step:
    """Rows of all suppliers of `target`, the newest per key (latest file version wins)."""
    path = lake.table("silver", target)
    bronze_tables = {
        f"{s.name}_rows": silver.BronzeInput(lake.table("bronze", f"{s.name}_rows"), s.key) for s in sources
    }
    key = sources[0].key

    def suite(schema: pa.Schema) -> list:
        return suites.supplier_suite(sources[0].columns, key, schema)

    linked = None
    if len(sources) == 1:  # one supplier's rows as landed; several are combined by key
        [(name, landed)] = bronze_tables.items()
        schema = transforms.supplier_schema(sources[0].columns)
        linked = link_validated(path, name, landed, schema, suite, filled=[transforms.SUPPLIER])
    return linked or merge_validated(
        lake,
        path,
        silver.pending_chunks(path, bronze_tables),
        lambda work: _typed_rows(work, sources),
        suite,
        key,
        run_id,
    )


def files_set_aside(lake: Lake, source: str, run_id: str) -> list[dict]:
    """Files of this run that were rejected whole or had rows quarantined."""
    registry = delta.read(
        file_registry.registry_path(lake), filter=(ds.field("source") == source) & (ds.field("run_id") == run_id)
    )
    rows = [] if registry is None else registry.to_pylist()
    return [
        {
            "file": row["file_name"],
            "status": row["status"],
            "rows_quarantined": row["rows_quarantined"],
            "reason": row["reason"],
        }
        for row in rows
        if row["status"] != file_registry.LOADED
    ]


def _file_checks(source: SupplierSource) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset=bronze_key(source),
        name="files_accounted",
        blocking=True,
        description="For every file: rows loaded plus rows quarantined equals rows read.",
    )
    def accounted(plantlake: PlantlakeResource) -> dg.AssetCheckResult:
        """Read the registry of this drop folder's files."""
        passed, metadata = files_accounted(plantlake.lake, source.name)
        return dg.AssetCheckResult(passed=passed, metadata=metadata)

    @dg.asset_check(
        asset=bronze_key(source),
        name="files_clean",
        description="Warns when a file of this run was rejected or had rows quarantined.",
    )
    def clean(context: dg.AssetCheckExecutionContext, plantlake: PlantlakeResource) -> dg.AssetCheckResult:
        """Read this run's entries in the registry."""
        aside = files_set_aside(plantlake.lake, source.name, context.run.run_id)
        return dg.AssetCheckResult(
            passed=not aside, severity=dg.AssetCheckSeverity.WARN, metadata={"files": dg.MetadataValue.json(aside)}
        )

    return [accounted, clean]


def _landing(source: SupplierSource) -> Build:
    return lambda lake, run_id, now: load_bronze(lake, source, run_id)


def _merging(target: str, members: list[SupplierSource]) -> Build:
    return lambda lake, run_id, now: build_silver(lake, target, members, run_id)


def _one_row_per_key(key: list[str]) -> Invariants:
    return lambda data, lake: [invariants.unique_keys(data, key)]


def supplier_assets(sources: list[SupplierSource]) -> list:
    by_target: dict[str, list[SupplierSource]] = defaultdict(list)
    for source in sources:
        by_target[source.target].append(source)
    definitions: list = []
    for source in sources:
        definitions.append(
            bronze_asset(
                bronze_key(source),
                "suppliers",
                set(source.file_formats),
                f"Rows of {'/'.join(source.file_formats)} files {source.glob} dropped by supplier {source.name}, "
                "typed by its mapping; each file once.",
                _landing(source),
                owners_of([source]),
            )
        )
        definitions += _file_checks(source)
    for target, members in by_target.items():
        definitions += silver_assets(
            silver_key(target),
            [bronze_key(s) for s in members],
            "suppliers",
            f"{target} from suppliers {', '.join(s.name for s in members)}, merged on {members[0].key}; "
            "newest file wins.",
            _merging(target, members),
            _one_row_per_key(members[0].key),
            "One row per key",
            owners_of(members),
        )
    return definitions

"""The silver step every source kind shares: validate new rows, quarantine failures, merge."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from plantlake.assets.results import Step
from plantlake.lake import delta, keyed, memory, progress, quarantine, silver
from plantlake.lake.layout import INGESTED_AT, Lake
from plantlake.lake.quarantine import Rejection
from plantlake.lake.storage import Location
from plantlake.quality import expectations
from plantlake.quality.suites import Expect

Prepare = Callable[[silver.Pending], tuple[pa.Table, list[Rejection]]]


def _add(totals: dict[str, int], merged: dict[str, int]) -> None:
    totals["rows_inserted"] += merged["inserted"]
    totals["rows_updated"] += merged["updated"]


def merge_validated(
    lake: Lake,
    path: Location,
    chunks: Iterable[silver.Pending],
    prepare: Prepare,
    suite: Callable[[pa.Schema], list[Expect]],
    keys: list[str],
    run_id: str,
    source: str | None = None,
    window_key: str | None = None,
    opened: DeltaTable | None = None,
) -> Step:
    """Per chunk: `prepare` silver rows (and rows it already rejects), GX on them, failures to
    quarantine, the rest merged on `keys`.

    `window_key`: see `lake.silver.commit`. Quarantine is written before each silver commit: if the
    commit fails, the rerun rejects the same rows again and the quarantine merge keeps them once.
    `opened`: the table as the caller opened it, if it did and the table exists (the first
    chunk's commit starts from it instead of opening the table again).
    """
    totals = {"rows_new": 0, "rows_inserted": 0, "rows_updated": 0, "chunks": 0}
    validations = []
    table = opened if opened is not None else delta.open_table(path)
    first_load = silver.FirstLoad(path) if table is None else None
    ahead = [table] if table is not None else []  # handed to the first commit only: later ones open anew
    memory.release()  # what earlier steps in this process freed (a bronze step's driver buffers, say)

    def write(accepted: pa.Table, rejections: list[Rejection], work: silver.Pending) -> dict[str, int]:
        quarantine.write(lake, rejections, run_id)
        try:
            if first_load is not None:
                return first_load.write(accepted, work)
            return silver.commit(path, accepted, keys, work, window_key, opened=ahead.pop() if ahead else None)
        finally:
            memory.release()  # this thread's share of Arrow's pool, and the C heap, keep what they freed otherwise

    # one chunk is written (Arrow encodes without the GIL) while the next is read and validated;
    # the writes keep their order, and a failed one stops the step before any later chunk's
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plantlake-silver-write") as writer:
        writing: Future[dict[str, int]] | None = None
        for work in chunks:
            incoming, rejected_before = prepare(work)
            validation = expectations.validate(incoming, suite(incoming.schema), f"silver.{path.name}", source, keys)
            validation.rejections = rejected_before + validation.rejections
            validation.rows_rejected += len({(r.file, r.row) for r in rejected_before})
            if writing is not None:
                _add(totals, writing.result())
            writing = writer.submit(write, validation.accepted, validation.rejections, work)
            totals["rows_new"] += incoming.num_rows
            progress.add(path, incoming.num_rows)
            totals["chunks"] += 1
            validation.accepted = pa.table({})  # kept only for its counts: memory stays two chunks' worth
            validations.append(validation)
            del work, incoming
            memory.release()
        if writing is not None:
            _add(totals, writing.result())
    if first_load is not None:
        first_load.finish()
    if not validations:
        return Step(path, {"rows_new": 0}, expectations.Validation.nothing_new())
    combined = expectations.Validation.combine(validations)
    return Step(path, {**totals, "rows_quarantined": combined.rows_rejected}, combined)


# a first load's checks hold the key and the checked columns only, a few bytes a row, and each
# GX validation costs about 10 ms besides: on 5M rows, groups of 1M were no faster, and held 40 MB more
LINK_CHUNK_ROWS = 500_000


def link_validated(
    path: Location,
    name: str,
    bronze: silver.BronzeInput,
    schema: pa.Schema,
    suite: Callable[[pa.Schema], list[Expect]],
    source: str | None = None,
    filled: Sequence[str] = (),
    opened: DeltaTable | None = None,
) -> Step | None:
    """A first load that silver takes as landed: checked, then bronze's files linked instead of
    written again (`silver.link_landed`); None when the usual path must run.

    Only for a table whose silver rows are its bronze rows unchanged (`schema`: bronze's columns
    less its bookkeeping), read from one bronze table (`name`), when silver does not exist yet.
    Bronze's files must hold narrow ranges of the key (`silver.clustered`), as later merges
    need. The checks read the key and the columns the suite reads, once, in groups of bronze's
    files that share no key (`silver.landed_groups`): each key once, and no row a rule would
    keep out. A repeated key or such a row, or a bronze commit meanwhile, writes nothing and
    returns None; the usual path then reads everything again (a first load with bad rows pays
    for its checks twice, once in the table's life). `filled`: columns silver takes from bronze
    that files landed before bronze had them lack (null there): a null in one also takes the
    usual path, which fills them. `opened`: silver's table, if the caller opened it (see
    `merge_validated`).
    """
    if opened is not None or delta.open_table(path) is not None:
        return None  # the usual case, every night after the first: nothing more to open
    landed = delta.open_table(bronze.path)
    if landed is None or delta.read_state(path, silver.CONSUMED):
        return None
    rules = suite(schema)
    if any(rule.condition for rule in rules):
        return None  # a condition may read any column
    if any(column not in landed.schema().to_arrow().names for column in filled):
        return None
    if not silver.clustered(landed, bronze.keys[0], silver.CLEAN_CUT_ROWS):
        return None  # the usual path writes files of narrow key ranges
    version = landed.version()
    memory.release()  # what the bronze step freed, as `merge_validated` does
    checked = [rule.column for rule in rules if rule.column in schema.names]
    columns = list(dict.fromkeys([*bronze.keys, *checked, *filled]))
    validations, newest = [], None
    groups = silver.landed_groups(landed, bronze.keys[0], [*columns, INGESTED_AT], LINK_CHUNK_ROWS)
    for rows in groups:  # Arrow reads a group's files in parallel: a read-ahead would only hold more
        stamps = pc.max(rows[INGESTED_AT]).as_py()
        newest = stamps if newest is None else max(newest, stamps)
        rows = rows.select(columns)
        if not keyed.unique(rows, bronze.keys) or any(rows[column].null_count for column in filled):
            return None
        validation = expectations.validate(rows, rules, f"silver.{path.name}", source, bronze.keys)
        if validation.rejections:
            return None
        validation.accepted = pa.table({})
        validations.append(validation)
        del rows
        memory.release()
    if newest is None or delta.load(bronze.path).version() != version:
        return None
    inserted = silver.link_landed(path, bronze.path, landed, schema, {name: newest.isoformat()})
    progress.add(path, inserted)
    metadata = {"rows_new": inserted, "rows_inserted": inserted, "rows_updated": 0, "rows_quarantined": 0}
    return Step(
        path, {**metadata, "chunks": len(validations), "linked": True}, expectations.Validation.combine(validations)
    )

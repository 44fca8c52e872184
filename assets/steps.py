"""The silver step every source kind shares: validate new rows, quarantine failures, merge."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa

from plantlake.assets.results import Step
from plantlake.lake import delta, quarantine, silver
from plantlake.lake.layout import Lake
from plantlake.lake.quarantine import Rejection
from plantlake.quality import expectations
from plantlake.quality.suites import Expect

Prepare = Callable[[silver.Pending], tuple[pa.Table, list[Rejection]]]


def merge_validated(
    lake: Lake,
    path: Path,
    chunks: Iterable[silver.Pending],
    prepare: Prepare,
    suite: Callable[[pa.Schema], list[Expect]],
    keys: list[str],
    run_id: str,
    source: str | None = None,
    window_key: str | None = None,
) -> Step:
    """Per chunk: `prepare` silver rows (and rows it already rejects), GX on them, failures to
    quarantine, the rest merged on `keys`.

    `window_key`: see `lake.silver.commit`. Quarantine is written before each silver commit: if the
    commit fails, the rerun rejects the same rows again and the quarantine merge keeps them once.
    """
    totals = {"rows_new": 0, "rows_inserted": 0, "rows_updated": 0, "chunks": 0}
    validations = []
    first_load = delta.open_table(path) is None
    for work in chunks:
        incoming, rejected_before = prepare(work)
        validation = expectations.validate(incoming, suite(incoming.schema), f"silver.{path.name}", source, keys)
        validation.rejections = rejected_before + validation.rejections
        validation.rows_rejected += len({(r.file, r.row) for r in rejected_before})
        quarantine.write(lake, validation.rejections, run_id)
        merged = silver.commit(path, validation.accepted, keys, work, first_load, window_key)
        totals["rows_new"] += incoming.num_rows
        totals["rows_inserted"] += merged["inserted"]
        totals["rows_updated"] += merged["updated"]
        totals["chunks"] += 1
        validation.accepted = pa.table({})  # merged: keep only the counts, so memory stays one chunk's worth
        validations.append(validation)
    if not validations:
        return Step(path, {"rows_new": 0}, expectations.Validation.nothing_new())
    combined = expectations.Validation.combine(validations)
    return Step(path, {**totals, "rows_quarantined": combined.rows_rejected}, combined)

"""The silver step every source kind shares: validate new rows, quarantine failures, merge."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from assets.results import Step
from lake import quarantine, silver
from lake.layout import Lake
from lake.quarantine import Rejection
from quality import expectations
from quality.suites import Expect


def merge_validated(
    lake: Lake,
    path: Path,
    work: silver.Pending,
    incoming: pa.Table | None,
    suite: list[Expect],
    keys: list[str],
    run_id: str,
    rejected_before: list[Rejection] | None = None,
    source: str | None = None,
) -> Step:
    """GX on `incoming`; failing rows and `rejected_before` to quarantine; the rest merged on `keys`.

    Quarantine is written before the silver commit: if the commit fails, the rerun rejects
    the same rows again and the quarantine merge keeps them once.
    """
    rejected_before = rejected_before or []
    if incoming is None or (incoming.num_rows == 0 and not rejected_before and work.empty):
        return Step(path, {"rows_new": 0}, expectations.Validation.nothing_new())
    validation = expectations.validate(incoming, suite, f"silver.{path.name}", source, keys)
    validation.rejections = rejected_before + validation.rejections
    quarantine.write(lake, validation.rejections, run_id)
    merged = silver.commit(path, validation.accepted, keys, work)
    metadata = {"rows_new": incoming.num_rows, "rows_inserted": merged["inserted"], "rows_updated": merged["updated"],
                "rows_quarantined": len({(r.file, r.row) for r in validation.rejections})}  # fmt: skip
    return Step(path, metadata, validation)

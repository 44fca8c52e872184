"""The executor every job runs with, chosen in the YAML (`execution`), the same for every kind of run.

Scheduled, sensor and UI runs start a fresh process for the run; Dagster's default executor
then starts one more process per step, and each imports Dagster, pyarrow, DuckDB and GX
again, which costs more than most steps do. `in_process` (the default) runs the steps in
the run's own process, one after another. `multiprocess` runs steps in parallel, forked
from a server process that has plantlake imported once.
"""

from __future__ import annotations

import dagster as dg

from plantlake.config import ExecutionConfig

PRELOADED = ["plantlake.pipelines.factory"]


def executor_for(execution: ExecutionConfig) -> dg.ExecutorDefinition:
    if execution.executor == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor.configured(
        {"max_concurrent": execution.max_concurrent, "start_method": {"forkserver": {"preload_modules": PRELOADED}}},
        name="plantlake_multiprocess",
    )

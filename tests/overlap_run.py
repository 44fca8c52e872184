"""One `refresh_all` run in a process of its own, started on a shared barrier (for the overlap tests).

    python tests/overlap_run.py CONFIG READY_FILE BARRIER_FILE RESULT_FILE

Loads the config (its ${VARS} from this process's environment), builds the definitions,
writes READY_FILE, waits (bounded) until BARRIER_FILE exists, then executes `refresh_all`
in this process with an ephemeral Dagster instance. RESULT_FILE gets a JSON summary: success,
failed steps with their errors, the assets materialized, and when the run began and ended
(wall clock, for the test's report that the two runs overlapped).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

BARRIER_WAIT_SECONDS = 120


def main(config_path: str, ready: str, barrier: str, result_file: str) -> int:
    import dagster as dg

    from plantlake.config import load_config
    from plantlake.pipelines.factory import build_definitions
    from plantlake.pipelines.runs import QUIET

    config = load_config(config_path)
    job = build_definitions(config).resolve_job_def("refresh_all")
    instance = dg.DagsterInstance.ephemeral()
    Path(ready).write_text("ready", encoding="utf-8")
    deadline = time.monotonic() + BARRIER_WAIT_SECONDS
    while not Path(barrier).exists():
        if time.monotonic() > deadline:
            Path(result_file).write_text(
                json.dumps({"success": False, "error": "barrier never opened"}), encoding="utf-8"
            )
            return 2
        time.sleep(0.005)
    began = time.time()
    result = job.execute_in_process(run_config=QUIET, instance=instance, raise_on_error=False)
    ended = time.time()
    failures = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = getattr(event.event_specific_data, "error", None)
            cause = error.cause if error is not None and error.cause is not None else error
            failures[event.step_key] = cause.message if cause is not None else str(event.message)
    summary = {
        "success": result.success,
        "run_id": result.run_id,
        "failures": failures,
        "materialized": sorted(e.asset_key.to_user_string() for e in result.get_asset_materialization_events()),
        "began": began,
        "ended": ended,
    }
    Path(result_file).write_text(json.dumps(summary), encoding="utf-8")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))

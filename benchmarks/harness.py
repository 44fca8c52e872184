"""Run benchmark cases each in its own child process, so each peak memory (RSS) is its own.

A case is a function that does its imports and set-up and returns the timed callable; the
clock runs around that callable only. The child prints one JSON line: seconds and rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from plantlake.pipelines import PROCESS_ENVIRONMENT

Case = Callable[..., Callable[[], int]]


def run_case(script: str, label: str, case: str, *args: Any) -> dict:
    """Run `case` of `script` in a child process; its wall time, rows and peak memory in MB.

    The child is set up as plantlake's processes are (`PROCESS_ENVIRONMENT`), whatever it runs.
    """
    command = [sys.executable, script, "--case", case, json.dumps(list(args))]
    environment = {**PROCESS_ENVIRONMENT, **os.environ}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=environment)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"case {label} failed (status {status}); its output is above")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024
    print(
        f"{label:<24} {result['seconds']:8.2f} s  {result['rows']:>12,} rows/bytes  peak {result['peak_mb']:7.0f} MB",
        flush=True,
    )
    return result


def entry_point(cases: dict[str, Case], main: Callable[[], None]) -> None:
    """Run `main`, or, in a child process started by `run_case`, the one case it names."""
    if len(sys.argv) > 2 and sys.argv[1] == "--case":
        run = cases[sys.argv[2]](*json.loads(sys.argv[3]))
        started = time.perf_counter()
        rows = run()
        print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}))
    else:
        main()

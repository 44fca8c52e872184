"""Pipelines: the configuration, the Dagster definitions, the schedule, the sensor and the demo.

Every plantlake process (Dagster's code server, daemon and run workers, Celery workers, the
CLI) imports this package before anything loads pyarrow, so the settings pyarrow reads once,
as it loads, are made here: `PROCESS_ENVIRONMENT`, unless the environment sets them itself.
"""

import os
import sys

# Arrow's memory pool. pyarrow's default, mimalloc, commits its arenas with transparent huge
# pages on Linux, and the kernel zeroes each 2 MB page whole on its first touch: a step starts in
# a fresh process, so an incremental ERP night (1% of 5M rows changed, `benchmarks/end_to_end.py`)
# spent about a quarter of its CPU time zeroing 80 such pages. jemalloc takes none; full loads
# take as long and peak as high with either.
# jemalloc's arenas: one per core the process may run on (a container's cpuset, say), not four.
# A step's threads hand buffers on (a parser to a writer), and what one arena frees another does
# not reuse: with fewer, a step touches less new memory, each first touch of which costs where the
# machine hands memory out lazily (a VM). The nightly change touched 10 MB less and its slow runs
# went (0.25-0.30 s -> 0.23-0.25 s after a process had freed 1.5 GB); full loads took as long and
# peaked 10-40 MB lower.
PROCESS_ENVIRONMENT = (
    {"ARROW_DEFAULT_MEMORY_POOL": "jemalloc", "JE_ARROW_MALLOC_CONF": f"narenas:{len(os.sched_getaffinity(0))}"}
    if sys.platform == "linux"
    else {}
)

for _name, _value in PROCESS_ENVIRONMENT.items():
    os.environ.setdefault(_name, _value)

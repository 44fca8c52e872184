"""A plantlake process sets what pyarrow reads once, as it loads, before anything loads it."""

import os
import subprocess
import sys

import pytest

from plantlake.pipelines import PROCESS_ENVIRONMENT

pytestmark = pytest.mark.unit

POOL = "import plantlake.pipelines.definitions, pyarrow; print(pyarrow.default_memory_pool().backend_name)"


def _fresh_process(code: str, **environment: str) -> subprocess.CompletedProcess:
    """`code` run in a new interpreter whose environment sets none of `PROCESS_ENVIRONMENT` but `environment`."""
    clean = {name: value for name, value in os.environ.items() if name not in PROCESS_ENVIRONMENT}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **environment}, capture_output=True, text=True, check=True
    )


def _pool_of_a_fresh_process(**environment: str) -> str:
    return _fresh_process(POOL, **environment).stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="the pool is chosen on Linux only: see plantlake.pipelines")
def test_the_code_location_runs_on_jemalloc() -> None:
    """Loading the definitions, as Dagster's code server and run workers do, picks the pool
    before pyarrow loads (an `import pyarrow` above it in `plantlake.pipelines` would undo this)."""
    assert PROCESS_ENVIRONMENT["ARROW_DEFAULT_MEMORY_POOL"] == "jemalloc"
    assert _pool_of_a_fresh_process() == "jemalloc"


@pytest.mark.skipif(sys.platform != "linux", reason="the pool is chosen on Linux only: see plantlake.pipelines")
def test_jemalloc_takes_one_arena_per_core_and_no_complaint() -> None:
    """jemalloc reads its options as pyarrow loads; one it does not know, it names on stderr."""
    read = "import plantlake.pipelines.definitions, os, pyarrow as pa; pa.array([1] * 10**6); "
    done = _fresh_process(read + "print(os.environ['JE_ARROW_MALLOC_CONF'])")
    assert done.stdout.strip() == f"narenas:{len(os.sched_getaffinity(0))}" and "jemalloc" not in done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="the pool is chosen on Linux only: see plantlake.pipelines")
def test_a_process_held_to_one_core_takes_one_arena() -> None:
    held = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); import plantlake.pipelines; "
    assert _fresh_process(held + "print(os.environ['JE_ARROW_MALLOC_CONF'])").stdout.strip() == "narenas:1"


def test_the_environment_names_the_pool_when_it_sets_one() -> None:
    assert _pool_of_a_fresh_process(ARROW_DEFAULT_MEMORY_POOL="system") == "system"

"""Pool slots in the production instance's PostgreSQL storage: two claims at once never share one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from dagster_postgres.event_log import PostgresEventLogStorage

from plantlake.pipelines.pool_storage import PoolSafeEventLogStorage

pytestmark = pytest.mark.integration

RUNS = 6


def _claimed_at_once(storage: PostgresEventLogStorage, pool: str) -> int:
    """How many of RUNS runs, each claiming a step of `pool` (one slot) at the same moment, got the slot."""
    storage.set_concurrency_slots(pool, 1)
    start = threading.Barrier(RUNS)

    def claim(run: int) -> bool:
        start.wait()
        return storage.claim_concurrency_slot(pool, f"run-{run}", "bronze__orders").is_claimed

    with ThreadPoolExecutor(RUNS) as runs:
        return sum(runs.map(claim, range(RUNS)))


def test_runs_that_claim_a_pool_at_once_get_one_slot_between_them(postgres_url: str) -> None:
    storage = PoolSafeEventLogStorage(postgres_url.replace("+psycopg", "+psycopg2"))
    try:
        for attempt in range(20):  # the race of a read then a write needs the claims interleaved
            assert _claimed_at_once(storage, f"plantlake/orders-{attempt}") == 1, f"attempt {attempt}"
    finally:
        storage.dispose()

"""The instance's event log in PostgreSQL, with a pool's slot taken in one statement.

dagster-postgres runs every statement on its own (autocommit). Its claim of a pool slot reads a
free slot (`FOR UPDATE SKIP LOCKED`, a lock that ends with that statement), then writes the run
and step into that slot by its id. Two runs that start a step of the same table at once can read
the same free slot, and both writes succeed: both steps run, and the second's name replaces the
first's in the slot. Here one statement takes a slot only while it is still free, so one claim
wins and the other waits as for a busy pool. `deploy/dagster.yaml` names this class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log.schema import ConcurrencySlotsTable
from dagster._serdes import ConfigurableClassData
from dagster._utils.concurrency import ConcurrencySlotStatus
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config


class PoolSafeEventLogStorage(PostgresEventLogStorage):
    """dagster-postgres's event log storage, whose pool slots two claims never share."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PoolSafeEventLogStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    def _claim_concurrency_slot(self, concurrency_key: str, run_id: str, step_key: str) -> ConcurrencySlotStatus:
        slots = ConcurrencySlotsTable
        free = (
            db.select(slots.c.id)
            .where(
                slots.c.concurrency_key == concurrency_key, slots.c.step_key.is_(None), slots.c.deleted == db.false()
            )
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self.index_connection() as conn:
            taken = conn.execute(
                slots.update()
                .values(run_id=run_id, step_key=step_key)
                .where(slots.c.id == free, slots.c.step_key.is_(None))
            )
        return ConcurrencySlotStatus.CLAIMED if taken.rowcount else ConcurrencySlotStatus.BLOCKED

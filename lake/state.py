"""Each table's bookkeeping: watermarks, consumed marks, file positions, per-tag marks, reconciliation times.

Why not in the Delta log: delta-rs checkpoints every 100 commits and deletes JSON commits
past the log retention, and OPTIMIZE and VACUUM commits carry no custom metadata, so state
read back from commit history is lost once the last commit that held it is cleaned up.

So the state of a table lives in one small JSON document, `<root>/_state/<layer>/<name>.json`,
which Delta housekeeping never touches. It is replaced atomically (on disk: write, then rename;
in object storage: one upload) right after the table's data commit, by the table's only writer
(`lake.locks` on one machine, Dagster's pools across workers), so:

- reading it costs one small file, the same on night 1 and night 1000;
- a run that dies between the data commit and the state write leaves the old state: the
  rerun reads again from there, and every write is idempotent on its keys (bronze drops
  re-read rows, silver upserts), so nothing is duplicated, only re-read;
- lakes written before this file existed are read once from commit history, then carry on here;
- a table that holds rows but has no state stops the run (`StateMissingError`, raised by
  `lake.delta.read_state`) instead of silently reloading the whole source.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from plantlake.lake.storage import Location, Where

STATE_PREFIX = "plantlake."
FOLDER = "_state"


class StateMissingError(RuntimeError):
    """A table holds rows, but the marks that say how far it has read are gone."""


def state_file(table: Where) -> Location:
    """`<root>/_state/<layer>/<name>.json` for the table at `<root>/<layer>/<name>`."""
    table = Location.of(table)
    return table.parent.parent / FOLDER / table.parent.name / f"{table.name}.json"


def _from_history(table: Location) -> dict[str, Any]:
    """State as lakes from before the state file kept it: the newest `plantlake.*` commit metadata."""
    try:
        history = DeltaTable(table.uri, storage_options=table.storage_options).history()
    except TableNotFoundError:
        return {}
    found: dict[str, Any] = {}
    for entry in history:
        for name, raw in entry.items():
            key = name[len(STATE_PREFIX) :]
            if name.startswith(STATE_PREFIX) and key not in found:
                found[key] = json.loads(raw)
    return found


def current(table: Where) -> dict[str, Any]:
    """Every state key of the table (empty for a table never written)."""
    table = Location.of(table)
    kept = stored(table)
    return _from_history(table) if kept is None else kept


def stored(table: Where) -> dict[str, Any] | None:
    """The state file's keys, or None without a state file (the table's log is not read)."""
    table = Location.of(table)
    try:
        return json.loads(state_file(table).read_text())["state"]
    except FileNotFoundError:
        return None


def missing(table: Where, key: str) -> StateMissingError:
    """The error for a table that holds rows but whose state `key` is gone: what to do about it."""
    table = Location.of(table)
    return StateMissingError(
        f"{table.parent.name}.{table.name} holds rows but its state {key!r} is missing "
        f"(expected in {state_file(table)}). Restore that file from a backup, or, to read the "
        f"source again from the start, remove the table folder {table} and its state file."
    )


def write(table: Where, updates: dict[str, Any]) -> None:
    """Set `updates` in the table's state, keeping its other keys; atomic (see `Location.write_text`)."""
    table = Location.of(table)
    document = {
        "table": f"{table.parent.name}.{table.name}",
        "updated_at": datetime.now(UTC).isoformat(),
        "state": {**current(table), **updates},
    }
    state_file(table).write_text(json.dumps(document, separators=(",", ":")))


LAST_REFRESH, LAST_GOOD_REFRESH = "last_refresh", "last_good_refresh"


def record_refresh(table: Where, run_id: str, error: str | None = None) -> None:
    """Note a step's outcome for the catalog: when, by which run, and the error if it failed."""
    table = Location.of(table)
    now = datetime.now(UTC).isoformat()
    outcome = {"status": "failed" if error else "ok", "at": now, "run_id": run_id, "error": error}
    write(table, {LAST_REFRESH: outcome} if error else {LAST_REFRESH: outcome, LAST_GOOD_REFRESH: now})

"""One day of ERP bookings for the plant that advances night by night (`simulator.clock`).

The ERP's rows are kept in memory as well (`ErpState`), so the next day's bookings and the
rows the lake should hold are known without reading the database back. A day:

- orders still running at midnight finish in the small hours (order and work orders updated);
- the day's plan, entered the day before, runs: a few planned orders are cancelled and hard
  deleted, as ERPs do, the rest run from 06:00 and get their work orders and stock moves;
- one order commits late: its `updated_at` lies up to 30 minutes before the newest
  `updated_at` the ERP held the night before, so only a look-back finds it;
- master data changes (a customer or a product price), a stock move is corrected;
- tomorrow's plan is entered, on the lots delivered today.

Only planned orders are deleted: they have no work orders or stock moves yet, so no row
anywhere references a deleted order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa

from plantlake.simulator.erp import _COUNTRIES, _OPERATIONS, _naive, metadata, order_children, planned_orders

ErpState = dict[str, dict[Any, dict[str, Any]]]  # table -> primary key -> row
_NIGHT_STREAM = 0x4E49474854  # seeds the night's random stream, with the seed and the night


def primary_key(table: str) -> str:
    return metadata.tables[table].primary_key.columns.values()[0].name


def erp_state(rows: dict[str, list[dict]]) -> ErpState:
    """Rows by table (as `simulator.erp.erp_rows` gives them) keyed by primary key."""
    return {name: {row[primary_key(name)]: dict(row) for row in table_rows} for name, table_rows in rows.items()}


@dataclass
class ErpChanges:
    """What one day books: whole new rows, whole changed rows (by key), deleted keys."""

    inserted: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    updated: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    deleted: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    late_rows: int = 0

    def update(self, table: str, row: dict) -> None:
        self.updated[table][row[primary_key(table)]] = row

    def counts(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
        """Rows inserted, updated and deleted per table."""
        return (
            {name: len(rows) for name, rows in self.inserted.items() if rows},
            {name: len(rows) for name, rows in self.updated.items() if rows},
            {name: len(keys) for name, keys in self.deleted.items() if keys},
        )


def day_changes(
    state: ErpState, seed: int, night: int, day: datetime, new_lots: list[str], known_lots: list[str]
) -> ErpChanges:
    """The bookings of the UTC day starting at `day`, from a random stream of (seed, night).
    `new_lots`: delivered today, tomorrow's plan uses them; `known_lots`: delivered before."""
    rng = np.random.default_rng([seed, _NIGHT_STREAM, night])
    changes = ErpChanges()
    next_id = {name: max(rows, default=0) + 1 for name, rows in state.items() if name != "machines"}
    start, end = _naive(day), _naive(day) + timedelta(days=1)
    orders = state["production_orders"]
    newest_before = max(row["updated_at"] for row in orders.values())
    work_of: dict[int, list[dict]] = defaultdict(list)
    for work in state["work_orders"].values():
        work_of[work["production_order_id"]].append(work)

    for order_id in sorted(key for key, row in orders.items() if row["status"] == "in_progress"):
        finished = start + timedelta(minutes=int(rng.integers(15, 300)))
        changes.update(
            "production_orders", {**orders[order_id], "status": "done", "actual_end": finished, "updated_at": finished}
        )
        for work in work_of[order_id]:
            last = work["operation"] == _OPERATIONS[-1]
            changes.update(
                "work_orders",
                {
                    **work,
                    "status": "done",
                    "updated_at": finished,
                    "finished_at": finished if last else work["finished_at"],
                },
            )

    planned = sorted(key for key, row in orders.items() if row["status"] == "planned")
    cancelled: set[int] = set()
    if planned:
        cancelled = {
            int(key) for key in rng.choice(planned, size=min(len(planned), int(rng.integers(1, 3))), replace=False)
        }
    changes.deleted["production_orders"] = sorted(cancelled)
    cursors: dict[str, datetime] = {}
    for order_id in (key for key in planned if key not in cancelled):
        row = orders[order_id]
        begin = cursors.get(row["machine_id"], start + timedelta(hours=6))
        length = row["actual_end"] - row["actual_start"]
        cursors[row["machine_id"]] = begin + length
        finish = min(begin + length, end)
        ran = {
            **row,
            "status": "in_progress" if finish == end else "done",
            "actual_start": begin,
            "actual_end": None if finish == end else finish,  # a running order has no end yet
            "updated_at": finish,
        }
        changes.update("production_orders", ran)
        issued = Decimal(f"{-rng.uniform(10, 300):.3f}")
        work_orders, move = order_children(ran, next_id["work_orders"], next_id["stock_moves"], issued, finish)
        next_id["work_orders"] += len(work_orders)
        next_id["stock_moves"] += 1
        changes.inserted["work_orders"] += work_orders
        changes.inserted["stock_moves"].append(move)

    committed = newest_before - timedelta(minutes=int(rng.integers(1, 31)))
    machine_ids = sorted(state["machines"])
    changes.inserted["production_orders"].append(
        {
            "id": next_id["production_orders"],
            "product_id": int(rng.choice(sorted(state["products"]))),
            "customer_id": int(rng.choice(sorted(state["customers"]))),
            "machine_id": str(rng.choice(machine_ids)),
            "material_lot": str(rng.choice(known_lots)),
            "quantity": int(rng.integers(1, 20)),
            "status": "done",
            "actual_start": committed - timedelta(minutes=90),
            "actual_end": committed,
            "updated_at": committed,
        }
    )
    next_id["production_orders"] += 1
    changes.late_rows = 1

    _master_data(changes, state, rng, night, next_id, start + timedelta(hours=9))
    moves = sorted(state["stock_moves"])
    if moves:
        move = state["stock_moves"][int(rng.choice(moves))]
        corrected = (move["quantity_kg"] + Decimal(f"{rng.uniform(-5, 5):.3f}")).quantize(Decimal("0.001"))
        changes.update(
            "stock_moves", {**move, "quantity_kg": corrected, "updated_at": start + timedelta(hours=7, minutes=30)}
        )

    customers = sorted(state["customers"]) + [row["id"] for row in changes.inserted["customers"]]
    changes.inserted["production_orders"] += planned_orders(
        rng,
        machine_ids,
        new_lots or known_lots,
        customers,
        sorted(state["products"]),
        day + timedelta(days=1),
        next_id["production_orders"],
        day + timedelta(hours=15),
    )
    return changes


def _master_data(
    changes: ErpChanges, state: ErpState, rng: np.random.Generator, night: int, next_id: dict[str, int], stamp: datetime
) -> None:
    """Odd nights a customer moves abroad, even nights a product's price changes; every 4th a new customer."""
    if night % 2:
        customer = state["customers"][int(rng.choice(sorted(state["customers"])))]
        country = _COUNTRIES[(_COUNTRIES.index(customer["country"]) + 1) % len(_COUNTRIES)]
        changes.update("customers", {**customer, "country": country, "updated_at": stamp})
    else:
        product = state["products"][int(rng.choice(sorted(state["products"])))]
        price = (product["unit_price"] * Decimal(f"{rng.uniform(0.95, 1.08):.4f}")).quantize(Decimal("0.01"))
        changes.update("products", {**product, "unit_price": price, "updated_at": stamp})
    if night % 4 == 0:
        number = next_id["customers"]
        changes.inserted["customers"].append(
            {
                "id": number,
                "name": f"Kunde {number:03d} GmbH",
                "country": _COUNTRIES[number % len(_COUNTRIES)],
                "updated_at": stamp,
            }
        )


def apply_to_state(state: ErpState, changes: ErpChanges) -> None:
    for table, keys in changes.deleted.items():
        for key in keys:
            del state[table][key]
    for table, by_key in changes.updated.items():
        state[table].update(by_key)
    for table, rows in changes.inserted.items():
        state[table].update({row[primary_key(table)]: row for row in rows})


def apply_to_database(url: str, changes: ErpChanges) -> None:
    """Deletes, updates and inserts of the day in one transaction (SQLite, PostgreSQL, MariaDB)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for name, keys in changes.deleted.items():
                if keys:
                    table = metadata.tables[name]
                    connection.execute(table.delete().where(table.c[primary_key(name)].in_(keys)))
            for name, by_key in changes.updated.items():
                table, key = metadata.tables[name], primary_key(name)
                for row in by_key.values():
                    values = {column: value for column, value in row.items() if column != key}
                    connection.execute(table.update().where(table.c[key] == row[key]).values(values))
            for name, rows in changes.inserted.items():
                if rows:
                    connection.execute(metadata.tables[name].insert(), rows)
    finally:
        engine.dispose()

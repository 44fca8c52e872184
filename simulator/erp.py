"""The plant's ERP database: one SQLAlchemy schema that loads into SQLite, PostgreSQL or MariaDB."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import sqlalchemy as sa

from plantlake.simulator.plant import Plant

metadata = sa.MetaData()

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
products = sa.Table(
    "products",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("sku", sa.String(32), nullable=False),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("unit_price", sa.Numeric(10, 2), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
machines = sa.Table(
    "machines",
    metadata,
    sa.Column("machine_id", sa.String(16), primary_key=True),
    sa.Column("line", sa.String(8), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
production_orders = sa.Table(
    "production_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("product_id", sa.Integer, nullable=False),
    sa.Column("customer_id", sa.Integer, nullable=False),
    sa.Column("machine_id", sa.String(16), nullable=False),
    sa.Column("material_lot", sa.String(32), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("actual_start", sa.DateTime, nullable=False),
    sa.Column("actual_end", sa.DateTime, nullable=True),  # empty while the order runs, as Odoo keeps it
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
work_orders = sa.Table(
    "work_orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("production_order_id", sa.Integer, nullable=False),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("machine_id", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
stock_moves = sa.Table(
    "stock_moves",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("production_order_id", sa.Integer, nullable=False),
    sa.Column("lot", sa.String(32), nullable=False),
    sa.Column("quantity_kg", sa.Numeric(12, 3), nullable=False),
    sa.Column("moved_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

_COUNTRIES = ("DE", "AT", "CH", "FR", "IT", "PL", "CZ", "NL")
_OPERATIONS = ("setup", "machining", "inspection")
PLAN_STREAM = 0x504C414E  # seeds the random stream of night 0's plan (a later night plans from its own)


def _naive(moment: datetime) -> datetime:
    """ERP databases here store UTC as naive timestamps, as most ERPs do."""
    return moment.replace(tzinfo=None)


def erp_rows(plant: Plant) -> dict[str, list[dict]]:
    """All ERP rows of the plant, by table name; a day-by-day plant has the next day planned as well."""
    rng = np.random.default_rng([plant.seed, 7])
    stamp = _naive(plant.start - timedelta(days=30))
    rows: dict[str, list[dict]] = {
        "customers": [
            {"id": i, "name": f"Kunde {i:03d} GmbH", "country": _COUNTRIES[i % len(_COUNTRIES)], "updated_at": stamp}
            for i in range(1, 21)
        ],
        "products": [
            {
                "id": i,
                "sku": f"P-{1000 + i}",
                "name": f"Flansch DN{20 + 5 * i}",
                "unit_price": Decimal(f"{rng.uniform(5, 250):.2f}"),
                "updated_at": stamp,
            }
            for i in range(1, 16)
        ],
        "machines": [
            {"machine_id": m.machine_id, "line": m.line, "name": f"CNC {m.machine_id}", "updated_at": stamp}
            for m in plant.machines
        ],
        "production_orders": [],
        "work_orders": [],
        "stock_moves": [],
    }
    for order in plant.orders:
        status = "done" if order.end < plant.end else "in_progress"
        rows["production_orders"].append(
            {
                "id": order.order_id,
                "product_id": order.product_id,
                "customer_id": order.customer_id,
                "machine_id": order.machine_id,
                "material_lot": order.material_lot,
                "quantity": order.quantity,
                "status": status,
                "actual_start": _naive(order.start),
                "actual_end": None if status == "in_progress" else _naive(order.end),
                "updated_at": _naive(order.end),
            }
        )
        work, move = order_children(
            rows["production_orders"][-1],
            len(rows["work_orders"]) + 1,
            order.order_id,
            Decimal(f"{-rng.uniform(10, 300):.3f}"),
            until=_naive(order.end),
        )
        rows["work_orders"] += work
        rows["stock_moves"].append(move)
    if plant.day_by_day:  # a plant that advances night by night (simulator.clock) has tomorrow planned
        rows["production_orders"] += planned_orders(
            np.random.default_rng([plant.seed, PLAN_STREAM, 0]),
            [m.machine_id for m in plant.machines],
            [lot.lot_id for lot in plant.lots],
            [row["id"] for row in rows["customers"]],
            [row["id"] for row in rows["products"]],
            plant.end,
            len(plant.orders) + 1,
            plant.end - timedelta(hours=8),
        )
    return rows


def order_children(
    order: dict, first_work_order_id: int, stock_move_id: int, quantity_kg: Decimal, until: datetime | None = None
) -> tuple[list[dict], dict]:
    """The work orders (one per operation, splitting the order's time) and the material issue of an order that ran.

    `until`: where the time of an order still running (no actual_end) is split up to."""
    start, end = order["actual_start"], order["actual_end"] or until
    step = (end - start) / len(_OPERATIONS)
    work = [
        {
            "id": first_work_order_id + position,
            "production_order_id": order["id"],
            "operation": operation,
            "machine_id": order["machine_id"],
            "status": order["status"],
            "started_at": start + position * step,
            "finished_at": start + (position + 1) * step,
            "updated_at": order["updated_at"],
        }
        for position, operation in enumerate(_OPERATIONS)
    ]
    move = {
        "id": stock_move_id,
        "production_order_id": order["id"],
        "lot": order["material_lot"],
        "quantity_kg": quantity_kg,
        "moved_at": start,
        "updated_at": start,
    }
    return work, move


def planned_orders(
    rng: np.random.Generator,
    machine_ids: list[str],
    lot_ids: list[str],
    customer_ids: list[int],
    product_ids: list[int],
    day: datetime,
    first_id: int,
    entered_at: datetime,
) -> list[dict]:
    """The production orders of `day` as the planner enters them the day before: status planned,
    the planned window in actual_start/actual_end (jobs of 4 to 10 hours from 06:00 on each
    machine), no work orders or stock moves yet. Some are cancelled, and deleted, before they run."""
    rows: list[dict] = []
    for machine_id in machine_ids:
        cursor = day + timedelta(hours=6)
        while cursor < day + timedelta(hours=22):
            length = timedelta(hours=int(rng.integers(4, 11)))
            rows.append(
                {
                    "id": first_id + len(rows),
                    "product_id": product_ids[int(rng.integers(0, len(product_ids)))],
                    "customer_id": customer_ids[int(rng.integers(0, len(customer_ids)))],
                    "machine_id": machine_id,
                    "material_lot": lot_ids[int(rng.integers(0, len(lot_ids)))],
                    "quantity": int(rng.integers(20, 400)),
                    "status": "planned",
                    "actual_start": _naive(cursor),
                    "actual_end": _naive(min(cursor + length, day + timedelta(days=1))),
                    "updated_at": _naive(entered_at + timedelta(minutes=len(rows))),
                }
            )
            cursor += length
    return rows


def create_erp(url: str, plant: Plant) -> dict[str, int]:
    """Drop and recreate the ERP tables at `url` and fill them; returns rows per table."""
    engine = sa.create_engine(url)
    try:
        metadata.drop_all(engine)
        metadata.create_all(engine)
        rows = erp_rows(plant)
        with engine.begin() as connection:
            for name, table_rows in rows.items():
                if table_rows:
                    connection.execute(metadata.tables[name].insert(), table_rows)
        return {name: len(table_rows) for name, table_rows in rows.items()}
    finally:
        engine.dispose()

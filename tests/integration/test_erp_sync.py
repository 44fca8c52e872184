"""ERP tables from real PostgreSQL and MariaDB into the lake, compared row for row."""

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from erp_compare import assert_silver_equals_source, sync

from lake import delta
from lake.layout import Lake
from pipelines.config import ErpSource, ErpTable
from simulator.erp import create_erp, metadata

pytestmark = pytest.mark.integration

TABLES = {
    "customers": ["id"], "products": ["id"], "machines": ["machine_id"],
    "production_orders": ["id"], "work_orders": ["id"], "stock_moves": ["id"],
}  # fmt: skip


def _source(url: str) -> ErpSource:
    """Through SQLAlchemy, the path of every dialect without a fast one (test_erp_depth covers connectorx)."""
    return ErpSource(name="erp", url=url, batch_rows=25, fast_path=False,
                     tables=[ErpTable(name=name, primary_key=key, cursor="updated_at") for name, key in TABLES.items()])  # fmt: skip


def test_full_then_incremental_loads_equal_the_source(erp_database_url: str, plant, lake: Lake) -> None:
    create_erp(erp_database_url, plant)
    source = _source(erp_database_url)

    first = sync(lake, source, "run-1")
    assert_silver_equals_source(lake, source)
    assert first["production_orders"]["rows_inserted"] == len(plant.orders)

    engine = sa.create_engine(erp_database_url)
    later = plant.end.replace(tzinfo=None) + timedelta(hours=1)
    orders, moves = metadata.tables["production_orders"], metadata.tables["stock_moves"]
    with engine.begin() as connection:
        connection.execute(orders.update().where(orders.c.id.in_([1, 2, 3])).values(status="cancelled", updated_at=later))
        connection.execute(orders.insert(), [
            {"id": 900 + i, "product_id": 1, "customer_id": 1, "machine_id": "M-101", "material_lot": "LOT-AC-0001",
             "quantity": 10, "status": "planned", "actual_start": later, "actual_end": later, "updated_at": later}
            for i in range(2)
        ])  # fmt: skip
        connection.execute(moves.update().where(moves.c.id == 1).values(quantity_kg=Decimal("-12.345"), updated_at=later))
    engine.dispose()

    second = sync(lake, source, "run-2")
    assert_silver_equals_source(lake, source)
    # only rows at or past the watermark were read again, not the whole table
    assert second["production_orders"]["rows_read"] < len(plant.orders)
    assert second["production_orders"]["silver_rows_updated"] == 3
    assert second["production_orders"]["silver_rows_inserted"] == 2
    assert second["customers"]["rows_inserted"] == 0

    counts = {(layer, name): delta.row_count(lake.table(layer, f"erp_{name}")) for name in TABLES for layer in ("bronze", "silver")}
    third = sync(lake, source, "run-3")
    assert all(stats["rows_inserted"] == 0 for stats in third.values())
    assert counts == {(layer, name): delta.row_count(lake.table(layer, f"erp_{name}")) for name in TABLES for layer in ("bronze", "silver")}
    assert_silver_equals_source(lake, source)

"""ERP tables from real PostgreSQL and MariaDB into the lake, compared row for row."""

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from erp_compare import assert_silver_equals_source, sync

from plantlake.assets.erp import load_bronze
from plantlake.config import ErpSource, ErpTable
from plantlake.lake import delta
from plantlake.lake.layout import Lake
from plantlake.simulator.erp import create_erp, metadata

pytestmark = pytest.mark.integration

TABLES = {
    "customers": ["id"],
    "products": ["id"],
    "machines": ["machine_id"],
    "production_orders": ["id"],
    "work_orders": ["id"],
    "stock_moves": ["id"],
}


def _source(url: str) -> ErpSource:
    """Through SQLAlchemy, the path of every dialect without a fast one (test_erp_depth covers ADBC and connectorx)."""
    return ErpSource(
        name="erp",
        url=url,
        batch_rows=25,
        fast_path=False,
        tables=[ErpTable(name=name, primary_key=key, cursor="updated_at") for name, key in TABLES.items()],
    )


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
        connection.execute(
            orders.update().where(orders.c.id.in_([1, 2, 3])).values(status="cancelled", updated_at=later)
        )
        connection.execute(
            orders.insert(),
            [
                {
                    "id": 900 + i,
                    "product_id": 1,
                    "customer_id": 1,
                    "machine_id": "M-101",
                    "material_lot": "LOT-AC-0001",
                    "quantity": 10,
                    "status": "planned",
                    "actual_start": later,
                    "actual_end": later,
                    "updated_at": later,
                }
                for i in range(2)
            ],
        )
        connection.execute(
            moves.update().where(moves.c.id == 1).values(quantity_kg=Decimal("-12.345"), updated_at=later)
        )
    engine.dispose()

    second = sync(lake, source, "run-2")
    assert_silver_equals_source(lake, source)
    # only rows at or past the watermark were read again, not the whole table
    assert second["production_orders"]["rows_read"] < len(plant.orders)
    assert second["production_orders"]["silver_rows_updated"] == 3
    assert second["production_orders"]["silver_rows_inserted"] == 2
    assert second["customers"]["rows_inserted"] == 0

    counts = {
        (layer, name): delta.row_count(lake.table(layer, f"erp_{name}"))
        for name in TABLES
        for layer in ("bronze", "silver")
    }
    third = sync(lake, source, "run-3")
    assert all(stats["rows_inserted"] == 0 for stats in third.values())
    assert counts == {
        (layer, name): delta.row_count(lake.table(layer, f"erp_{name}"))
        for name in TABLES
        for layer in ("bronze", "silver")
    }
    assert_silver_equals_source(lake, source)


POSTGRES_TYPES = """
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE stage AS ENUM ('draft', 'done');
CREATE DOMAIN weight AS numeric(10, 3);
CREATE TABLE typed (
    id integer PRIMARY KEY, small smallint, flag boolean, ratio real, amount numeric(12, 2), wide numeric(30, 12),
    free numeric, born date, seen_at timestamp, zoned timestamptz, doc jsonb, token uuid, name varchar(40), body bytea,
    stage stage, weight weight, code citext
);
INSERT INTO typed VALUES
    (1, -3, true, 0.5, 12345678.91, 123456789012345678.123456789012, 3.1415926536, '2024-02-29',
     '2024-03-31 01:30:00.123456', '2024-03-31 01:30:00+02', '{"a": [1, 2]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
     'Müller 東京', '\\x00ff', 'done', 12.5, 'Ab-7'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (3, 32767, false, -1e30, -0.01, -0.000000000001, 1e-10, '0001-01-01', '9999-12-31 23:59:59',
     '1970-01-01 00:00:00+00', '[]', '00000000-0000-0000-0000-000000000000', '', '\\x', 'draft', -0.001, '');
"""


def test_postgres_fast_path_reads_every_type_as_the_sqlalchemy_path_does(
    postgres_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADBC's reading (scaled decimals, opaque numerics and text casts) lands the same values as row-by-row
    reading; the enum and the citext column are read as text, so no connection reads the type catalog."""
    from plantlake.connectors import sql_fast

    connect, with_catalog = sql_fast._connect, []

    def counted(url: str, catalog: bool = False) -> object:
        with_catalog.append(catalog)
        return connect(url, catalog)

    monkeypatch.setattr(sql_fast, "_connect", counted)
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.exec_driver_sql(POSTGRES_TYPES)
    engine.dispose()
    landed = {}
    for fast in (True, False):
        source = ErpSource(
            name="erp",
            url=postgres_url,
            timezone="Europe/Berlin",
            fast_path=fast,
            tables=[ErpTable(name="typed", primary_key=["id"], deletes=None)],
        )
        lake = Lake(tmp_path / f"fast_{fast}")
        step = load_bronze(lake, source, source.tables[0], "run-1")
        assert step.metadata["reader"] == ("adbc" if fast else "sqlalchemy")
        landed[fast] = delta.read(lake.table("bronze", "erp_typed")).sort_by("id").drop_columns(["_ingested_at"])
    assert landed[True].schema == landed[False].schema
    fast_rows, row_rows = landed[True].to_pylist(), landed[False].to_pylist()
    for fast_row, row in zip(fast_rows, row_rows, strict=True):  # real: float4 widened exactly vs via its text
        expected = row.pop("ratio")
        assert fast_row.pop("ratio") == (None if expected is None else pytest.approx(expected, rel=1e-6))
    for fast_row, row in zip(fast_rows, row_rows, strict=True):
        assert {k: v for k, v in fast_row.items() if row[k] != v} == {}, row
    assert fast_rows == row_rows
    first = landed[True].to_pylist()[0]
    assert (first["stage"], first["code"]) == ("done", "Ab-7")  # an enum's and an extension's type, as text
    assert with_catalog == [False], "one connection, on ADBC's built-in types"
    assert first["wide"] == Decimal("123456789012345678.123456789012") and first["amount"] == Decimal("12345678.91")
    assert str(first["seen_at"]) == "2024-03-31 00:30:00.123456+00:00"  # naive, read in Europe/Berlin (CET until 02:00)


def test_the_read_takes_the_connection_opened_ahead_and_one_no_read_took_is_closed(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plantlake.connectors import sql_fast

    opened, with_catalog = [], []
    connect = sql_fast._connect

    def counted(url: str, catalog: bool = False) -> object:
        opened.append(connect(url, catalog))
        with_catalog.append(catalog)
        return opened[-1]

    monkeypatch.setattr(sql_fast, "_connect", counted)
    engine = sa.create_engine(postgres_url)
    with sql_fast.connecting_ahead(engine):
        batches = list(sql_fast.stream(engine, "SELECT 7 AS x", 10))
    assert len(opened) == 1 and batches[0].column("x").to_pylist() == [7]
    with sql_fast.connecting_ahead(engine):
        pass
    assert len(opened) == 2 and opened[1]._closed
    assert [batch.num_rows for batch in sql_fast.stream(engine, "SELECT 1 AS x", 10)] == [1]  # none ahead: its own
    assert len(opened) == 3 and not any(with_catalog), "PostgreSQL's own types need no type catalog"
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TYPE stage AS ENUM ('draft', 'done')")
    with sql_fast.connecting_ahead(engine):
        batches = list(sql_fast.stream(engine, "SELECT 'done'::stage AS s", 10))
    assert batches[0].column("s").to_pylist() == ["done"], "an enum is read again where its type is known"
    assert with_catalog[3:] == [False, True] and all(connection._closed for connection in opened)
    engine.dispose()

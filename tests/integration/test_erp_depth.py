"""Odoo-like (PostgreSQL) and ERPNext-like (MariaDB) schemas, changed between runs, kept exactly in silver.

Between runs the source gets inserts, updates, deletes, a commit that lands late under the
watermark, a new column, a widened decimal, a new table whose name has spaces, and an
incompatible type change. After every run silver equals the source row for row.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from erp_compare import assert_silver_equals_source, sync

from plantlake.assets.erp import load_bronze
from plantlake.config import DeleteDetection, ErpSource, ErpTable, RowFilter
from plantlake.config.names import lake_identifier
from plantlake.lake import delta
from plantlake.lake.drift import SCHEMA_CHANGES, SchemaDriftError
from plantlake.lake.layout import Lake

pytestmark = pytest.mark.integration
START = datetime(2026, 3, 1, 8, 0, 0, 123456)  # noqa: DTZ001 - naive, as the sources' DATETIME columns hold it
NAMES = ["Müller & Söhne", "Łódź Stal", "株式会社ミヤ", 'O\'Brien "Tools"', "Smith; Jones"]


@dataclass
class Erp:
    """One source schema: its tables, the declaration of each, and how to make rows."""

    url: str
    orders: sa.Table  # Odoo sale_order / ERPNext `tabSales Order`
    work: sa.Table  # Odoo mrp_production / ERPNext `tabWork Order`
    cursor: str
    key: str
    timezone: str

    def rows(self, table: sa.Table, ids: range, at: datetime) -> list[dict]:
        made = []
        for i in ids:
            row = {self.key: i if self.key == "id" else f"DOC-{i:05d}", self.cursor: at + timedelta(microseconds=i)}
            if table is self.orders:
                row |= {
                    "partner_name": NAMES[i % len(NAMES)],
                    "state": ["draft", "sale", "done"][i % 3],
                    "amount_total": Decimal(i * 7919 % 100000) / 100,
                    "email": f"buyer{i}@example.org",
                    "note": None if i % 4 == 0 else f"note {i}",
                    "weight": i / 3,
                }
            else:
                row |= {"product_qty": Decimal(i) / 8, "company_id": 1 + i % 2, "status": ["Draft", "Completed"][i % 2]}
            made.append(row)
        return made


def _odoo(url: str) -> Erp:
    metadata = sa.MetaData()
    orders = sa.Table(
        "sale_order",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("partner_name", sa.String(80)),
        sa.Column("state", sa.String(16)),
        sa.Column("amount_total", sa.Numeric(12, 2)),
        sa.Column("email", sa.String(80)),
        sa.Column("note", sa.Text),
        sa.Column("weight", sa.Double),
        sa.Column("write_date", sa.DateTime, index=True),
    )
    work = sa.Table(
        "mrp_production",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("product_qty", sa.Numeric(16, 4)),
        sa.Column("company_id", sa.Integer),
        sa.Column("status", sa.String(16)),
        sa.Column("write_date", sa.DateTime),
    )
    erp = Erp(url, orders, work, "write_date", "id", "UTC")
    metadata.create_all(sa.create_engine(url))
    return erp


def _erpnext(url: str) -> Erp:
    metadata = sa.MetaData()
    options = {"mysql_charset": "utf8mb4"}
    orders = sa.Table(
        "tabSales Order",
        metadata,
        sa.Column("name", sa.String(140), primary_key=True),
        sa.Column("partner_name", sa.String(80)),
        sa.Column("state", sa.String(16)),
        sa.Column("amount_total", sa.Numeric(21, 9)),
        sa.Column("email", sa.String(80)),
        sa.Column("note", sa.Text),
        sa.Column("weight", sa.Double),
        sa.Column("modified", sa.dialects.mysql.DATETIME(fsp=6), index=True),
        **options,
    )
    work = sa.Table(
        "tabWork Order",
        metadata,
        sa.Column("name", sa.String(140), primary_key=True),
        sa.Column("product_qty", sa.Numeric(21, 9)),
        sa.Column("company_id", sa.Integer),
        sa.Column("status", sa.String(16)),
        sa.Column("modified", sa.dialects.mysql.DATETIME(fsp=6)),
        **options,
    )
    erp = Erp(url, orders, work, "modified", "name", "Europe/Berlin")
    metadata.create_all(sa.create_engine(url))
    return erp


@pytest.fixture
def erp(erp_database_url: str) -> Erp:
    return _odoo(erp_database_url) if erp_database_url.startswith("postgresql") else _erpnext(erp_database_url)


def _source(erp: Erp, extra: list[ErpTable] = ()) -> ErpSource:
    orders = ErpTable(
        name=erp.orders.name,
        primary_key=[erp.key],
        cursor=erp.cursor,
        lookback="1h",
        exclude=["note"],
        personal_data=["email"],
        deletes=DeleteDetection(every_hours=0),
    )
    work = ErpTable(
        name=erp.work.name,
        primary_key=[erp.key],
        cursor=erp.cursor,
        lookback="1h",
        where=[RowFilter(column="company_id", op="in", value=[1])],
        deletes=DeleteDetection(every_hours=0, action="remove"),
    )
    return ErpSource(name="erp", url=erp.url, batch_rows=40, timezone=erp.timezone, tables=[orders, work, *extra])


def _execute(url: str, *statements) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement) if isinstance(statement, str) else statement)
    engine.dispose()


def _quoted(url: str, name: str) -> str:
    return sa.create_engine(url).dialect.identifier_preparer.quote(name)


def test_changes_between_runs_end_equal_to_the_source(erp: Erp, lake: Lake) -> None:
    orders, work, key, cursor = erp.orders, erp.work, erp.key, erp.cursor
    _execute(
        erp.url,
        orders.insert().values(erp.rows(orders, range(1, 301), START)),
        work.insert().values(erp.rows(work, range(1, 201), START)),
    )
    source = _source(erp)
    first = sync(lake, source, "run-1")
    assert_silver_equals_source(lake, source)
    assert first[orders.name]["rows_read"] == 300 and first[work.name]["rows_read"] == 100  # row filter applied
    bronze_schema = delta.schema(lake.table("bronze", f"erp_{lake_identifier(orders.name)}"))
    assert "note" not in bronze_schema.names and bronze_schema.field("email").metadata[b"personal_data"] == b"true"
    declared = orders.c.amount_total.type
    assert bronze_schema.field("amount_total").type == pa.decimal128(declared.precision, declared.scale)

    # inserts, updates, deletes
    later = START + timedelta(hours=3)
    doc = (lambda i: i) if key == "id" else (lambda i: f"DOC-{i:05d}")
    _execute(
        erp.url,
        orders.insert().values(erp.rows(orders, range(301, 321), later)),
        orders.update()
        .where(orders.c[key].in_([doc(i) for i in range(1, 11)]))
        .values(state="cancel", **{cursor: later}),
        orders.delete().where(orders.c[key].in_([doc(i) for i in range(11, 16)])),
        work.delete().where(work.c[key].in_([doc(i) for i in range(1, 21)])),
    )
    second = sync(lake, source, "run-2")
    assert_silver_equals_source(lake, source)
    assert second[orders.name]["rows_inserted"] == 30 and second[orders.name]["silver_rows_deleted"] == 5
    assert second[work.name]["silver_rows_deleted"] == 10  # only company 1 is landed; removed, not marked
    assert delta.row_count(lake.table("silver", f"erp_{lake_identifier(work.name)}")) == 90

    # a transaction that began before the last run commits now, under the watermark
    late = later - timedelta(minutes=20)
    _execute(
        erp.url,
        orders.insert().values(erp.rows(orders, range(500, 503), late)),
        orders.update().where(orders.c[key] == doc(20)).values(state="late", **{cursor: late}),
    )
    third = sync(lake, source, "run-3")
    assert_silver_equals_source(lake, source)
    assert third[orders.name]["rows_inserted"] == 4
    # rows re-read in the look-back window were not landed twice
    bronze_rows = delta.read(lake.table("bronze", f"erp_{lake_identifier(orders.name)}"), columns=[key, cursor])
    assert bronze_rows.num_rows == len(set(zip(*bronze_rows.to_pydict().values(), strict=True)))

    # a new column, a widened decimal, and a new table whose name has spaces
    wider = (24, 9) if key == "name" else (16, 3)  # from (21, 9) and (12, 2)
    table_quoted, column_type = _quoted(erp.url, orders.name), f"DECIMAL{wider}" if key == "name" else f"NUMERIC{wider}"
    alter = "MODIFY COLUMN amount_total" if key == "name" else "ALTER COLUMN amount_total TYPE"
    spaced = sa.Table(
        "tabQuality Inspection" if key == "name" else "quality inspection",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("verdict", sa.String(16)),
        sa.Column(cursor, sa.DateTime),
    )
    spaced.create(sa.create_engine(erp.url))
    _execute(
        erp.url,
        f"ALTER TABLE {table_quoted} ADD COLUMN incoterm VARCHAR(8)",
        f"ALTER TABLE {table_quoted} {alter} {column_type}",
        sa.text(
            f"UPDATE {table_quoted} SET incoterm = 'DAP', amount_total = amount_total + 0.125, {cursor} = :at "
            f"WHERE {key} IN :keys"
        ).bindparams(
            sa.bindparam("keys", expanding=True), at=later + timedelta(hours=1), keys=[doc(i) for i in range(30, 40)]
        ),
        spaced.insert().values([{"id": i, "verdict": "ok", cursor: later} for i in range(1, 6)]),
    )
    source = _source(erp, [ErpTable(name=spaced.name, primary_key=["id"], cursor=cursor)])
    fourth = sync(lake, source, "run-4")
    assert_silver_equals_source(lake, source)
    assert "added incoterm" in fourth[orders.name]["schema_drift"]
    silver_type = delta.schema(lake.table("silver", f"erp_{lake_identifier(orders.name)}")).field("amount_total").type
    assert silver_type == pa.decimal128(*wider)
    changes = delta.read(lake.table("meta", SCHEMA_CHANGES)).to_pylist()
    assert {(c["table_name"], c["column_name"], c["change"]) for c in changes} >= {
        (f"bronze.erp_{lake_identifier(orders.name)}", "incoterm", "added"),
        (f"bronze.erp_{lake_identifier(orders.name)}", "amount_total", "widened"),
        (f"silver.erp_{lake_identifier(orders.name)}", "incoterm", "added"),
        (f"silver.erp_{lake_identifier(orders.name)}", "amount_total", "widened"),
    }
    assert fourth[spaced.name]["rows_inserted"] == 5

    # an incompatible change stops that table with a clear error; the others still load
    partner_type = "INT" if key == "name" else "INTEGER USING length(partner_name)"
    partner_alter = "MODIFY COLUMN partner_name" if key == "name" else "ALTER COLUMN partner_name TYPE"
    _execute(
        erp.url,
        f"UPDATE {table_quoted} SET partner_name = '7'",
        f"ALTER TABLE {table_quoted} {partner_alter} {partner_type}",
        work.insert().values(erp.rows(work, range(600, 604), later + timedelta(hours=2))),
    )
    with pytest.raises(SchemaDriftError, match=r"partner_name.*string.*int64.*exclude"):
        load_bronze(lake, source, source.tables[0], "run-5")
    sync(lake, source, "run-5", source.tables[1:])
    assert_silver_equals_source(lake, source, source.tables[1:])


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from plantlake.connectors import sql
    from plantlake.assets.erp import load_bronze
    from plantlake.lake.layout import Lake
    from plantlake.config import ErpSource

    original, seen = sql.read_batches, 0

    def dies_after_two_batches(*args, **kwargs):
        global seen
        for batch in original(*args, **kwargs):
            seen += 1
            if seen == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

    sql.read_batches = dies_after_two_batches
    source = ErpSource.model_validate_json(sys.argv[2])
    load_bronze(Lake(Path(sys.argv[1])), source, source.tables[0], "killed")
    """
)


def test_a_run_killed_mid_load_then_rerun_ends_equal(erp: Erp, lake: Lake, tmp_path: Path) -> None:
    _execute(erp.url, erp.orders.insert().values(erp.rows(erp.orders, range(1, 401), START)))
    source = _source(erp)
    sync(lake, source, "run-1", source.tables[:1])
    later = START + timedelta(hours=2)
    _execute(
        erp.url,
        erp.orders.update()
        .where(erp.orders.c[erp.key].in_([r[erp.key] for r in erp.rows(erp.orders, range(1, 201), START)]))
        .values(state="done", **{erp.cursor: later}),
    )

    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    killed = subprocess.run(
        [sys.executable, str(script), str(lake.root), source.model_dump_json()],
        env={**os.environ, "PYTHONPATH": str(Path.cwd())},
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -9, killed.stderr
    path = lake.table("bronze", f"erp_{lake_identifier(erp.orders.name)}")
    assert delta.row_count(path) == 400  # the killed run committed nothing

    sync(lake, source, "run-2", source.tables[:1])
    assert_silver_equals_source(lake, source, source.tables[:1])
    bronze_rows = delta.read(path, columns=[erp.key, erp.cursor])
    assert bronze_rows.num_rows == 600  # 400 first versions and 200 updates, none twice

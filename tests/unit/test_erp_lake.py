"""The ERP pieces that need no database: declarations, type conforming, drift, deletes, widening."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from plantlake.config import ConfigError, parse_config
from plantlake.connectors.arrow_types import ConversionError, conform
from plantlake.lake import deletes, delta, drift
from plantlake.lake.catalog import build_catalog
from plantlake.lake.layout import Lake

pytestmark = pytest.mark.unit

CONFIG = """
lake: {root: lake}
sources:
  erp:
    - name: odoo
      url: sqlite:///erp.sqlite
      timezone: Europe/Berlin
      tables:
        - {name: sale_order, primary_key: [id], cursor: write_date, lookback: 2h, exclude: [note],
           personal_data: [email],
           where: [{column: company_id, op: in, value: [1, 2]}], deletes: {every_hours: 6, action: remove}}
        - {name: stock_quant, primary_key: [product_id, location_id], cursor: version, lookback: 500, deletes: null}
"""


def test_a_table_is_declared_in_one_place(tmp_path: Path) -> None:
    orders, quants = parse_config(CONFIG, tmp_path).sources.erp[0].tables
    assert orders.lookback_value() == timedelta(hours=2) and quants.lookback_value() == 500
    assert orders.where[0].op == "in" and orders.where[0].value == [1, 2]
    assert orders.deletes.action == "remove" and orders.deletes.every_hours == 6 and quants.deletes is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("lookback: 2h", "lookback: Value error, expected a duration"),
        ("exclude: [note]", "key or the cursor, so it cannot be left out"),
        ("timezone: Europe/Berlin", "unknown time zone"),
        ("where: [{column: company_id, op: in, value: [1, 2]}]", "op"),
    ],
)
def test_a_bad_declaration_names_its_key(tmp_path: Path, change: str, message: str) -> None:
    broken = {
        "lookback: 2h": "lookback: two hours",
        "exclude: [note]": "exclude: [id]",
        "timezone: Europe/Berlin": "timezone: Mars/Olympus",
        "where: [{column: company_id, op: in, value: [1, 2]}]": "where: [{column: company_id, op: like, value: x}]",
    }[change]
    with pytest.raises(ConfigError, match=message) as raised:
        parse_config(CONFIG.replace(change, broken), tmp_path)
    assert "sources.erp.0" in str(raised.value)


def test_timestamps_become_utc_from_the_source_zone_and_bad_values_name_their_column() -> None:
    schema = pa.schema(
        [
            pa.field("at", pa.timestamp("us", tz="UTC")),
            pa.field("qty", pa.decimal128(6, 2)),
            pa.field("name", pa.string()),
        ]
    )
    winter, summer = datetime(2026, 1, 15, 12), datetime(2026, 7, 15, 12)  # noqa: DTZ001 - naive source values
    batch = pa.record_batch(
        [pa.array([winter, summer], pa.timestamp("us")), pa.array([Decimal("1.5"), None]), pa.array(["Müller", "ok"])],
        names=["at", "qty", "name"],
    )
    conformed = conform(batch, schema, "Europe/Berlin", "sale_order")
    assert conformed.column("at").to_pylist() == [
        datetime(2026, 1, 15, 11, tzinfo=UTC),
        datetime(2026, 7, 15, 10, tzinfo=UTC),
    ]
    assert conformed.column("qty").to_pylist() == [Decimal("1.50"), None]

    too_big = batch.set_column(1, "qty", pa.array([Decimal("123456.5"), None]))
    with pytest.raises(ConversionError, match=r"'sale_order', column 'qty'.*decimal128\(6, 2\)"):
        conform(too_big, schema, "UTC", "sale_order")
    latin1 = pa.Array.from_buffers(
        pa.string(), 1, [None, pa.py_buffer(b"\x00\x00\x00\x00\x02\x00\x00\x00"), pa.py_buffer(b"\xfc\xe4")]
    )
    bad_text = pa.record_batch(
        [pa.array([winter], pa.timestamp("us")), pa.array([None], pa.decimal128(6, 2)), latin1],
        names=["at", "qty", "name"],
    )
    with pytest.raises(ConversionError, match="column 'name'"):
        conform(bad_text, schema, "UTC", "sale_order")


def test_drift_takes_new_and_widened_columns_and_refuses_the_rest() -> None:
    assert drift.widens(pa.decimal128(12, 2), pa.decimal128(16, 3))
    assert not drift.widens(pa.decimal128(12, 2), pa.decimal128(12, 3))  # one digit fewer before the point
    assert drift.widens(pa.date32(), pa.timestamp("us", tz="UTC")) and not drift.widens(pa.int64(), pa.string())
    lake = pa.schema(
        [("id", pa.int64()), ("amount", pa.decimal128(12, 2)), ("gone", pa.string()), ("_run_id", pa.string())]
    )
    source = pa.schema([("id", pa.int64()), ("amount", pa.decimal128(16, 3)), ("incoterm", pa.string())])
    change = drift.compare(lake, source, "bronze.t", {"_run_id"})
    assert change.added == ["incoterm"] and change.removed == ["gone"]
    assert change.widened == {"amount": (pa.decimal128(12, 2), pa.decimal128(16, 3))}
    narrowed = drift.compare(source, pa.schema([("id", pa.int64()), ("amount", pa.decimal128(10, 2))]), "bronze.t")
    assert narrowed.schema.field("amount").type == pa.decimal128(16, 3) and not narrowed.widened
    with pytest.raises(
        drift.SchemaDriftError, match=r"'amount' changed from decimal128\(12, 2\).*to string.*exclude: \[amount\]"
    ):
        drift.compare(lake, pa.schema([("amount", pa.string())]), "bronze.t")


def test_widening_rewrites_in_place_and_keeps_the_watermark(tmp_path: Path) -> None:
    path = tmp_path / "t"
    delta.append(
        path,
        pa.table({"id": [1, 2], "amount": pa.array([Decimal("1.25"), None], pa.decimal128(6, 2))}),
        state={"watermark": {"kind": "int", "value": 7}},
    )
    delta.widen(path, {"amount": pa.field("amount", pa.decimal128(10, 3))})
    assert delta.schema(path).field("amount").type == pa.decimal128(10, 3)
    assert delta.read(path).column("amount").to_pylist() == [Decimal("1.250"), None]
    assert delta.read_state(path, "watermark") == {"kind": "int", "value": 7}


def _silver(path: Path, ids: list[int]) -> None:
    delta.append(
        path,
        pa.table(
            {"id": ids, "v": [str(i) for i in ids], deletes.DELETED_AT: pa.nulls(len(ids), deletes.DELETED_FIELD.type)}
        ),
    )


@pytest.mark.parametrize("remove", [False, True])
def test_keys_gone_from_the_source_are_marked_or_removed(tmp_path: Path, remove: bool) -> None:
    path, keys = tmp_path / "silver", pa.schema([("id", pa.int64())])
    _silver(path, [1, 2, 3, 4, 5])
    source_keys = iter(
        [pa.record_batch([pa.array([1, 3])], schema=keys), pa.record_batch([pa.array([5, 9])], schema=keys)]
    )
    gone = deletes.deleted_keys(path, source_keys, keys, ["id"])
    assert sorted(gone.column("id").to_pylist()) == [2, 4]
    now = datetime(2026, 11, 23, 3, tzinfo=UTC)
    assert deletes.apply(path, gone, ["id"], remove=remove, now=now) == 2
    rows = {row["id"]: row[deletes.DELETED_AT] for row in delta.read(path).to_pylist()}
    assert rows == ({1: None, 3: None, 5: None} if remove else {1: None, 2: now, 3: None, 4: now, 5: None})
    # marked keys are not found again, and the next check waits for its interval
    assert (
        deletes.deleted_keys(path, iter([pa.record_batch([pa.array([1, 3, 5])], schema=keys)]), keys, ["id"]).num_rows
        == 0
    )
    assert not deletes.due(path, 6, now + timedelta(hours=5)) and deletes.due(path, 6, now + timedelta(hours=6))


def test_the_catalog_shows_column_notes_and_schema_changes(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    email = pa.field("email", pa.string(), metadata={"source_type": "VARCHAR(80)", "personal_data": "true"})
    delta.append(
        lake.table("silver", "odoo_partner"), pa.table({"email": ["a@example.org"]}, schema=pa.schema([email]))
    )
    change = drift.compare(
        pa.schema([("id", pa.int64())]), pa.schema([("id", pa.int64()), email]), "silver.odoo_partner"
    )
    drift.record(lake, "silver.odoo_partner", change, "run-1")
    drift.record(lake, "silver.odoo_partner", change, "run-2")  # a rerun notes nothing twice
    catalog = duckdb.connect(str(build_catalog(lake, {})), read_only=True)
    columns, changes = catalog.execute(
        "SELECT columns, schema_changes FROM catalog WHERE qualified_name = 'silver.odoo_partner'"
    ).fetchone()
    assert json.loads(columns) == [
        {"name": "email", "type": "string", "source_type": "VARCHAR(80)", "personal_data": "true"}
    ]
    assert changes == 1


def test_the_portable_path_filters_rows_picks_columns_and_names_a_missing_table(tmp_path: Path) -> None:
    """SQLite goes through SQLAlchemy, the path of every dialect without a fast one."""
    import sqlalchemy as sa

    from plantlake.connectors import sql

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'erp.sqlite'}")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                'CREATE TABLE "stock quant" (id INTEGER PRIMARY KEY, qty NUMERIC(10, 3), '
                "company_id INTEGER, write_date DATETIME, secret TEXT)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO \"stock quant\" VALUES (1, 1.5, 1, '2026-07-01 10:00:00.000000', 'x'), "
                "(2, 2.25, 2, '2026-07-01 11:00:00.000000', 'y'), (3, NULL, 1, '2026-07-01 12:00:00.000000', 'z')"
            )
        )
    table = sql.reflect_table(engine, "stock quant")
    read = sql.TableRead(
        table,
        ["id", "qty", "write_date"],
        [("company_id", "=", 1)],
        "write_date",
        datetime(2026, 7, 1, 10),  # noqa: DTZ001 - cursor bounds in the source's naive local time
        datetime(2026, 7, 1, 12),  # noqa: DTZ001 - cursor bounds in the source's naive local time
    )
    schema = sql.source_schema(table, read.columns, "Europe/Berlin")
    rows = pa.Table.from_batches(list(sql.read_batches(engine, read, schema, "Europe/Berlin", batch_rows=1)), schema)
    assert rows.to_pylist() == [
        {"id": 1, "qty": Decimal("1.500"), "write_date": datetime(2026, 7, 1, 8, tzinfo=UTC)},
        {"id": 3, "qty": None, "write_date": datetime(2026, 7, 1, 10, tzinfo=UTC)},
    ]
    assert schema.field("write_date").metadata[b"source_timezone"] == b"Europe/Berlin"
    assert sql.count_rows(engine, table, [("company_id", "=", 1)]) == 2
    with pytest.raises(sql.SourceTableError, match="table 'stock_quant' not found"):
        sql.reflect_table(engine, "stock_quant")


def test_rows_are_read_in_primary_key_order_only_where_the_source_indexes_that_key(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from plantlake.connectors import sql

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'erp.sqlite'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY, name TEXT)"))
        connection.execute(sa.text("CREATE TABLE lines (id INTEGER, name TEXT)"))  # no primary key in the source
        for table in ("orders", "lines"):
            connection.execute(sa.text(f"INSERT INTO {table} VALUES (3, 'c'), (1, 'a'), (2, 'b')"))
    orders, lines = sql.reflect_table(engine, "orders"), sql.reflect_table(engine, "lines")
    schema = sql.source_schema(orders, ["id", "name"], "UTC")

    def read(table: sa.Table, key: list[str]) -> tuple[str, list[int]]:
        query = sql.TableRead(table, ["id", "name"], key=key)
        batches = sql.read_batches(engine, query, schema, "UTC", batch_rows=10, fast=False)
        return str(query.select()), pa.Table.from_batches(list(batches), schema)["id"].to_pylist()

    text, ids = read(orders, ["id"])
    assert "ORDER BY" in text and ids == [1, 2, 3]
    assert "ORDER BY" not in read(orders, ["name"])[0]  # not the table's key: the database would sort the read
    assert "ORDER BY" not in read(lines, ["id"])[0]  # no index behind the declared key

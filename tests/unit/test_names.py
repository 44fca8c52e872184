"""Any name works: lake names derived from source names, collisions found at load, a catalog that never runs a name."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pytest

from plantlake.assets.erp import erp_assets, table_name
from plantlake.config import ConfigError, parse_config
from plantlake.config.names import lake_identifier
from plantlake.lake import catalog, delta
from plantlake.lake.catalog import TableInfo, build_catalog
from plantlake.lake.layout import Lake

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("production_orders", "production_orders"),
        ("tabWork Order", "tabwork_order"),
        ("tabSales Invoice Item", "tabsales_invoice_item"),
        ("Größe & Maß (kg)", "grosse_mass_kg"),
        ("Ærø Œuvre façade", "aero_oeuvre_facade"),
        ("select", "select"),
        ("2024 orders", "2024_orders"),
        ("--a--b--", "a_b"),
        ('x"; DROP TABLE y; --', "x_drop_table_y"),
    ],
)
def test_a_lake_name_is_derived_from_any_source_name(name: str, expected: str) -> None:
    assert lake_identifier(name) == expected
    assert lake_identifier(expected) == expected  # a lake name is its own lake name


def test_letters_without_a_latin_form_give_a_stable_hash_so_names_stay_apart() -> None:
    first, second = lake_identifier("Заказы"), lake_identifier("Счета")
    assert first == lake_identifier("Заказы") and first != second
    assert first.startswith("t_") and first.isascii() and first.isidentifier()
    assert lake_identifier("Заказы 2024") != lake_identifier("Счета 2024")
    assert lake_identifier("Заказы 2024").startswith("2024_")


CONFIG = """
lake: {root: lake}
sources:
  erp:
    - name: erpnext
      url: sqlite:///erp.sqlite
      tables:
        - {name: "tabWork Order", primary_key: [name], cursor: modified, lookback: 1h}
        - {name: "tabBOM", primary_key: [name]}
"""


def test_erp_tables_with_spaces_become_valid_dagster_assets(tmp_path: Path) -> None:
    source = parse_config(CONFIG, tmp_path).sources.erp[0]
    keys = {
        tuple(key.path) for asset in erp_assets(source) if isinstance(asset, dg.AssetsDefinition) for key in asset.keys
    }
    assert keys == {
        ("bronze", "erpnext_tabwork_order"),
        ("silver", "erpnext_tabwork_order"),
        ("bronze", "erpnext_tabbom"),
        ("silver", "erpnext_tabbom"),
    }


def test_lake_name_overrides_the_derived_name(tmp_path: Path) -> None:
    text = CONFIG.replace("lookback: 1h}", "lookback: 1h, lake_name: work_orders}")
    source = parse_config(text, tmp_path).sources.erp[0]
    assert table_name(source, source.tables[0]) == "erpnext_work_orders"
    with pytest.raises(ConfigError, match="lake_name"):
        parse_config(CONFIG.replace("lookback: 1h}", "lookback: 1h, lake_name: Work Orders}"), tmp_path)


def test_two_names_that_would_collide_are_rejected_at_load_naming_both(tmp_path: Path) -> None:
    text = CONFIG.replace('name: "tabBOM"', 'name: "tabWork-Order"')
    with pytest.raises(ConfigError) as raised:
        parse_config(text, tmp_path)
    message = str(raised.value)
    assert "'tabWork Order'" in message and "'tabWork-Order'" in message and "erpnext_tabwork_order" in message
    assert "lake_name" in message
    # an override that lands on another table's name collides too
    with pytest.raises(ConfigError, match="'tabBOM'"):
        parse_config(CONFIG.replace("lookback: 1h}", "lookback: 1h, lake_name: tabbom}"), tmp_path)


def test_an_erp_table_colliding_with_another_source_kind_is_rejected(tmp_path: Path) -> None:
    text = CONFIG + "  logs:\n    - {name: erpnext_x, path: logs, format: syslog}\n"
    text = text.replace('name: "tabBOM"', 'name: "x events"')
    with pytest.raises(ConfigError, match=r"bronze\.erpnext_x_events"):
        parse_config(text, tmp_path)


def _table(lake: Lake, layer: str, name: str) -> Path:
    path = lake.root / layer / name
    delta.merge(path, pa.table({"id": [1, 2], "Work Order": ["a", "b"]}), ["id"], update=True)
    return path


def test_a_folder_planted_under_bronze_with_sql_in_its_name_is_never_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where the planted COPY would write
    lake = Lake(tmp_path / "lake")
    _table(lake, "silver", "lots")
    planted = [
        "x AS SELECT 1; COPY (SELECT 42) TO 'ran.csv'; CREATE VIEW y",
        "q\" AS SELECT 1; COPY (SELECT 42) TO 'ran2.csv'; --",
    ]
    for name in planted:
        _table(lake, "bronze", name)
    build_catalog(lake, {})
    assert not list(tmp_path.glob("ran*.csv"))
    with duckdb.connect(str(lake.catalog_file), read_only=True) as connection:
        for name in planted:
            assert connection.execute(f"SELECT count(*) FROM bronze.{delta.quote(name)}").fetchone() == (2,)
        names = {
            row[0] for row in connection.execute("SELECT table_name FROM catalog WHERE layer <> 'meta'").fetchall()
        }
    assert names == {*planted, "lots"}


def test_a_lake_root_with_a_space_and_non_ascii_letters_builds_the_catalog(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "plant lake Größe")
    _table(lake, "silver", "tabwork_order")
    build_catalog(lake, {"silver.tabwork_order": TableInfo("erp:erpnext", "work orders")})
    with duckdb.connect(str(lake.catalog_file), read_only=True) as connection:
        assert connection.execute('SELECT "Work Order" FROM silver.tabwork_order ORDER BY id').fetchall() == [
            ("a",),
            ("b",),
        ]


def test_a_failed_catalog_build_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = Lake(tmp_path / "lake")
    _table(lake, "silver", "lots")

    def broken(*args: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(catalog, "_write_catalog", lambda lake, info, file: (file.write_bytes(b"half"), broken()))
    with pytest.raises(RuntimeError, match="disk full"):
        build_catalog(lake, {})
    assert not list(lake.local.glob("catalog*"))

"""The `plantlake` command against a real PostgreSQL ERP: init, check, run, status, catalog and their exit codes."""

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from plantlake.pipelines.cli import main

pytestmark = pytest.mark.integration

SITE = """
lake: {root: lake}
sources:
  erp:
    - name: shop
      url: ${SHOP_ERP_URL}
      tables:
        - {name: orders, primary_key: [id], cursor: updated_at}
  suppliers:
    - name: acme
      path: drop
      glob: "*.csv"
      format: csv
      target: material_lots
      key: [lot_id]
      columns:
        lot: {name: lot_id, required: true}
"""


@pytest.fixture
def site(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER, updated_at TIMESTAMP)"))
        connection.execute(
            sa.text(
                "INSERT INTO orders SELECT g, g * 2, TIMESTAMP '2026-01-01' + g * INTERVAL '1 minute' "
                "FROM generate_series(1, 500) g"
            )
        )
    engine.dispose()
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "lots.csv").write_text("lot\nL-1\nL-2\n")
    (tmp_path / "plantlake.yaml").write_text(SITE)
    monkeypatch.setenv("SHOP_ERP_URL", postgres_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return tmp_path / "plantlake.yaml"


def _invoke(*arguments: str):
    return CliRunner().invoke(main, list(arguments), catch_exceptions=False)


def test_init_writes_a_starter_that_checks_clean_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = _invoke("init", str(tmp_path / "site"))
    assert first.exit_code == 0 and (tmp_path / "site" / "plantlake.yaml").is_file()
    checked = _invoke("--config", str(tmp_path / "site" / "plantlake.yaml"), "check", "--json")
    found = json.loads(checked.stdout)
    assert checked.exit_code == 0 and [(f["source"], f["ok"]) for f in found] == [("lake", True)], found
    assert _invoke("init", str(tmp_path / "site")).exit_code != 0


def test_check_names_the_config_key_and_the_fix_and_fails(site: Path) -> None:
    site.write_text(site.read_text().replace("cursor: updated_at", "cursor: updatedat"))
    result = _invoke("--config", str(site), "check", "--json")
    assert result.exit_code == 1
    findings = {(f["source"], f["item"]): f for f in json.loads(result.stdout)}
    assert findings[("erp:shop", "connection")]["ok"]
    broken = findings[("erp:shop", "orders")]
    assert (
        not broken["ok"] and "tables[0].cursor" in broken["detail"] and 'did you mean "updated_at"' in broken["detail"]
    )
    assert findings[("suppliers:acme", str(site.parent / "drop"))]["detail"] == "1 files match '*.csv'"


def test_run_status_and_catalog_succeed_and_a_failed_run_exits_non_zero(site: Path, monkeypatch) -> None:
    ran = _invoke("--config", str(site), "run", "--json")
    assert ran.exit_code == 0, ran.output
    outcome = json.loads(ran.stdout)
    assert outcome["success"] and "silver/shop_orders" in outcome["assets_materialized"]
    assert outcome["totals"]["rows_inserted"] >= 500
    status = json.loads(_invoke("--config", str(site), "status", "--json").stdout)
    tables = {table["qualified_name"]: table for table in status["tables"]}
    assert tables["silver.shop_orders"]["row_count"] == 500 and tables["silver.shop_orders"]["freshness"] == "fresh"
    assert status["last_run"]["status"] == "SUCCESS" and status["next_nightly_refresh"].endswith("02:00:00+00:00")
    catalog = _invoke("--config", str(site), "catalog", "--json")
    assert catalog.exit_code == 0 and Path(json.loads(catalog.stdout)["catalog"]).is_file()

    monkeypatch.setenv("SHOP_ERP_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    failed = _invoke("--config", str(site), "run", "--select", "bronze/shop_orders", "--json")
    assert failed.exit_code == 1
    assert any("127.0.0.1" in error for error in json.loads(failed.stdout)["failed_steps"].values())
    after = _invoke("--config", str(site), "status", "--json")
    assert after.exit_code == 1 and json.loads(after.stdout)["last_run"]["status"] == "FAILURE"

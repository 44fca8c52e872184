"""The whole Dagster code location against real sources: every source kind reaches gold and the catalog."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from plantlake.config import load_config
from plantlake.lake.layout import Lake
from plantlake.pipelines.factory import build_definitions
from plantlake.pipelines.runs import refresh_and_publish
from plantlake.simulator.__main__ import generate_sources

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[2]


def _row_counts(catalog: Path) -> dict[str, int]:
    with duckdb.connect(str(catalog), read_only=True) as connection:
        return dict(
            connection.execute("select qualified_name, row_count from catalog where layer <> 'meta'").fetchall()
        )


@pytest.fixture
def pipeline_env(tmp_path: Path, postgres_url: str, opcua_endpoint: str, plant, monkeypatch: pytest.MonkeyPatch):
    """The repo's plantlake.yaml, pointed by its own variables at PostgreSQL, the simulator and tmp_path."""
    monkeypatch.setenv("PLANTLAKE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("PLANTLAKE_SOURCES", str(tmp_path / "sources"))
    monkeypatch.setenv("PLANTLAKE_ERP_URL", postgres_url)
    monkeypatch.setenv("PLANTLAKE_OPCUA_ENDPOINT", opcua_endpoint)
    generate_sources(plant, tmp_path / "sources", postgres_url)
    return load_config(REPO / "plantlake.yaml")


def test_refresh_all_lands_every_source_kind_in_gold_and_reruns_without_duplicates(pipeline_env, plant) -> None:
    config = pipeline_env
    definitions = build_definitions(config)
    with dg.instance_for_test() as instance:
        night = refresh_and_publish(definitions, instance)
        assert night.success
        result = night.refresh
        failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
        # the one failure expected: the supplier file with the row that went to quarantine (a warning)
        assert [(e.asset_key.to_user_string(), e.check_name) for e in failed_checks] == [
            ("bronze/acme_rows", "files_clean")
        ]
        assert failed_checks[0].metadata["files"].value[0]["rows_quarantined"] == 1

        catalog = Lake.from_config(config.lake).catalog_file
        with duckdb.connect(str(catalog), read_only=True) as connection:
            features = connection.execute("select * from gold.machine_hour_features limit 5").fetchall()
            totals = connection.execute(
                "select count(*), count(material_supplier), sum(alarm_count), count(distinct machine_id) "
                "from gold.machine_hour_features"
            ).fetchone()
            quality = dict(connection.execute("select qualified_name, quality_status from catalog").fetchall())
            running = connection.execute(
                "select count(*) from silver.erp_production_orders where actual_end is null"
            ).fetchone()[0]
        assert len(features) == 5
        hours = int((plant.end - plant.start).total_seconds() // 3600)
        assert totals[0] == hours * len(plant.machines)
        # every hour had an order whose lot has a supplier, the newest hours too, whose orders still run (no end)
        assert totals[1] == totals[0] and running > 0
        # each anomaly is reported by the PLC log and the CNC log, a second apart: one alarm
        assert totals[2] == len(plant.anomalies)
        assert totals[3] == len(plant.machines)
        assert quality["gold.machine_hour_features"] == "passed"
        assert quality["silver.erp_production_orders"] == "passed"

        # ERP assets report their watermark, reader and drift; personal data is tagged in the column schema
        def metadata(*path: str) -> dict:
            return instance.get_latest_materialization_event(dg.AssetKey(list(path))).asset_materialization.metadata

        landed = metadata("bronze", "erp_production_orders")
        assert landed["reader"].value == "adbc" and landed["schema_drift"].value == "none"
        engine = sa.create_engine(config.sources.erp[0].url)
        with engine.connect() as connection:
            newest = connection.execute(sa.text("SELECT max(updated_at) FROM production_orders")).scalar_one()
        engine.dispose()
        assert landed["watermark"].value == str(newest)
        assert metadata("silver", "erp_production_orders")["rows_deleted"].value == 0
        columns = {c.name: c for c in metadata("silver", "erp_customers")["dagster/column_schema"].value.columns}
        assert columns["name"].tags == {"personal_data": "true"} and columns["id"].tags == {}

        before = _row_counts(catalog)
        assert refresh_and_publish(definitions, instance).success
        assert _row_counts(catalog) == before


def test_the_workspace_validates(tmp_path: Path) -> None:
    dagster = Path(sys.executable).with_name("dagster")
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    completed = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "plantlake" in completed.stdout + completed.stderr

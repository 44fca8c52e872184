"""The newcomer's path: the demo on its embedded defaults, twice, with nothing else running."""

import re
from pathlib import Path

import duckdb
import pytest

from plantlake.config import load_config
from plantlake.pipelines.demo import run_demo
from plantlake.simulator.process import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[2]


def test_demo_builds_the_lake_and_a_second_run_changes_no_row_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("PLANTLAKE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("PLANTLAKE_SOURCES", str(tmp_path / "sources"))
    monkeypatch.setenv("PLANTLAKE_OPCUA_PORT", str(free_port()))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for name in ("PLANTLAKE_ERP_URL", "PLANTLAKE_OPCUA_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(REPO / "plantlake.yaml")

    assert run_demo(config)
    printed = capsys.readouterr().out
    catalog = tmp_path / "lake" / "catalog.duckdb"
    assert f"catalog:   {catalog}" in printed and "OPC-UA simulator stopped" in printed
    docs = tmp_path / "lake" / "quality_docs"
    assert "gold.machine_hour_features" in (docs / "index.html").read_text(encoding="utf-8")
    for page in docs.rglob("*.html"):  # opening a report must not fetch anything from the internet
        assert not re.search(r'(src|href)="https?://[^"]*\.(js|css|png)', page.read_text(encoding="utf-8")), page
    assert (tmp_path / "dagster_home" / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"

    with duckdb.connect(str(catalog), read_only=True) as connection:
        first = dict(connection.execute("select qualified_name, row_count from catalog").fetchall())
        sources = {row[0] for row in connection.execute("select source from catalog where layer = 'bronze'").fetchall()}
        assert len(connection.execute("select * from gold.machine_hour_features limit 5").fetchall()) == 5
    assert {s.split(":")[0] for s in sources} == {"erp", "opcua", "logs", "supplier"}
    empty = {"quarantine.rows", "meta.run_failures", "meta.schema_changes"}  # the meta tables exist from the start
    assert all(first[name] > 0 for name in first if name not in empty)
    assert first["quarantine.rows"] == 1

    assert run_demo(config)
    with duckdb.connect(str(catalog), read_only=True) as connection:
        second = dict(connection.execute("select qualified_name, row_count from catalog").fetchall())
    assert second == first

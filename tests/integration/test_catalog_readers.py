"""The catalog as its readers open it: an older DuckDB (1.1) opens catalog.duckdb, and a browser
(headless Chromium) renders catalog/index.html with its lineage graph and the units of gold columns."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from catalog_lake import GOLD, UNIT, build_small_lake
from unavailable import unavailable

from plantlake.lake.catalog import build_catalog
from plantlake.lake.layout import Lake

pytestmark = pytest.mark.integration
OLD_DUCKDB = "1.1"

# Runs in the old DuckDB's own venv: every table and view with its comment, a column's comment,
# and queries of views (timestamps as text: that Python client needs pytz to return them).
READ_WITH_OLD_DUCKDB = """
import json, sys, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
query = lambda sql: connection.execute(sql).fetchall()
print(json.dumps({
    "version": duckdb.__version__,
    "objects": query("SELECT schema_name || '.' || table_name, comment FROM duckdb_tables() UNION ALL "
                     "SELECT schema_name || '.' || view_name, comment FROM duckdb_views() WHERE NOT internal"),
    "unit": query("SELECT comment FROM duckdb_columns() WHERE schema_name = 'gold' "
                  "AND table_name = 'machine_hour_features' AND column_name = 'temperature_mean'"),
    "live": query("SELECT id, name FROM silver.erp_customers_live"),
    "gold": query("SELECT machine_id, temperature_mean, CAST(known_at AS VARCHAR) FROM gold.machine_hour_features"),
    "catalog": query("SELECT qualified_name, owner, upstream FROM catalog WHERE layer = 'gold'"),
    "failures": query("SELECT count(*) FROM meta.run_failures"),
}))
"""


def _old_duckdb(folder: Path) -> Path:
    """The python of a venv with DuckDB 1.1 (made once, kept in pytest's cache folder)."""
    python = folder / "venv" / "bin" / "python"
    check = [str(python), "-c", f"import duckdb; assert duckdb.__version__.startswith('{OLD_DUCKDB}.')"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    shutil.rmtree(folder / "venv", ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(folder / "venv")],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"duckdb=={OLD_DUCKDB}.*"],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            unavailable(f"installing DuckDB {OLD_DUCKDB} into a venv timed out: {' '.join(step)}")
        if done.returncode != 0:
            unavailable(
                f"DuckDB {OLD_DUCKDB} could not be installed into a venv ({' '.join(step)}): {done.stderr[-800:]}"
            )
    return python


def test_duckdb_1_1_opens_the_catalog_with_its_comments_and_views(tmp_path: Path, pytestconfig) -> None:
    python = _old_duckdb(pytestconfig.cache.mkdir("plantlake-duckdb-1.1"))
    lake = Lake(tmp_path / "lake")
    build_catalog(lake, build_small_lake(lake))
    done = subprocess.run(
        [str(python), "-c", READ_WITH_OLD_DUCKDB, str(lake.catalog_file)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    read = json.loads(done.stdout)
    assert read["version"].startswith(f"{OLD_DUCKDB}.")
    comments = dict(read["objects"])
    assert {"main.catalog", "silver.erp_customers_live", GOLD, f"{GOLD}_versions", "meta.run_failures"} <= set(comments)
    assert all(comments.values())
    assert f"unit: {UNIT}" in read["unit"][0][0]
    assert read["live"] == [[1, "Ada"]]
    assert read["gold"] == [["M-1", 56.5, "2026-01-12 00:00:00+00"]]  # the newest version of the window
    assert read["catalog"] == [[GOLD, "team:process-engineering", ["silver.erp_customers", "silver.sensor_readings"]]]
    assert read["failures"] == [[0]]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    unavailable("Chromium is not installed (Debian: apt-get install -y chromium)")


def _section(dom: str, table: str) -> str:
    opened = re.search(rf'<section[^>]*id="t-{re.escape(table)}"[^>]*>', dom)
    assert opened, f"{table} has no section"
    return dom[opened.start() : dom.index("</section>", opened.end())]


def test_chromium_renders_the_catalog_page_with_its_lineage_and_units(tmp_path: Path) -> None:
    browser = _chromium()
    lake = Lake(tmp_path / "lake")
    build_catalog(lake, build_small_lake(lake))
    url = lake.catalog_page.resolve().as_uri() + "?q=temperature"  # the search box filters on load
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    done = subprocess.run([*command, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert done.returncode == 0 and "<svg" in dom, done.stderr[-2000:]
    graph = re.search(r'<svg class="lineage".*?</svg>', dom, re.DOTALL)
    assert graph and graph.group().count("<rect") == 6 and 'href="#t-gold.machine_hour_features"' in graph.group()
    gold = _section(dom, GOLD)
    assert "hidden" not in gold.split(">")[0]
    assert re.search(rf"<code>temperature_mean</code></td><td>double</td><td[^>]*>{UNIT}</td>", gold)
    assert "hidden" in _section(dom, "bronze.erp_customers").split(">")[0]  # no 'temperature' there: filtered out

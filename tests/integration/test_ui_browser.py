"""The Dagster UI as a person sees it, in headless Chromium: the layers in the graph, the checks on an asset page."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from unavailable import unavailable

from plantlake.simulator.process import free_port, stop

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[2]


def _wait_for(url: str, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            assert process.poll() is None, "the webserver exited"
            time.sleep(1)
    raise AssertionError(f"the webserver did not answer within {seconds} s")


def test_the_asset_graph_shows_the_layers_and_an_asset_page_its_checks(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        unavailable("Chromium is not installed (Debian: apt-get install chromium; `make test` tries)")
    from playwright.sync_api import sync_playwright

    port = free_port()
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/server_info", process)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{base}/asset-groups", wait_until="networkidle", timeout=120_000)
            page.get_by_text("Materialize all").first.wait_for(timeout=120_000)
            skip = page.get_by_text("Skip", exact=True)  # the UI's newsletter prompt on a new instance
            if skip.count():
                skip.first.click()
            # the global graph starts with one box per group: the layers
            for group in ("bronze", "silver", "gold", "publish", "quality"):
                assert page.get_by_text(group, exact=True).count() >= 2, f"group {group} is not in the graph"
            assert page.get_by_text("sensors", exact=True).count() == 0  # no group named like Dagster's Sensors
            page.screenshot(path=str(tmp_path / "graph.png"))

            page.goto(f"{base}/assets/silver/erp_production_orders?view=checks", wait_until="networkidle")
            page.get_by_text("invariants").first.wait_for(timeout=120_000)
            checks = page.inner_text("body")
            assert "expectations" in checks and "invariants" in checks
            page.screenshot(path=str(tmp_path / "checks.png"))
            browser.close()
    finally:
        stop(process)

"""The Dagster UI's server on the real workspace: the code location loads with every asset and check."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from webserver import graphql

from plantlake.simulator.process import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[2]
QUERY = """{ assetNodes { assetKey { path } groupName owners { ... on TeamAssetOwner { team } }
             assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"""


def test_webserver_serves_the_plantlake_location(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    webserver = Path(sys.executable).with_name("dagster-webserver")
    process = subprocess.Popen(
        [str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline, nodes = time.monotonic() + 120, None
        while time.monotonic() < deadline and nodes is None:
            try:
                nodes = graphql(port, QUERY)["data"]["assetNodes"]
            except (OSError, KeyError, TypeError):
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(1)
        assert nodes, "the webserver did not answer within 120 s"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    finally:
        process.terminate()
        process.wait(timeout=30)

    by_key = {"/".join(node["assetKey"]["path"]): node for node in nodes}
    assert {
        "gold/machine_hour_features",
        "silver/sensor_readings",
        "silver/machine_events",
        "silver/material_lots",
        "silver/erp_production_orders",
        "bronze/plant_readings",
        "catalog",
        "data_docs",
    } <= set(by_key)
    gold_checks = {
        check["name"]: check["blocking"]
        for check in by_key["gold/machine_hour_features"]["assetChecksOrError"]["checks"]
    }
    assert gold_checks == {"expectations": True, "invariants": True}
    assert all(node["owners"] == [{"team": "data-engineering"}] for node in nodes)

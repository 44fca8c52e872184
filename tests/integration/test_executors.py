"""Both executors the YAML offers run the real job as a scheduled run does: `dagster job execute`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plantlake.config import load_config
from plantlake.lake import delta
from plantlake.lake.layout import Lake

pytestmark = pytest.mark.integration
REPO = Path(__file__).parents[2]

CONFIG = """
lake: {root: lake}
execution: {executor: EXECUTOR, max_concurrent: 2}
sources:
  logs:
    - {name: plc, path: logs/plc, glob: "*.log", format: syslog, settle_seconds: 0}
    - {name: cnc, path: logs/cnc, glob: "*.log", format: syslog, settle_seconds: 0}
"""


@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
def test_a_scheduled_run_executes_with_the_configured_executor(tmp_path: Path, executor: str) -> None:
    for name in ("plc", "cnc"):
        folder = tmp_path / "logs" / name
        folder.mkdir(parents=True)
        lines = [f"<134>1 2026-01-11T08:00:{second:02d}Z {name}-1 app 1 - - event {second}" for second in range(30)]
        (folder / "app.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config_file = tmp_path / "plantlake.yaml"
    config_file.write_text(CONFIG.replace("EXECUTOR", executor), encoding="utf-8")
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PLANTLAKE_CONFIG": str(config_file)}
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [str(dagster), "job", "execute", "-m", "plantlake.pipelines.definitions", "-j", "refresh_all"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    lake = Lake(load_config(config_file).lake.root)
    assert delta.row_count(lake.table("silver", "machine_events")) == 60
    assert lake.catalog_file.exists()
    if executor == "multiprocess":
        assert "Launching subprocess" in output or "forkserver" in output.lower() or "multiprocess" in output.lower()

"""Which executor runs the steps, and the pool each step that writes a table claims (`assets.factory.table_pool`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from plantlake.assets.factory import table_pool
from plantlake.config import ConfigError, load_config, parse_config
from plantlake.pipelines.executors import celery_settings
from plantlake.pipelines.factory import build_definitions

pytestmark = pytest.mark.unit
REPO = Path(__file__).parents[2]

CELERY = """
lake: {root: lake}
execution: {executor: celery, broker: "pyamqp://plantlake:secret@broker.example:5672//", queue: QUEUE}
sources: {logs: [{name: plc, path: logs, format: syslog}]}
"""


def test_every_step_that_writes_a_table_claims_the_pool_named_after_it() -> None:
    definitions = build_definitions(load_config(REPO / "plantlake.yaml"))
    writers = [d for d in definitions.assets or [] if isinstance(d, dg.AssetsDefinition) and d.is_executable]
    pools = {d.key.to_user_string(): d.op.pool for d in writers}
    assert pools["silver/machine_events"] == "plantlake/silver.machine_events"
    assert pools["bronze/erp_production_orders"] == "plantlake/bronze.erp_production_orders"
    assert pools["catalog"] == "plantlake/catalog"
    assert {key: pool for key, pool in pools.items() if pool != table_pool(dg.AssetKey.from_user_string(key))} == {}
    assert len(set(pools.values())) == len(pools)  # one table, one pool
    # the backfill of OPC-UA history writes the table the nightly landing writes
    backfill = definitions.resolve_job_def("plant_backfill")
    assert [node.pool for node in backfill.graph.node_defs] == ["plantlake/bronze.plant_readings"]


def test_the_celery_executor_sends_steps_to_the_configured_broker_and_queue(tmp_path: Path) -> None:
    config = parse_config(CELERY.replace("QUEUE", "nightly"), tmp_path)
    job = build_definitions(config).resolve_job_def("refresh_all")
    assert job.executor_def.name == "plantlake_celery"
    assert celery_settings(config.execution) == {
        "broker": "pyamqp://plantlake:secret@broker.example:5672//",
        "backend": "rpc://",
        "config_source": {"task_default_queue": "nightly"},
    }
    with pytest.raises(ConfigError, match=r"execution\.queue"):
        parse_config(CELERY.replace("QUEUE", '"two words"'), tmp_path)


def test_the_workers_app_listens_on_the_configured_queue_alone(tmp_path: Path) -> None:
    """In a process of its own: the app module builds the definitions from $PLANTLAKE_CONFIG once."""
    (tmp_path / "plantlake.yaml").write_text(CELERY.replace("QUEUE", "nightly"), encoding="utf-8")
    script = (
        "import json; from plantlake.pipelines.celery_app import app; "
        "print(json.dumps([app.conf.broker_url, app.conf.task_default_queue, [q.name for q in app.conf.task_queues],"
        " sorted(name for name in app.tasks if not name.startswith('celery.'))]))"
    )
    env = {**os.environ, "PLANTLAKE_CONFIG": str(tmp_path / "plantlake.yaml")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    broker, default_queue, queues, tasks = json.loads(done.stdout.strip().splitlines()[-1])
    assert broker == "pyamqp://plantlake:secret@broker.example:5672//"
    assert default_queue == "nightly" and queues == ["nightly"]
    assert tasks == ["execute_plan"]

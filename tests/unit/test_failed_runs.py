from pathlib import Path

import dagster as dg
import duckdb
import pytest

from plantlake.assets.publish import CATALOG
from plantlake.config import load_config
from plantlake.pipelines.factory import build_definitions
from plantlake.pipelines.sensors import publish_request

pytestmark = pytest.mark.unit


def test_a_failed_run_is_recorded_in_the_lake_and_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "plantlake.yaml").write_text(
        "lake: {root: lake}\nsources: {logs: [{name: plc, path: missing, format: syslog}]}\n"
    )
    config = load_config(tmp_path / "plantlake.yaml")
    definitions = build_definitions(config)
    sensor = definitions.resolve_sensor_def("record_failed_runs")

    @dg.asset
    def broken() -> None:
        raise ConnectionError("ERP database at erp-db:5432 refused the connection")

    with dg.instance_for_test() as instance:
        result = dg.materialize([broken], instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(event for event in result.all_events if event.event_type == dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name="record_failed_runs",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=result.dagster_run,
        ).for_run_failure()
        assert sensor(context) is None  # not a refresh job: recorded, nothing published
        sensor(context)  # reported twice, recorded once
        assert definitions.resolve_job_def("publish").execute_in_process(instance=instance).success

    with duckdb.connect(str(tmp_path / "lake" / "catalog.duckdb"), read_only=True) as connection:
        rows = connection.execute("select run_id, failed_steps, errors from meta.run_failures").fetchall()
        described = connection.execute(
            "select description from catalog where qualified_name = 'meta.run_failures'"
        ).fetchone()
    assert len(rows) == 1 and rows[0][0] == result.run_id and rows[0][1] == "broken"
    assert "refused the connection" in rows[0][2]
    assert described == ("Every failed run: job, failed steps and their errors.",)


def test_a_failed_refresh_is_followed_by_publish_and_a_failed_supplier_run_by_the_catalog_only() -> None:
    nightly = publish_request(dg.DagsterRun(job_name="refresh_all", run_id="night-1"))
    assert nightly.asset_selection is None and nightly.run_key == "publish-after-night-1"
    supplier = publish_request(dg.DagsterRun(job_name="supplier_files", run_id="file-1"))
    assert supplier.asset_selection == [CATALOG]

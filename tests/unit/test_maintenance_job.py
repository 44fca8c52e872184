"""The maintenance job in Dagster: every table compacted, files and bytes before and after as metadata."""

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from plantlake.config import load_config
from plantlake.lake import delta
from plantlake.lake.layout import Lake
from plantlake.pipelines.factory import build_definitions

pytestmark = pytest.mark.unit


def test_the_weekly_maintenance_job_compacts_every_table_and_reports_what_it_freed(tmp_path: Path) -> None:
    (tmp_path / "plantlake.yaml").write_text(
        "lake: {root: lake}\nmaintenance: {retention_days: 0}\n"
        "sources: {logs: [{name: plc, path: logs, format: syslog}]}\n"
    )
    config = load_config(tmp_path / "plantlake.yaml")
    lake = Lake(config.lake.root)
    for table in ("bronze/plc_events", "silver/machine_events"):
        for night in range(5):
            delta.append(lake.root / table, pa.table({"line": [night]}))
    definitions = build_definitions(config)
    assert definitions.resolve_schedule_def("weekly_maintenance").cron_schedule == "0 4 * * 0"
    with dg.instance_for_test() as instance:
        result = definitions.resolve_job_def("maintenance").execute_in_process(instance=instance)
    assert result.success
    metadata = _output_metadata(result)
    assert (metadata["files_before"], metadata["files_after"], metadata["tables"]) == (10, 2, 2)
    assert metadata["files_vacuumed"] == 10 and metadata["bytes_before"] > 0  # the ten small files, no longer read
    assert metadata["retention_hours"] == 0
    assert delta.row_count(lake.root / "bronze/plc_events") == 5


def _output_metadata(result: dg.ExecuteInProcessResult) -> dict:
    event = next(event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_OUTPUT)
    return {key: value.value for key, value in event.step_output_data.metadata.items()}

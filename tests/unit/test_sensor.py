import time
from pathlib import Path

import dagster as dg
import pytest

from plantlake.config import parse_config
from plantlake.pipelines.factory import build_definitions

pytestmark = pytest.mark.unit

CONFIG = """
lake: {root: lake}
sources:
  suppliers:
    - name: acme
      path: drop
      glob: "*.csv"
      format: csv
      settle_seconds: 0
      key: [lot_id]
      columns: {Lot: {name: lot_id}}
"""


def test_supplier_sensor_requests_a_run_only_for_new_or_changed_files(tmp_path: Path) -> None:
    (tmp_path / "drop").mkdir()
    defs = build_definitions(parse_config(CONFIG, tmp_path))
    sensor = defs.resolve_sensor_def("supplier_files")
    assert sensor.job_name == "supplier_files"

    def evaluate(cursor: str | None):
        with dg.instance_for_test() as instance:
            return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))

    empty = evaluate(None)
    assert empty.run_requests == [] and empty.skip_message == "no new supplier files"
    (tmp_path / "drop" / "lots.csv").write_text("Lot\nA\n", encoding="utf-8")
    first = evaluate(empty.cursor)
    assert len(first.run_requests) == 1
    assert evaluate(first.cursor).run_requests == []
    time.sleep(0.01)
    (tmp_path / "drop" / "lots.csv").write_text("Lot\nA\nB\n", encoding="utf-8")
    changed = evaluate(first.cursor)
    assert len(changed.run_requests) == 1 and changed.run_requests[0].run_key != first.run_requests[0].run_key

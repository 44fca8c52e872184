"""A long step says every few seconds that it is running and how far it has got."""

import logging
import time
from pathlib import Path

import pytest

from plantlake.assets.results import heartbeat
from plantlake.lake import progress

pytestmark = pytest.mark.unit


def test_a_long_step_logs_its_rows_so_far_until_it_ends(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    table = tmp_path / "bronze" / "orders"
    with caplog.at_level(logging.INFO), heartbeat("bronze.orders", table, every_s=0.05):
        for _ in range(6):
            progress.add(table, 1_000)
            time.sleep(0.05)
    beats = [record.getMessage() for record in caplog.records if record.getMessage().startswith("bronze.orders:")]
    assert len(beats) >= 2, beats
    assert "rows so far" in beats[-1] and int(beats[-1].split(", ")[1].split(" ")[0].replace(",", "")) >= 2_000
    time.sleep(0.15)
    after = [record for record in caplog.records if record.getMessage().startswith("bronze.orders:")]
    assert len(after) == len(beats)  # it stopped with the step
    assert progress.rows(table) == 0

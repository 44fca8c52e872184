"""The real nightly job over many simulated nights of a small plant: right, lean and no slower with age.

    python benchmarks/nights.py [--nights 100] [--erp-url URL] [--keep]

A plant of two machines advances night after night (`simulator.clock`): new, changed and
deleted ERP rows and a late commit in a scratch PostgreSQL database, a day of OPC-UA history
served by the simulator, log lines with rotations, new and corrected supplier files. The
plant stands still at weekends: on two nights of every seven nothing changes. Each night
`refresh_all` and `publish` run in this process, as the schedule and the sensors run them,
and the maintenance job runs every seventh night with a retention of seven nights (scaled to
the simulation: seven nights' worth of wall time).
After each night silver is compared with the sources and gold with a recompute
(`tests/nightly.py`).

The last two nights run in new processes, through the shipped dagster.yaml: the one before
last as the demo runs it (the job executed in the process), the last as a scheduled run does
(`dagster job execute refresh_all`); the ratio of the two is the cost of how runs execute
their steps (the baseline run in this script). The last night runs on the real clock, as a
scheduled run has no other: the plant's nights end at today's midnight.

The last line holds the figures:
    nights= mismatches= state_lost= run_growth= files_max= disk_ratio= scheduled_vs_inprocess=
mismatches: rows of silver or gold that differ from the sources or the recompute, summed over
nights; state_lost: nights on which a mark was missing; run_growth: median night of the last
10 over the first 10; files_max: most live files of any table; disk_ratio: bytes under the
lake root over the bytes of the live files; scheduled_vs_inprocess: as above.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import sqlalchemy as sa  # noqa: E402 - after the path holds the repository and its tests
from nightly import Replay  # noqa: E402 - the same

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@contextmanager
def scratch_database(url: str | None):
    """The ERP database: the given URL, or a PostgreSQL database of our own, dropped afterwards."""
    if url:
        yield url
        return
    name = f"plantlake_nights_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


IN_NEW_PROCESS = """
import sys
from datetime import datetime
import dagster as dg
from plantlake.config import load_config
from plantlake.pipelines.factory import build_definitions
from plantlake.pipelines.runs import SILENT, refresh_and_publish
definitions = build_definitions(load_config(), now=datetime.fromisoformat(sys.argv[1]))
sys.exit(0 if refresh_and_publish(definitions, dg.DagsterInstance.get(), SILENT).success else 1)
"""


def _run(command: list[str], replay: Replay) -> bool:
    env = {**os.environ, "DAGSTER_HOME": str(replay.home), "PLANTLAKE_CONFIG": str(REPO / "plantlake.yaml")}
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        print(completed.stdout[-3000:], completed.stderr[-3000:], file=sys.stderr)
    return completed.returncode == 0


def demo_runner(replay: Replay) -> bool:
    """The night as the demo runs it: a new Python process, the job executed in it."""
    return _run([sys.executable, "-c", IN_NEW_PROCESS, replay.clock.now.isoformat()], replay)


def scheduled_runner(replay: Replay) -> bool:
    """The night as a scheduled run runs it: `dagster job execute` in a new process (on the real clock)."""
    dagster = str(Path(sys.executable).with_name("dagster"))
    return _run([dagster, "job", "execute", "-m", "plantlake.pipelines.definitions", "-j", "refresh_all"], replay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nights", type=int, default=100)
    parser.add_argument("--maintenance-every", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the lake and the sources afterwards")
    parser.add_argument("--erp-url", default=None, help="default: a scratch PostgreSQL database on 127.0.0.1:5432")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="plantlake-nights-"))
    idle = {night for night in range(1, args.nights) if night % 7 in (5, 6)}  # Saturdays and Sundays
    started = time.monotonic()
    with scratch_database(args.erp_url) as erp_url:
        replay = Replay(
            root,
            erp_url,
            days_ago=args.nights - 1,
            idle_nights=idle,
            maintenance_every=args.maintenance_every,
            quiet=True,
        )
        try:
            for _ in range(args.nights - 2):
                seconds = [report.seconds for report in replay.reports[1:]] or [10.0]
                replay.retention = timedelta(seconds=7 * statistics.median(seconds))  # seven nights of wall time
                report = replay.night()
                status = "ok" if report.success else "FAILED"
                print(
                    f"night {report.night:>3} {status} {report.seconds:6.1f} s  changed={report.changed!s:<5} "
                    f"commits={len(report.committed):>2} files_max={report.files_max:>3} "
                    f"mismatches={sum(report.mismatches.values())} {report.mismatches or ''} "
                    f"state_missing={report.state_missing or 0}",
                    flush=True,
                )
            demo = replay.night(runner=demo_runner)
            scheduled = replay.night(runner=scheduled_runner)
            for report, how in (
                (demo, "as the demo runs it, in a new process"),
                (scheduled, "through dagster job execute"),
            ):
                print(
                    f"night {report.night:>3} {'ok' if report.success else 'FAILED'} {report.seconds:6.1f} s  {how}, "
                    f"mismatches={sum(report.mismatches.values())}"
                )
            summary = replay.summary()
        finally:
            replay.close()
    summary["scheduled_vs_inprocess"] = scheduled.seconds / demo.seconds
    print(f"lake {root}: {time.monotonic() - started:.0f} s in all")
    print(
        " ".join(
            f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}" for key, value in summary.items()
        )
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

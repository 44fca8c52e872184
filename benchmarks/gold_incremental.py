"""Gold by window: a year of hourly features for 50 machines, a night's incremental refresh, a training set.

    python benchmarks/gold_incremental.py [--days 365] [--machines 50] [--every-minutes 5]

Silver holds a year of readings of five signals per machine (every 5 minutes: about 26 million
rows) and a few alarms a day. A declared model with 20 features per machine and hour is built in
full, then a night adds 1% more data and refreshes incrementally; the same night runs on a lake
with half the history, to show that its memory and time do not follow the history. Then a
training set of 100,000 labels joins the 20 features as of each label time.

Last line: rows_history= incr_share= training_set_s= peak_mb= (incr_share: the night's refresh
over the full build, in this script; peak_mb: the night's peak RSS on the full history).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
from harness import entry_point, run_case

START = datetime(2025, 1, 1, tzinfo=UTC)
SIGNALS = ["temperature", "vibration", "spindle_speed", "current", "pressure"]
STATS = {"mean": "avg", "min": "min", "max": "max", "std": "stddev_samp"}
MODEL = "bench_hour"


def _model_sql() -> str:
    columns = ",\n    ".join(
        f"{function}(value) FILTER (WHERE signal = '{signal}') AS {signal}_{stat}"
        for signal in SIGNALS
        for stat, function in STATS.items()
    )
    documented = ["machine_id", "hour", "readings", *(f"{signal}_{stat}" for signal in SIGNALS for stat in STATS)]
    docs = "".join(f"  {name}: {{description: {name.replace('_', ' ')}}}\n" for name in documented)
    return (
        "/* ---\ndescription: 20 features per machine and hour.\nkey: [machine_id]\ntime: hour\ngrain: hour\n"
        f"late_arrival: 6h\ncolumns:\n{docs}--- */\n"
        f'SELECT machine_id, window_of("timestamp") AS hour,\n    {columns},\n    count(*) AS readings\n'
        "FROM signals WHERE status = 'Good' GROUP BY ALL\n"
    )


def _config(folder: Path):
    from plantlake.config.gold import GoldConfig

    (folder / "models").mkdir(parents=True, exist_ok=True)
    (folder / "models" / f"{MODEL}.sql").write_text(_model_sql())
    return GoldConfig.model_validate(
        {"models": folder / "models", "signals": {name: {"tag": f"*/{name}"} for name in SIGNALS}}
    )


def _readings(machines: int, start: datetime, days: float, every: int, ingested: datetime, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    steps = int(days * 24 * 60 // every)
    moments = np.datetime64(start.replace(tzinfo=None), "us") + np.arange(steps) * np.timedelta64(every, "m")
    count = machines * len(SIGNALS) * steps
    machine = np.repeat(np.arange(machines), len(SIGNALS) * steps)
    signal = np.tile(np.repeat(np.arange(len(SIGNALS)), steps), machines)
    node = pa.array([f"ns=2;s=M-{m:03d}.{SIGNALS[s]}" for m in range(machines) for s in range(len(SIGNALS))])
    return pa.table(
        {
            "source": pa.repeat(pa.scalar("plant"), count),
            "node_id": node.take(pa.array(machine * len(SIGNALS) + signal)),
            "timestamp": pa.array(np.tile(moments, machines * len(SIGNALS)), pa.timestamp("us", "UTC")),
            "value": rng.normal(50, 10, count) + signal * 100,
            "status": pa.repeat(pa.scalar("Good"), count),
            "_ingested_at": pa.repeat(pa.scalar(ingested, pa.timestamp("us", "UTC")), count),
        }
    )


def build_lake(root: Path, machines: int, days: int, every: int) -> int:
    """Silver of `days` of history, a month per commit; the rows written."""
    from plantlake.lake import delta

    tags = [
        {
            "node_id": f"ns=2;s=M-{m:03d}.{s}",
            "browse_path": f"Plant/L1/M-{m:03d}/{s}",
            "machine_id": f"M-{m:03d}",
            "tag": s,
            "unit": None,
        }
        for m in range(machines)
        for s in SIGNALS
    ]
    delta.overwrite(root / "silver" / "opcua_tags", pa.Table.from_pylist(tags))
    written, day = 0, 0
    while day < days:
        span = min(30, days - day)
        start = START + timedelta(days=day)
        rows = _readings(machines, start, span, every, start + timedelta(days=span), seed=day)
        delta.append(root / "silver" / "sensor_readings", rows)
        written += rows.num_rows
        day += span
    return written


def _refresh(root: str, folder: str, now: str) -> Callable[[], int]:
    from plantlake.config.models import load_model
    from plantlake.lake import gold

    config = _config(Path(folder))
    model = load_model(Path(folder) / "models" / f"{MODEL}.sql")
    inputs = gold.Inputs({name: Path(root) / "silver" / name for name in ("sensor_readings", "opcua_tags")})

    def run() -> int:
        done = gold.refresh(Path(root) / "gold" / MODEL, model, config, inputs, datetime.fromisoformat(now))
        return done.rows_computed

    return run


def _training(root: str, labels: int, days: int) -> Callable[[], int]:
    from plantlake.lake import training
    from plantlake.lake.layout import Lake

    rng = np.random.default_rng(11)
    machines = pa.array([f"M-{m:03d}" for m in rng.integers(0, 50, labels)])
    offsets = rng.integers(0, days * 24 * 3600, labels).astype("int64") * 1_000_000
    moments = pa.array(offsets + int(START.timestamp() * 1_000_000), pa.timestamp("us", "UTC"))
    entities = pa.table({"machine_id": machines, "label_time": moments})
    features = [f"{MODEL}.{signal}_{stat}" for signal in SIGNALS for stat in STATS]

    def run() -> int:
        frame, _ = training.training_set(Lake(Path(root)), features, entities=entities, max_age=timedelta(hours=6))
        return frame.num_rows

    return run


def _build(root: str, machines: int, days: int, every: int) -> Callable[[], int]:
    return lambda: build_lake(Path(root), machines, days, every)


def _night_data(root: str, machines: int, start: str, days: float, every: int) -> Callable[[], int]:
    """1% more readings, ingested at the night's end."""
    from plantlake.lake import delta

    def run() -> int:
        begin = datetime.fromisoformat(start)
        rows = _readings(machines, begin, days, every, begin + timedelta(days=days), seed=999)
        delta.append(Path(root) / "silver" / "sensor_readings", rows)
        return rows.num_rows

    return run


# the lake is written by child processes too: the peak memory of a case started from a process
# that had held the readings would count the parent's memory (Linux keeps it across exec)
CASES = {"build": _build, "night_data": _night_data, "refresh": _refresh, "training": _training}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--every-minutes", type=int, default=5)
    parser.add_argument("--labels", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="plantlake-gold-bench-"))
    script = __file__
    try:
        figures = {}
        for label, days in (("half", args.days // 2), ("full", args.days)):
            root, folder = work / label, work / f"{label}-config"
            rows = run_case(script, f"history ({label})", "build", str(root), args.machines, days, args.every_minutes)[
                "rows"
            ]
            built_at = START + timedelta(days=days)
            full = run_case(script, f"full build ({label})", "refresh", str(root), str(folder), built_at.isoformat())
            extra = max(1.0, days * 0.01)  # a night: 1% more data
            night = built_at + timedelta(days=extra)
            run_case(
                script,
                "1% more",
                "night_data",
                str(root),
                args.machines,
                built_at.isoformat(),
                extra,
                args.every_minutes,
            )
            incremental = run_case(script, f"night +1% ({label})", "refresh", str(root), str(folder), night.isoformat())
            figures[label] = {"rows": rows, "full": full, "night": incremental}
        training_run = run_case(script, "training set", "training", str(work / "full"), args.labels, args.days)
        full, half = figures["full"], figures["half"]
        print(
            f"night on half the history: {half['night']['seconds']:.2f} s, peak {half['night']['peak_mb']:.0f} MB; "
            f"on all of it: {full['night']['seconds']:.2f} s, peak {full['night']['peak_mb']:.0f} MB"
        )
        print(
            f"rows_history={full['rows']} incr_share={full['night']['seconds'] / full['full']['seconds']:.3f} "
            f"training_set_s={training_run['seconds']:.2f} peak_mb={full['night']['peak_mb']:.0f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    entry_point(CASES, main)

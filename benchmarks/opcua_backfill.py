"""OPC-UA history backfill: plantlake against a plain loop of asyncua's `Node.read_raw_history`.

    python benchmarks/opcua_backfill.py [--machines 5] [--tags 20] [--hours 24] [--sample-seconds 1]

It starts the plant simulator with machines x tags historized tags of one-second history
(default: 100 tags, one day, 8.64 million values), then times, each case in its own child
process (imports before the clock starts), reading all of it into a Delta table:
- plantlake: the daily backfill's read (`assets.opcua_backfill.backfill_day`): many nodes per
  HistoryRead, continuation points followed, batches streamed into bronze;
- plain loop: for each tag `Node.read_raw_history(start, end)`, then the values into Arrow and
  one `write_deltalake`.
It prints values per second of each, the ratio, peak memory, and the CPU time the simulator
spent serving each case (it should stay well below the client's). The last line holds the
figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from harness import entry_point, run_case

from plantlake.simulator.plant import default_anchor
from plantlake.simulator.process import free_port, serve_command, wait_for_port


def case_plantlake(endpoint: str, lake_root: str, start: str, hours: float) -> Callable[[], int]:
    from plantlake.assets.opcua_backfill import backfill_day
    from plantlake.config import OpcuaSource
    from plantlake.lake.layout import Lake

    source = OpcuaSource(
        name="bench",
        endpoint=endpoint,
        roots=["2:Plant"],
        exclude=["*/SerialNumber"],
        values_per_request=10_000,
        nodes_per_request=10,
    )
    day = datetime.fromisoformat(start).date()
    assert hours == 24, "the backfill reads whole days"
    return lambda: backfill_day(Lake(Path(lake_root)), source, day, "bench").metadata["values_read"]


def case_loop(endpoint: str, lake_root: str, start: str, hours: float) -> Callable[[], int]:
    import asyncio

    import pyarrow as pa
    from asyncua import Client
    from deltalake import write_deltalake

    from plantlake.connectors.opcua import READINGS_SCHEMA, _to_batch, discover_tags

    begin = datetime.fromisoformat(start)
    end = begin + timedelta(hours=hours) - timedelta(microseconds=1)

    async def read_all() -> list[pa.RecordBatch]:
        async with Client(endpoint, timeout=60) as client:
            batches = []
            for tag in await discover_tags(client, ["2:Plant"], describe=False):
                values = await client.get_node(tag.node_id).read_raw_history(begin, end)
                batches.append(_to_batch(tag, values))
            return batches

    def run() -> int:
        table = pa.Table.from_batches(asyncio.run(read_all()), schema=READINGS_SCHEMA)
        write_deltalake(lake_root, table, mode="append")
        return table.num_rows

    return run


CASES = {"plantlake": case_plantlake, "loop": case_loop}


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=5)
    parser.add_argument("--tags", type=int, default=20, help="tags per machine")
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--sample-seconds", type=int, default=1)
    args = parser.parse_args()
    anchor, port = default_anchor(), free_port()
    start = anchor - timedelta(hours=args.hours)
    command = serve_command(
        port,
        anchor,
        seed=3,
        lines=1,
        machines_per_line=args.machines,
        history_days=args.hours / 24,
        sample_seconds=args.sample_seconds,
        tags_per_machine=args.tags,
    )
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    work = Path(tempfile.mkdtemp(prefix="plantlake-opcua-bench-"))
    try:
        wait_for_port(port, server, timeout_s=600)
        endpoint = f"opc.tcp://127.0.0.1:{port}/plantlake"
        expected = args.machines * args.tags * int(args.hours * 3600 / args.sample_seconds)
        print(f"simulator: {args.machines * args.tags} tags, {expected:,} values", flush=True)
        results = {}
        for label, case in (("plantlake backfill", "plantlake"), ("plain loop", "loop")):
            before = _cpu_seconds(server.pid)
            results[case] = run_case(__file__, label, case, endpoint, str(work / case), start.isoformat(), args.hours)
            results[case]["server_cpu"] = _cpu_seconds(server.pid) - before
            assert results[case]["rows"] == expected, f"{label} read {results[case]['rows']:,} values, not {expected:,}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    for case, result in results.items():
        print(
            f"{case:<10} {result['rows'] / result['seconds']:>12,.0f} values/s  "
            f"server CPU {result['server_cpu']:.1f} s of {result['seconds']:.1f} s"
        )
    ours, loop = results["plantlake"], results["loop"]
    print(
        f"values_per_s={ours['rows'] / ours['seconds']:.0f} vs_naive={loop['seconds'] / ours['seconds']:.1f} "
        f"peak_mb={ours['peak_mb']:.0f} server_cpu_share={ours['server_cpu'] / ours['seconds']:.2f}"
    )


if __name__ == "__main__":
    entry_point(CASES, main)

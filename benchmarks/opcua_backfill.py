"""OPC-UA history backfill: plantlake against a plain loop of asyncua's `Node.read_raw_history`, on two servers.

    python benchmarks/opcua_backfill.py [--machines 5] [--tags 20] [--hours 24] [--sample-seconds 1]
                                        [--nodeopcua-tags 20]

It starts the plant simulator (asyncua) with machines x tags historized tags of one-second
history (default: 100 tags, one day, 8.64 million values), then the node-opcua test server
(tests/nodeopcua, installed with npm on first use) with `--nodeopcua-tags` tags of the same
history (default: 20 tags, 1.73 million values; node-opcua leaves out the status of Good
values, so its answers mix encodings; it is read once untimed first, so both cases meet a warm
server). Against each it times, each case in its own child process (imports before the clock
starts), reading all of it into a Delta table:
- plantlake: the daily backfill's read (`assets.opcua_backfill.backfill_day`): many nodes per
  HistoryRead, continuation points followed, batches streamed into bronze;
- plain loop: for each tag `Node.read_raw_history(start, end)`, then the values into Arrow and
  one `write_deltalake`.
It prints values per second of each, the ratios, peak memory, and the CPU time each server
spent serving each case. The last line holds the figures: `values_per_s`, `vs_naive` (simulator),
`values_per_s_nodeopcua`, `vs_naive_nodeopcua`, `link_losses` (of plantlake's reads from both
servers, which are fault-free: it must be 0) and `peak_mb` (plantlake's larger peak).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from harness import entry_point, run_case

from plantlake.simulator.plant import default_anchor
from plantlake.simulator.process import free_port, serve_command, stop, wait_for_port


def case_plantlake(
    endpoint: str, lake_root: str, start: str, hours: float, roots: list[str], exclude: list[str], report: str
) -> Callable[[], int]:
    from plantlake.assets.opcua_backfill import backfill_day
    from plantlake.config import OpcuaSource
    from plantlake.lake.layout import Lake

    source = OpcuaSource(
        name="bench", endpoint=endpoint, roots=roots, exclude=exclude, values_per_request=10_000, nodes_per_request=10
    )
    day = datetime.fromisoformat(start).date()
    assert hours == 24, "the backfill reads whole days"

    def run() -> int:
        metadata = backfill_day(Lake(Path(lake_root)), source, day, "bench").metadata
        Path(report).write_text(json.dumps({"link_losses": metadata["link_losses"]}))
        return metadata["values_read"]

    return run


def case_loop(
    endpoint: str, lake_root: str, start: str, hours: float, roots: list[str], exclude: list[str], report: str
) -> Callable[[], int]:
    import asyncio

    import pyarrow as pa
    from asyncua import Client
    from deltalake import write_deltalake

    from plantlake.connectors.opcua import READINGS_SCHEMA, _to_batch, discover_tags, selected

    begin = datetime.fromisoformat(start)
    end = begin + timedelta(hours=hours) - timedelta(microseconds=1)

    async def read_all() -> list[pa.RecordBatch]:
        # asyncua's watchdog probes once per request timeout, as plantlake's client does: by default a probe a
        # second, unanswered while the loop decodes a day of values, drops the link against node-opcua
        async with Client(endpoint, timeout=60, watchdog_intervall=60) as client:
            batches = []
            for tag in selected(await discover_tags(client, roots, describe=False), [], exclude):
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


def compare(
    endpoint: str, roots: list[str], exclude: list[str], server_pid: int, expected: int, start: datetime, hours: float
) -> dict[str, dict]:
    """Both cases against one server, each reading every value once, with the server's CPU time for each."""
    work = Path(tempfile.mkdtemp(prefix="plantlake-opcua-bench-"))
    results = {}
    try:
        for label, case in (("plantlake backfill", "plantlake"), ("plain loop", "loop")):
            before = _cpu_seconds(server_pid)
            report = work / f"{case}.json"
            args = (endpoint, str(work / case), start.isoformat(), hours, roots, exclude, str(report))
            results[case] = run_case(__file__, label, case, *args)
            results[case]["server_cpu"] = _cpu_seconds(server_pid) - before
            results[case].update(json.loads(report.read_text()) if report.exists() else {})
            assert results[case]["rows"] == expected, f"{label} read {results[case]['rows']:,} values, not {expected:,}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for case, result in results.items():
        print(
            f"{case:<10} {result['rows'] / result['seconds']:>12,.0f} values/s  "
            f"server CPU {result['server_cpu']:.1f} s of {result['seconds']:.1f} s",
            flush=True,
        )
    return results


def against_simulator(args: argparse.Namespace, start: datetime) -> dict[str, dict]:
    port = free_port()
    command = serve_command(
        port,
        default_anchor(),
        seed=3,
        lines=1,
        machines_per_line=args.machines,
        history_days=args.hours / 24,
        sample_seconds=args.sample_seconds,
        tags_per_machine=args.tags,
    )
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, server, timeout_s=600)
        expected = args.machines * args.tags * int(args.hours * 3600 / args.sample_seconds)
        print(f"simulator: {args.machines * args.tags} tags, {expected:,} values", flush=True)
        endpoint = f"opc.tcp://127.0.0.1:{port}/plantlake"
        return compare(endpoint, ["2:Plant"], ["*/SerialNumber"], server.pid, expected, start, args.hours)
    finally:
        stop(server)


def against_nodeopcua(args: argparse.Namespace, start: datetime) -> dict[str, dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from nodeopcua import launch  # the node-opcua test server and how to start it

    launch.install()
    count = int(args.hours * 3600 / args.sample_seconds)
    options = ["--bench-tags", str(args.nodeopcua_tags), "--start", start.isoformat().replace("+00:00", "Z")]
    options += ["--count", str(count), "--step-ms", str(args.sample_seconds * 1000)]
    with launch.serving(free_port(), *options) as server:
        print(f"node-opcua: {args.nodeopcua_tags} tags, {args.nodeopcua_tags * count:,} values", flush=True)
        warm_up(server.endpoint, start, args.hours)
        return compare(
            server.endpoint, ["1:Plant"], [], server.process.pid, args.nodeopcua_tags * count, start, args.hours
        )


def warm_up(endpoint: str, start: datetime, hours: float) -> None:
    """Read everything once, untimed: node-opcua's encoder is compiled by its first answers, and each case
    should meet the same warm server (the first one would pay for it otherwise)."""
    from plantlake.connectors.opcua_stream import read_history_blocking

    _tags, batches = read_history_blocking(
        endpoint, ["1:Plant"], start, start + timedelta(hours=hours), 10_000, 10, snapshots=False, describe=False
    )
    for _ in batches:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--machines", type=int, default=5)
    parser.add_argument("--tags", type=int, default=20, help="tags per machine")
    parser.add_argument("--hours", type=float, default=24)
    parser.add_argument("--sample-seconds", type=int, default=1)
    parser.add_argument("--nodeopcua-tags", type=int, default=20, help="tags of the node-opcua server")
    args = parser.parse_args()
    start = default_anchor() - timedelta(hours=args.hours)
    simulator = against_simulator(args, start)
    node = against_nodeopcua(args, start)
    ours, loop = simulator["plantlake"], simulator["loop"]
    node_ours, node_loop = node["plantlake"], node["loop"]
    print(
        f"values_per_s={ours['rows'] / ours['seconds']:.0f} vs_naive={loop['seconds'] / ours['seconds']:.1f} "
        f"values_per_s_nodeopcua={node_ours['rows'] / node_ours['seconds']:.0f} "
        f"vs_naive_nodeopcua={node_loop['seconds'] / node_ours['seconds']:.1f} "
        f"link_losses={ours['link_losses'] + node_ours['link_losses']} "
        f"peak_mb={max(ours['peak_mb'], node_ours['peak_mb']):.0f}"
    )


if __name__ == "__main__":
    entry_point(CASES, main)

"""Command line of the plant simulator.

python -m plantlake.simulator generate --output data/sources   # ERP SQLite file, logs, supplier files
python -m plantlake.simulator serve --port 48400                # OPC-UA server with the sensor history
python -m plantlake.simulator s3 --folder data/seaweedfs        # a local S3 store (SeaweedFS) until Ctrl-C
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from datetime import date, datetime
from pathlib import Path

from plantlake.simulator.erp import create_erp
from plantlake.simulator.files import write_machine_logs, write_supplier_files
from plantlake.simulator.object_store import ObjectStoreUnavailable, seaweedfs
from plantlake.simulator.opcua_server import Security, serve
from plantlake.simulator.plant import Plant, build_plant


def _plant_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--lines", type=int, default=2)
    parser.add_argument("--machines-per-line", type=int, default=3)
    parser.add_argument("--history-days", type=float, default=2)
    parser.add_argument("--sample-seconds", type=int, default=60)
    parser.add_argument(
        "--tags-per-machine", type=int, default=5, help="5 core tags, then process sensors (Sensor06...)"
    )
    parser.add_argument("--anchor", type=datetime.fromisoformat, default=None, help="end of history (UTC)")
    parser.add_argument(
        "--day-by-day",
        action="store_true",
        help="generate history day by day, so a later anchor only adds to it (the plant clock's way)",
    )
    parser.add_argument(
        "--idle-days",
        type=_days,
        default=(),
        metavar="DAY,DAY",
        help="with --day-by-day: UTC days (YYYY-MM-DD) the plant stood still and recorded nothing",
    )


def _days(text: str) -> tuple[date, ...]:
    return tuple(date.fromisoformat(day) for day in text.split(",") if day)


def plant_from_arguments(args: argparse.Namespace) -> Plant:
    return build_plant(
        args.seed,
        args.lines,
        args.machines_per_line,
        args.history_days,
        args.sample_seconds,
        args.anchor,
        args.tags_per_machine,
        args.day_by_day,
        frozenset(args.idle_days),
    )


def generate_sources(plant: Plant, output: Path, erp_url: str | None = None) -> dict[str, object]:
    """Write the ERP database (SQLite in `output` unless a URL is given), logs and supplier files."""
    output.mkdir(parents=True, exist_ok=True)
    url = erp_url or f"sqlite:///{output / 'erp.sqlite'}"
    return {
        "erp": create_erp(url, plant),
        "logs": write_machine_logs(plant, output / "logs"),
        "suppliers": write_supplier_files(plant, output / "suppliers"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="plantlake-sim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="write ERP database, logs and supplier files")
    _plant_arguments(generate)
    generate.add_argument("--output", type=Path, required=True)
    generate.add_argument("--erp-url", default=None, help="SQLAlchemy URL; default: SQLite in the output folder")
    server = commands.add_parser("serve", help="run the OPC-UA server with sensor history")
    _plant_arguments(server)
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=48400)
    server.add_argument(
        "--secure-dir",
        type=Path,
        default=None,
        help="serve Basic256Sha256 (Sign, SignAndEncrypt) only, with the server certificate kept here",
    )
    server.add_argument(
        "--user",
        default="plantlake",
        help="with --secure-dir: the user; the password is read from PLANTLAKE_SIM_PASSWORD",
    )
    store = commands.add_parser("s3", help="run a local S3-compatible store (SeaweedFS) until Ctrl-C")
    store.add_argument("--folder", type=Path, default=Path("data/seaweedfs"), help="where it keeps its data")
    store.add_argument("--port", type=int, default=8333, help="the S3 port; it also takes the 4 above and +10000")
    store.add_argument("--bucket", default="lake")
    args = parser.parse_args(argv)
    if args.command == "s3":
        run_object_store(args.folder, args.bucket, args.port)
        return
    plant = plant_from_arguments(args)
    if args.command == "generate":
        written = generate_sources(plant, args.output, args.erp_url)
        print(f"generated ERP tables {written['erp']} and files under {args.output}")
    else:
        # A parent that started with SIGINT ignored (a background job of a script) and then ran a
        # Dagster job hands SIGTERM down ignored too (Dagster maps SIGTERM to SIGINT's handler);
        # a server must stop when asked to.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            security = None
            if args.secure_dir is not None:
                password = os.environ.get("PLANTLAKE_SIM_PASSWORD")
                if not password:
                    parser.error("--secure-dir needs the user's password in PLANTLAKE_SIM_PASSWORD")
                security = Security(args.secure_dir, args.user, password)
            asyncio.run(serve(plant, args.host, args.port, security=security))
        except KeyboardInterrupt:
            pass


def run_object_store(folder: Path, bucket: str, port: int) -> None:
    """Run SeaweedFS until Ctrl-C or SIGTERM, after printing the variables that point the lake at it."""

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # stop the store on SIGTERM too, not only on Ctrl-C
    try:
        with seaweedfs(folder, bucket, port) as endpoint:
            print(f"SeaweedFS serves S3 on {endpoint.url}, bucket {bucket}, data in {folder}; Ctrl-C stops it")
            for name, value in endpoint.environment().items():
                print(f"export {name}={value}")
            # the lake `make demo-s3` writes, so that `plantlake sql` reaches it
            print(f"export PLANTLAKE_LAKE_ROOT=s3://{bucket}/demo PLANTLAKE_LAKE_LOCAL=data/lake_s3", flush=True)
            while True:
                time.sleep(3600)
    except ObjectStoreUnavailable as error:
        raise SystemExit(str(error)) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""Supplier CSV and syslog ingestion: plantlake against pandas and against a plain Python loop.

    python benchmarks/files_logs.py [--rows 2000000] [--lines 2000000] [--repeat 3]

It writes a semicolon CSV of N rows in cp1252 with decimal commas, and a syslog file of N
lines (RFC 5424, every tenth an RFC 3164 line, every fiftieth entry with a stack trace), then
times, each case in its own child process (imports before the clock starts):
- plantlake CSV: the supplier bronze asset's load (`assets.suppliers.load_bronze`): hash,
  read, type by the mapping, land in Delta, register the file;
- pandas: `pandas.read_csv` with the right options (separator, decimal and thousands marks,
  encoding, date format), then `write_deltalake` of the frame;
- plantlake logs: the log bronze asset's load (`assets.logs.load_bronze`);
- plain loop: the same two regular expressions applied line by line in Python, rows built as
  dicts, then one Arrow table written with `write_deltalake`;
- plantlake on files of N/2, to show peak memory does not grow with the file.
Each comparison runs `--repeat` times, plantlake and its baseline taking turns, and the
fastest run of each counts (the machines are noisy). It prints rows per second, the ratios
and peak memory; the last line holds the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import entry_point, run_case

CSV_HEADER = "Charge;Werkstoff;Lieferant;Menge kg;Preis EUR;Lieferdatum;Zeugnis"
COLUMNS = {
    "Charge": {"name": "lot_id", "required": True},
    "Werkstoff": {"name": "material"},
    "Lieferant": {"name": "supplier"},
    "Menge kg": {"name": "quantity_kg", "type": "decimal", "scale": 3, "required": True},
    "Preis EUR": {"name": "price_eur", "type": "decimal", "scale": 2},
    "Lieferdatum": {"name": "delivered_on", "type": "date"},
    "Zeugnis": {"name": "certificate"},
}
MATERIALS = ["Stahl S235JR", "Edelstahl 1.4301", "Vergütungsstahl C45", "Aluminium AlMg3", "Messing CuZn39Pb3"]
SUPPLIERS = ["Acme Stahlhandel GmbH", "Stahlwerk Süd AG", "Müller & Söhne KG"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="cp1252", newline="") as handle:
        handle.write(CSV_HEADER + "\r\n")
        day = datetime(2026, 1, 1, tzinfo=UTC)
        for start in range(0, rows, 100_000):
            lines = []
            for i in range(start, min(rows, start + 100_000)):
                quantity = (
                    f"{(i * 7919) % 100_000_000 / 1000:,.3f}".replace(",", "X").replace(".", ",").replace("X", ".")
                )
                price = f"{(i * 104_729) % 10_000_000 / 100:.2f}".replace(".", ",")
                delivered = (day + timedelta(days=i % 365)).strftime("%d.%m.%Y")
                lines.append(
                    f"LOT-{i:08d};{MATERIALS[i % 5]};{SUPPLIERS[i % 3]};{quantity};{price};{delivered};Z-{i % 9973}\r\n"
                )
            handle.write("".join(lines))


def write_syslog(path: Path, lines: int) -> None:
    start = datetime(2026, 1, 11, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as handle:
        written, i = 0, 0
        while written < lines:
            block = []
            for _ in range(100_000):
                moment = start + timedelta(milliseconds=250 * i)
                host = f"cnc-{101 + i % 6}"
                if i % 10 == 9:
                    block.append(
                        f"<{128 + i % 8}>{moment:%b %e %H:%M:%S} {host} hydraulics[88]: E-{i % 500} pressure {i}\n"
                    )
                else:
                    code = f"A-{i % 97}" if i % 7 == 0 else "-"
                    block.append(
                        f"<{128 + i % 8}>1 {moment:%Y-%m-%dT%H:%M:%S.%f}Z {host} plc {i % 900} {code} "
                        f"- spindle load {i}\n"
                    )
                written += 1
                if i % 50 == 0:
                    block.append(
                        'Traceback (most recent call last):\n  File "cycle.py", line 12\nValueError: overload\n'
                    )
                    written += 3
                i += 1
                if written >= lines:
                    break
            handle.write("".join(block))


# --- the cases ----------------------------------------------------------------------------------


def supplier_source(folder: str):
    """The benchmark CSV's folder declared as a supplier source, as the YAML would."""
    from plantlake.config import SupplierSource

    return SupplierSource.model_validate(
        {
            "name": "bench",
            "path": folder,
            "glob": "*.csv",
            "format": "csv",
            "settle_seconds": 0,  # the copy is whole: what is timed is the load, not the wait for a writer
            "csv": {"date_format": "%d.%m.%Y"},
            "key": ["lot_id"],
            "columns": COLUMNS,
        }
    )


def case_csv_plantlake(folder: str, lake_root: str) -> Callable[[], int]:
    from plantlake.assets.suppliers import load_bronze
    from plantlake.lake.layout import Lake

    source = supplier_source(folder)
    return lambda: load_bronze(Lake(Path(lake_root)), source, "bench").metadata["rows_loaded"]


def read_csv_with_pandas(folder: str):
    """The folder's one CSV read as a new user would with pandas: the right options, columns renamed."""
    import pandas as pd

    [path] = Path(folder).glob("*.csv")
    frame = pd.read_csv(
        path,
        sep=";",
        decimal=",",
        thousands=".",
        encoding="cp1252",
        parse_dates=["Lieferdatum"],
        date_format="%d.%m.%Y",
        dtype={"Charge": str, "Werkstoff": str, "Lieferant": str, "Zeugnis": str},
    )
    frame.columns = [COLUMNS[name]["name"] for name in frame.columns]
    return frame


def case_csv_pandas(folder: str, lake_root: str) -> Callable[[], int]:
    import pandas as pd  # noqa: F401 - imported before the clock starts
    from deltalake import write_deltalake

    def run() -> int:
        frame = read_csv_with_pandas(folder)
        write_deltalake(lake_root, frame, mode="append")
        return len(frame)

    return run


def case_logs_plantlake(folder: str, lake_root: str) -> Callable[[], int]:
    from plantlake.assets.logs import load_bronze
    from plantlake.config import LogSource
    from plantlake.lake.layout import Lake

    source = LogSource(name="bench", path=Path(folder), glob="*.log*", format="syslog", settle_seconds=0)
    return lambda: load_bronze(Lake(Path(lake_root)), source, "bench").metadata["lines_read"]


def case_logs_loop(folder: str, lake_root: str) -> Callable[[], int]:
    import json
    import re

    import pyarrow as pa
    from deltalake import write_deltalake

    from plantlake.connectors.logs import ALARM_CODE, EVENTS_SCHEMA, RFC3164, RFC5424, SYSLOG_SEVERITIES

    modern, legacy, code_pattern = re.compile(RFC5424), re.compile(RFC3164), re.compile(ALARM_CODE)

    def run() -> int:
        [path] = Path(folder).glob("*.log")
        rows, year, count = [], datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).year, 0
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                count += 1
                line = line.rstrip("\r\n")
                row = {
                    "file_id": "loop",
                    "source_file": str(path),
                    "line_number": number,
                    "raw": line,
                    "parse_error": None,
                }
                if match := modern.match(line):
                    row.update(
                        timestamp=datetime.fromisoformat(match["ts"].replace("Z", "+00:00")),
                        host=match["host"],
                        severity=SYSLOG_SEVERITIES[int(match["pri"]) % 8],
                        message=match["msg"],
                        code=None if match["msgid"] == "-" else match["msgid"],
                        extra=json.dumps({"app": match["app"]}),
                    )
                elif match := legacy.match(line):
                    found = code_pattern.search(match["msg"])
                    row.update(
                        timestamp=datetime.strptime(f"{year} {match['ts']}", "%Y %b %d %H:%M:%S").replace(tzinfo=UTC),
                        host=match["host"],
                        severity=SYSLOG_SEVERITIES[int(match["pri"]) % 8],
                        message=match["msg"],
                        code=found and found["code"],
                        extra=json.dumps({"app": match["tag"].strip()}),
                    )
                else:
                    row["parse_error"] = f"line {number}: not a syslog line"
                rows.append(row)
        write_deltalake(lake_root, pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA), mode="append")
        return count

    return run


CASES = {
    "csv_plantlake": case_csv_plantlake,
    "csv_pandas": case_csv_pandas,
    "logs_plantlake": case_logs_plantlake,
    "logs_loop": case_logs_loop,
}


def _run(work: Path, label: str, case: str, original: Path) -> dict:
    """One case on a drop folder of its own (plantlake moves the files it has taken in) and a lake of its own."""
    folder, lake = work / "drop", work / "lake"
    folder.mkdir()
    shutil.copy(original, folder / original.name)
    try:
        return run_case(__file__, label, case, str(folder), str(lake))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(lake, ignore_errors=True)


def _fastest_of(work: Path, repeat: int, cases: list[tuple[str, str, Path]]) -> list[dict]:
    """Each case's fastest of `repeat` runs, the cases taking turns so that a slow spell of the
    machine falls on all of them alike; peak memory is the highest any run reached."""
    runs: list[list[dict]] = [[] for _ in cases]
    for _ in range(repeat):
        for done, (label, case, original) in zip(runs, cases, strict=True):
            done.append(_run(work, label, case, original))
    return [
        {**min(done, key=lambda run: run["seconds"]), "peak_mb": max(run["peak_mb"] for run in done)} for done in runs
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the CSV file")
    parser.add_argument("--lines", type=int, default=2_000_000, help="lines of the syslog file")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timed case; the fastest counts")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="plantlake-files-bench-"))
    try:
        (work / "src").mkdir()
        csv_full, csv_half = work / "src" / "lieferung.csv", work / "src" / "lieferung_half.csv"
        log_full, log_half = work / "src" / "plc.log", work / "src" / "plc_half.log"
        write_csv(csv_full, args.rows)
        write_csv(csv_half, args.rows // 2)
        write_syslog(log_full, args.lines)
        write_syslog(log_half, args.lines // 2)
        print(
            f"wrote {args.rows:,} CSV rows ({csv_full.stat().st_size / 1e6:.0f} MB) and {args.lines:,} syslog lines "
            f"({log_full.stat().st_size / 1e6:.0f} MB)",
            flush=True,
        )
        csv, pandas = _fastest_of(
            work,
            args.repeat,
            [("plantlake csv", "csv_plantlake", csv_full), ("pandas + write_deltalake", "csv_pandas", csv_full)],
        )
        logs, loop = _fastest_of(
            work,
            args.repeat,
            [("plantlake logs", "logs_plantlake", log_full), ("plain loop + write", "logs_loop", log_full)],
        )
        [half, logs_half] = _fastest_of(
            work,
            1,
            [("plantlake csv (N/2)", "csv_plantlake", csv_half), ("plantlake logs (N/2)", "logs_plantlake", log_half)],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for label, result in (("plantlake csv", csv), ("pandas", pandas), ("plantlake logs", logs), ("plain loop", loop)):
        print(f"{label:<16} {result['rows'] / result['seconds']:>12,.0f} rows/s")
    peak = max(csv["peak_mb"], logs["peak_mb"])
    peak_half = max(half["peak_mb"], logs_half["peak_mb"])
    print(
        f"csv_vs_pandas={pandas['seconds'] / csv['seconds']:.1f} logs_vs_loop={loop['seconds'] / logs['seconds']:.1f} "
        f"peak_mb={peak:.0f} peak_mb_half={peak_half:.0f} csv_rows_per_s={csv['rows'] / csv['seconds']:.0f} "
        f"log_lines_per_s={logs['rows'] / logs['seconds']:.0f}"
    )


if __name__ == "__main__":
    entry_point(CASES, main)

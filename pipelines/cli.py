"""The `plantlake` command: check, run, status, maintain, catalog, ui and init, each with `--json`.

Runs execute in this process against the Dagster instance in $DAGSTER_HOME (by default beside
the lake), as the demo does, so `plantlake ui` shows them. Every command exits non-zero when
what it did failed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import duckdb
from rich.console import Console

from plantlake.config import ConfigError, PlantlakeConfig, load_config
from plantlake.lake.catalog import open_catalog
from plantlake.lake.layout import Lake
from plantlake.pipelines import status as table_status
from plantlake.pipelines.checks import check_sources
from plantlake.pipelines.demo import bundled_server, local_instance
from plantlake.pipelines.progress import run_with_progress
from plantlake.pipelines.starter import STARTER_YAML

console = Console()


def _emit(as_json: bool, payload: Any, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=str))
    else:
        for line in lines:
            console.print(line, highlight=False, soft_wrap=True)


def _config(path: str | None) -> PlantlakeConfig:
    try:
        return load_config(path)
    except (ConfigError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None


@click.group()
@click.option("--config", "config_path", default=None, help="the YAML (default: $PLANTLAKE_CONFIG or plantlake.yaml)")
@click.pass_context
def main(context: click.Context, config_path: str | None) -> None:
    """plantlake: one sovereign lake of a plant's ERP, OPC-UA, log and supplier data."""
    context.obj = config_path


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def init(folder: Path) -> None:
    """Write a commented starter plantlake.yaml for a new site into FOLDER."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "plantlake.yaml"
    if target.exists():
        raise click.ClickException(f"{target} exists already; remove it or choose another folder")
    target.write_text(STARTER_YAML, encoding="utf-8")
    (folder / "models").mkdir(exist_ok=True)
    console.print(f"wrote {target}: fill in the sources, then run `plantlake --config {target} check`")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def check(config_path: str | None, as_json: bool) -> None:
    """Validate the YAML and connect to every source: one line per source and table."""
    config = _config(config_path)
    with bundled_server(config):
        findings = check_sources(config)
    lines = [f"{'[green]ok[/]  ' if f.ok else '[red]FAIL[/]'} {f.source:<22} {f.item:<28} {f.detail}" for f in findings]
    _emit(as_json, [f.as_dict() for f in findings], lines)
    if not all(finding.ok for finding in findings):
        sys.exit(1)


@main.command()
@click.option("--select", "selection", multiple=True, help="asset keys to run, e.g. silver/erp_products (default: all)")
@click.option("--job", default="refresh_all", show_default=True, help="the job to run")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def run(config_path: str | None, selection: tuple[str, ...], job: str, as_json: bool) -> None:
    """Run a job (every asset, or --select) with live progress: steps, rows, values per second."""
    config = _config(config_path)
    with bundled_server(config):
        outcome = run_with_progress(config, local_instance(config), job, list(selection), quiet=as_json)
    lines = [f"run {outcome['run_id']} {'succeeded' if outcome['success'] else '[red]FAILED[/]'}"]
    lines += [f"  {name}: {detail}" for name, detail in outcome["failed_steps"].items()]
    _emit(as_json, outcome, lines)
    if not outcome["success"]:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def status(config_path: str | None, as_json: bool) -> None:
    """Per table: freshness, last update, quality, quarantine; the last run and the next schedule tick."""
    config = _config(config_path)
    found = table_status.collect(config, local_instance(config))
    _emit(as_json, found, table_status.describe(found))
    if found["tables_stale"] or found["last_run"].get("status") == "FAILURE":
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def maintain(config_path: str | None, as_json: bool) -> None:
    """Run the maintenance job now: compaction, checkpoints, log cleanup and vacuum."""
    config = _config(config_path)
    outcome = run_with_progress(config, local_instance(config), "maintenance", [], quiet=as_json)
    _emit(as_json, outcome, [f"maintenance {'succeeded' if outcome['success'] else '[red]FAILED[/]'}"])
    if not outcome["success"]:
        sys.exit(1)


@main.command()
@click.option("--open", "open_it", is_flag=True, help="open the HTML catalog in a browser")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_obj
def catalog(config_path: str | None, open_it: bool, as_json: bool) -> None:
    """Rebuild catalog.duckdb and the quality report from the lake as it is; print where they are."""
    config = _config(config_path)
    outcome = run_with_progress(config, local_instance(config), "publish", [], quiet=as_json)
    lake = Lake.from_config(config.lake)
    places = {
        "catalog": str(lake.catalog_file),
        "html": str(lake.catalog_page),
        "quality": str(lake.data_docs_dir / "index.html"),
    }
    _emit(as_json, {**outcome, **places}, [f"{name:<8} {place}" for name, place in places.items()])
    if open_it and Path(places["html"]).exists():
        webbrowser.open(Path(places["html"]).as_uri())
    if not outcome["success"]:
        sys.exit(1)


@main.command()
@click.argument("query", required=False)
@click.option("--json", "as_json", is_flag=True, help="rows as JSON objects")
@click.pass_obj
def sql(config_path: str | None, query: str | None, as_json: bool) -> None:
    """Query the catalog's tables with DuckDB: QUERY once, or a prompt (statements end with ';').

    Works the same for a lake in object storage: the tables are read through the lake's own S3
    settings, with no DuckDB extension to download.
    """
    lake = Lake.from_config(_config(config_path).lake)
    try:
        connection = open_catalog(lake)
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from None
    with connection:
        if query is not None:
            _show(connection, query, as_json)
            return
        console.print(f"[bold]plantlake sql[/] on {lake.root}: end a statement with ';', Ctrl-D to leave")
        for statement in _statements():
            _show(connection, statement, as_json)


def _statements() -> Iterator[str]:
    """Statements typed at the prompt, each once its closing ';' is in."""
    pending: list[str] = []
    while True:
        try:
            line = input("plantlake> " if not pending else "      ...> ")
        except EOFError:
            return
        pending.append(line)
        if line.rstrip().endswith(";"):
            yield "\n".join(pending)
            pending = []


def _show(connection: duckdb.DuckDBPyConnection, query: str, as_json: bool) -> None:
    try:
        result = connection.sql(query)
    except duckdb.Error as error:
        raise click.ClickException(str(error)) from None
    if result is None:
        return
    if as_json:
        click.echo(json.dumps(result.to_arrow_table().to_pylist(), indent=2, default=str))
    else:
        result.show(max_width=10_000, max_rows=10_000, max_col_width=80)


@main.command()
@click.option("--host", default=lambda: os.environ.get("PLANTLAKE_UI_HOST", "127.0.0.1"), show_default="127.0.0.1")
@click.option("--port", default=lambda: int(os.environ.get("PLANTLAKE_UI_PORT", "3000")), show_default="3000")
@click.pass_obj
def ui(config_path: str | None, host: str, port: int) -> None:
    """Start the Dagster UI on HOST:PORT for this code location (schedules and sensors need `dagster-daemon run`)."""
    config = _config(config_path)
    local_instance(config)  # sets DAGSTER_HOME beside the lake when it is not set
    webserver = shutil.which("dagster-webserver", path=str(Path(sys.executable).parent)) or "dagster-webserver"
    # the checkout's workspace.yaml names the code location `plantlake`; elsewhere the installed module
    location = (
        ["-w", "workspace.yaml"] if Path("workspace.yaml").is_file() else ["-m", "plantlake.pipelines.definitions"]
    )
    arguments = [webserver, "-h", host, "-p", str(port), *location]
    if config_path:
        os.environ["PLANTLAKE_CONFIG"] = config_path
    os.execv(arguments[0], arguments)

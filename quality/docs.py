"""GX Data Docs for the lake's silver and gold tables, built under the lake root, kept offline.

Building docs validates each table once more in a file-backed GX project, so it runs
nightly or on demand, not on every small ingestion.

GX's pages load scripts and styles from public CDNs and a logo from a public bucket with
the project's id in its address. An on-prem lake must not call out when someone opens a
report, so every page is rewritten to reference nothing outside the site, and plantlake
writes its own self-contained `index.html` beside the GX site as the entry point.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from plantlake.quality.expectations import gx_context, gx_suite
from plantlake.quality.suites import Expect

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
SAMPLE_ROWS = 50_000  # per table and night; every row was validated when it was merged
KEEP_RUNS = 7  # validation runs kept per table in the GX site: a week of nights
_EXTERNAL_SCRIPT = re.compile(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>', re.IGNORECASE)
_EXTERNAL_LINK = re.compile(r'<link[^>]*\shref="https?://[^"]*"[^>]*/?>', re.IGNORECASE)
_EXTERNAL_IMAGE = re.compile(r'src="https?://[^"]*logo-long\.png[^"]*"', re.IGNORECASE)
# what is left: links to GX's site, docs and newsletter (kept as plain text), a logo as a CSS background (none)
_EXTERNAL_ATTRIBUTE = re.compile(r'\s(?:href|src)="(?:https?:)?//[^"]*"', re.IGNORECASE)
_EXTERNAL_CSS_URL = re.compile(r"url\(\s*['\"]?(?:https?:)?//[^)]*\)", re.IGNORECASE)


@dataclass(frozen=True)
class TableReport:
    table: str
    success: bool
    rows: int  # rows validated
    expectations: list[dict[str, Any]]
    total_rows: int = 0  # rows of the table's version: more than `rows` when a sample was validated
    version: int = -1


@dataclass(frozen=True)
class DocsTable:
    """A table to report on: its current version (a dataset), which version that is, and its suite."""

    data: ds.Dataset
    version: int
    suite: list[Expect]
    # the newest result of each SQL check over the whole table: name -> (passed, what it found)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """Changes when the table or its suite does: an unchanged table keeps its last report."""
        names = [expect.name for expect in self.suite]  # not the bounds: "tomorrow" moves every second
        return hashlib.sha256(json.dumps([self.version, names]).encode()).hexdigest()[:16]


def build_data_docs(project_dir: Path, tables: dict[str, DocsTable]) -> Path:
    """Validate each changed table (up to SAMPLE_ROWS rows), write GX Data Docs and plantlake's index.

    A table whose version and suite are those of its last report is not validated again: its
    report stands, and with no table changed the GX site is left as it is. The index is
    rewritten every time, so it always says when it was last built.
    """
    reports_dir = project_dir / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    reports, changed = [], {}
    for name, table in sorted(tables.items()):
        kept = _kept_report(reports_dir / f"{name}.json", table.fingerprint())
        if kept is None:
            changed[name] = table
        else:
            reports.append(kept)
    site = project_dir / "gx" / "uncommitted" / "data_docs" / "local_site"
    if changed:
        fresh = _validate(project_dir, changed)
        for report in fresh:
            payload = {"fingerprint": changed[report.table].fingerprint(), "report": asdict(report)}
            (reports_dir / f"{report.table}.json").write_text(json.dumps(payload), encoding="utf-8")
            _remember(reports_dir / f"{report.table}.history.jsonl", report)
        reports += fresh
    for stale in {path.stem for path in reports_dir.glob("*.json")} - set(tables):  # tables no longer in the lake
        (reports_dir / f"{stale}.json").unlink()
    index = project_dir / "index.html"
    history = {name: _history(reports_dir / f"{name}.history.jsonl") for name in tables}
    checks = {name: table.checks for name, table in tables.items()}
    ordered = sorted(reports, key=lambda report: report.table)
    index.write_text(render_index(ordered, site, checks, history), encoding="utf-8")
    return index


KEEP_HISTORY = 30  # validations remembered per table in the report


def _remember(path: Path, report: TableReport) -> None:
    """Add this validation to the table's history (the newest KEEP_HISTORY)."""
    entry = {
        "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": report.version,
        "success": report.success,
        "failed": sum(1 for e in report.expectations if not e["success"]),
        "rows": report.rows,
    }
    lines = [*_history(path), entry][-KEEP_HISTORY:]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def _history(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _kept_report(path: Path, fingerprint: str) -> TableReport | None:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return TableReport(**stored["report"]) if stored.get("fingerprint") == fingerprint else None


def _validate(project_dir: Path, tables: dict[str, DocsTable]) -> list[TableReport]:
    """Validate `tables` in the GX project on disk and render only their new pages, once.

    Results are stored as one run, so the site builder renders that run's pages and the
    suites' pages only; the pages of runs kept from earlier nights stand as they are.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    context = _project(project_dir / "gx")
    source = context.data_sources.add_or_update_pandas("plantlake")
    run_id = RunIdentifier(run_time=datetime.now(UTC))
    reports = []
    for name, table in sorted(tables.items()):
        frame = table.data.head(SAMPLE_ROWS).to_pandas()
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole_table")
        suite = context.suites.add_or_update(gx_suite(name, table.suite, table.data.schema))
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        outcome = definition.run(batch_parameters={"dataframe": frame}, run_id=run_id)
        reports.append(_report(name, len(frame), outcome, table.data.count_rows(), table.version))
    site = project_dir / "gx" / "uncommitted" / "data_docs" / "local_site"
    prune_history(project_dir / "gx" / "uncommitted" / "validations", site / "validations", KEEP_RUNS)
    fresh = [key for key in context.validation_results_store.list_keys() if key.run_id == run_id]
    context.build_data_docs(resource_identifiers=fresh + [ExpectationSuiteIdentifier(name) for name in tables])
    keep_offline(site)
    list_offline(site)
    return reports


def _project(root: Path) -> Any:
    """The GX project under `root`, its stores on disk, its configuration in memory.

    A file-backed context reads its YAML again on nearly every call (hundreds of times a
    night); this one keeps the same stores and site layout without doing so.
    """
    from great_expectations.data_context.types.base import DataContextConfig, FilesystemStoreBackendDefaults

    config = DataContextConfig(store_backend_defaults=FilesystemStoreBackendDefaults(root_directory=str(root)))
    return gx_context(mode="ephemeral", project_config=config)


def prune_history(results: Path, pages: Path, keep: int) -> int:
    """Keep the newest `keep` validation runs of each table, their stored results and their pages.

    GX keeps every run's results and renders a page for each, so the report would otherwise
    grow every night for ever, and so would the time it takes to build. Runs are folders named
    by their UTC time, so the newest sort last.
    """
    removed = 0
    for folder in {run.parent for run in results.glob("*/*/*/*") if run.is_dir()}:
        for old in sorted(path.name for path in folder.iterdir() if path.is_dir())[:-keep]:
            shutil.rmtree(folder / old)
            shutil.rmtree(pages / folder.relative_to(results) / old, ignore_errors=True)
            removed += 1
    return removed


def _report(name: str, rows: int, validation: Any, total_rows: int, version: int) -> TableReport:
    expectations = []
    for item in validation.results:
        config = item.expectation_config
        outcome = item.result or {}
        expectations.append(
            {
                "expectation": config.meta.get("plantlake", config.type),
                "success": bool(item.success),
                "unexpected": outcome.get("unexpected_count", 0) or 0,
                "unexpected_percent": outcome.get("unexpected_percent") or 0.0,
                "examples": [str(value) for value in (outcome.get("partial_unexpected_list") or [])[:5]],
            }
        )
    return TableReport(name, bool(validation.success), rows, expectations, total_rows, version)


def keep_offline(site: Path) -> None:
    """Drop every reference to a public host from the GX pages and styles; point the logo at the site's copy."""
    for page in [*site.rglob("*.html"), *site.rglob("*.css")]:
        text = page.read_text(encoding="utf-8")
        logo = os.path.relpath(site / "static" / "images" / "logo-long.png", page.parent)
        cleaned = _EXTERNAL_IMAGE.sub(f'src="{logo}"', _EXTERNAL_LINK.sub("", _EXTERNAL_SCRIPT.sub("", text)))
        cleaned = _EXTERNAL_CSS_URL.sub("none", _EXTERNAL_ATTRIBUTE.sub("", cleaned))
        if cleaned != text:
            page.write_text(cleaned, encoding="utf-8")


def _status(report: TableReport) -> tuple[str, str]:
    """The word for a table's result and its style: a table with no expectations has passed nothing."""
    if not report.expectations:
        return "none", "none"
    return ("passed", "ok") if report.success else ("failed", "bad")


def _coverage(report: TableReport) -> str:
    if report.total_rows > report.rows:
        return (
            f"a sample: the first {report.rows:,} of {report.total_rows:,} rows validated again (every row was "
            "validated when it was merged)"
        )
    return f"all {report.rows:,} rows validated"


def _checks_table(checks: dict[str, tuple[bool, str]]) -> str:
    if not checks:
        return "<p>SQL checks over the whole table: none</p>"
    rows = "".join(
        f"<tr class={'ok' if passed else 'bad'}><td>{html.escape(name)}</td><td>{'passed' if passed else 'failed'}"
        f"</td><td>{html.escape(found)}</td></tr>"
        for name, (passed, found) in sorted(checks.items())
    )
    header = "<tr><th>check</th><th>result</th><th>found</th></tr>"
    return f"<p>SQL checks over the whole table</p><table>{header}{rows}</table>"


def _history_table(history: list[dict[str, Any]]) -> str:
    if len(history) < 2:
        return ""
    rows = "".join(
        f"<tr class={'ok' if h['success'] else 'bad'}><td>{html.escape(str(h['at']))}</td><td>{h['version']}</td>"
        f"<td>{'passed' if h['success'] else 'failed'}</td><td>{h['failed']}</td><td>{h['rows']:,}</td></tr>"
        for h in reversed(history[-10:])
    )
    return (
        "<p>History (newest first)</p><table><tr><th>validated</th><th>table version</th><th>result</th>"
        f"<th>expectations failed</th><th>rows</th></tr>{rows}</table>"
    )


_LISTED = re.compile(r"<!-- plantlake: offline list -->.*<!-- /plantlake -->", re.DOTALL)


def list_offline(site: Path) -> None:
    """Write into GX's index a plain list of every validation page: GX fills its own table with
    scripts from a CDN, so offline its index would list nothing."""
    index = site / "index.html"
    if not index.exists():
        return
    pages = sorted(site.glob("validations/**/*.html"), reverse=True)  # run folders are UTC times: newest first
    items = "".join(
        f"<li><a href='{html.escape(page.relative_to(site).as_posix())}'>"
        f"{html.escape(' / '.join(page.relative_to(site / 'validations').parts[:-1]))}</a></li>"
        for page in pages
    )
    block = (
        "<!-- plantlake: offline list --><div class='container'><h3>Validation results</h3>"
        f"<ul>{items}</ul></div><!-- /plantlake -->"
    )
    text = _LISTED.sub("", index.read_text(encoding="utf-8"))
    index.write_text(text.replace("</body>", block + "</body>", 1), encoding="utf-8")


def render_index(
    reports: list[TableReport],
    site: Path,
    checks: dict[str, dict[str, tuple[bool, str]]] | None = None,
    history: dict[str, list[dict[str, Any]]] | None = None,
) -> str:
    """One self-contained page: per table each expectation, how many rows failed, examples; the SQL
    checks over the whole table; its recent history."""
    checks, history = checks or {}, history or {}
    sections = []
    for report in reports:
        rows = "".join(
            f"<tr class={'ok' if e['success'] else 'bad'}><td>{html.escape(e['expectation'])}</td>"
            f"<td>{'passed' if e['success'] else 'failed'}</td><td>{e['unexpected']}</td>"
            f"<td>{e['unexpected_percent']:.2f}%</td><td>{html.escape(', '.join(e['examples']))}</td></tr>"
            for e in report.expectations
        )
        status, style = _status(report)
        expectations = (
            f"<p>{_coverage(report)}</p><table><tr><th>expectation</th><th>result</th>"
            f"<th>unexpected rows</th><th>share</th><th>examples</th></tr>{rows}</table>"
            if report.expectations
            else "<p>Expectations: none</p>"
        )
        sections.append(
            f"<h2>{html.escape(report.table)} <span class={style}>{status}</span></h2>{expectations}"
            f"{_checks_table(checks.get(report.table, {}))}{_history_table(history.get(report.table, []))}"
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    gx_index = os.path.relpath(site / "index.html", site.parents[3])
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>plantlake data quality</title><style>"
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.ok{color:#17702b}.bad{color:#b3261e}"
        ".none{color:#666}"
        f"</style></head><body><h1>plantlake data quality</h1><p>Built {stamp}. Full Great Expectations "
        f"reports: <a href='{gx_index}'>Data Docs</a>. Rows kept out of the lake are in "
        "<code>quarantine.rows</code> of catalog.duckdb.</p>" + "".join(sections) + "</body></html>"
    )

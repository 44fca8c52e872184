"""`catalog/index.html` under the lake root: the catalog as one page a person reads in a browser.

Written from `catalog.duckdb` as just built, so the page and the file always agree. The page
is one self-contained file, opened from disk on a plant network with no internet: inline
CSS, a few lines of inline script for the search box, the lineage as inline SVG, and no
address outside the page (no CDN, no web font). Every text from the lake is escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote as url_quote

import duckdb

from plantlake.lake import lineage
from plantlake.lake.catalog_comments import BOOKKEEPING

LAYER_ORDER = ("bronze", "silver", "gold", "quarantine", "meta")
_NOT_NOTES = {"name", "type", "description", "unit", "personal_data"}  # own columns of the table
_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 2em 3em;color:#222;line-height:1.4}
header{position:sticky;top:0;background:#fff;padding:.6em 0;border-bottom:1px solid #ddd;z-index:1}
#search{width:28em;max-width:90%;padding:.4em;font-size:1em}
table{border-collapse:collapse;margin:.4em 0 1em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}section.table{border-top:2px solid #ccc;padding-top:.4em;margin-top:1.6em}
.badge{font-size:.75em;padding:1px 6px;border-radius:8px;margin-left:.4em;background:#eee;vertical-align:middle}
.good{background:#d8f0dc;color:#17702b}.bad{background:#f9dedc;color:#b3261e}.warn{background:#fff1c7;color:#7a5a00}
.pd{background:#e8def8;color:#4a2c8f}pre{background:#f6f6f6;padding:.5em;overflow-x:auto}
.lineage-box{overflow-x:auto;border:1px solid #ddd;padding:4px}
svg.lineage text{font-size:12px;font-family:system-ui,sans-serif}svg.lineage .header{font-weight:bold}
svg.lineage rect{fill:#fafafa;stroke:#888}svg.lineage .source rect{fill:#eee}
svg.lineage .bronze rect{fill:#f3e2cf}svg.lineage .silver rect{fill:#e9edf2}svg.lineage .gold rect{fill:#fbefc0}
svg.lineage .edge{fill:none;stroke:#999;stroke-width:1.2}ul.toc{columns:3;list-style:none;padding:0}
"""
# The search box keeps the tables whose name, description or columns hold every word typed;
# `?q=word` in the page's address opens it filtered.
_SCRIPT = """
const box = document.getElementById("search");
function filter() {
  const words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
  for (const item of document.querySelectorAll("[data-search]")) {
    item.hidden = !words.every((word) => item.dataset.search.includes(word));
  }
}
box.addEventListener("input", filter);
box.value = new URLSearchParams(location.search).get("q") || "";
filter();
"""


def render(connection: duckdb.DuckDBPyConnection) -> str:
    """The page for the catalog open on `connection` (its `catalog` table, views and quality results)."""
    cursor = connection.execute("SELECT * FROM catalog")
    names = [column[0] for column in cursor.description]
    entries = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    entries.sort(key=lambda e: (LAYER_ORDER.index(e["layer"]) if e["layer"] in LAYER_ORDER else 9, e["table_name"]))
    here = "database_name = current_database() AND NOT internal"
    listed = connection.execute(f"SELECT schema_name, view_name FROM duckdb_views() WHERE {here}").fetchall()
    views = {f"{schema}.{view}" for schema, view in listed}
    graph = lineage.lineage({e["qualified_name"]: (e["layer"], e["source"], e["upstream"] or ()) for e in entries})
    checks = _checks(connection)
    known = {e["qualified_name"] for e in entries}
    toc = "".join(
        f'<li data-search="{_search_text(e)}">{_link(e["qualified_name"], known)}{_freshness_badge(e)}</li>'
        for e in entries
    )
    sections = "".join(_section(e, graph, checks.get(e["qualified_name"], []), views, known) for e in entries)
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>plantlake catalog</title><style>{_STYLE}</style></head><body>"
        '<header><h1>plantlake catalog</h1><input id="search" type="search" autofocus '
        'placeholder="Search tables by name, description or column" aria-label="search tables"></header>'
        f"<p>Built {built}: {len(entries)} tables. Query them with DuckDB in <code>catalog.duckdb</code> beside "
        "this folder, e.g. <code>duckdb -readonly catalog.duckdb</code> in the lake folder.</p>"
        f'<h2>Lineage</h2><div class="lineage-box">{lineage.svg(graph)}</div>'
        f'<h2>Tables</h2><ul class="toc">{toc}</ul>{sections}<script>{_SCRIPT}</script></body></html>'
    )


def _checks(connection: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Per table, every result `meta.quality_results` holds, newest first (none if it is not there yet)."""
    present = connection.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'meta' AND table_name = 'quality_results'"
    ).fetchone()
    if not present or not present[0]:
        return {}
    found: dict[str, list[tuple[Any, ...]]] = {}
    rows = connection.execute(
        "SELECT table_name, check_name, kind, success, checked_at, details FROM meta.quality_results "
        "ORDER BY table_name, checked_at DESC, check_name"
    ).fetchall()
    for row in rows:
        found.setdefault(row[0], []).append(row[1:])
    return found


def _search_text(entry: Mapping[str, Any]) -> str:
    columns = json.loads(entry["columns"] or "[]")
    words = [entry["qualified_name"], entry["description"] or ""]
    words += [f"{c['name']} {c.get('description', '')}" for c in columns]
    return escape(" ".join(words).lower())


def _link(node: str, known: set[str]) -> str:
    if node not in known:
        return f"<span>{escape(node)}</span>"
    return f'<a href="#{escape(url_quote(lineage.anchor(node), safe=""))}">{escape(node)}</a>'


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{escape(text)}</span>'


def _freshness_badge(entry: Mapping[str, Any]) -> str:
    return _badge(entry["freshness"], "good" if entry["freshness"] == "fresh" else "bad")


def _quality_badge(status: str) -> str:
    kind = {"passed": "good", "not checked": ""}.get(status, "warn" if status.startswith("warned") else "bad")
    return _badge(status, kind)


def _section(
    entry: Mapping[str, Any], graph: lineage.Lineage, checks: list[tuple[Any, ...]], views: set[str], known: set[str]
) -> str:
    name = entry["qualified_name"]
    status = entry["quality_status"] or "not checked"
    parts = [
        f'<section class="table" id="{escape(lineage.anchor(name))}" data-search="{_search_text(entry)}">',
        f"<h2>{escape(name)}{_freshness_badge(entry)}{_quality_badge(status)}</h2>",
        f"<p>{escape(entry['description'] or 'No description yet.')}</p>",
        "<table>",
        _row("query as", ", ".join(f"<code>{escape(view)}</code>" for view in _views_of(entry, views))),
        _row("owner", escape(entry["owner"] or "")),
        _row("source", escape(entry["source"] or "")),
        _row("rows", f"{entry['row_count']:,}"),
        _row("last update", _time(entry["last_update"])),
        _row("freshness", escape(entry["freshness"]) + _error(entry)),
        _row("last good refresh", _time(entry["last_good_refresh"])),
        _row("quality", escape(status)),
        _row("rows in quarantine", f"{entry['quarantined_rows']:,}"),
        "</table>",
        _lineage(name, entry, graph, known),
        _columns(json.loads(entry["columns"] or "[]")),
    ]
    if len(checks) > 1:
        parts.append(_check_history(checks))
    parts.append(
        "<h3>Sample queries</h3>" + "".join(f"<pre><code>{escape(q)}</code></pre>" for q in queries(entry, views))
    )
    parts.append("</section>")
    return "".join(parts)


def _views_of(entry: Mapping[str, Any], views: set[str]) -> list[str]:
    """The table's own view, and beside it its live rows or its versions where the catalog has them."""
    layer, name = entry["layer"], entry["table_name"]
    beside = [
        sql_name(layer, f"{name}{suffix}") for suffix in ("_live", "_versions") if f"{layer}.{name}{suffix}" in views
    ]
    return [sql_name(layer, name), *beside]


def _row(label: str, value: str) -> str:
    return f"<tr><th>{escape(label)}</th><td>{value}</td></tr>"


def _time(value: datetime | None) -> str:
    return "never" if value is None else escape(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _error(entry: Mapping[str, Any]) -> str:
    return f": {escape(entry['last_error'])}" if entry["last_error"] else ""


def _lineage(name: str, entry: Mapping[str, Any], graph: lineage.Lineage, known: set[str]) -> str:
    def links(nodes: list[str]) -> str:
        return ", ".join(_link(node, known) for node in nodes) or "none"

    if name not in graph.layers:  # quarantine and meta tables: written by the steps, not drawn
        return f"<h3>Lineage</h3><table>{_row('written for', links(sorted(entry['upstream'] or [])))}</table>"
    return (
        f"<h3>Lineage</h3><table>{_row('built from', links(graph.parents(name)))}"
        f"{_row('all upstream', links(graph.ancestors(name)))}"
        f"{_row('downstream', links(graph.descendants(name)))}</table>"
    )


def _columns(columns: list[dict[str, str]]) -> str:
    rows = []
    for column in columns:
        notes = "; ".join(
            f"{key.replace('_', ' ')}: {value}" for key, value in sorted(column.items()) if key not in _NOT_NOTES
        )
        personal = _badge("personal data", "pd") if column.get("personal_data") == "true" else ""
        description = column.get("description") or BOOKKEEPING.get(column["name"], "")
        rows.append(
            f"<tr><td><code>{escape(column['name'])}</code></td><td>{escape(column['type'])}</td>"
            f'<td class="unit">{escape(column.get("unit", ""))}</td><td>{escape(description)}</td>'
            f"<td>{personal}</td><td>{escape(notes)}</td></tr>"
        )
    return (
        "<h3>Columns</h3><table><tr><th>column</th><th>type</th><th>unit</th><th>description</th>"
        f"<th>personal data</th><th>notes</th></tr>{''.join(rows)}</table>"
    )


def _check_history(checks: list[tuple[Any, ...]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(check)}</td><td>{escape(kind)}</td>"
        f"<td>{_badge('passed', 'good') if ok else _badge('failed', 'bad')}</td>"
        f"<td>{_time(at)}</td><td>{escape((details or '')[:300])}</td></tr>"
        for check, kind, ok, at, details in checks
    )
    return (
        "<h3>Quality checks</h3><table><tr><th>check</th><th>kind</th><th>result</th><th>checked</th>"
        f"<th>details</th></tr>{rows}</table>"
    )


def sql_name(*parts: str) -> str:
    """A dotted SQL name, each part quoted only where it must be."""
    return ".".join(
        part if re.fullmatch(r"[a-z_][a-z0-9_]*", part) else '"' + part.replace('"', '""') + '"' for part in parts
    )


def queries(entry: Mapping[str, Any], views: set[str]) -> list[str]:
    """Two queries to start from: the first rows (live ones where the table keeps deleted rows), rows per day."""
    layer, name = entry["layer"], entry["table_name"]
    view = sql_name(layer, name)
    live = f"{layer}.{name}_live" in views
    first = f"SELECT * FROM {sql_name(layer, name + '_live') if live else view} LIMIT 10;"
    times = [
        column["name"]
        for column in json.loads(entry["columns"] or "[]")
        if column["type"].startswith(("timestamp", "date")) and not column["name"].startswith("_")
    ]
    if not times:
        return [first, f"SELECT count(*) AS rows FROM {view};"]
    day = f"date_trunc('day', {sql_name(times[0])})"
    return [first, f"SELECT {day} AS day, count(*) AS rows\nFROM {view}\nGROUP BY day ORDER BY day DESC LIMIT 7;"]

"""The catalog people read: comments on everything in catalog.duckdb, owners and lineage, live views,
the meta tables from the first build on, and HTML pages that reference nothing outside the lake."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import duckdb
import pytest
from catalog_lake import GOLD, UNIT, build_small_lake

from plantlake.lake import delta, drift, lineage, runlog
from plantlake.lake.catalog import TableInfo, build_catalog
from plantlake.lake.layout import Lake
from plantlake.quality.docs import DocsTable, build_data_docs
from plantlake.quality.suites import Expect

pytestmark = pytest.mark.unit


def test_every_table_view_and_column_has_a_comment_and_the_catalog_knows_owner_and_upstream(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    build_catalog(lake, build_small_lake(lake))
    with duckdb.connect(str(lake.catalog_file), read_only=True) as connection:
        objects = connection.execute(
            "SELECT schema_name || '.' || table_name, comment FROM duckdb_tables() WHERE NOT internal UNION ALL "
            "SELECT schema_name || '.' || view_name, comment FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
        columns = connection.execute(
            "SELECT schema_name || '.' || table_name || '.' || column_name, comment FROM duckdb_columns() "
            "WHERE NOT internal"
        ).fetchall()
        catalog = {
            row[0]: row[1:]
            for row in connection.execute("SELECT qualified_name, owner, upstream, row_count FROM catalog").fetchall()
        }
        live = connection.execute("SELECT * FROM silver.erp_customers_live").fetchall()
        live_columns = [row[0] for row in connection.execute("DESCRIBE silver.erp_customers_live").fetchall()]
        meta = {
            name: [row[0] for row in connection.execute(f"DESCRIBE meta.{name}").fetchall()]
            for name in ("run_failures", "schema_changes")
        }
        storage = connection.execute("SELECT tags['storage_version'] FROM duckdb_databases() WHERE NOT internal")
        stored_as = storage.fetchone()
    comments = dict(objects) | dict(columns)
    assert all(comments.values()), [name for name, comment in comments.items() if not comment]
    assert {"silver.erp_customers_live", "gold.machine_hour_features_versions", "main.catalog"} <= set(comments)
    assert "unit: degC" in comments["gold.machine_hour_features.temperature_mean"]
    assert "Mean temperature of the hour" in comments["gold.machine_hour_features_versions.temperature_mean"]
    assert "personal data" in comments["silver.erp_customers.name"]
    assert "source type: VARCHAR(120)" in comments["bronze.erp_customers.name"]
    assert "deleted in the source" in comments["silver.erp_customers._deleted_at"]
    assert comments["silver.sensor_readings.value"] == "Column value of type double"  # nothing known: generated
    assert "Live rows" in comments["silver.erp_customers_live"]

    assert catalog[GOLD][:2] == ("team:process-engineering", ["silver.erp_customers", "silver.sensor_readings"])
    assert catalog["silver.erp_customers"][:2] == ("team:data-engineering", ["bronze.erp_customers"])
    assert catalog["meta.run_failures"][2] == catalog["meta.schema_changes"][2] == 0
    assert meta == {"run_failures": runlog.SCHEMA.names, "schema_changes": drift.SCHEMA.names}
    assert [row[:2] for row in live] == [(1, "Ada")]  # Bob was deleted in the source
    assert "_deleted_at" not in live_columns
    assert stored_as is not None and not str(stored_as[0]).startswith("v2")  # pinned: DuckDB 1.x opens it

    # a failure recorded later lands in the table the first build created
    runlog.record_failure(lake, "run-9", "refresh_all", {"step": "boom"}, "failed")
    assert delta.row_count(lake.table("meta", "run_failures")) == 1


def test_lineage_is_layered_from_the_source_system_to_gold_models_built_on_gold() -> None:
    graph = lineage.lineage(
        {
            "bronze.erp_orders": ("bronze", "erp:erp", ()),
            "silver.erp_orders": ("silver", "erp:erp", ("bronze.erp_orders",)),
            "gold.hourly": ("gold", "silver", ("silver.erp_orders",)),
            "gold.daily": ("gold", "silver", ("gold.hourly",)),
            "meta.run_failures": ("meta", "plantlake", ()),
        }
    )
    at = lineage.positions(graph)
    assert {node: column for node, (column, _) in at.items()} == {
        "erp:erp": 0,
        "bronze.erp_orders": 1,
        "silver.erp_orders": 2,
        "gold.hourly": 3,
        "gold.daily": 4,
    }
    assert graph.ancestors("gold.daily") == ["erp:erp", "bronze.erp_orders", "silver.erp_orders", "gold.hourly"]
    assert graph.descendants("bronze.erp_orders") == ["silver.erp_orders", "gold.daily", "gold.hourly"]
    drawn = lineage.svg(graph)
    assert drawn.count("<rect") == 5 and drawn.count('class="edge"') == 4 and 'href="#t-gold.daily"' in drawn


def test_the_catalog_page_shows_each_table_and_escapes_what_the_lake_holds(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    info = build_small_lake(lake)
    info["silver.sensor_readings"] = TableInfo("opcua:plant", "Readings <script>alert(1)</script> & more")
    build_catalog(lake, info)
    page = lake.catalog_page.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page and "Readings &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert page.count('<svg class="lineage"') == 1 and page.count("<script>") == 1  # the search box's
    gold = page[page.index(f'id="t-{GOLD}"') :].split("</section>")[0]
    assert f'<td class="unit">{UNIT}</td>' in gold and "team:process-engineering" in gold
    assert "SELECT * FROM silver.erp_customers_live LIMIT 10;" in page
    assert "personal data" in page[page.index('id="t-silver.erp_customers"') :].split("</section>")[0]
    with duckdb.connect(str(lake.catalog_file), read_only=True) as connection:
        columns = json.loads(
            connection.execute(f"SELECT columns FROM catalog WHERE qualified_name = '{GOLD}'").fetchone()[0]
        )
    assert {"name": "temperature_mean", "type": "double", "unit": UNIT}.items() <= columns[2].items()


LINKING = {"href", "src", "srcset", "action", "formaction", "poster", "data", "background", "xlink:href", "cite"}


class _References(HTMLParser):
    """Every address a page names: in attributes that load or link something, and in its CSS."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if value and name in LINKING:
                self.found.append(value)
            elif value and name == "style":
                self._css(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self._css(data)

    def _css(self, text: str) -> None:
        self.found += re.findall(r"url\(\s*['\"]?([^'\")]+)", text) + re.findall(r"@import\s+['\"]([^'\"]+)", text)


def _outside(reference: str, page: Path, root: Path) -> bool:
    parts = urlsplit(reference)
    if reference.startswith("#") or parts.scheme == "data":
        return False
    if parts.netloc or parts.scheme not in ("", "file"):
        return True  # a host: http:, https:, //host, or any other scheme
    if not parts.path:
        return False
    target = Path(unquote(parts.path))
    return not (target if target.is_absolute() else page.parent / target).resolve().is_relative_to(root.resolve())


def test_generated_pages_reference_nothing_outside_the_lake(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    build_catalog(lake, build_small_lake(lake))
    table = delta.load(lake.table("silver", "erp_customers"))
    build_data_docs(
        lake.data_docs_dir,
        {"silver.erp_customers": DocsTable(table.to_pyarrow_dataset(), table.version(), [Expect("not_null", "id")])},
    )
    pages = sorted(lake.local.rglob("*.html"))
    assert lake.catalog_page in pages and lake.data_docs_dir / "index.html" in pages and len(pages) > 3
    for page in pages:
        text = page.read_text(encoding="utf-8")
        parser = _References()
        parser.feed(text)
        assert parser.found, page  # the parser saw the page's links
        assert [ref for ref in parser.found if _outside(ref, page, lake.local)] == [], page
        assert not re.search(r"https?:", text, re.IGNORECASE), page


def test_quarantine_rows_say_where_their_file_is_now_and_counts_leave_out_deleted_rows(tmp_path: Path) -> None:
    """A supplier file is archived after its run: the path its quarantined row was read from is gone."""
    import pyarrow as pa

    from plantlake.lake import quarantine

    lake = Lake(tmp_path / "lake")
    info = build_small_lake(lake)
    dropped, archived = "/drop/acme/lieferung.csv", "/drop/acme/archive/lieferung.0ebf525a15.csv"
    rejected = quarantine.Rejection("silver.material_lots", "mapping", "bad lot", {"lot": "?"}, file=dropped, row="7")
    quarantine.write(lake, [rejected], "run-2")
    moved = pa.table({"sha256": ["0ebf"], "dropped_as": [dropped], "run_id": ["run-2"], "moved_to": [archived]})
    delta.append(lake.table("meta", "supplier_files"), moved)
    build_catalog(lake, info)
    with duckdb.connect(str(lake.catalog_file), read_only=True) as connection:
        files = dict(connection.execute("SELECT file, file_now FROM quarantine.rows").fetchall())
        counts = dict(connection.execute("SELECT qualified_name, (row_count, live_rows) FROM catalog").fetchall())
    assert files == {dropped: archived, "f.csv": "f.csv"}  # a row of no moved file keeps its path
    assert counts["silver.erp_customers"] == (2, 1)  # one customer was deleted in the source
    assert counts[GOLD] == (2, 1)  # two versions of one window

"""The quality report night after night: unchanged tables keep their report, the GX site keeps a week."""

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from plantlake.quality import docs
from plantlake.quality.suites import Expect

pytestmark = pytest.mark.unit

SUITE = [Expect("not_null", "id")]


def _runs(project: Path, table: str) -> list[str]:
    layer, name = table.split(".")
    folder = project / "gx" / "uncommitted" / "validations" / layer / name / "__none__"
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def _table(ids: list[int | None], version: int) -> docs.DocsTable:
    return docs.DocsTable(ds.dataset(pa.table({"id": pa.array(ids, pa.int64())})), version, SUITE)


def test_only_changed_tables_are_validated_again_and_each_keeps_its_newest_runs(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "quality_docs"
    docs.build_data_docs(project, {"silver.a": _table([1, 2], 1), "silver.b": _table([1, None], 1)})
    first = {name: _runs(project, name) for name in ("silver.a", "silver.b")}
    assert all(len(runs) == 1 for runs in first.values())
    index = (project / "index.html").read_text(encoding="utf-8")
    assert "silver.b" in index and "failed" in index  # b's null id is reported

    (project / "index.html").unlink()
    docs.build_data_docs(project, {"silver.a": _table([1, 2], 1), "silver.b": _table([1, 2], 2)})  # only b changed
    assert _runs(project, "silver.a") == first["silver.a"] and len(_runs(project, "silver.b")) == 2
    assert "silver.a" in (project / "index.html").read_text(encoding="utf-8")  # a's kept report is in the new index

    monkeypatch.setattr(docs, "KEEP_RUNS", 2)
    for version in range(3, 6):
        docs.build_data_docs(project, {"silver.a": _table([1, 2], 1), "silver.b": _table([1, 2], version)})
    assert len(_runs(project, "silver.b")) == 2
    pages = project / "gx" / "uncommitted" / "data_docs" / "local_site" / "validations" / "silver" / "b" / "__none__"
    assert sorted(path.name for path in pages.iterdir()) == _runs(project, "silver.b")


def test_the_report_says_what_it_sampled_shows_sql_checks_and_history_and_none_without_expectations(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(docs, "SAMPLE_ROWS", 3)
    project = tmp_path / "docs"
    checks = {"unique keys": (True, "0 duplicates"), "source row count": (False, "5 rows, the source has 6")}
    sampled = docs.DocsTable(ds.dataset(pa.table({"id": [1, 2, 3, 4, 5]})), 1, [Expect("not_null", "id")], checks)
    bare = docs.DocsTable(ds.dataset(pa.table({"node_id": ["a"]})), 1, [])
    docs.build_data_docs(project, {"silver.orders": sampled, "silver.opcua_tags": bare})
    corrected = docs.DocsTable(ds.dataset(pa.table({"id": [1, 2]})), 2, [Expect("not_null", "id")], checks)
    page = docs.build_data_docs(project, {"silver.orders": corrected, "silver.opcua_tags": bare}).read_text()
    orders, tags = page.split("<h2>silver.orders")[1], page.split("<h2>silver.opcua_tags")[1].split("<h2>")[0]
    assert (
        "class=none>none</span>" in tags
        and "Expectations: none" in tags
        and "SQL checks over the whole table: none" in tags
    )
    assert "all 2 rows validated" in orders
    assert "source row count</td><td>failed</td><td>5 rows, the source has 6" in orders
    assert orders.count("<tr class=ok><td>20") + orders.count("<tr class=bad><td>20") == 2  # two validations remembered
    first = docs.build_data_docs(tmp_path / "other", {"silver.orders": sampled}).read_text()
    assert "a sample: the first 3 of 5 rows validated again" in first


def test_the_gx_index_lists_every_validation_without_scripts(tmp_path: Path) -> None:
    project = tmp_path / "docs"
    docs.build_data_docs(project, {"silver.a": _table([1, 2], 1), "silver.b": _table([1, None], 1)})
    docs.build_data_docs(project, {"silver.a": _table([1, 2], 2), "silver.b": _table([1, None], 1)})
    index = (project / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").read_text()
    listed = index.split("<!-- plantlake: offline list -->")[1]
    assert index.count("<!-- plantlake: offline list -->") == 1
    assert listed.count("<li><a href='validations/silver/a/") == 2 and listed.count("validations/silver/b/") == 1

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

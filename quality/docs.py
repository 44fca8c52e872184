"""GX Data Docs for the lake's silver and gold tables, built under the lake root.

Building docs validates each table once more in a file-backed GX project, so it runs
nightly or on demand, not on every small ingestion.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.dataset as ds

from quality.expectations import gx_suite
from quality.suites import Expect

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
SAMPLE_ROWS = 200_000


def build_data_docs(project_dir: Path, tables: dict[str, tuple[ds.Dataset, list[Expect]]]) -> Path:
    """Validate each table (up to SAMPLE_ROWS rows) and write Data Docs; returns index.html."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(project_dir))
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_or_update_pandas("plantlake")
    for name, (data, suite) in sorted(tables.items()):
        frame = data.head(SAMPLE_ROWS).to_pandas()
        asset = source.add_dataframe_asset(name) if name not in source.get_asset_names() else source.get_asset(name)
        batches = asset.batch_definitions
        batch = batches[0] if batches else asset.add_batch_definition_whole_dataframe("whole_table")
        stored_suite = context.suites.add_or_update(gx_suite(name, suite, data.schema))
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=stored_suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(name=name, validation_definitions=[definition],
                          actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")])  # fmt: skip
        )
        checkpoint.run(batch_parameters={"dataframe": frame})
    context.build_data_docs()
    return project_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


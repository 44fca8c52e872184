"""The one resource every asset uses: the plantlake configuration and its lake."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property

import dagster as dg
from pydantic import Field

from plantlake.assets.worker import note_worker
from plantlake.config import PlantlakeConfig, load_config
from plantlake.lake.layout import Lake


class PlantlakeResource(dg.ConfigurableResource):
    """Where the YAML is; the same file the definitions were generated from."""

    config_path: str
    now: str | None = Field(
        default=None,
        description="the present a run assumes (ISO 8601 with offset); unset: "
        "the clock. For replaying a simulated plant night after night, not for production.",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.instance is not None and context.run_id is not None:
            note_worker(context.instance, context.run_id)

    @cached_property
    def config(self) -> PlantlakeConfig:
        return load_config(self.config_path)

    def present(self) -> datetime:
        return datetime.fromisoformat(self.now) if self.now else datetime.now(UTC)

    @property
    def lake(self) -> Lake:
        return Lake.from_config(self.config.lake)

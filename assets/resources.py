"""The one resource every asset uses: the plantlake configuration and its lake."""

from __future__ import annotations

from functools import cached_property

import dagster as dg

from assets.worker import note_worker
from lake.layout import Lake
from pipelines.config import PlantlakeConfig, load_config


class PlantlakeResource(dg.ConfigurableResource):
    """Where the YAML is; the same file the definitions were generated from."""

    config_path: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.instance is not None and context.run_id is not None:
            note_worker(context.instance, context.run_id)

    @cached_property
    def config(self) -> PlantlakeConfig:
        return load_config(self.config_path)

    @property
    def lake(self) -> Lake:
        return Lake(self.config.lake.root)

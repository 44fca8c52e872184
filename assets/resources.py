"""The one resource every asset uses: the plantlake configuration and its lake."""

from __future__ import annotations

from functools import cached_property

import dagster as dg

from lake.layout import Lake
from pipelines.config import PlantlakeConfig, load_config


class PlantlakeResource(dg.ConfigurableResource):
    """Where the YAML is; the same file the definitions were generated from."""

    config_path: str

    @cached_property
    def config(self) -> PlantlakeConfig:
        return load_config(self.config_path)

    @property
    def lake(self) -> Lake:
        return Lake(self.config.lake.root)

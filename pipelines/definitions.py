"""The code location `workspace.yaml` loads: everything generated from $PLANTLAKE_CONFIG or ./plantlake.yaml."""

from pipelines.config import load_config
from pipelines.factory import build_definitions

defs = build_definitions(load_config())

"""The code location `workspace.yaml` loads: everything generated from $PLANTLAKE_CONFIG or ./plantlake.yaml."""

from plantlake.config import load_config
from plantlake.pipelines.factory import build_definitions

defs = build_definitions(load_config())

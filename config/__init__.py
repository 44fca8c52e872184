"""plantlake's configuration: the models of the YAML and how it is loaded.

The lowest layer: every other folder may import it, and it imports none of them.
"""

from plantlake.config.plantlake import (
    ExecutionConfig,
    GoldConfig,
    LakeConfig,
    MaintenanceConfig,
    PlantlakeConfig,
    ScheduleConfig,
    SimulatorConfig,
    load_config,
    parse_config,
    substitute_env,
)
from plantlake.config.sources import (
    ColumnMapping,
    ConfigError,
    CsvOptions,
    DeleteDetection,
    ErpSource,
    ErpTable,
    LogSource,
    OpcuaSecurity,
    OpcuaSource,
    RowFilter,
    Sources,
    SupplierSource,
    TableExpectations,
)

__all__ = [
    "ColumnMapping",
    "ConfigError",
    "CsvOptions",
    "DeleteDetection",
    "ErpSource",
    "ErpTable",
    "ExecutionConfig",
    "GoldConfig",
    "LakeConfig",
    "LogSource",
    "MaintenanceConfig",
    "OpcuaSecurity",
    "OpcuaSource",
    "PlantlakeConfig",
    "RowFilter",
    "ScheduleConfig",
    "SimulatorConfig",
    "Sources",
    "SupplierSource",
    "TableExpectations",
    "load_config",
    "parse_config",
    "substitute_env",
]

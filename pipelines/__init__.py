"""Pipelines: the configuration, the Dagster definitions, the schedule, the sensor and the demo."""

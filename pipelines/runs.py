"""A night in this process: what the schedule and the sensors do in a deployment, one after the other."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
SILENT = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class Night:
    refresh: dg.ExecuteInProcessResult
    publish: dg.ExecuteInProcessResult | None  # only after a failed refresh

    @property
    def success(self) -> bool:
        return self.refresh.success and (self.publish is None or self.publish.success)


def refresh_and_publish(
    definitions: dg.Definitions, instance: dg.DagsterInstance, run_config: dict | None = None
) -> Night:
    """Run `refresh_all`, which publishes as its last steps; after a failure, `publish` (as the failure sensor does)."""
    config = QUIET if run_config is None else run_config
    refresh = definitions.resolve_job_def("refresh_all").execute_in_process(
        run_config=config, instance=instance, raise_on_error=False
    )
    if refresh.success:
        return Night(refresh, None)
    publish = definitions.resolve_job_def("publish").execute_in_process(
        run_config=config, instance=instance, raise_on_error=False
    )
    return Night(refresh, publish)

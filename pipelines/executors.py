"""The executor every job runs with, chosen in the YAML (`execution`), the same for every kind of run.

Scheduled, sensor and UI runs start a fresh process for the run; Dagster's default executor
then starts one more process per step, and each imports Dagster, pyarrow, DuckDB and GX
again, which costs more than most steps do. `in_process` (the default) runs the steps in
the run's own process, one after another. `multiprocess` runs steps in parallel, forked
from a server process that has plantlake imported once. `celery` sends each step as a task
to the Celery workers (`pipelines.celery_app`, on this machine or others) that listen on the
configured queue; the run's own process only hands out the steps and collects their events.

Whichever executor runs them, a step claims the Dagster pool of the table it writes
(`assets.factory.table_pool`) in the instance before it starts, so two steps that write the
same table never run at once, not even in two runs on two workers (two claims at once share no
slot: `pipelines.pool_storage`).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster._core.execution.retries import RetryMode  # not exported at the top; dagster_celery's executor uses it
from dagster_celery.executor import CELERY_CONFIG, CeleryExecutor

from plantlake.assets.worker import note_worker
from plantlake.config import ExecutionConfig

PRELOADED = ["plantlake.pipelines.factory"]


def celery_settings(execution: ExecutionConfig) -> dict[str, Any]:
    """The celery executor's config: the broker, the result backend and the queue the steps go to.

    The workers' app (`pipelines.celery_app`) is made from the same settings."""
    return {
        "broker": execution.broker,
        "backend": execution.backend,
        # the executor sends every step to its app's default queue
        "config_source": {"task_default_queue": execution.queue},
    }


class RunNotedCeleryExecutor(CeleryExecutor):
    """dagster-celery's executor that first notes the run's own process in the run's tags.

    The steps run in the workers, whose processes outlive the run; noted by the run's first
    step, a worker's process would stand for the run in the run launcher's health check. This
    process, which hands out the steps and waits for them, is the one that lives and dies
    with the run."""

    def execute(self, plan_context, execution_plan):  # untyped, as CeleryExecutor's
        note_worker(plan_context.instance, plan_context.dagster_run.run_id)
        return super().execute(plan_context, execution_plan)


@dg.executor(
    name="plantlake_celery",
    config_schema=CELERY_CONFIG,
    requirements=dg.multiple_process_executor_requirements(),
)
def _plantlake_celery(init_context: dg.InitExecutorContext) -> dg.Executor:
    config: dict[str, Any] = dict(init_context.executor_config)
    return RunNotedCeleryExecutor(  # as dagster_celery's celery_executor makes its executor
        broker=config.get("broker"),
        backend=config.get("backend"),
        config_source=config.get("config_source"),
        include=config.get("include"),
        retries=RetryMode.from_config(config["retries"]),
    )


def executor_for(execution: ExecutionConfig) -> dg.ExecutorDefinition:
    if execution.executor == "in_process":
        return dg.in_process_executor
    if execution.executor == "celery":
        return _plantlake_celery.configured(celery_settings(execution), name="plantlake_celery")
    return dg.multiprocess_executor.configured(
        {"max_concurrent": execution.max_concurrent, "start_method": {"forkserver": {"preload_modules": PRELOADED}}},
        name="plantlake_multiprocess",
    )

"""The Celery app of plantlake's workers, for `execution: {executor: celery}` in the YAML:

    celery -A plantlake.pipelines.celery_app worker --concurrency 2 -n plantlake-1@%h

A worker executes the steps of runs whose own process (started by the daemon, the UI or
`dagster job execute`) hands them out through the broker. It needs what that process has:

- the same plantlake YAML ($PLANTLAKE_CONFIG, else ./plantlake.yaml): its `execution` section
  names the broker, the result backend and the queue (the worker listens on that queue alone),
  and the definitions are built from it, here once, before the worker starts its processes;
- the same Dagster instance ($DAGSTER_HOME with deploy/dagster.yaml and its DAGSTER_PG_*
  variables): a step reads its run there, claims nothing (the run's process claimed the
  step's pool before sending it) and writes its events there;
- the lake and the sources at the same addresses.

`--concurrency` is the steps this worker runs at once, each in a process of its own.
"""

from __future__ import annotations

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task
from kombu import Exchange, Queue

import plantlake.pipelines.definitions  # noqa: F401  # loaded once, before the worker's processes fork
from plantlake.config import load_config
from plantlake.pipelines.executors import celery_settings

_execution = load_config().execution
app = make_app(CeleryExecutor.for_cli(**celery_settings(_execution)).app_args())
# the queue as the run's process declares it when it sends the first step (a queue Celery
# creates on demand): the worker consumes it, and none of dagster-celery's default queue
app.conf.task_queues = [Queue(_execution.queue, Exchange(_execution.queue), routing_key=_execution.queue)]
execute_plan = create_task(app)

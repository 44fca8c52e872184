"""A sensor that starts a run when a supplier drops a new or changed file."""

import hashlib
import json

import dagster as dg

from pipelines.config import PlantlakeConfig


def _drop_folder_state(config: PlantlakeConfig) -> dict[str, list[int]]:
    state = {}
    for source in config.sources.suppliers:
        for path in sorted(source.path.glob(source.glob)):
            if path.is_file():
                stat = path.stat()
                state[str(path)] = [stat.st_size, stat.st_mtime_ns]
    return state


def supplier_files_sensor(config: PlantlakeConfig, job: dg.JobDefinition | object) -> dg.SensorDefinition:
    @dg.sensor(name="supplier_files", job=job, minimum_interval_seconds=config.schedule.supplier_sensor_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Starts the supplier_files job when files appear or change in a drop folder.")  # fmt: skip
    def watch(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Compare the drop folders with what the last evaluation saw."""
        seen = json.loads(context.cursor) if context.cursor else {}
        current = _drop_folder_state(config)
        new = sorted(path for path, fingerprint in current.items() if seen.get(path) != fingerprint)
        if not new:
            return dg.SensorResult(skip_reason="no new supplier files", cursor=json.dumps(current))
        run_key = hashlib.sha256(json.dumps({path: current[path] for path in new}).encode()).hexdigest()[:16]
        return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key, tags={"plantlake/new_files": str(len(new))})],
                               cursor=json.dumps(current))  # fmt: skip

    return watch

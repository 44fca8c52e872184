"""Validate a batch with Great Expectations (GX Core 1.x), row by row.

GX is imported on first use (it takes seconds) and its usage statistics are off. What a row
that fails an expectation does is the expectation's `on_fail`: `quarantine` returns it as a
rejection, `warn` keeps it and only counts it (the check then warns), `fail` stops the step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from plantlake.config.sources import OnFail
from plantlake.lake.quarantine import Rejection
from plantlake.quality.suites import Expect

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


class RuleFailedError(RuntimeError):
    """A rule with `on_fail: fail` found rows that break it: the step stops before anything is written."""


@dataclass(frozen=True)
class Outcome:
    expectation: str
    success: bool
    unexpected: int
    on_fail: OnFail = "quarantine"


@dataclass
class Validation:
    accepted: pa.Table
    rejections: list[Rejection] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    rows_checked: int = 0
    rows_rejected: int = 0

    @classmethod
    def nothing_new(cls) -> Validation:
        """The outcome when there was no new batch to check."""
        return cls(accepted=pa.table({}))

    @classmethod
    def combine(cls, parts: list[Validation]) -> Validation:
        """One outcome for a batch validated in chunks (accepted rows are not kept)."""
        outcomes: dict[str, Outcome] = {}
        for outcome in (o for part in parts for o in part.outcomes):
            seen = outcomes.get(outcome.expectation)
            outcomes[outcome.expectation] = (
                outcome
                if seen is None
                else Outcome(
                    outcome.expectation,
                    seen.success and outcome.success,
                    seen.unexpected + outcome.unexpected,
                    outcome.on_fail,
                )
            )
        return cls(
            accepted=pa.table({}),
            rejections=[r for part in parts for r in part.rejections],
            outcomes=list(outcomes.values()),
            rows_checked=sum(p.rows_checked for p in parts),
            rows_rejected=sum(p.rows_rejected for p in parts),
        )

    @property
    def success(self) -> bool:
        """No expectation failed (not even one that only warns) and no row of the batch was kept out."""
        return all(outcome.success for outcome in self.outcomes) and not self.rejections

    @property
    def holds(self) -> bool:
        """No row was kept out and only rules that warn failed, if any: the batch is whole."""
        return not self.rejections and all(o.success or o.on_fail == "warn" for o in self.outcomes)

    @property
    def warned(self) -> dict[str, int]:
        """Rules with `on_fail: warn` that failed, and for how many rows (which were kept)."""
        return {o.expectation: o.unexpected for o in self.outcomes if not o.success and o.on_fail == "warn"}


def gx_context(**options: Any) -> Any:
    """A GX context with analytics and progress bars off; GX is imported here, on first use."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(**options)
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@cache
def _batch_definition() -> Any:
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every in-memory batch below this size by hashing all of it, twice per
    # validation, for batch markers plantlake never reads: 0.86 s of a 5M-row first load's checks
    pandas_execution_engine.HASH_THRESHOLD = 0
    context = gx_context(mode="ephemeral")
    source = context.data_sources.add_pandas("plantlake_batches")
    return source.add_dataframe_asset("batch").add_batch_definition_whole_dataframe("whole_batch")


def gx_expectation(expect: Expect) -> Any:
    import great_expectations as gx

    condition: dict[str, Any] = {"meta": {"plantlake": expect.name}}
    if expect.condition:
        condition.update(row_condition=expect.condition, condition_parser="pandas")
    if expect.kind == "not_null":
        return gx.expectations.ExpectColumnValuesToNotBeNull(column=expect.column, **condition)
    if expect.kind == "between":
        return gx.expectations.ExpectColumnValuesToBeBetween(
            column=expect.column, min_value=expect.min, max_value=expect.max, **condition
        )
    return gx.expectations.ExpectColumnValuesToBeInSet(column=expect.column, value_set=list(expect.values), **condition)


def gx_suite(name: str, suite: list[Expect], schema: pa.Schema) -> Any:
    import great_expectations as gx

    # built whole: adding expectations one by one makes GX save and reload its config for each
    return gx.ExpectationSuite(
        name=name, expectations=[gx_expectation(expect) for expect in suite if expect.column in schema.names]
    )


def _forget(batch: Any) -> None:
    """Drop GX's references to the batch: its execution engine keeps every batch it loaded and
    every metric it computed on one (per row, a Series of the chunk's length with its index), so
    memory would grow with every chunk a run validates (about 2 MB per chunk of 250,000 rows)."""
    engine = batch.data.execution_engine
    engine.batch_manager.batch_data_cache.clear()
    engine.batch_manager.reset_batch_cache()
    metrics = getattr(engine, "_metric_cache", None)  # keyed by batch: a later batch never reads it
    if isinstance(metrics, dict):
        metrics.clear()


def _gx_frame(table: pa.Table, suite: list[Expect]) -> Any:
    """The pandas frame GX checks: only the columns the suite reads, each in the form GX checks fast.

    GX hashes the whole frame for every batch and checks values one by one in Python unless they
    are numbers or nanosecond times. A column only checked for nulls is passed as 1.0 or NaN (same
    rows null), a decimal as a float, a naive time in nanoseconds; row positions stay the same.
    """
    conditions = " ".join(expect.condition or "" for expect in suite)
    kinds: dict[str, set[str]] = {}
    for expect in suite:
        kinds.setdefault(expect.column, set()).add(expect.kind)
    columns = {}
    for name in table.column_names:
        used = kinds.get(name, set())
        if name in conditions:
            columns[name] = table[name]
        elif used == {"not_null"}:
            columns[name] = pc.if_else(pc.is_valid(table[name]), 1.0, pa.scalar(None, pa.float64()))
        elif used:
            columns[name] = _fast_for_gx(table[name], used)
    return pa.table(columns).to_pandas() if columns else pa.table({"_": pa.nulls(table.num_rows)}).to_pandas()


def _fast_for_gx(column: pa.ChunkedArray, kinds: set[str]) -> pa.ChunkedArray:
    if "in_set" in kinds:
        return column
    if pa.types.is_decimal(column.type):
        return column.cast(pa.float64())
    if pa.types.is_timestamp(column.type) and column.type.tz is None:
        return column.cast(pa.timestamp("ns"), safe=False)
    return column


_broken_last: set[str] = set()  # tables whose last batch validated in this process broke a rule


def _row_key(record: dict[str, Any], key_columns: list[str], index: int) -> str:
    """Where the row came from: its file line if it has one, else its key, else its position."""
    line = record.get("_line") or record.get("line_number")
    if line is not None:
        return str(line)
    if key_columns and all(column in record for column in key_columns):
        return ", ".join(f"{column}={record[column]}" for column in key_columns)
    return f"batch row {index}"


def validate(
    table: pa.Table,
    suite: list[Expect],
    table_name: str,
    source: str | None = None,
    key_columns: list[str] | None = None,
) -> Validation:
    """Run `suite` over `table`; failing rows become rejections naming the expectation."""
    if table.num_rows == 0:
        return Validation(accepted=table)
    frame = _gx_frame(table, suite)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    expectations = gx_suite(table_name, suite, table.schema)
    result = None
    if table_name not in _broken_last:
        # whether every row passes, first: half the cost of listing the rows that fail (18 against
        # 33 ms on 50,000 rows and three rules), and nearly every batch passes
        result = batch.validate(expectations, result_format={"result_format": "BOOLEAN_ONLY"})
    if result is None or not result.success:
        result = batch.validate(expectations, result_format={"result_format": "COMPLETE"})
    _forget(batch)
    # a table whose batch broke a rule (a warn rule sensors break every hour, say) likely breaks
    # it in its next: that one lists its failing rows at once, not after asking whether there are any
    if result.success:
        _broken_last.discard(table_name)
    else:
        _broken_last.add(table_name)
    failed_rows: dict[int, list[Expect]] = {}
    outcomes = []
    by_name = {expect.name: expect for expect in suite}
    for item in result.results:
        # GX reorders results; the name we put in each expectation's meta finds it again
        expect = by_name[item.expectation_config.meta["plantlake"]]
        _raise_if_broken(item, expect, table_name)
        indexes = item.result.get("unexpected_index_list") or []
        outcomes.append(Outcome(expect.name, bool(item.success), len(indexes), expect.on_fail))
        if expect.on_fail == "fail" and indexes:
            _stop(table, expect, [int(index) for index in indexes], table_name, key_columns or [])
        if expect.on_fail == "quarantine":
            for index in indexes:
                failed_rows.setdefault(int(index), []).append(expect)
    rejections = []
    records = table.take(sorted(failed_rows)).to_pylist() if failed_rows else []
    for index, record in zip(sorted(failed_rows), records, strict=True):
        for failed in failed_rows[index]:
            name, column = failed.name, failed.column
            rejections.append(
                Rejection(
                    table_name=table_name,
                    check=f"expectation: {name}",
                    reason=f"expected {name}, got {record.get(column)!r}",
                    record=record,
                    source=source or record.get("source") or record.get("_source"),
                    file=record.get("_file") or record.get("source_file"),
                    row=_row_key(record, key_columns or [], index),
                    field=column,
                    value=None if record.get(column) is None else str(record.get(column)),
                )
            )
    if not failed_rows:
        return Validation(table, rejections, outcomes, table.num_rows, 0)
    keep = pc.invert(pc.is_in(pa.array(range(table.num_rows), pa.int64()), pa.array(sorted(failed_rows), pa.int64())))
    return Validation(table.filter(keep), rejections, outcomes, table.num_rows, len(failed_rows))


def _stop(table: pa.Table, expect: Expect, indexes: list[int], table_name: str, key_columns: list[str]) -> None:
    """Raise for a rule with `on_fail: fail`, naming the rule, the table and the first rows that break it."""
    shown = table.take(pa.array(indexes[:3], pa.int64())).to_pylist()
    examples = "; ".join(
        f"{_row_key(record, key_columns, index)}: {record.get(expect.column)!r}"
        for index, record in zip(indexes, shown, strict=False)
    )
    raise RuleFailedError(
        f"{table_name}: rule '{expect.name}' (on_fail: fail) is broken by {len(indexes)} row(s), e.g. {examples}; "
        "the rows of this batch were not merged. Correct the source, or set the rule's on_fail to quarantine or warn"
    )


def _raise_if_broken(item: Any, expect: Expect, table_name: str) -> None:
    """An expectation that could not run is a bug in the suite, not a bad row: say so."""
    info = item.exception_info or {}
    entries = info.values() if "raised_exception" not in info else [info]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            raise RuntimeError(
                f"{table_name}: expectation '{expect.name}' could not run: {entry.get('exception_message')}"
            )

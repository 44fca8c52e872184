"""Timestamps of log entries, as UTC, a column at a time: ISO 8601, strptime formats and epoch numbers.

What cannot be a moment is never guessed into one: a date or time that does not exist
(`31.09.2026`, `24:30`) gets a reason instead of rolling over into the next day. A value
without an offset is a local time of the source's zone; where daylight saving time makes it
ambiguous (the repeated hour in autumn) or non-existent (the skipped hour in spring) the
`dst` rule picks the earlier or the later of the two instants it can mean, or refuses, and
the event is flagged either way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

UTC_US = pa.timestamp("us", tz="UTC")
LOCAL_US = pa.timestamp("us")
TEXT = pa.string()
# declared formats for epoch numbers: microseconds per unit, and the most digits read (up to the year 5138)
EPOCH_UNITS = {"epoch_s": (1_000_000, 11), "epoch_ms": (1_000, 14), "epoch_us": (1, 17)}
# undeclared, an epoch number is told by its digits: those of the years 1973 to 2286 in each unit
_DETECTED_EPOCH = {"epoch_s": (9, 10), "epoch_ms": (12, 13), "epoch_us": (15, 16)}
_NUMBER = r"^(?P<whole>\d{1,17})(?:\.(?P<fraction>\d+))?$"
_ISO = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d(:?\d\d)?)?$"
_ZONED = r"(Z|[+-]\d\d(:?\d\d)?)$"


@dataclass(frozen=True)
class TimeRules:
    """How one source writes its timestamps (see `LogSource` for the settings)."""

    timezone: str = "UTC"
    timestamp_format: str | None = None
    dst: str = "earlier"


@dataclass(frozen=True)
class Times:
    """Parsed timestamps (UTC, null where unreadable), the DST flag of each, and why a value is unreadable."""

    values: pa.Array
    flags: pa.Array
    problems: pa.Array


def _nulls(count: int, type_: pa.DataType = TEXT) -> pa.Array:
    return pa.nulls(count, type_)


def _when(mask: pa.Array, values: pa.Array) -> pa.Array:
    """`values` where `mask` holds, null elsewhere (and where `mask` is null)."""
    return pc.if_else(pc.fill_null(mask, False), values, pa.scalar(None, values.type))


def _quoted_problem(text: pa.Array, mask: pa.Array, before: str, after: str) -> pa.Array:
    """`before 'value' after` for the rows of `mask`, null elsewhere."""
    return _when(mask, pc.binary_join_element_wise(f"{before}'", text, f"'{after}", ""))


def parse_timestamps(text: pa.Array, rules: TimeRules) -> Times:
    """Text as UTC timestamps by the source's rules; null values keep a null problem (nothing to read)."""
    text = text.cast(pa.string())
    count = len(text)
    if count == 0 or text.null_count == count:
        return Times(_nulls(count, UTC_US), _nulls(count), _nulls(count))
    declared = rules.timestamp_format
    if declared in EPOCH_UNITS:
        values = _epoch(text, *EPOCH_UNITS[declared])
        unread = pc.and_(pc.is_valid(text), pc.is_null(values))
        problem = _quoted_problem(text, unread, "timestamp ", f" is not a number of {declared}")
        return Times(values, _nulls(count), problem)
    epochs = _nulls(count, UTC_US)
    if declared:
        zoned, naive, problems = _strptime(text, declared)
    else:
        try:  # the usual case: every value ISO 8601 with an offset
            return Times(pc.cast(text, UTC_US), _nulls(count), _nulls(count))
        except pa.ArrowInvalid:
            pass
        epochs, is_epoch = _detected_epoch(text)
        zoned, naive, problems = _iso(_when(pc.invert(is_epoch), text) if pc.any(is_epoch).as_py() else text)
    local = localize(naive, rules.timezone, rules.dst)
    values = pc.coalesce(epochs, zoned, local.values)
    return Times(values, local.flags, pc.coalesce(problems, local.problems))


def _epoch(text: pa.Array, micros_per_unit: int, max_digits: int) -> pa.Array:
    """Epoch numbers in one unit, with an optional fraction; anything else null."""
    parts = pc.extract_regex(text, _NUMBER)
    whole, fraction = pc.struct_field(parts, "whole"), pc.struct_field(parts, "fraction")
    whole = _when(pc.less_equal(pc.utf8_length(whole), max_digits), whole)
    micros = pc.multiply(pc.cast(whole, pa.int64()), micros_per_unit)
    digits = len(str(micros_per_unit)) - 1  # of a fraction of the unit that are still microseconds
    if digits:
        padded = pc.utf8_slice_codeunits(pc.utf8_rpad(pc.fill_null(fraction, ""), digits, "0"), 0, digits)
        micros = pc.add(micros, pc.cast(padded, pa.int64()))
    return micros.cast(UTC_US)


def _detected_epoch(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Values that are plainly epoch numbers, by their digits, and which rows they are."""
    looks = pc.fill_null(pc.match_substring_regex(text, r"^\d{9,16}(\.\d+)?$"), False)
    if not pc.any(looks).as_py():
        return _nulls(len(text), UTC_US), looks
    digits = pc.utf8_length(pc.struct_field(pc.extract_regex(text, _NUMBER), "whole"))
    values, found = _nulls(len(text), UTC_US), pa.repeat(pa.scalar(False), len(text))
    for unit, (shortest, longest) in _DETECTED_EPOCH.items():
        rows = pc.fill_null(pc.and_(pc.greater_equal(digits, shortest), pc.less_equal(digits, longest)), False)
        if pc.any(rows).as_py():
            values = pc.coalesce(values, _epoch(_when(rows, text), EPOCH_UNITS[unit][0], longest))
            found = pc.or_(found, rows)
    return values, found


def _strptime(text: pa.Array, form: str) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(zoned values, naive values, problems) of a strptime format.

    Arrow's strptime rolls impossible dates over (31 September becomes 1 October), so every value
    is formatted back; one that does not come back as it was written is read again by Python,
    which refuses impossible dates and times and says why.
    """
    parsed = pc.strptime(text, format=form, unit="us", error_is_null=True)
    zoned = parsed.type.tz is not None
    if zoned or "%z" in form or "%Z" in form:
        doubtful = pc.is_valid(text)
    else:
        again = pc.strftime(parsed.cast(pa.timestamp("s"), safe=False), format=form)
        doubtful = pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(pc.equal(again, text), False)))
    naive = _nulls(len(text), LOCAL_US) if zoned else parsed
    with_zone = parsed.cast(UTC_US) if zoned else _nulls(len(text), UTC_US)
    problems = _nulls(len(text))
    if pc.any(doubtful).as_py():
        with_zone, naive, problems = _python_values(
            text, doubtful, with_zone, naive, lambda value: _strptime_one(value, form), f" (format '{form}')"
        )
    return with_zone, naive, problems


def _strptime_one(value: str, form: str) -> datetime:
    """A local time when `form` has no offset (it is localized afterwards), else an aware one."""
    return datetime.strptime(value, form)  # noqa: DTZ007 -- naive on purpose: the source's zone is applied later


def _iso(text: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(zoned values, naive values, problems) of ISO 8601 text; impossible values read by Python to say why."""
    count = len(text)
    iso = pc.fill_null(pc.match_substring_regex(text, _ISO), False)
    zoned = pc.and_(iso, pc.fill_null(pc.match_substring_regex(text, _ZONED), False))
    naive = pc.and_(iso, pc.invert(zoned))
    not_iso = _quoted_problem(text, pc.and_(pc.is_valid(text), pc.invert(iso)), "timestamp ", " is not ISO 8601")
    try:
        with_zone = pc.cast(_when(zoned, text), UTC_US)
        without = pc.cast(_when(naive, pc.replace_substring(text, "T", " ")), LOCAL_US)
    except pa.ArrowInvalid:  # shaped like a timestamp but impossible (month 13, 31 September)
        return _python_values(text, iso, _nulls(count, UTC_US), _nulls(count, LOCAL_US), _from_iso, "", not_iso)
    return with_zone, without, not_iso


def _from_iso(value: str) -> datetime:
    return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def _python_values(
    text: pa.Array,
    rows: pa.Array,
    zoned: pa.Array,
    naive: pa.Array,
    read: Callable[[str], datetime],
    explained: str,
    problems: pa.Array | None = None,
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Read the `rows` one by one with Python's `read`; the others keep their values (and `problems`)."""
    with_zone, without = zoned.to_pylist(), naive.to_pylist()
    reasons = problems.to_pylist() if problems is not None else [None] * len(text)
    for index, (value, wanted) in enumerate(zip(text.to_pylist(), rows.to_pylist(), strict=True)):
        if not wanted or value is None:
            continue
        with_zone[index] = without[index] = None
        try:
            moment = read(value)
        except ValueError as error:
            reasons[index] = f"timestamp '{value}' is not a valid date and time{explained}: {error}"
            continue
        if moment.tzinfo is None:
            without[index] = moment
        else:
            with_zone[index] = moment
    return pa.array(with_zone, UTC_US), pa.array(without, LOCAL_US), pa.array(reasons, pa.string())


def localize(naive: pa.Array, timezone: str, dst: str) -> Times:
    """Local times of `timezone` as UTC; ambiguous and non-existent ones resolved by `dst` and flagged.

    Of the two instants such a local time can mean (taken with the offset before and after the
    change), `earlier` and `later` pick one; `quarantine` leaves the value null with a reason.
    """
    count = len(naive)
    if timezone == "UTC" or naive.null_count == count:
        return Times(naive.cast(UTC_US), _nulls(count), _nulls(count))
    first = pc.assume_timezone(naive, timezone, ambiguous="earliest", nonexistent="earliest")
    last = pc.assume_timezone(naive, timezone, ambiguous="latest", nonexistent="latest")
    odd = pc.fill_null(pc.not_equal(first, last), False)
    if not pc.any(odd).as_py():
        return Times(first.cast(UTC_US), _nulls(count), _nulls(count))
    wall = naive.cast(pa.int64())
    candidates = []
    for moment in (first, last):  # the local time taken with the offset in force at each end of the change
        offset = pc.subtract(pc.local_timestamp(moment).cast(pa.int64()), moment.cast(pa.int64()))
        candidates.append(pc.subtract(wall, offset))
    ambiguous = pc.and_(odd, pc.equal(pc.local_timestamp(first), naive))
    nonexistent = pc.and_(odd, pc.invert(ambiguous))
    earlier, later = pc.min_element_wise(*candidates), pc.max_element_wise(*candidates)
    kind = pc.if_else(ambiguous, "ambiguous", pc.if_else(nonexistent, "nonexistent", pa.scalar(None, pa.string())))
    shown = pc.strftime(naive.cast(pa.timestamp("s"), safe=False), format="%Y-%m-%d %H:%M:%S")
    if dst == "quarantine":
        values = pc.if_else(odd, pa.scalar(None, pa.int64()), first.cast(pa.int64()))
        reason = pc.if_else(
            ambiguous,
            f" occurs twice in {timezone} (the hour repeated when daylight saving time ends); dst: quarantine",
            f" does not exist in {timezone} (the hour skipped when daylight saving time starts); dst: quarantine",
        )
        problems = _when(odd, pc.binary_join_element_wise("local time ", shown, reason, ""))
        return Times(values.cast(UTC_US), kind, problems)
    chosen = earlier if dst == "earlier" else later
    values = pc.if_else(odd, chosen, first.cast(pa.int64()))
    flags = _when(odd, pc.binary_join_element_wise(kind, dst, "_"))
    return Times(values.cast(UTC_US), flags, _nulls(count))

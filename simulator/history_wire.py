"""Serve raw history as OPC-UA binary cut from pre-encoded arrays, so the simulator is cheap to read.

asyncua builds and encodes one Python DataValue per value; a real historian serves far
faster. Here each series is encoded once, at start, into fixed-size DataValue records
(value, status, source and server timestamps) in a numpy array, and a HistoryRead answer
is a slice of it. The encoded body travels in an `EncodedHistoryData`, which asyncua's
encoder passes through as it is.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import numpy as np
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary

from plantlake.connectors.opcua_decode import EPOCH_TICKS

_VALUES = {ua.VariantType.Double: "<f8", ua.VariantType.Int32: "<i4", ua.VariantType.Int64: "<i8"}
_ALL_FIELDS = 0x0F  # value, status code, source and server timestamps


class EncodedHistoryData(ua.HistoryData):
    """HistoryData whose body (the DataValues array) is already encoded."""

    __slots__ = ("encoded",)
    encoded: bytes


def encode_series(seconds: np.ndarray, values: np.ndarray, status: np.ndarray, variant: ua.VariantType) -> np.ndarray:
    """One packed DataValue record per sample."""
    layout = np.dtype(
        [
            ("mask", "u1"),
            ("variant", "u1"),
            ("value", _VALUES[variant]),
            ("status", "<u4"),
            ("source", "<i8"),
            ("server", "<i8"),
        ]
    )
    records = np.empty(seconds.size, dtype=layout)
    ticks = seconds.astype(np.int64) * 10_000_000 + EPOCH_TICKS
    records["mask"], records["variant"] = _ALL_FIELDS, variant.value
    records["value"], records["status"], records["source"], records["server"] = values, status, ticks, ticks
    return records


def page(
    seconds: np.ndarray, start: datetime | None, end: datetime | None, nb_values: int, limit: int
) -> tuple[int, int, int]:
    """(first, past-last) index of the values to send for a raw read of [start, end], and the
    past-last index of the whole range: values remain for a continuation point when they differ."""
    epoch = ua.get_win_epoch()
    low = 0 if start in (None, epoch) else int(np.searchsorted(seconds, _seconds(start), side="left"))
    high = seconds.size if end in (None, epoch) else int(np.searchsorted(seconds, _seconds(end), side="right"))
    if nb_values:
        limit = min(limit, nb_values)
    return low, min(high, low + limit), high


def moment(seconds: float | np.integer) -> ua.DateTime:
    return ua.DateTime.fromtimestamp(int(seconds), tz=UTC)


def answer(
    records: np.ndarray, seconds: np.ndarray, details: ua.ReadRawModifiedDetails, continuation: bytes | None, limit: int
) -> ua.HistoryReadResult:
    """The page of values in the request's range, and a continuation point if values remain."""
    start = ua_binary.Primitives.DateTime.unpack(Buffer(continuation)) if continuation else details.StartTime
    low, page_end, high = page(seconds, start, details.EndTime, details.NumValuesPerNode, limit)
    data = EncodedHistoryData()
    data.encoded = struct.pack("<i", max(0, page_end - low)) + records[low:page_end].tobytes()
    point = ua_binary.Primitives.DateTime.pack(moment(seconds[page_end])) if page_end < high else None
    return ua.HistoryReadResult(
        StatusCode=ua.StatusCode(ua.UInt32(ua.StatusCodes.Good)), ContinuationPoint=point, HistoryData=data
    )


def _seconds(when: datetime) -> float:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def install() -> None:
    """Let asyncua's encoder write an `EncodedHistoryData` body as it is (once per process)."""
    if getattr(ua_binary.struct_to_binary, "passes_encoded", False):
        return
    encode = ua_binary.struct_to_binary

    def struct_to_binary(obj: object) -> bytes:
        return obj.encoded if isinstance(obj, EncodedHistoryData) else encode(obj)

    struct_to_binary.passes_encoded = True  # type: ignore[attr-defined]  # marks asyncua's encoder as patched
    ua_binary.struct_to_binary = struct_to_binary

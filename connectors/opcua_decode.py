"""HistoryRead answers decoded into Arrow, without a Python object per value where the answer allows.

asyncua decodes every DataValue into Python objects. Here the response is taken apart up
to each node's HistoryData body; when all DataValues of a body share one encoding (the same
fields present, the same scalar type), they are fixed-size records and numpy reads them in
one go. Any other body is decoded by asyncua, value by value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from asyncua import Client, ua
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary
from asyncua.ua.ua_binary import Primitives

EPOCH_TICKS = 116_444_736_000_000_000  # 100 ns ticks from 1601-01-01 (OPC-UA) to 1970-01-01
# variant type id -> numpy type of a scalar of it
_SCALARS = {1: "u1", 2: "i1", 3: "u1", 4: "<i2", 5: "<u2", 6: "<i4", 7: "<u4", 8: "<i8", 9: "<u8", 10: "<f4", 11: "<f8"}
_CLASSES = pa.array(["Good", "Uncertain", "Bad", "Bad"])


@dataclass(frozen=True)
class RawResult:
    """One node's answer: its status, continuation point, and the encoded HistoryData body."""

    status: ua.StatusCode
    continuation: bytes | None
    body: bytes | None


async def history_read(client: Client, params: ua.HistoryReadParameters) -> list[RawResult]:
    """Send a HistoryRead and split the answer per node, leaving the values encoded."""
    request = ua.HistoryReadRequest()
    request.Parameters = params
    data = await client.uaclient.session._send_request(request)
    ua_binary.nodeid_from_binary(data)  # the response's type id
    ua_binary.struct_from_binary(ua.ResponseHeader, data).ServiceResult.check()
    results = []
    for _ in range(max(Primitives.Int32.unpack(data), 0)):
        status = ua.StatusCode(Primitives.UInt32.unpack(data))
        point = Primitives.ByteString.unpack(data)
        ua_binary.nodeid_from_binary(data)  # HistoryData's type id
        body = Primitives.Bytes.unpack(data) if Primitives.Byte.unpack(data) & 0x01 else None
        results.append(RawResult(status, point, body))
    return results


def ua_datetime(moment: datetime) -> ua.DateTime:
    """`moment` unchanged (zone and fold kept) as asyncua's DateTime, the datetime subclass its timestamps declare."""
    return ua.DateTime(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        moment.tzinfo,
        fold=moment.fold,
    )


def _records(body: bytes) -> np.ndarray | None:
    """The DataValues as a structured array when they are all encoded alike, else None."""
    count = int.from_bytes(body[:4], "little", signed=True) if len(body) >= 4 else 0
    if count <= 0 or len(body) < 6:
        return None
    mask, variant = body[4], body[5]
    scalar = _SCALARS.get(variant)
    if not mask & 0x01 or mask & 0x30 or scalar is None:  # no value, picoseconds, arrays or variable-size types
        return None
    fields = [("mask", "u1"), ("variant", "u1"), ("value", scalar)]
    fields += [
        (name, kind)
        for bit, name, kind in ((0x02, "status", "<u4"), (0x04, "source", "<i8"), (0x08, "server", "<i8"))
        if mask & bit
    ]
    layout = np.dtype(fields)
    if len(body) != 4 + count * layout.itemsize:
        return None
    records = np.frombuffer(body, dtype=layout, count=count, offset=4)
    if not ((records["mask"] == mask).all() and (records["variant"] == variant).all()):
        return None
    return records


def _times(ticks: np.ndarray) -> pa.Array:
    return pa.array((ticks - EPOCH_TICKS) // 10, pa.timestamp("us", tz="UTC"))


def decode(body: bytes, columns: Mapping[str, object], schema: pa.Schema) -> pa.RecordBatch | None:
    """A node's values as a batch of `schema`; `columns` gives the node's constant columns
    (node_id, browse_path, machine_id, tag). None when the fast path does not apply."""
    records = _records(body)
    if records is None:
        return None
    count = records.size
    names = records.dtype.names
    if names is None:  # `_records` builds a structured dtype, which always has field names
        raise TypeError(f"expected structured DataValue records, got dtype {records.dtype}")
    kind = records.dtype["value"].kind
    values = records["value"]
    source = _times(records["source"]) if "source" in names else None
    server = _times(records["server"]) if "server" in names else pa.nulls(count, pa.timestamp("us", tz="UTC"))
    codes = pa.array(records["status"].astype(np.int64)) if "status" in names else pa.array(np.zeros(count, np.int64))
    is_bool = records["variant"][0] == 1
    arrays = {
        **{name: pa.repeat(pa.scalar(value, schema.field(name).type), count) for name, value in columns.items()},
        "source_timestamp": source if source is not None else server,
        "server_timestamp": server,
        "value": pa.array(values.astype(np.float64)),
        "value_int": pa.array(values.astype(np.int64)) if kind in "iu" and not is_bool else pa.nulls(count, pa.int64()),
        "value_bool": pa.array(values.astype(bool)) if is_bool else pa.nulls(count, pa.bool_()),
        "value_text": pa.nulls(count, pa.string()),
        "status_code": codes,
        "status": pc.take(_CLASSES, pc.bit_wise_and(pc.shift_right(codes, 30), 3)),
    }
    return pa.RecordBatch.from_arrays([arrays[field.name] for field in schema], schema=schema)


def data_values(body: bytes) -> list[ua.DataValue]:
    """The DataValues of a body, decoded by asyncua (the general path)."""
    return ua_binary.struct_from_binary(ua.HistoryData, Buffer(body)).DataValues or []

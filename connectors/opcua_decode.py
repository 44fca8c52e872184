"""HistoryRead answers decoded into Arrow, without a Python object per value where the answer allows.

asyncua decodes every DataValue into Python objects. Here the response is taken apart up
to each node's HistoryData body; when every DataValue of a body holds a scalar of fixed size
(or none), whatever fields each carries, numpy reads them, one group of equally encoded
DataValues at a time (`opcua_records`). Any other body (text, arrays) is decoded value by
value, in the field order of the specification, which asyncua's own decoder does not keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from asyncua import Client, ua
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary
from asyncua.ua.ua_binary import Primitives

from plantlake.connectors import opcua_records

EPOCH_TICKS = 116_444_736_000_000_000  # 100 ns ticks from 1601-01-01 (OPC-UA) to 1970-01-01
_CLASSES = pa.array(["Good", "Uncertain", "Bad", "Bad"])


@dataclass(frozen=True)
class RawResult:
    """One node's answer: its status, continuation point, and the encoded HistoryData body."""

    status: ua.StatusCode
    continuation: bytes | None
    body: bytes | None


async def send(client: Client, request: Any) -> Buffer:
    """Send a request and return its answer undecoded; a timeout says which service waited, where and how long."""
    try:
        return await client.uaclient.session._send_request(request)
    except TimeoutError:
        service = type(request).__name__.removesuffix("Request")
        waited = client.uaclient._timeout  # the request timeout the client was made with
        raise TimeoutError(f"{service} got no answer from {client.server_url.geturl()} within {waited:g} s") from None


async def history_read(client: Client, params: ua.HistoryReadParameters) -> list[RawResult]:
    """Send a HistoryRead and split the answer per node, leaving the values encoded."""
    request = ua.HistoryReadRequest()
    request.Parameters = params
    data = await send(client, request)
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


def _times(ticks: np.ndarray, present: np.ndarray | None) -> pa.Array:
    micros = (ticks - EPOCH_TICKS) // 10
    return pa.array(micros, pa.timestamp("us", tz="UTC"), mask=None if present is None else ~present)


class _Columns:
    """The decoded fields of every DataValue of a body, filled one layout at a time."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.value = np.zeros(count, np.float64)
        self.integer = np.zeros(count, np.int64)
        self.status = np.zeros(count, np.int64)
        self.source = np.zeros(count, np.int64)
        self.server = np.zeros(count, np.int64)
        # which rows hold a value of each kind, and which timestamps were sent
        self.has = {kind: np.zeros(count, bool) for kind in ("value", "int", "bool", "source", "server")}

    def fill(self, rows: np.ndarray | slice, records: dict[str, np.ndarray]) -> None:
        if "value" in records:
            values = records["value"]
            self.value[rows] = values
            self.has["value"][rows] = True
            if records["variant"][0] == opcua_records.BOOLEAN:
                self.has["bool"][rows] = True
            elif values.dtype.kind in "iu":
                self.integer[rows] = values
                # a UInt64 above the signed range has no exact integer column (the general path agrees)
                self.has["int"][rows] = values <= np.iinfo(np.int64).max if values.dtype == np.uint64 else True
        for name in ("status", "source", "server"):
            if name in records:
                getattr(self, name)[rows] = records[name]
                if name != "status":
                    self.has[name][rows] = True


def _fields(body: bytes) -> _Columns | None:
    """Every DataValue's fields, read per layout with numpy; None if one is of no fixed size."""
    found = opcua_records.find(body)
    if found is None:
        return None
    columns = _Columns(found.starts.size)
    first = int(found.keys[0])
    keys = [first] if (found.keys == first).all() else np.unique(found.keys).tolist()
    for key in keys:
        rows = slice(None) if len(keys) == 1 else np.flatnonzero(found.keys == key)
        columns.fill(rows, opcua_records.fields(body, found.starts[rows], key))
    return columns


def decode(body: bytes, columns: Mapping[str, object], schema: pa.Schema) -> pa.RecordBatch | None:
    """A node's values as a batch of `schema`; `columns` gives the node's constant columns
    (node_id, browse_path, machine_id, tag). None when the fast path does not apply."""
    decoded = _fields(body)
    if decoded is None:
        return None
    count, has = decoded.count, decoded.has
    everywhere = {name: bool(present.all()) for name, present in has.items()}

    def present(name: str) -> np.ndarray | None:
        return None if everywhere[name] else has[name]

    # a DataValue without a source timestamp is stamped by the server's, as the general path does
    source_ticks = np.where(has["source"], decoded.source, decoded.server)
    codes = pa.array(decoded.status)
    arrays = {
        **{name: pa.repeat(pa.scalar(value, schema.field(name).type), count) for name, value in columns.items()},
        "source_timestamp": _times(source_ticks, None if everywhere["source"] else has["source"] | has["server"]),
        "server_timestamp": _times(decoded.server, present("server")),
        "value": pa.array(decoded.value, mask=None if everywhere["value"] else ~has["value"]),
        "value_int": pa.array(decoded.integer, mask=~has["int"]),
        "value_bool": pa.array(decoded.value != 0, mask=~has["bool"]),
        "value_text": pa.nulls(count, pa.string()),
        "status_code": codes,
        "status": pc.take(_CLASSES, pc.bit_wise_and(pc.shift_right(codes, 30), 3)),
    }
    return pa.RecordBatch.from_arrays([arrays[field.name] for field in schema], schema=schema)


def datavalue_from_binary(data: Buffer) -> ua.DataValue:
    """One DataValue, its fields read in the order of the specification.

    asyncua reads the server timestamp before the source picoseconds, so a DataValue that
    carries both comes out with timestamps made of the wrong bytes.
    """
    mask = Primitives.Byte.unpack(data)
    value = ua_binary.variant_from_binary(data) if mask & 0x01 else None
    status = ua.StatusCode(Primitives.UInt32.unpack(data)) if mask & 0x02 else ua.StatusCode()
    source = Primitives.DateTime.unpack(data) if mask & 0x04 else None
    source_picoseconds = Primitives.UInt16.unpack(data) if mask & 0x10 else None
    server = Primitives.DateTime.unpack(data) if mask & 0x08 else None
    server_picoseconds = Primitives.UInt16.unpack(data) if mask & 0x20 else None
    return ua.DataValue(
        Value=value,
        StatusCode=status,
        SourceTimestamp=source,
        ServerTimestamp=server,
        SourcePicoseconds=source_picoseconds,
        ServerPicoseconds=server_picoseconds,
    )


def _datavalues(data: Buffer) -> list[ua.DataValue]:
    return [datavalue_from_binary(data) for _ in range(max(Primitives.Int32.unpack(data), 0))]


def data_values(body: bytes) -> list[ua.DataValue]:
    """The DataValues of a HistoryData body, one Python object each (the general path)."""
    return _datavalues(Buffer(body))


async def read_values(client: Client, params: ua.ReadParameters) -> list[ua.DataValue]:
    """The Read service, its DataValues decoded in the order of the specification (see `datavalue_from_binary`)."""
    request = ua.ReadRequest()
    request.Parameters = params
    data = await send(client, request)
    ua_binary.nodeid_from_binary(data)  # the response's type id
    ua_binary.struct_from_binary(ua.ResponseHeader, data).ServiceResult.check()
    return _datavalues(data)

"""Read historized variables from an OPC-UA server into Arrow, with asyncua.

Discovery browses from configured roots and keeps variables that keep history
(Historizing, or the HistoryRead bit of the access level). History is read raw
(ReadRawModifiedDetails) for many nodes per request; every continuation point is
followed, and released when a read stops early.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from asyncua import Client, Node, ua

from plantlake.connectors import opcua_decode

READINGS_SCHEMA = pa.schema(
    [
        pa.field("node_id", pa.string(), nullable=False),
        pa.field("browse_path", pa.string(), nullable=False),
        pa.field("machine_id", pa.string()),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("source_timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("server_timestamp", pa.timestamp("us", tz="UTC")),
        pa.field("value", pa.float64()),
        pa.field("value_int", pa.int64()),
        pa.field("value_bool", pa.bool_()),
        pa.field("value_text", pa.string()),
        pa.field("status_code", pa.int64(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
    ]
)


# HistoryRead requests in flight at once, each for its own share of `nodes_per_request` nodes: while one
# answer travels and is decoded, the server works on the next
LANES = 2


class OpcuaReadError(RuntimeError):
    """The server refused a read; the message names the node and the status."""


@dataclass(frozen=True)
class Tag:
    node_id: str
    browse_path: str
    machine_id: str | None
    name: str
    display_name: str | None = None
    data_type: str | None = None
    unit: str | None = None
    unit_description: str | None = None
    range_low: float | None = None
    range_high: float | None = None
    description: str | None = None
    historized: bool = True


TAGS_SCHEMA = pa.schema(
    [
        pa.field("node_id", pa.string(), nullable=False),
        pa.field("browse_path", pa.string(), nullable=False),
        pa.field("machine_id", pa.string()),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("display_name", pa.string()),
        pa.field("data_type", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("unit_description", pa.string()),
        pa.field("range_low", pa.float64()),
        pa.field("range_high", pa.float64()),
        pa.field("description", pa.string()),
        pa.field("historized", pa.bool_(), nullable=False),
    ]
)


def tag_table(tags: list[Tag]) -> pa.Table:
    """The tag registry: one row per historized variable, with what the server says of it."""
    rows = [
        {**{f.name: getattr(tag, f.name, None) for f in TAGS_SCHEMA if f.name != "tag"}, "tag": tag.name}
        for tag in tags
    ]
    return pa.Table.from_pylist(rows, schema=TAGS_SCHEMA)


def selected(tags: list[Tag], include: list[str], exclude: list[str]) -> list[Tag]:
    """Tags whose browse path matches an include pattern (all when none) and no exclude pattern."""
    return [
        tag
        for tag in tags
        if (not include or any(fnmatch.fnmatchcase(tag.browse_path, pattern) for pattern in include))
        and not any(fnmatch.fnmatchcase(tag.browse_path, pattern) for pattern in exclude)
    ]


def status_class(code: int) -> str:
    """Good, Uncertain or Bad, from the severity bits of an OPC-UA status code."""
    severity = (code >> 30) & 0b11
    return {0: "Good", 1: "Uncertain"}.get(severity, "Bad")


async def _resolve_root(client: Client, path: str) -> Node:
    objects = client.nodes.objects
    if path.startswith(("ns=", "i=")):
        return client.get_node(path)
    try:
        return await objects.get_child(path.split("/"))
    except ua.UaStatusCodeError:
        raise OpcuaReadError(f"root {path!r} not found below Objects; use a browse path such as '2:Plant'") from None


async def _keeps_history(variable: Node) -> bool:
    values = await variable.read_attributes([ua.AttributeIds.Historizing, ua.AttributeIds.AccessLevel])
    historizing = bool(values[0].Value.Value) if values[0].Value else False
    access = int(values[1].Value.Value) if values[1].Value else 0
    return historizing or bool(access & (1 << ua.AccessLevel.HistoryRead))


def _text(value: object) -> str | None:
    if isinstance(value, ua.LocalizedText):
        return value.Text or None
    return None if value is None else str(value)


async def _describe(client: Client, variable: Node, data_types: dict[str, str]) -> dict[str, Any]:
    """Display name, data type, description, EngineeringUnits and EURange of a variable."""
    values = await variable.read_attributes(
        [ua.AttributeIds.DisplayName, ua.AttributeIds.Description, ua.AttributeIds.DataType]
    )
    display, description, data_type = (value.Value.Value if value.Value else None for value in values)
    type_key = ""
    if data_type is not None:
        type_key = data_type.to_string()
        if type_key and type_key not in data_types:
            data_types[type_key] = (await client.get_node(data_type).read_browse_name()).Name
    found: dict[str, Any] = {
        "display_name": _text(display),
        "description": _text(description),
        "data_type": data_types.get(type_key),
    }
    for prop in await variable.get_properties():
        name = (await prop.read_browse_name()).Name
        if name not in ("EngineeringUnits", "EURange"):
            continue
        value = await prop.read_value()
        if isinstance(value, ua.EUInformation):
            found.update(unit=_text(value.DisplayName), unit_description=_text(value.Description))
        elif isinstance(value, ua.Range):
            found.update(range_low=value.Low, range_high=value.High)
    return found


async def discover_tags(client: Client, roots: list[str], describe: bool = True, snapshots: bool = False) -> list[Tag]:
    """All historized variables below the roots; the parent object's name is the machine id.

    `describe` also reads each one's display name, data type, description and engineering
    units (EUInformation, EURange), for the tag registry. `snapshots` adds the variables
    that keep no history (`historized` false): their current value is read instead.
    """
    tags: list[Tag] = []
    data_types: dict[str, str] = {}

    async def walk(node: Node, path: list[str]) -> None:
        for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
            name = (await child.read_browse_name()).Name
            node_class = await child.read_node_class()
            if node_class == ua.NodeClass.Object:
                await walk(child, [*path, name])
            elif node_class == ua.NodeClass.Variable:
                historized = await _keeps_history(child)
                if historized or snapshots:
                    details = await _describe(client, child, data_types) if describe else {}
                    tags.append(
                        Tag(
                            child.nodeid.to_string(),
                            "/".join([*path, name]),
                            path[-1] if path else None,
                            name,
                            **details,
                            historized=historized,
                        )
                    )

    for root in roots:
        node = await _resolve_root(client, root)
        await walk(node, [(await node.read_browse_name()).Name])
    return sorted(tags, key=lambda tag: tag.node_id)


def _numeric(value: object) -> float | None:
    """Every number (booleans as 0 and 1) as a float, so analysts can aggregate any tag."""
    if isinstance(value, bool | int | float):
        return float(value)
    return None


_INT64 = (-(2**63), 2**63 - 1)  # a UInt64 above this range has no exact integer column: `value` holds it


def _typed(raw: list[object]) -> dict[str, list]:
    """Values in the column of their kind: float (all numbers), exact integer, boolean, text."""
    return {
        "value": [_numeric(value) for value in raw],
        "value_int": [
            value
            if isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]
            else None
            for value in raw
        ],
        "value_bool": [value if isinstance(value, bool) else None for value in raw],
        "value_text": [None if value is None or isinstance(value, bool | int | float) else str(value) for value in raw],
    }


def _to_batch(tag: Tag, values: list[ua.DataValue]) -> pa.RecordBatch:
    raw = [dv.Value.Value if dv.Value is not None else None for dv in values]
    codes = [dv.StatusCode.value if dv.StatusCode is not None else 0 for dv in values]
    count = len(values)
    return pa.RecordBatch.from_pydict(
        {
            "node_id": [tag.node_id] * count,
            "browse_path": [tag.browse_path] * count,
            "machine_id": [tag.machine_id] * count,
            "tag": [tag.name] * count,
            "source_timestamp": [dv.SourceTimestamp or dv.ServerTimestamp for dv in values],
            "server_timestamp": [dv.ServerTimestamp for dv in values],
            **_typed(raw),
            "status_code": codes,
            "status": [status_class(code) for code in codes],
        },
        schema=READINGS_SCHEMA,
    )


def _decode(tag: Tag, body: bytes) -> pa.RecordBatch | None:
    """A node's answer as a batch: numpy over the encoded values when they allow, asyncua otherwise."""
    constants = {"node_id": tag.node_id, "browse_path": tag.browse_path, "machine_id": tag.machine_id, "tag": tag.name}
    fast = opcua_decode.decode(body, constants, READINGS_SCHEMA)
    if fast is not None:
        return fast
    values = opcua_decode.data_values(body)
    return _to_batch(tag, values) if values else None


def _decode_all(bodies: list[tuple[Tag, bytes]]) -> list[pa.RecordBatch]:
    decoded = (_decode(tag, body) for tag, body in bodies)
    return [batch for batch in decoded if batch is not None and batch.num_rows]


async def read_history(
    client: Client,
    tags: list[Tag],
    start: datetime,
    end: datetime,
    values_per_request: int = 5_000,
    nodes_per_request: int = 50,
    failures: dict[str, str] | None = None,
) -> AsyncGenerator[pa.RecordBatch, None]:
    """Raw history of `tags` in [start, end], one batch per node per server answer.

    A node the server answers Bad for is recorded in `failures` (node id -> status) and the
    others are read on; without `failures` it raises `OpcuaReadError`.
    """
    details = ua.ReadRawModifiedDetails(
        IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=values_per_request, ReturnBounds=False
    )
    lanes = min(LANES, max(nodes_per_request, 1))
    size = max(nodes_per_request // lanes, 1)  # nodes holding continuation points stay within nodes_per_request
    groups: list[list[tuple[Tag, bytes | None]]] = [
        [(tag, None) for tag in tags[offset : offset + size]] for offset in range(0, len(tags), size)
    ]
    in_flight: deque[tuple[list[tuple[Tag, bytes | None]], asyncio.Task[list[opcua_decode.RawResult]]]] = deque()

    def ask(asked: list[tuple[Tag, bytes | None]]) -> None:
        request = opcua_decode.history_read(client, _history_params(details, asked, release=False))
        in_flight.append((asked, asyncio.ensure_future(request)))

    while groups and len(in_flight) < lanes:
        ask(groups.pop(0))
    try:
        while in_flight:
            asked, answer = in_flight.popleft()
            bodies, continued = _answered(asked, await answer, failures)
            # the next requests go out before this answer is decoded, so the server works meanwhile
            if continued:
                ask(continued)
            while groups and len(in_flight) < lanes:
                ask(groups.pop(0))
            # decoded in a worker thread: the event loop stays free to answer keep-alives meanwhile
            for batch in await asyncio.to_thread(_decode_all, bodies):
                yield batch
    finally:
        for _, answer in in_flight:
            answer.cancel()
        held: list[tuple[Tag, bytes | None]] = [(tag, point) for asked, _ in in_flight for tag, point in asked if point]
        if held:
            # a read stopped early: tell the server to free what it holds for us, if it still listens
            with contextlib.suppress(ua.UaError, OSError, ConnectionError, asyncio.TimeoutError):
                await client.uaclient.history_read(_history_params(details, held, release=True))


def _answered(
    asked: list[tuple[Tag, bytes | None]], results: list[opcua_decode.RawResult], failures: dict[str, str] | None
) -> tuple[list[tuple[Tag, bytes]], list[tuple[Tag, bytes | None]]]:
    """The encoded values of each node answered, and the nodes to ask again with their continuation points."""
    bodies: list[tuple[Tag, bytes]] = []
    continued: list[tuple[Tag, bytes | None]] = []
    for (tag, _), result in zip(asked, results, strict=True):
        if not result.status.is_good():
            name, doc = ua.status_codes.get_name_and_doc(result.status.value)
            message = f"history read of {tag.node_id} ({tag.browse_path}) failed: {name} ({doc})"
            if failures is None:
                raise OpcuaReadError(message)
            failures[tag.node_id] = message
            continue
        if result.body:
            bodies.append((tag, result.body))
        if result.continuation:
            continued.append((tag, result.continuation))
    return bodies, continued


async def read_snapshots(
    client: Client, tags: list[Tag], now: datetime, nodes_per_request: int = 50
) -> AsyncGenerator[pa.RecordBatch, None]:
    """The current value of tags that keep no history, stamped with the server's time (else `now`)."""
    for offset in range(0, len(tags), nodes_per_request):
        group = tags[offset : offset + nodes_per_request]
        params = ua.ReadParameters(
            TimestampsToReturn=ua.TimestampsToReturn.Both,
            NodesToRead=[
                ua.ReadValueId(NodeId=ua.NodeId.from_string(tag.node_id), AttributeId=ua.AttributeIds.Value)
                for tag in group
            ],
        )
        for tag, value in zip(group, await opcua_decode.read_values(client, params), strict=True):
            if value.SourceTimestamp is None and value.ServerTimestamp is None:
                value.SourceTimestamp = opcua_decode.ua_datetime(now)
            yield _to_batch(tag, [value])


def _history_params(
    details: ua.ReadRawModifiedDetails, pending: list[tuple[Tag, bytes | None]], release: bool
) -> ua.HistoryReadParameters:
    return ua.HistoryReadParameters(
        HistoryReadDetails=details,
        TimestampsToReturn=ua.TimestampsToReturn.Both,
        ReleaseContinuationPoints=release,
        NodesToRead=[
            ua.HistoryReadValueId(NodeId=ua.NodeId.from_string(tag.node_id), ContinuationPoint=point)
            for tag, point in pending
        ],
    )

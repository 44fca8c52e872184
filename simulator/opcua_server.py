"""An asyncua OPC-UA server with the plant's address space and its sensor history.

History is served from numpy arrays by binary search, so a HistoryRead costs the server
only the values it returns. Paging uses the continuation point as asyncua does: the
source timestamp of the next value.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.history import HistoryManager, HistoryStorageInterface
from asyncua.server.internal_server import InternalServer
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantlake.connectors.opcua_decode import ua_datetime
from plantlake.simulator import history_wire
from plantlake.simulator.plant import Plant

NAMESPACE = "urn:plantlake:simulator"
SERVER_URI = "urn:plantlake:simulator:server"
_VARIANTS = {
    "Temperature": ua.VariantType.Double,
    "Vibration": ua.VariantType.Double,
    "SpindleSpeed": ua.VariantType.Double,
    "State": ua.VariantType.Int32,
    "PartCounter": ua.VariantType.Int64,
}


# unit (UNECE code, symbol, name), range and description of each tag, as a real PLC declares them
_UNITS = {
    "Temperature": (4408652, "°C", "degree Celsius", 0.0, 120.0, "Spindle motor temperature"),
    "Vibration": (4411953, "mm/s", "millimetre per second", 0.0, 25.0, "Spindle vibration velocity (RMS)"),
    "SpindleSpeed": (5066068, "rpm", "revolutions per minute", 0.0, 24000.0, "Spindle speed"),
    "State": (None, "", "", 0.0, 3.0, "Machine state: 0 off, 1 idle, 2 running, 3 fault"),
    "PartCounter": (None, "", "", 0.0, 1e9, "Parts produced since the counter was reset"),
}


class ArrayHistory(HistoryStorageInterface):
    """Read-only history per node: the sorted sample times (shared) and the values and statuses
    encoded once as DataValue records (see `history_wire`), so a day of 1 s samples of a tag
    costs about 2.6 MB."""

    def __init__(self, max_history_data_response_size: int = 10_000) -> None:
        super().__init__(max_history_data_response_size)
        self.max_history_data_response_size = max_history_data_response_size
        self.series: dict[ua.NodeId, tuple[np.ndarray, np.ndarray, ua.VariantType]] = {}

    def add_series(
        self, node_id: ua.NodeId, seconds: np.ndarray, values: np.ndarray, status: np.ndarray, variant: ua.VariantType
    ) -> None:
        self.series[node_id] = (seconds, history_wire.encode_series(seconds, values, status, variant), variant)

    async def init(self) -> None:
        return None

    async def new_historized_node(self, node_id, period, count=0) -> None:
        return None

    async def save_node_value(self, node_id, datavalue) -> None:
        return None

    async def read_node_history(
        self, node_id: ua.NodeId, start: datetime | None, end: datetime | None, nb_values: int
    ) -> tuple[list[ua.DataValue], datetime | None]:
        if node_id not in self.series:
            return [], None
        seconds, records, variant = self.series[node_id]
        values, status = records["value"], records["status"]
        low, page_end, high = history_wire.page(seconds, start, end, nb_values, self.max_history_data_response_size)
        python_value = float if variant == ua.VariantType.Double else int
        page = [
            ua.DataValue(
                Value=ua.Variant(python_value(values[i]), variant),
                StatusCode=ua.StatusCode(ua.UInt32(status[i])),
                SourceTimestamp=history_wire.moment(seconds[i]),
                ServerTimestamp=history_wire.moment(seconds[i]),
            )
            for i in range(low, page_end)
        ]
        # the spec asks for a continuation point whenever values remain in the range
        return page, (history_wire.moment(seconds[page_end]) if page_end < high else None)

    async def new_historized_event(self, source_id, evtypes, period, count=0) -> None:
        return None

    async def save_event(self, event) -> None:
        return None

    async def read_event_history(self, source_id, start, end, nb_values, evfilter):
        return [], None

    async def stop(self) -> None:
        return None


class _ArrayHistoryManager(HistoryManager):
    """Raw history answered from the pre-encoded records (see `history_wire`), and, as historians
    do, a Bad status for a node that keeps no history (asyncua's own manager answers Good, empty)."""

    def __init__(self, iserver: InternalServer, storage: ArrayHistory) -> None:
        super().__init__(iserver)
        self.set_storage(storage)
        self.arrays = storage

    async def _read_history(self, details: Any, rv: ua.HistoryReadValueId) -> ua.HistoryReadResult:
        if isinstance(details, ua.ReadRawModifiedDetails) and not details.IsReadModified:
            if rv.NodeId not in self.arrays.series:
                return ua.HistoryReadResult(
                    StatusCode=ua.StatusCode(ua.UInt32(ua.StatusCodes.BadHistoryOperationUnsupported))
                )
            seconds, records, _ = self.arrays.series[rv.NodeId]
            return history_wire.answer(
                records, seconds, details, rv.ContinuationPoint, self.arrays.max_history_data_response_size
            )
        return await super()._read_history(details, rv)


def _serve_history(server: Server, storage: ArrayHistory) -> None:
    """History of `storage` served by `_ArrayHistoryManager`, in place of asyncua's own manager."""
    history_wire.install()
    server.iserver.history_manager = _ArrayHistoryManager(server.iserver, storage)


def node_id_for(line: str, machine_id: str, tag: str, namespace_index: int) -> ua.NodeId:
    return _string_node_id(f"Plant.{line}.{machine_id}.{tag}", namespace_index)


def _string_node_id(name: str, namespace_index: int) -> ua.NodeId:
    return ua.NodeId(ua.String(name), ua.Int16(namespace_index))


@dataclass(frozen=True)
class Security:
    """A secured endpoint: Basic256Sha256 (Sign, SignAndEncrypt), a certificate in `folder`, one user."""

    folder: Path
    username: str
    password: str


class _OneUser(UserManager):
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password

    def get_user(self, iserver, username=None, password=None, certificate=None) -> User | None:
        if username == self.username and password == self.password:
            return User(role=UserRole.User)
        return None  # the client is told BadUserAccessDenied


async def _secure(server: Server, security: Security) -> None:
    security.folder.mkdir(parents=True, exist_ok=True)
    key, cert = security.folder / "server_key.pem", security.folder / "server_cert.der"
    await cert_gen.setup_self_signed_certificate(
        key,
        cert,
        SERVER_URI,
        socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH],
        {"organizationName": "plantlake"},
    )
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    server.set_security_policy(
        [ua.SecurityPolicyType.Basic256Sha256_Sign, ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
    )
    server.set_identity_tokens([ua.UserNameIdentityToken])


async def build_server(
    plant: Plant, host: str = "127.0.0.1", port: int = 48400, security: Security | None = None
) -> Server:
    """A ready, not yet started server; historized tags plus one non-historized serial number each."""
    server = Server(user_manager=_OneUser(security.username, security.password) if security else None)
    await server.init()
    await server.set_application_uri(SERVER_URI)
    server.set_endpoint(f"opc.tcp://{host}:{port}/plantlake")
    server.set_server_name("plantlake plant simulator")
    if security is None:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    else:
        await _secure(server, security)
    idx = await server.register_namespace(NAMESPACE)
    storage = ArrayHistory()
    _serve_history(server, storage)
    root = await server.nodes.objects.add_object(_string_node_id("Plant", idx), ua.QualifiedName("Plant", idx))
    lines = {}
    seconds = plant.timestamps
    commissioned = ua_datetime(plant.start)
    for machine in plant.machines:
        if machine.line not in lines:
            lines[machine.line] = await root.add_object(
                _string_node_id(f"Plant.{machine.line}", idx), ua.QualifiedName(machine.line, idx)
            )
        folder = await lines[machine.line].add_object(
            _string_node_id(f"Plant.{machine.line}.{machine.machine_id}", idx),
            ua.QualifiedName(machine.machine_id, idx),
        )
        serial = await folder.add_variable(
            _string_node_id(f"Plant.{machine.line}.{machine.machine_id}.SerialNumber", idx),
            ua.QualifiedName("SerialNumber", idx),
            ua.Variant(f"SN-{machine.machine_id}", ua.VariantType.String),
        )
        # set once when the machine was commissioned: the same source timestamp whenever the server restarts
        await serial.write_value(
            ua.DataValue(
                ua.Variant(f"SN-{machine.machine_id}", ua.VariantType.String),
                SourceTimestamp=commissioned,
                ServerTimestamp=commissioned,
            )
        )
        signals = plant.signals(machine)
        for tag in plant.tags:
            node_id = node_id_for(machine.line, machine.machine_id, tag, idx)
            values, status = signals[tag]
            variant = _VARIANTS.get(tag, ua.VariantType.Double)
            initial = float(values[-1]) if variant == ua.VariantType.Double else int(values[-1])
            variable = await folder.add_variable(node_id, ua.QualifiedName(tag, idx), ua.Variant(initial, variant))
            await variable.write_attribute(
                ua.AttributeIds.Historizing, ua.DataValue(ua.Variant(True, ua.VariantType.Boolean))
            )
            await variable.set_attr_bit(ua.AttributeIds.AccessLevel, ua.AccessLevel.HistoryRead)
            await variable.set_attr_bit(ua.AttributeIds.UserAccessLevel, ua.AccessLevel.HistoryRead)
            await _describe(variable, tag)
            storage.add_series(node_id, seconds, values, status, variant)
    return server


async def _describe(variable, tag: str) -> None:
    """Description, EngineeringUnits (EUInformation) and EURange properties, as OPC-UA analog items carry."""
    unit_id, symbol, name, low, high, description = _UNITS.get(
        tag, (4932940, "bar", "bar", 0.0, 400.0, f"Process sensor {tag}")
    )
    await variable.write_attribute(ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(description))))
    if unit_id is not None:
        units = ua.EUInformation(
            NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
            UnitId=unit_id,
            DisplayName=ua.LocalizedText(symbol),
            Description=ua.LocalizedText(name),
        )
        await variable.add_property(0, "EngineeringUnits", ua.Variant(units, ua.VariantType.ExtensionObject))
    await variable.add_property(0, "EURange", ua.Variant(ua.Range(Low=low, High=high), ua.VariantType.ExtensionObject))


async def serve(
    plant: Plant,
    host: str = "127.0.0.1",
    port: int = 48400,
    ready: asyncio.Event | None = None,
    security: Security | None = None,
) -> None:
    """Run the server until cancelled."""
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    server = await build_server(plant, host, port, security)
    async with server:
        if ready is not None:
            ready.set()
        print(f"plant simulator serving opc.tcp://{host}:{port}/plantlake", flush=True)
        while True:
            await asyncio.sleep(3600)

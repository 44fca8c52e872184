"""Blocking, reconnecting history streams over asyncua, for synchronous callers (the lake writer).

A link that drops mid-read is re-established with exponential back-off; each tag's read then
resumes after the last value already delivered, so the stream has no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantlake.connectors.opcua import OpcuaReadError, Tag, discover_tags, read_history, read_snapshots, selected
from plantlake.connectors.opcua_loop import LoopThread


class OpcuaRefused(OpcuaReadError):
    """The server refused the session (user, password, security): trying again will not help."""


# what a dropped link or a server restart raises on the client side
LINK_ERRORS = (
    ConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncio.CancelledError,
    concurrent.futures.CancelledError,
    ua.UaError,
)


@dataclass(frozen=True)
class Credentials:
    """How to open a session: Basic256Sha256 `mode` with this client's certificate, and a user."""

    mode: str | None = None
    certificate: Path | None = None
    private_key: Path | None = None
    username: str | None = None
    password: str | None = None


CLIENT_URI = "urn:plantlake:client"


def write_private_key(path: Path) -> None:
    """A new RSA key for this client, in a file only its owner can read (0600), created so from the start."""
    pem = cert_gen.dump_private_key_as_pem(cert_gen.generate_private_key())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(pem)
    os.chmod(path, 0o600)  # whatever the umask took away, no more is granted


async def _apply(client: Client, credentials: Credentials) -> None:
    if credentials.username is not None:
        client.set_user(credentials.username)
        client.set_password(credentials.password or "")
    if credentials.mode is not None and credentials.certificate and credentials.private_key:
        client.application_uri = CLIENT_URI
        for path in (credentials.certificate, credentials.private_key):
            path.parent.mkdir(parents=True, exist_ok=True)
        if not credentials.private_key.exists():
            write_private_key(credentials.private_key)
        await cert_gen.setup_self_signed_certificate(
            credentials.private_key,
            credentials.certificate,
            CLIENT_URI,
            socket.gethostname(),
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"organizationName": "plantlake"},
        )
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            str(credentials.certificate),
            str(credentials.private_key),
            mode=getattr(ua.MessageSecurityMode, credentials.mode),
        )


class Session:
    """One client connection, opened again (with back-off) when the link drops.

    asyncua runs on an event loop in a thread of its own (`LoopThread`), so its keep-alives are
    answered however long the caller takes over a batch; its watchdog probes the server once
    per request timeout instead of every second, so a server busy with a large answer is not
    taken for a lost link.
    """

    def __init__(
        self, endpoint: str, timeout_s: float, attempts: int, backoff_s: float, credentials: Credentials | None = None
    ) -> None:
        self.endpoint, self.timeout_s, self.attempts, self.backoff_s = endpoint, timeout_s, attempts, backoff_s
        self.credentials = credentials or Credentials()
        self.loop = LoopThread()
        self.client: Client | None = None

    def connect(self) -> Client:
        client = self.loop.run(self._client())
        try:
            self.loop.run(_apply(client, self.credentials))
            self.loop.run(client.connect())
        except ua.UaStatusCodeError as exc:
            name = ua.status_codes.get_name_and_doc(exc.code)[0]
            if name in ("BadUserAccessDenied", "BadIdentityTokenInvalid", "BadIdentityTokenRejected"):
                raise OpcuaRefused(
                    f"{self.endpoint} refused the user {self.credentials.username!r} ({name}); check the "
                    "username and the password given in the environment"
                ) from None
            raise OpcuaRefused(
                f"{self.endpoint} refused the session ({name}); check security mode, certificate and key"
            ) from None
        except ua.UaError as exc:
            wanted = f"Basic256Sha256 {self.credentials.mode}" if self.credentials.mode else "no security"
            raise OpcuaRefused(
                f"{self.endpoint} offers no endpoint for {wanted} ({exc}); set `security:` in the YAML "
                "to what the server offers"
            ) from None
        except TimeoutError as exc:
            self._abandon(client)
            raise OpcuaReadError(
                f"connecting to {self.endpoint} timed out after {self.timeout_s:g} s (`timeout_s`): something "
                "accepts TCP connections there but did not answer as an OPC-UA server; check host and port"
            ) from exc
        except OSError as exc:
            self._abandon(client)
            raise OpcuaReadError(f"cannot connect to {self.endpoint}: {exc}; is the OPC-UA server running?") from exc
        self.client = client
        return client

    async def _client(self) -> Client:
        """A client made on the loop it will run on."""
        client = Client(self.endpoint, timeout=self.timeout_s, watchdog_intervall=max(self.timeout_s, 1.0))
        client.session_timeout = 600_000  # what servers commonly grant; asking for more only draws a warning
        return client

    def _abandon(self, client: Client) -> None:
        """Close what a failed connect left open (the socket of a server that never answered)."""

        async def close_socket() -> None:
            client.disconnect_socket()

        with contextlib.suppress(*LINK_ERRORS):
            self.loop.run(close_socket())

    def reconnect(self, cause: BaseException) -> Client:
        """Drop the broken connection and open a new one, waiting longer after each failed try."""
        self._drop()
        last: OpcuaReadError | None = None
        for attempt in range(self.attempts):
            time.sleep(self.backoff_s * 2**attempt)
            try:
                client = self.connect()
            except OpcuaRefused:
                raise
            except OpcuaReadError as exc:
                last = exc
                continue
            return client
        raise OpcuaReadError(
            f"lost the connection to {self.endpoint} ({type(cause).__name__}: {cause}) and could not "
            f"connect again in {self.attempts} tries ({last}); the next run resumes from the committed marks"
        ) from cause

    def _drop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(*LINK_ERRORS):
                self.loop.run(asyncio.wait_for(self.client.disconnect(), timeout=2))
        self.client = None

    def close(self) -> None:
        self._drop()
        self.loop.close()


def _after(batch: pa.RecordBatch, seen: datetime | None) -> pa.RecordBatch:
    """The values of a tag's batch past the last one already delivered (a resumed read repeats its start)."""
    if seen is None:
        return batch
    return batch.filter(
        pc.greater(batch.column("source_timestamp"), pa.scalar(seen, batch.schema.field("source_timestamp").type))
    )


def read_history_blocking(
    endpoint: str,
    roots: list[str],
    start_for: Callable[[str], datetime] | datetime,
    end: datetime,
    values_per_request: int = 5_000,
    nodes_per_request: int = 50,
    timeout_s: float = 30,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    failures: dict[str, str] | None = None,
    reconnect_attempts: int = 5,
    backoff_s: float = 1.0,
    link_losses: list[str] | None = None,
    credentials: Credentials | None = None,
    snapshots: bool = True,
    describe: bool = True,
) -> tuple[list[Tag], Iterator[pa.RecordBatch]]:
    """Discover the tags (those `include`d and not `exclude`d by browse path), then stream their
    history; `start_for` gives each node id its own start; nodes answered Bad go to `failures`;
    each time the link dropped and was opened again is noted in `link_losses`."""
    session = Session(endpoint, timeout_s, reconnect_attempts, backoff_s, credentials)
    try:
        client = session.connect()
        tags = selected(
            session.loop.run(discover_tags(client, roots, describe=describe, snapshots=snapshots)),
            include or [],
            exclude or [],
        )
    except TimeoutError as exc:
        session.close()
        raise OpcuaReadError(
            f"browsing {endpoint} for the tags below {roots} timed out: a request got no answer within "
            f"{timeout_s:g} s (`timeout_s`)"
        ) from exc
    except BaseException:
        session.close()
        raise
    historized = [tag for tag in tags if tag.historized]
    seen: dict[str, datetime] = {}

    def start_of(tag: Tag) -> datetime:
        return seen.get(tag.node_id) or (start_for(tag.node_id) if callable(start_for) else start_for)

    def history(client: Client) -> Iterator[pa.RecordBatch]:
        groups: dict[datetime, list[Tag]] = {}
        for tag in historized:
            groups.setdefault(start_of(tag), []).append(tag)
        for start, group in sorted(groups.items(), key=lambda item: item[0]):
            if start < end:
                stream = read_history(client, group, start, end, values_per_request, nodes_per_request, failures)
                for batch in session.loop.iterate(stream):
                    node_id = batch.column("node_id")[0].as_py()
                    batch = _after(batch, seen.get(node_id))
                    if batch.num_rows:
                        seen[node_id] = pc.max(batch.column("source_timestamp")).as_py()
                        yield batch

    def batches() -> Iterator[pa.RecordBatch]:
        client = session.client
        try:
            if client is None:
                raise OpcuaReadError(f"the session to {endpoint} was closed before its values were read")
            yield from session.loop.iterate(
                read_snapshots(client, [t for t in tags if not t.historized], end, nodes_per_request)
            )
            fruitless = 0  # links lost in a row without a value delivered in between
            while True:
                delivered = 0
                try:
                    for batch in history(client):
                        delivered += 1
                        yield batch
                    return
                except LINK_ERRORS as exc:
                    if isinstance(exc, ua.UaStatusCodeError) and not _link_status(exc):
                        raise
                    if link_losses is not None:
                        link_losses.append(f"{type(exc).__name__}: {exc}")
                    fruitless = 0 if delivered else fruitless + 1
                    if fruitless >= max(reconnect_attempts, 1):
                        raise OpcuaReadError(
                            f"reading history from {endpoint} failed {fruitless} times in a row without getting "
                            f"a value ({type(exc).__name__}: {exc}); the next run resumes from the committed marks"
                        ) from exc
                    client = session.reconnect(exc)
        finally:
            session.close()

    return tags, batches()


def _link_status(error: ua.UaStatusCodeError) -> bool:
    """Status codes that mean the session or the connection is gone, not that the request was wrong."""
    name = ua.status_codes.get_name_and_doc(error.code)[0] if hasattr(error, "code") else ""
    return any(
        part in name for part in ("Connection", "Session", "Secure", "Timeout", "Shutdown", "CommunicationError")
    )

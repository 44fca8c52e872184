"""The client's private key, made on first use, is readable by its owner only."""

import asyncio
import os
import stat

import pytest
from asyncua import Client

from plantlake.connectors.opcua_stream import Credentials, _apply

pytestmark = pytest.mark.unit


def test_a_generated_private_key_is_written_0600_even_under_a_permissive_umask(tmp_path, monkeypatch) -> None:
    async def no_server(*args, **kwargs) -> None:  # set_security asks the server for its endpoints
        return None

    monkeypatch.setattr(Client, "set_security", no_server)
    keys = Credentials("SignAndEncrypt", tmp_path / "pki" / "client_cert.der", tmp_path / "pki" / "client_key.pem")
    previous = os.umask(0o022)  # the usual one, which made the key 0644
    try:
        asyncio.run(_apply(Client("opc.tcp://127.0.0.1:4840"), keys))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(keys.private_key.stat().st_mode) == 0o600
    assert keys.certificate.stat().st_size > 0 and b"PRIVATE KEY" in keys.private_key.read_bytes()

    # a key already there is used as it is, and the certificate made for it
    key = keys.private_key.read_bytes()
    keys.certificate.unlink()
    asyncio.run(_apply(Client("opc.tcp://127.0.0.1:4840"), keys))
    assert keys.private_key.read_bytes() == key and keys.certificate.exists()

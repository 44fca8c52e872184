"""OPC-UA history from the simulator over TCP into the lake, value for value."""

import asyncio
import contextlib
import socket
import threading
from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute
import pytest
from asyncua import Client
from conftest import ANCHOR

from plantlake.assets.opcua import build_silver, load_bronze
from plantlake.assets.opcua_backfill import backfill_job
from plantlake.assets.resources import PlantlakeResource
from plantlake.config import OpcuaSource, load_config
from plantlake.connectors.opcua import OpcuaReadError, Tag, discover_tags, read_history, selected, tag_table
from plantlake.connectors.opcua_stream import Credentials, OpcuaRefused, read_history_blocking
from plantlake.lake import delta
from plantlake.lake.layout import Lake
from plantlake.simulator.plant import TAGS
from plantlake.simulator.process import free_port, opcua_simulator

pytestmark = pytest.mark.integration


def _expected(plant, start: datetime, end: datetime) -> dict[tuple[str, str], list[tuple[datetime, float, int]]]:
    """What the simulator holds in [start, end], per (machine, tag)."""
    seconds = plant.timestamps
    inside = (seconds >= start.timestamp()) & (seconds <= end.timestamp())
    expected = {}
    for machine in plant.machines:
        for tag, (values, status) in plant.signals(machine).items():
            expected[(machine.machine_id, tag)] = [
                (datetime.fromtimestamp(int(s), UTC), float(v), int(c))
                for s, v, c in zip(seconds[inside], values[inside], status[inside], strict=True)
            ]
    return expected


def _observed(table: pa.Table) -> dict[tuple[str, str], list[tuple[datetime, float, int]]]:
    observed: dict = {}
    for row in sorted(table.to_pylist(), key=lambda r: (r["machine_id"], r["tag"], r["source_timestamp"])):
        observed.setdefault((row["machine_id"], row["tag"]), []).append(
            (row["source_timestamp"], row["value"], row["status_code"])
        )
    return observed


def test_discovery_finds_exactly_the_historized_variables(opcua_endpoint: str, plant) -> None:
    async def discover():
        async with Client(opcua_endpoint) as client:
            return await discover_tags(client, ["2:Plant"])

    tags = asyncio.run(discover())
    assert {(t.machine_id, t.name) for t in tags} == {(m.machine_id, tag) for m in plant.machines for tag in TAGS}
    assert all("SerialNumber" not in t.browse_path for t in tags)
    assert tags[0].browse_path.startswith("Plant/L1/")
    # the registry carries what the server declares of each tag
    by_name = {(t.machine_id, t.name): t for t in tags}
    speed = by_name[(plant.machines[0].machine_id, "SpindleSpeed")]
    assert (speed.unit, speed.unit_description, speed.range_low, speed.range_high) == (
        "rpm",
        "revolutions per minute",
        0.0,
        24000.0,
    )
    assert (speed.data_type, speed.display_name, speed.description) == ("Double", "SpindleSpeed", "Spindle speed")
    state = by_name[(plant.machines[0].machine_id, "State")]
    assert (state.unit, state.data_type, state.range_high) == (None, "Int32", 3.0)
    registry = tag_table(tags)
    assert registry.num_rows == len(tags) and registry.column("unit").null_count == 2 * len(plant.machines)
    # include and exclude patterns on the browse path
    first = plant.machines[0].machine_id
    chosen = selected(tags, [f"Plant/*/{first}/*"], ["*/PartCounter"])
    assert {t.name for t in chosen} == set(TAGS) - {"PartCounter"} and {t.machine_id for t in chosen} == {first}


def test_history_read_with_continuation_points_equals_the_server(opcua_endpoint: str, plant) -> None:
    start, end = plant.start + timedelta(hours=3), plant.start + timedelta(hours=9)
    # 50 values per request forces several continuation points per tag
    _tags, batches = read_history_blocking(
        opcua_endpoint, ["2:Plant"], start, end, values_per_request=50, nodes_per_request=4, exclude=["*/SerialNumber"]
    )
    table = pa.Table.from_batches(list(batches))
    assert _observed(table) == _expected(plant, start, end)
    assert set(table["status"].to_pylist()) <= {"Good", "Uncertain", "Bad"}


def test_backfill_and_rerun_land_every_value_once(opcua_endpoint: str, plant, lake: Lake) -> None:
    source = OpcuaSource(
        name="plant", endpoint=opcua_endpoint, roots=["2:Plant"], history_days=2, values_per_request=500
    )
    first = load_bronze(lake, source, "run-1", now=plant.end)
    silver = build_silver(lake, [source], "run-1")
    snapshots = len(plant.machines)  # each machine's SerialNumber keeps no history: its current value is read
    total = len(plant.machines) * len(TAGS) * len(plant.timestamps) + snapshots
    assert first.metadata["values_inserted"] == total
    marks = delta.read_state(lake.table("bronze", "plant_readings"), "read_until")  # one mark per tag
    assert len(marks) == len(plant.machines) * (len(TAGS) + 1) and set(marks.values()) == {plant.end.isoformat()}
    assert silver.metadata["rows_inserted"] == total
    assert delta.row_count(lake.table("silver", "sensor_readings")) == total

    # a later run starts where the committed read ended: only the boundary value is re-read, nothing is added
    second = load_bronze(lake, source, "run-2", now=plant.end + timedelta(hours=1))
    build_silver(lake, [source], "run-2")
    assert second.metadata["read_from"] == plant.end.isoformat()
    assert second.metadata["values_inserted"] == 0
    assert delta.row_count(lake.table("bronze", "plant_readings")) == total
    assert delta.row_count(lake.table("silver", "sensor_readings")) == total

    readings = delta.read(lake.table("bronze", "plant_readings"))
    serials = readings.filter(pa.compute.equal(readings["tag"], "SerialNumber"))
    assert sorted(serials["value_text"].to_pylist()) == sorted(f"SN-{m.machine_id}" for m in plant.machines)
    history = readings.filter(pa.compute.not_equal(readings["tag"], "SerialNumber"))
    assert _observed(history) == _expected(plant, plant.start, plant.end)
    counters = history.filter(pa.compute.equal(history["tag"], "PartCounter"))
    assert counters["value_int"].null_count == 0 and counters["value_bool"].null_count == counters.num_rows

    # the tag registry is in silver, one row per tag with its unit
    registry = delta.read(lake.table("silver", "opcua_tags"))
    assert registry.num_rows == len(plant.machines) * (len(TAGS) + 1)
    assert set(registry.column("source").to_pylist()) == {"plant"}
    assert registry.filter(pa.compute.invert(registry["historized"]))["tag"].to_pylist() == ["SerialNumber"] * len(
        plant.machines
    )
    assert {row["unit"] for row in registry.to_pylist() if row["tag"] == "Temperature"} == {"°C"}


def test_a_node_answered_bad_does_not_stop_the_others(opcua_endpoint: str, plant) -> None:
    async def read(failures: dict[str, str] | None) -> list[pa.RecordBatch]:
        async with Client(opcua_endpoint) as client:
            tags = (await discover_tags(client, ["2:Plant"], describe=False))[:3]
            missing = Tag("ns=2;s=Plant.L9.M-999.Temperature", "Plant/L9/M-999/Temperature", "M-999", "Temperature")
            start, end = plant.start, plant.start + timedelta(hours=1)
            return [
                batch
                async for batch in read_history(client, [tags[0], missing, *tags[1:]], start, end, 100, 2, failures)
            ]

    failures: dict[str, str] = {}
    batches = asyncio.run(read(failures))
    assert (
        list(failures) == ["ns=2;s=Plant.L9.M-999.Temperature"]
        and "Bad" in failures["ns=2;s=Plant.L9.M-999.Temperature"]
    )
    assert len({batch.column("node_id")[0].as_py() for batch in batches}) == 3  # the three real tags were read
    with pytest.raises(OpcuaReadError, match="M-999"):
        asyncio.run(read(None))


def test_a_link_cut_mid_read_is_resumed_with_no_gap_and_no_duplicate(plant) -> None:
    """The server is stopped in the middle of a read and started again on the same port."""
    port, options = (
        free_port(),
        {"seed": 7, "lines": 1, "machines_per_line": 2, "history_days": 1, "sample_seconds": 60},
    )
    start, end = plant.start, plant.end
    with contextlib.ExitStack() as stack:
        endpoint = stack.enter_context(opcua_simulator(port, ANCHOR, **options))
        _tags, batches = read_history_blocking(
            endpoint,
            ["2:Plant"],
            start,
            end,
            values_per_request=100,
            nodes_per_request=2,
            exclude=["*/SerialNumber"],
            reconnect_attempts=8,
            backoff_s=0.5,
            link_losses=(losses := []),
        )
        received = [next(batches) for _ in range(6)]
        stack.close()  # the server goes away in the middle of the read
        with opcua_simulator(port, ANCHOR, **options):
            received += list(batches)
    table = pa.Table.from_batches(received)
    assert _observed(table) == _expected(plant, start, end)
    assert table.num_rows == len(plant.machines) * len(TAGS) * len(plant.timestamps)  # none twice
    assert len(losses) == 1  # the link did drop, once


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
def test_a_secured_endpoint_takes_certificate_and_password_and_refuses_a_wrong_password(
    plant, tmp_path, mode: str
) -> None:
    port, options = (
        free_port(),
        {"seed": 7, "lines": 1, "machines_per_line": 2, "history_days": 1, "sample_seconds": 60},
    )
    secure = ["--secure-dir", str(tmp_path / "server_pki"), "--user", "historian"]
    keys = {"certificate": tmp_path / "pki" / "client_cert.der", "private_key": tmp_path / "pki" / "client_key.pem"}
    start, end = plant.start, plant.start + timedelta(hours=2)
    with opcua_simulator(
        port, ANCHOR, **options, extra_args=secure, env={"PLANTLAKE_SIM_PASSWORD": "s3cret"}
    ) as endpoint:
        right = Credentials(mode, keys["certificate"], keys["private_key"], "historian", "s3cret")
        _tags, batches = read_history_blocking(
            endpoint, ["2:Plant"], start, end, exclude=["*/SerialNumber"], credentials=right
        )
        assert _observed(pa.Table.from_batches(list(batches))) == _expected(plant, start, end)
        assert keys["certificate"].exists() and keys["private_key"].exists()  # made on first use

        wrong = Credentials(mode, keys["certificate"], keys["private_key"], "historian", "guess")
        with pytest.raises(
            OpcuaRefused,
            match=r"refused the user 'historian' .*BadUserAccessDenied.*check the username and the password",
        ):
            read_history_blocking(endpoint, ["2:Plant"], start, end, credentials=wrong)
        with pytest.raises(OpcuaRefused):  # no security at all: the server offers none
            read_history_blocking(endpoint, ["2:Plant"], start, end)


def test_a_daily_backfill_partition_lands_its_day_once(opcua_endpoint: str, plant, tmp_path) -> None:
    config_file = tmp_path / "plantlake.yaml"
    since = plant.start.date().isoformat()
    config_file.write_text(
        f"""
lake: {{root: lake}}
sources:
  opcua:
    - {{name: plant, endpoint: "{opcua_endpoint}", roots: ["2:Plant"], backfill_from: "{since}"}}
""",
        encoding="utf-8",
    )
    config = load_config(config_file)
    job = backfill_job(config.sources.opcua[0])
    day = plant.start.date()  # the plant holds one whole UTC day of history
    resources = {"plantlake": PlantlakeResource(config_path=str(config_file))}
    with dg.instance_for_test() as instance:
        for _ in range(2):  # the same partition twice: the second run adds nothing
            result = job.execute_in_process(partition_key=day.isoformat(), resources=resources, instance=instance)
            assert result.success
        landed = [
            event.metadata["values_inserted"].value
            for event in result.asset_materializations_for_node("backfill_plant_day")
        ]
    assert landed == [0]
    readings = delta.read(Lake(config.lake.root).table("bronze", "plant_readings"))
    day_start = datetime.combine(day, datetime.min.time(), UTC)
    assert _observed(readings) == _expected(plant, day_start, day_start + timedelta(days=1) - timedelta(microseconds=1))


def test_marks_of_tags_that_left_the_server_are_pruned(opcua_endpoint: str, plant, lake: Lake) -> None:
    source = OpcuaSource(name="plant", endpoint=opcua_endpoint, roots=["2:Plant"], history_days=2)
    load_bronze(lake, source, "run-1", now=plant.end - timedelta(hours=2))
    marks = delta.read_state(lake.table("bronze", "plant_readings"), "read_until")
    assert len(marks) == len(plant.machines) * (len(TAGS) + 1)

    # the server (as this source sees it) no longer has the Vibration tags: their marks go, the others move on
    narrowed = source.model_copy(update={"exclude": ["*/Vibration"]})
    load_bronze(lake, narrowed, "run-2", now=plant.end)
    marks = delta.read_state(lake.table("bronze", "plant_readings"), "read_until")
    assert len(marks) == len(plant.machines) * len(TAGS)
    assert not [node for node in marks if "Vibration" in node]
    assert set(marks.values()) == {plant.end.isoformat()}


def test_a_port_that_accepts_and_never_answers_says_the_connect_timed_out_and_after_how_long() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        accepted = []
        silent = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
        silent.start()  # takes the connection and says nothing
        with pytest.raises(OpcuaReadError, match=r"connecting to opc\.tcp://127\.0\.0\.1:\d+ timed out after 1\.5 s"):
            read_history_blocking(f"opc.tcp://127.0.0.1:{port}", ["2:Plant"], ANCHOR, ANCHOR, timeout_s=1.5)
        assert accepted  # the port did take the connection
        accepted[0][0].close()

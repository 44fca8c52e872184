"""Gold models as declared files: semantics, incremental windows, versions and point-in-time training sets."""

from datetime import timedelta
from pathlib import Path

import pyarrow.compute as pc
import pytest
from gold_plant import DEMO_GOLD, T0, Plant, demo_model, minutes

from plantlake.config import ConfigError
from plantlake.config.models import load_model
from plantlake.lake import gold, training
from plantlake.lake.layout import Lake

pytestmark = pytest.mark.unit
HOUR = timedelta(hours=1)
FEATURES = demo_model("machine_hour_features")


@pytest.fixture
def plant(tmp_path: Path) -> Plant:
    found = Plant(Lake(tmp_path / "lake"))
    found.add_tags("M-1", {"Temperature": "°F", "PartCounter": None, "State": None})
    found.set_orders([(1, "M-1", "LOT-A", T0 - HOUR, T0 + 2 * HOUR)], at=T0)
    found.set_lots([("LOT-A", "Acme", "42CrMo4", T0 - 24 * HOUR)], at=T0)
    return found


def _by_hour(table, column: str) -> dict:
    return dict(zip(table["hour"].to_pylist(), table[column].to_pylist(), strict=True))


def test_a_running_order_without_an_end_covers_every_hour_up_to_now(plant: Plant) -> None:
    """Odoo leaves actual_end empty while an order runs: the newest hours, which live models score, keep it."""
    plant.set_orders([(1, "M-1", "LOT-A", T0 - HOUR, T0 + HOUR), (2, "M-1", "LOT-A", T0 + HOUR, None)], at=T0)
    plant.add_readings([("M-1", "State", moment, 2, "Good") for moment in minutes(T0, 5 * 60)], at=T0)
    plant.refresh(FEATURES, now=T0 + 5 * HOUR + timedelta(minutes=10))
    orders = _by_hour(plant.latest(FEATURES), "production_order_id")
    assert orders == {T0: 1, T0 + HOUR: 2, T0 + 2 * HOUR: 2, T0 + 3 * HOUR: 2, T0 + 4 * HOUR: 2}
    suppliers = set(plant.latest(FEATURES)["material_supplier"].to_pylist())
    assert suppliers == {"Acme"}


def test_counters_are_summed_from_increments_across_hours_and_resets(plant: Plant) -> None:
    """Max minus min per hour lost the part made across each hour boundary, and a reset made it wrong."""
    counts = [*range(100, 190), *range(0, 30)]  # 89 parts, then the counter is reset and counts 29 more, and one at 0
    plant.add_readings(
        [("M-1", "PartCounter", moment, value, "Good") for moment, value in zip(minutes(T0, 120), counts, strict=True)],
        at=T0,
    )
    plant.refresh(FEATURES, now=T0 + 3 * HOUR)
    parts = _by_hour(plant.latest(FEATURES), "parts_produced")
    # hour 1: 100 -> 159 is 59 parts; hour 2: 159 -> 189 is 30 (the increment across the boundary counts
    # once, in the hour it ends in), the reset to 0 counts as a part made from zero, then 29 more
    assert parts == {T0: 59, T0 + HOUR: 30 + 0 + 29}
    assert sum(parts.values()) == 89 + 29


def test_an_alarm_that_two_sources_report_counts_once(plant: Plant) -> None:
    """The PLC syslog and the CNC JSON log both report each alarm, a second apart."""
    first, later = T0 + timedelta(minutes=10), T0 + timedelta(minutes=40)
    plant.add_events(
        [
            ("M-1", "plc", "E-17", first, "error"),
            ("M-1", "cnc", "E-17", first + timedelta(seconds=1), "error"),
            ("M-1", "plc", "E-17", later, "error"),  # the same alarm again, later: a second occurrence
            ("M-1", "cnc", "E-17", later + timedelta(seconds=2), "error"),
            ("M-1", "plc", "E-99", later, "error"),  # another code at the same time: its own alarm
        ],
        at=T0,
    )
    plant.add_readings([("M-1", "State", moment, 2, "Good") for moment in minutes(T0, 60)], at=T0)
    plant.refresh(FEATURES, now=T0 + 2 * HOUR)
    assert _by_hour(plant.latest(FEATURES), "alarm_count") == {T0: 3}
    apart = DEMO_GOLD.model_copy(update={"events": DEMO_GOLD.events.model_copy(update={"keep_sources_apart": True})})
    rows = gold.compute(FEATURES, apart, plant.inputs(FEATURES), T0, T0 + HOUR, T0 + 2 * HOUR)
    assert rows["alarm_count"].to_pylist() == [5]


def test_units_the_server_declares_are_converted_to_the_signals_unit(plant: Plant) -> None:
    plant.add_readings(
        [("M-1", "Temperature", T0, 212.0, "Good"), ("M-1", "Temperature", T0 + timedelta(minutes=1), 32.0, "Good")],
        at=T0,
    )
    plant.refresh(FEATURES, now=T0 + 2 * HOUR)
    latest = plant.latest(FEATURES)
    assert latest["temperature_max"].to_pylist() == [pytest.approx(100.0)]
    assert latest["temperature_mean"].to_pylist() == [pytest.approx(50.0)]


def test_a_night_recomputes_only_the_windows_new_rows_touch_and_an_unchanged_one_adds_nothing(plant: Plant) -> None:
    path = plant.lake.table("gold", FEATURES.name)
    plant.add_readings([("M-1", "State", m, 2, "Good") for m in minutes(T0, 48 * 60)], at=T0 + 48 * HOUR)
    first = plant.refresh(FEATURES, now=T0 + 48 * HOUR)
    assert first.full and first.versions_added == 48
    night = T0 + 72 * HOUR
    plant.add_readings([("M-1", "State", m, 3, "Good") for m in minutes(T0 + 48 * HOUR, 24 * 60)], at=night)
    second = plant.refresh(FEATURES, now=night)
    assert not second.full
    assert second.windows_from == T0 + 48 * HOUR - FEATURES.late  # the new day, and the late-arrival allowance
    assert second.versions_added == 24  # the hours of the allowance were recomputed and found unchanged
    again = plant.refresh(FEATURES, now=night)
    assert again.windows_from is None and again.versions_added == 0
    assert gold.latest(path).num_rows == 72


def _night(plant: Plant, night: int) -> None:
    """Night `night`: a day of readings and alarms; on night 3 the ERP corrects the lot's supplier."""
    day = T0 + (night - 1) * 24 * HOUR
    at = day + 24 * HOUR + 2 * HOUR
    plant.add_readings([("M-1", "State", m, 3 if m.minute < 6 else 2, "Good") for m in minutes(day, 24 * 60)], at=at)
    plant.add_events(
        [("M-1", "plc", "E-1", day + timedelta(hours=h, minutes=3), "error") for h in range(0, 24, 5)], at=at
    )
    if night == 3:
        plant.set_lots([("LOT-A", "Acme Corrected", "42CrMo4", T0 - 24 * HOUR)], at=at)
    if night == 1:
        plant.set_orders([(1, "M-1", "LOT-A", T0 - HOUR, None)], at=at)
    plant.refresh(FEATURES, now=at)


def test_a_training_set_sees_no_value_known_after_its_label_time(plant: Plant) -> None:
    """A correction made on night 3 must not reach labels of nights 1 and 2; without point in time it does."""
    for night in (1, 2, 3):
        _night(plant, night)
    versions = gold.latest(plant.lake.table("gold", FEATURES.name))
    assert set(versions["material_supplier"].to_pylist()) == {"Acme Corrected"}  # the newest version of every hour
    label = training.EventWithin(FEATURES.name, hours=2)
    features = ["machine_hour_features.fault_share", "machine_hour_features.material_supplier"]
    frame, manifest = training.training_set(plant.lake, features, label=label, until=T0 + 80 * HOUR)
    label_times = frame["label_time"].to_pylist()
    known = frame["machine_hour_features__known_at"].to_pylist()
    ended = frame["machine_hour_features__feature_time"].to_pylist()
    assert frame.num_rows > 40 and all(k is not None for k in known)
    assert all(k <= t and e <= t for k, e, t in zip(known, ended, label_times, strict=True))
    before_correction = [
        s for s, t in zip(frame["material_supplier"].to_pylist(), label_times, strict=True) if t < T0 + 74 * HOUR
    ]
    assert before_correction and set(before_correction) == {"Acme"}
    assert manifest.definitions == {FEATURES.name: [FEATURES.definition_hash]}

    leaky, _ = training.training_set(plant.lake, features, label=label, until=T0 + 80 * HOUR, point_in_time=False)
    leaked = [
        k > t
        for k, t in zip(
            leaky["machine_hour_features__known_at"].to_pylist(), leaky["label_time"].to_pylist(), strict=True
        )
    ]
    assert any(leaked) and "Acme Corrected" in leaky["material_supplier"].to_pylist()


def test_a_frame_rebuilt_from_its_manifest_after_more_nights_is_identical(plant: Plant) -> None:
    """Also for a frame that is not point in time, which the corrections of later nights would change."""
    for night in (1, 2):
        _night(plant, night)
    entities = training.entity_frame(plant.lake, FEATURES.name, every=timedelta(minutes=30))
    built = {
        pit: training.training_set(
            plant.lake, ["machine_hour_features.*"], entities=entities, max_age=timedelta(hours=6), point_in_time=pit
        )
        for pit in (True, False)
    }
    assert pc.sum(pc.is_valid(built[True][0]["running_share"])).as_py() > 0
    for night in (3, 4):
        _night(plant, night)
    for pit, (frame, manifest) in built.items():
        again = training.rebuild(plant.lake, training.Manifest.from_json(manifest.to_json()), entities)
        assert again.equals(frame), pit
    moved, _ = training.training_set(
        plant.lake, ["machine_hour_features.*"], entities=entities, max_age=timedelta(hours=6), point_in_time=False
    )
    assert not moved.equals(built[False][0])  # the lake moved on; the rebuild read the versions of its manifest
    with pytest.raises(ValueError, match="same frame"):
        training.rebuild(plant.lake, built[True][1], entities.slice(1))


def test_a_model_file_without_its_header_or_with_a_wrong_key_says_where(tmp_path: Path) -> None:
    bare = tmp_path / "bare.sql"
    bare.write_text("SELECT 1 AS x\n")
    with pytest.raises(ConfigError, match=r"bare\.sql: a model starts with its YAML header"):
        load_model(bare)
    wrong = tmp_path / "wrong.sql"
    wrong.write_text("/* ---\ndescription: d\nkey: [machine_id]\ntime: hour\ngrain: week\n--- */\nSELECT 1\n")
    with pytest.raises(ConfigError, match=r"wrong\.sql: grain"):
        load_model(wrong)

"""Another plant gets its own gold from YAML and SQL alone: other tags on another vendor's OPC-UA
server (node-opcua, °F declared in EUInformation, a counter that is reset, its own state codes),
another ERP schema in PostgreSQL (an order still running has no end), a supplier file whose
column is `supplier_id`, and machine names that differ between the server and the ERP.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from nodeopcua import launch
from unavailable import unavailable

from plantlake.config import load_config
from plantlake.lake import gold
from plantlake.lake.layout import Lake
from plantlake.pipelines.factory import build_definitions
from plantlake.pipelines.runs import refresh_and_publish
from plantlake.simulator.process import free_port

pytestmark = pytest.mark.integration
START = datetime(2026, 3, 2, 6, tzinfo=UTC)
MINUTES = 360
NOW = START + timedelta(minutes=MINUTES + 10)
ALIASES = {"Fräse Nord": "FN-01", "Fräse Süd": "FS-02"}

PLANT_YAML = """
lake: {root: lake}
sources:
  erp:
    - name: werk
      url: ${WERK_ERP_URL}
      tables:
        - {name: Fertigungsauftrag, lake_name: fertigungsauftrag, primary_key: [AuftragNr], cursor: geaendert}
  opcua:
    - name: halle
      endpoint: ${WERK_OPCUA_ENDPOINT}
      roots: ["1:Plant"]
      history_days: 1
  suppliers:
    - name: stahl
      path: drop
      glob: "*.csv"
      format: csv
      csv: {delimiter: ";"}
      target: chargen
      key: [lot_id]
      columns:
        Charge: {name: lot_id, required: true}
        Lieferant-Nr: {name: supplier_id, required: true}
        Werkstoff: {name: material}
gold:
  models: modelle
  machines: {"Fräse Nord": FN-01, "Fräse Süd": FS-02}
  signals:
    temperatur: {tag: "*/Spindeltemperatur", unit: degC}
    teile: {tag: "*/St*ckz*hler", kind: counter}
    modus: {tag: "Betriebsart", kind: state, states: {produktion: 1, stoerung: 4}}
"""

MODEL_SQL = """/* ---
description: Je Maschine und Stunde, mit dem laufenden Auftrag und dem Lieferanten seiner Charge.
key: [maschine]
time: stunde
grain: hour
late_arrival: 2h
changes_from: {werk_fertigungsauftrag: Beginn}
expect:
  not_null: [maschine]
  ranges: {stoerung_anteil: [0, 1]}
columns:
  maschine: {description: Maschine, from: [signals]}
  stunde: {description: Beginn der Stunde, from: [signals]}
  temperatur_mittel: {description: Mittlere Spindeltemperatur, unit: degC, from: [signals.temperatur]}
  teile: {description: Gezaehlte Teile, unit: parts, from: [signals.teile]}
  stoerung_anteil: {description: Anteil Stoerung, unit: "1", from: [signals.modus]}
  auftrag: {description: Laufender Auftrag, from: [werk_fertigungsauftrag], known_at_window_end: false}
  lieferant: {description: Lieferant der Charge, from: [chargen], known_at_window_end: false}
--- */
WITH stunden AS (
    SELECT machine_id AS maschine, window_of("timestamp") AS stunde,
        avg(value ORDER BY "timestamp") FILTER (WHERE signal = 'temperatur') AS temperatur_mittel,
        CAST(coalesce(sum(increment) FILTER (WHERE signal = 'teile'), 0) AS BIGINT) AS teile,
        avg(CASE WHEN state = 'stoerung' THEN 1.0 ELSE 0.0 END) FILTER (WHERE signal = 'modus') AS stoerung_anteil
    FROM signals GROUP BY ALL
)
SELECT s.*, a."AuftragNr" AS auftrag, c.supplier_id AS lieferant
FROM stunden s
LEFT JOIN werk_fertigungsauftrag a
  ON a."Maschine" = s.maschine AND a."Beginn" < s.stunde + INTERVAL 1 HOUR
 AND coalesce(a."Ende", getvariable('now')) > s.stunde
LEFT JOIN chargen c ON c.lot_id = a."Charge"
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict]]:
    try:
        launch.install()
    except launch.NodeUnavailable as exc:
        unavailable(str(exc))
    record = tmp_path_factory.mktemp("gold-plant") / "served.json"
    options = ["--gold-plant", "1", "--start", START.isoformat().replace("+00:00", "Z"), "--count", str(MINUTES)]
    with launch.serving(free_port(), *options, "--step-ms", "60000", "--served", str(record)) as server:
        yield server.endpoint, launch.served(record)


def _erp(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                'CREATE TABLE "Fertigungsauftrag" ("AuftragNr" INTEGER PRIMARY KEY, "Maschine" TEXT, '
                '"Beginn" TIMESTAMP, "Ende" TIMESTAMP NULL, "Charge" TEXT, geaendert TIMESTAMP)'
            )
        )
        rows = [
            (7001, "FN-01", START, START + timedelta(hours=2), "C-1"),
            (7002, "FN-01", START + timedelta(hours=2), None, "C-2"),  # still running: no end
            (8001, "FS-02", START - timedelta(hours=1), None, "C-1"),
        ]
        for number, machine, begin, end, lot in rows:
            connection.execute(
                sa.text('INSERT INTO "Fertigungsauftrag" VALUES (:n, :m, :b, :e, :c, :g)'),
                {
                    "n": number,
                    "m": machine,
                    "b": begin.replace(tzinfo=None),
                    "e": end and end.replace(tzinfo=None),
                    "c": lot,
                    "g": START.replace(tzinfo=None),
                },
            )
    engine.dispose()


def _expected(served: dict) -> dict[tuple[str, datetime], dict]:
    """Per (machine, hour), computed here from what the server served: °F to °C, increments, fault share."""
    found: dict[tuple[str, datetime], dict] = {}
    for tag in served["tags"]:
        machine = ALIASES[tag["machine"]]
        previous = None
        for value in tag["values"]:
            moment = datetime.fromtimestamp(value["source_ms"] / 1000, UTC)
            hour = moment.replace(minute=0, second=0, microsecond=0)
            row = found.setdefault((machine, hour), {"celsius": [], "teile": 0, "modus": []})
            if tag["tag"] == "Spindeltemperatur":
                row["celsius"].append((value["value"] - 32) * 5 / 9)
            elif tag["tag"] == "Betriebsart":
                row["modus"].append(value["value"] == 4)
            elif previous is not None:
                row["teile"] += value["value"] - previous if value["value"] >= previous else value["value"]
            previous = value["value"]
    return found


def _site(
    tmp_path: Path, postgres_url: str, endpoint: str, monkeypatch, models: dict[str, str], now: datetime = NOW
) -> dg.Definitions:
    """The plant's folder: its YAML, its model files, a supplier drop; its definitions at `now`."""
    _erp(postgres_url)
    (tmp_path / "drop").mkdir()
    (tmp_path / "drop" / "chargen.csv").write_text("Charge;Lieferant-Nr;Werkstoff\nC-1;L-4711;S355\nC-2;L-0815;C45\n")
    (tmp_path / "modelle").mkdir()
    for name, sql in models.items():
        (tmp_path / "modelle" / f"{name}.sql").write_text(sql, encoding="utf-8")
    (tmp_path / "plant.yaml").write_text(PLANT_YAML, encoding="utf-8")
    monkeypatch.setenv("WERK_ERP_URL", postgres_url)
    monkeypatch.setenv("WERK_OPCUA_ENDPOINT", endpoint)
    return build_definitions(load_config(tmp_path / "plant.yaml"), now=now)


DAILY_SQL = """/* ---
description: Je Maschine und Tag, aus den Stunden.
key: [maschine]
time: tag
grain: day
columns:
  maschine: {description: Maschine}
  tag: {description: Beginn des Tages}
  teile: {description: Teile des Tages, unit: parts, from: [gold.stunden]}
--- */
SELECT maschine, window_of(stunde) AS tag, CAST(sum(teile) AS BIGINT) AS teile FROM stunden GROUP BY ALL
"""
BROKEN_SQL = """/* ---
description: Liest eine Spalte, die es nicht gibt.
key: [maschine]
time: stunde
grain: hour
columns:
  maschine: {description: Maschine}
  stunde: {description: Stunde}
--- */
SELECT machine_id AS maschine, window_of("timestamp") AS stunde, nicht_da FROM signals
"""
AFTER_BROKEN_SQL = """/* ---
description: Baut auf dem kaputten Modell auf.
key: [maschine]
time: stunde
grain: hour
columns:
  maschine: {description: Maschine}
  stunde: {description: Stunde}
--- */
SELECT maschine, stunde FROM kaputt
"""


def test_a_failing_model_holds_back_only_the_models_that_read_it(
    served, tmp_path: Path, postgres_url: str, monkeypatch
) -> None:
    """And a model reads another model's newest versions (days from hours)."""
    endpoint, _ = served
    models = {"stunden": MODEL_SQL, "tage": DAILY_SQL, "kaputt": BROKEN_SQL, "nach_kaputt": AFTER_BROKEN_SQL}
    next_morning = START.replace(hour=0) + timedelta(days=1, hours=5)  # the day has ended; its history is a day old
    definitions = _site(tmp_path, postgres_url, endpoint, monkeypatch, models, next_morning)
    with dg.instance_for_test() as instance:
        night = refresh_and_publish(definitions, instance)
        assert not night.refresh.success
        done = {event.asset_key.to_user_string() for event in night.refresh.get_asset_materialization_events()}
        failed = [event.step_key for event in night.refresh.all_events if event.is_step_failure]
        started = {event.step_key for event in night.refresh.all_events if event.is_step_start}
        assert night.publish is not None and night.publish.success  # the catalog, after the failed refresh
    assert {"gold/stunden", "gold/tage", "silver/werk_fertigungsauftrag"} <= done
    assert not {"gold/kaputt", "gold/nach_kaputt"} & done
    assert failed == ["gold__kaputt"] and "gold__nach_kaputt" not in started  # never ran: what it reads failed
    hours = gold.latest(Lake(tmp_path / "lake").table("gold", "stunden"))
    days = gold.latest(Lake(tmp_path / "lake").table("gold", "tage")).to_pylist()
    assert len(days) == 2 and sum(day["teile"] for day in days) == sum(hours["teile"].to_pylist())


def test_a_plant_with_other_tags_and_columns_gets_its_own_gold(
    served, tmp_path: Path, postgres_url: str, monkeypatch
) -> None:
    endpoint, record = served
    definitions = _site(tmp_path, postgres_url, endpoint, monkeypatch, {"stunden": MODEL_SQL})
    assert dg.AssetKey(["gold", "stunden"]) in definitions.resolve_all_asset_keys()
    with dg.instance_for_test() as instance:
        night = refresh_and_publish(definitions, instance)
        assert night.success, [e.message for e in night.refresh.all_events if e.is_failure]
        event = instance.get_latest_materialization_event(dg.AssetKey(["gold", "stunden"]))
        schema = event.asset_materialization.metadata["dagster/column_schema"].value  # type: ignore[union-attr]
        columns = {column.name: column for column in schema.columns}
        assert columns["temperatur_mittel"].description == "Mittlere Spindeltemperatur [degC]"
        assert columns["auftrag"].tags["known_at_window_end"] == "false"
        assert "known_at" in columns and "feature_time" in columns
        # a day rebuilt from the UI's partitioned job: the same silver, so no new version
        rebuilt = definitions.resolve_job_def("rebuild_gold").execute_in_process(
            partition_key=START.date().isoformat(), instance=instance
        )
        assert rebuilt.success
        done = instance.get_latest_materialization_event(dg.AssetKey(["gold", "stunden"])).asset_materialization
        assert done.metadata["rebuilt_day"].value == START.date().isoformat()  # type: ignore[union-attr]
        assert done.metadata["versions_added"].value == 0 and done.metadata["rows_computed"].value == 12  # type: ignore[union-attr]
    lake = Lake(tmp_path / "lake")
    rows = gold.latest(lake.table("gold", "stunden")).to_pylist()
    expected = _expected(record)
    assert len(rows) == 12 and {(r["maschine"], r["stunde"]) for r in rows} == set(expected)
    for row in rows:
        wanted = expected[(row["maschine"], row["stunde"])]
        assert row["temperatur_mittel"] == pytest.approx(sum(wanted["celsius"]) / len(wanted["celsius"]))
        assert row["teile"] == wanted["teile"]
        assert row["stoerung_anteil"] == pytest.approx(sum(wanted["modus"]) / len(wanted["modus"]))
        assert row["known_at"] == row["feature_time"]  # a first build: history as known when each hour ended
    orders = {(r["maschine"], r["stunde"]): (r["auftrag"], r["lieferant"]) for r in rows}
    assert orders[("FN-01", START)] == (7001, "L-4711")
    assert orders[("FN-01", START + timedelta(hours=5))] == (7002, "L-0815")  # running, no end: up to now
    assert {orders[("FS-02", START + timedelta(hours=h))] for h in range(6)} == {(8001, "L-4711")}

/* ---
description: >
  Per machine and hour: sensor aggregates, parts produced, alarms, and the production order
  running in the hour with its material lot and supplier. `hour` is the start of the hour and
  `feature_time` its end. Train as of a label time (plantlake.lake.training): alarm_count and
  fault_share of the same hour describe the hour, so a label inside the hour leaks them.
key: [machine_id]
time: hour
grain: hour
late_arrival: 6h
changes_from:
  erp_production_orders: [actual_start, actual_end]
  material_lots: delivered_on
expect:
  not_null: [machine_id, hour, readings, alarm_count, parts_produced]
  ranges:
    running_share: [0, 1]
    fault_share: [0, 1]
    alarm_count: [0, 3600]
    parts_produced: [0, 100000]
columns:
  machine_id: {description: "The machine, one id across ERP, OPC-UA and logs (gold.machines)", from: [signals]}
  hour: {description: "Start of the hour (UTC)", from: [signals]}
  temperature_mean: {description: "Mean spindle temperature over good readings", unit: degC, from: [signals.temperature]}
  temperature_max: {description: "Highest good spindle temperature", unit: degC, from: [signals.temperature]}
  vibration_mean: {description: "Mean vibration velocity (RMS) over good readings", unit: mm/s, from: [signals.vibration]}
  vibration_max: {description: "Highest good vibration velocity", unit: mm/s, from: [signals.vibration]}
  vibration_std: {description: "Sample standard deviation of good vibration readings", unit: mm/s, from: [signals.vibration]}
  spindle_speed_mean: {description: "Mean spindle speed over good readings", unit: rpm, from: [signals.spindle_speed]}
  running_share: {description: "Share of state readings that say running", unit: "1", from: [signals.state]}
  fault_share: {description: "Share of state readings that say fault", unit: "1", from: [signals.state]}
  parts_produced: {description: "Parts counted in the hour, summed from counter increments (resets detected)", unit: parts, from: [signals.part_counter]}
  readings: {description: "Readings of all signals in the hour", unit: readings, from: [signals]}
  readings_not_good: {description: "Readings whose OPC-UA status was not Good", unit: readings, from: [signals]}
  alarm_count: {description: "Alarms that started in the hour, each counted once however many sources reported it", unit: alarms, from: [events]}
  production_order_id: {description: "The order running on the machine in the hour (the latest started); an order without an end runs until now", from: [erp_production_orders], known_at_window_end: false}
  material_lot: {description: "The order's material lot", from: [erp_production_orders], known_at_window_end: false}
  material_supplier: {description: "Supplier of the lot", from: [material_lots], known_at_window_end: false}
  material_grade: {description: "Material of the lot", from: [material_lots], known_at_window_end: false}
--- */
WITH sensors AS (
    SELECT
        machine_id,
        window_of("timestamp") AS hour,
        avg(value ORDER BY "timestamp") FILTER (WHERE signal = 'temperature' AND status = 'Good') AS temperature_mean,
        max(value) FILTER (WHERE signal = 'temperature' AND status = 'Good') AS temperature_max,
        avg(value ORDER BY "timestamp") FILTER (WHERE signal = 'vibration' AND status = 'Good') AS vibration_mean,
        max(value) FILTER (WHERE signal = 'vibration' AND status = 'Good') AS vibration_max,
        stddev_samp(value ORDER BY "timestamp") FILTER (WHERE signal = 'vibration' AND status = 'Good') AS vibration_std,
        avg(value ORDER BY "timestamp") FILTER (WHERE signal = 'spindle_speed' AND status = 'Good') AS spindle_speed_mean,
        avg(CASE WHEN state = 'running' THEN 1.0 ELSE 0.0 END) FILTER (WHERE signal = 'state') AS running_share,
        avg(CASE WHEN state = 'fault' THEN 1.0 ELSE 0.0 END) FILTER (WHERE signal = 'state') AS fault_share,
        CAST(coalesce(sum(increment) FILTER (WHERE signal = 'part_counter'), 0) AS BIGINT) AS parts_produced,
        count(*) AS readings,
        count(*) FILTER (WHERE status <> 'Good') AS readings_not_good
    FROM signals
    WHERE machine_id IS NOT NULL
    GROUP BY ALL
),
alarms AS (
    SELECT machine_id, window_of("timestamp") AS hour, count(*) AS alarm_count
    FROM events
    WHERE first_report AND severity IN ('emergency', 'alert', 'critical', 'error')
    GROUP BY ALL
),
orders AS (
    SELECT s.machine_id, s.hour, o.id AS production_order_id, o.material_lot,
           row_number() OVER (PARTITION BY s.machine_id, s.hour ORDER BY o.actual_start DESC, o.id DESC) AS pick
    FROM sensors s
    JOIN erp_production_orders o
      ON o.machine_id = s.machine_id
     AND o._deleted_at IS NULL
     AND o.actual_start < s.hour + INTERVAL 1 HOUR
     AND coalesce(o.actual_end, getvariable('now')) > s.hour
)
SELECT
    s.*,
    CAST(coalesce(a.alarm_count, 0) AS BIGINT) AS alarm_count,
    o.production_order_id,
    o.material_lot,
    l.supplier AS material_supplier,
    l.material AS material_grade
FROM sensors s
LEFT JOIN orders o ON o.machine_id = s.machine_id AND o.hour = s.hour AND o.pick = 1
LEFT JOIN material_lots l ON l.lot_id = o.material_lot
LEFT JOIN alarms a ON a.machine_id = s.machine_id AND a.hour = s.hour

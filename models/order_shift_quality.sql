/* ---
description: >
  Per production order and shift: how the order's machine ran while the order was on it, the
  parts it counted and the alarms it raised. `shift` is the start of the shift (gold.shifts),
  `feature_time` its end. An order without an end time runs until now.
key: [production_order_id]
time: shift
grain: shift
late_arrival: 8h
changes_from:
  erp_production_orders: [actual_start, actual_end]
expect:
  not_null: [production_order_id, shift, machine_id]
  ranges:
    running_share: [0, 1]
    alarms_per_100_parts: {min: 0, on_fail: warn}
columns:
  production_order_id: {description: "The production order", from: [erp_production_orders]}
  shift: {description: "Start of the shift (UTC)", from: [signals]}
  machine_id: {description: "The machine the order ran on", from: [erp_production_orders]}
  minutes_on_order: {description: "Minutes of the shift the order was on its machine", unit: min, from: [erp_production_orders]}
  parts_produced: {description: "Parts counted while the order ran, from counter increments", unit: parts, from: [signals.part_counter]}
  running_share: {description: "Share of state readings that say running", unit: "1", from: [signals.state]}
  fault_share: {description: "Share of state readings that say fault", unit: "1", from: [signals.state]}
  temperature_max: {description: "Highest good spindle temperature", unit: degC, from: [signals.temperature]}
  vibration_max: {description: "Highest good vibration velocity", unit: mm/s, from: [signals.vibration]}
  alarms: {description: "Alarms that started while the order ran, each counted once", unit: alarms, from: [events]}
  alarms_per_100_parts: {description: "Alarms per 100 parts produced (null without parts)", unit: alarms/100 parts, from: [events, signals.part_counter]}
--- */
WITH orders AS (
    SELECT id AS production_order_id, machine_id, actual_start,
           coalesce(actual_end, getvariable('now')) AS actual_end
    FROM erp_production_orders
    WHERE _deleted_at IS NULL
      AND actual_start < getvariable('window_end')
      AND coalesce(actual_end, getvariable('now')) > getvariable('window_start')
),
readings AS (
    SELECT o.production_order_id, window_of(s."timestamp") AS shift, s.*
    FROM orders o
    JOIN signals s ON s.machine_id = o.machine_id AND s."timestamp" >= o.actual_start AND s."timestamp" < o.actual_end
),
alarms AS (
    SELECT o.production_order_id, window_of(e."timestamp") AS shift, count(*) AS alarms
    FROM orders o
    JOIN events e ON e.machine_id = o.machine_id AND e."timestamp" >= o.actual_start AND e."timestamp" < o.actual_end
    WHERE e.first_report AND e.severity IN ('emergency', 'alert', 'critical', 'error')
    GROUP BY ALL
),
measured AS (
    SELECT production_order_id, shift,
        CAST(coalesce(sum(increment) FILTER (WHERE signal = 'part_counter'), 0) AS BIGINT) AS parts_produced,
        avg(CASE WHEN state = 'running' THEN 1.0 ELSE 0.0 END) FILTER (WHERE signal = 'state') AS running_share,
        avg(CASE WHEN state = 'fault' THEN 1.0 ELSE 0.0 END) FILTER (WHERE signal = 'state') AS fault_share,
        max(value) FILTER (WHERE signal = 'temperature' AND status = 'Good') AS temperature_max,
        max(value) FILTER (WHERE signal = 'vibration' AND status = 'Good') AS vibration_max
    FROM readings
    GROUP BY ALL
)
SELECT
    m.production_order_id,
    m.shift,
    o.machine_id,
    round(date_diff('second', greatest(o.actual_start, m.shift), least(o.actual_end, window_end_of(m.shift))) / 60.0, 1)
        AS minutes_on_order,
    m.parts_produced, m.running_share, m.fault_share, m.temperature_max, m.vibration_max,
    CAST(coalesce(a.alarms, 0) AS BIGINT) AS alarms,
    CASE WHEN m.parts_produced > 0 THEN 100.0 * coalesce(a.alarms, 0) / m.parts_produced END AS alarms_per_100_parts
FROM measured m
JOIN orders o USING (production_order_id)
LEFT JOIN alarms a USING (production_order_id, shift)

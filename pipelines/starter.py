"""The commented plantlake.yaml that `plantlake init` writes for a new site."""

STARTER_YAML = """\
# plantlake configuration for this site. A value written as ${NAME} or ${NAME:-default} is read
# from the environment: keep passwords there, never in this file. Relative paths are taken from
# this file's folder.
lake:
  root: ${PLANTLAKE_LAKE_ROOT:-lake}          # where the Delta tables, the catalog and the reports go

schedule:
  cron: "0 2 * * *"                           # the nightly refresh of everything
  timezone: UTC

maintenance:
  cron: "0 4 * * 0"                           # weekly compaction, checkpoints and vacuum
  retention_days: 7                           # time travel reaches this far back

sources:
  erp: []
  # - name: erp                               # a lower-case name: tables land as erp_<table>
  #   url: ${PLANTLAKE_ERP_URL}               # e.g. postgresql+psycopg://user:${ERP_PASSWORD}@host:5432/odoo
  #   timezone: Europe/Berlin                 # zone of timestamps stored without one
  #   tables:
  #     - name: mrp_production
  #       primary_key: [id]
  #       cursor: write_date                  # a column that grows on every insert and update
  #       lookback: 1h                        # re-read late commits
  #       deletes: {every_hours: 24, action: mark}

  opcua: []
  # - name: plant
  #   endpoint: ${PLANTLAKE_OPCUA_ENDPOINT}   # opc.tcp://host:4840/path
  #   roots: ["2:Plant"]                      # browse paths below Objects
  #   history_days: 7                         # how far back the first load reads

  logs: []
  # - name: plc
  #   path: /var/log/plc
  #   glob: "*.log*"
  #   format: syslog                          # syslog, jsonl or a pattern
  #   machine_map: {plc-01: M-101}            # log host to machine id

  suppliers: []
  # - name: acme
  #   path: /srv/drop/acme
  #   glob: "*.csv"
  #   format: csv
  #   csv: {delimiter: ";", decimal: ",", encoding: cp1252}
  #   target: material_lots
  #   key: [lot_id]
  #   columns:
  #     Charge: {name: lot_id, required: true}

gold:
  models: models                              # *.sql files with a YAML header: see the README
  machines: {}                                # other names of a machine to its one id
  signals: {}
  # temperature: {tag: "*/Temperature", unit: degC}
  # part_counter: {tag: "*/PartCounter", kind: counter}
"""

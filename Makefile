# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/data/dagster_home

.PHONY: demo test test-unit test-integration ui validate sim clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pipelines.demo

test: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pytest

test-unit: $(VENV)/.installed
	$(BIN)/python -m pytest -m unit

test-integration: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m pytest -m integration

ui: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

validate: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster definitions validate -w workspace.yaml

sim: $(VENV)/.installed
	$(BIN)/python -m simulator serve --port 48400

clean:
	rm -rf data .pytest_cache

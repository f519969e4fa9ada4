# Cairn: two commands set everything up on a fresh machine with Python 3.11 and make.
#   make run    start the whole system on embedded Postgres, Kafka-protocol broker and Redis
#   make test   install, then run the whole suite (unit, contracts, integration, end-to-end)

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
MLFLOW_VENV := .venv-mlflow

.PHONY: install run test test-fast proto bench bench-mlflow clean help

help:
	@echo "make run | make test | make test-fast | make proto | make bench | make bench-mlflow | make clean"

# constraints.txt pins every transitive version, so installs are repeatable
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	exec $(BIN)/python -m libs.stack run

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not e2e"

proto: install
	$(BIN)/python -m libs.events.codegen

# every scenario on Cairn alone, then the side-by-side table against OSS MLflow on the same Postgres
bench: install $(MLFLOW_VENV)/.installed-stamp
	$(BIN)/python -m bench
	$(BIN)/python -m bench.mlflow_compare

# OSS MLflow in its own venv (its pins would fight ours), then Cairn and MLflow side by side on one Postgres
$(MLFLOW_VENV)/.installed-stamp:
	test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "mlflow==3.17.*" psycopg2-binary
	touch $@

bench-mlflow: install $(MLFLOW_VENV)/.installed-stamp
	$(BIN)/python -m bench.mlflow_compare

clean:
	rm -rf .cairn

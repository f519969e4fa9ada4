# Cairn: two commands set everything up on a fresh machine with Python 3.11 and make.
#   make run    start the whole system on embedded Postgres, Kafka-protocol broker and Redis
#   make test   install, then run the whole suite (unit, contracts, integration, end-to-end)

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-fast proto bench clean help

help:
	@echo "make run | make test | make test-fast | make proto | make bench | make clean"

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

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf .cairn

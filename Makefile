# The two set-up commands of the README: `make dev` runs the whole system locally,
# `make test` runs lint, types and the whole test suite against a real Kafka and PostgreSQL.
# Both work on a fresh machine: they create the virtualenv and install what is missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: dev test check lint format types pytest bench system-deps clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# Java + Maven run the local Kafka broker; PostgreSQL's server binaries back the production
# outbox tests. Installed from Debian's packages when absent (needs root or sudo).
system-deps:
	@.ci/system-deps

dev: $(STAMP) system-deps
	$(BIN)/commerce-bridge dev

test: $(STAMP) system-deps check pytest

check: lint types

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Every benchmark with --quick, then one summary table (bench/README.md has the full runs).
bench: $(STAMP) system-deps
	@.ci/system-deps --bench
	$(BIN)/python bench/all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .bridge-dev

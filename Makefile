# Two commands set up a fresh machine: `make serve` and `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

.PHONY: bench-scale serve test test-fast lint format bench

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

serve: $(VENV)/.installed  ## run the receiver on SQLite (./mps-callback.db), port 8787
	$(VENV)/bin/mps-callback serve

test: $(VENV)/.installed  ## the whole suite: SQLite always, MariaDB and PostgreSQL where reachable (always on CI)
	$(PY) -m pytest

# The inner loop: the in-process service on SQLite; no faults, no benchmark, no test that
# needs a real process (serve, the CLI). `make test` (and CI) runs all of it, on all three databases.
test-fast: $(VENV)/.installed  ## the inner loop (2.5 min here): SQLite only, no faults, bench, brokers or real processes
	MPS_TEST_BACKENDS=sqlite $(PY) -m pytest -q -m "not faults and not bench and not process and not brokers"

lint: $(VENV)/.installed  ## ruff (lint and format check) and mypy --strict, as CI runs them
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

format: $(VENV)/.installed  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test,bench]'
	command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk))
	touch $@

bench: $(VENV)/.bench-installed  ## side-by-side benchmark (a few minutes): ceiling, peer, mps-callback on 3 databases
	$(PY) -m bench

bench-scale: $(VENV)/.installed  ## a year of data (a million tasks) on MariaDB and PostgreSQL, then the read paths' p99 (long)
	$(PY) -m bench.scale --purge

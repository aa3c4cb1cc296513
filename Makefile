# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-peers clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,examples,postgres,dask]'
	touch $(STAMP)

demo: $(STAMP)
	PIPEKIT_HOME=$(CURDIR)/demo $(PY) examples/dags/hello.py
	PIPEKIT_HOME=$(CURDIR)/demo FLIGHTS_HOME=$(CURDIR)/demo/flights $(PY) examples/flights_demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# the store tests need a PostgreSQL server: install Debian's package when missing
unit: $(STAMP)
	bash scripts/ensure-postgres.sh
	$(PY) -m pytest -q

test: lint typecheck unit

# make bench BENCH_ARGS=--quick for a one-minute version
bench: $(STAMP)
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

# optional and slow: Luigi, Dagster and Prefect in throwaway venvs, same workloads
bench-peers: $(STAMP)
	$(PY) benchmarks/peers/run_peers.py $(PEERS_ARGS)

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache

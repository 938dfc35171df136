# The two commands a user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

UI_PORT ?= 3000
CHROMIUM := /usr/bin/chromium
POSTGRES_BIN := /usr/lib/postgresql

.PHONY: demo test ui serve bench clean smoke browser postgres docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,deep,cluster]'
	touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

## make demo: simulate the default-scale history into data/warehouse.duckdb and print a summary
demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m metro_assets.demo

## make test: the whole suite at tiny scale with coverage, then a CLI smoke run
test: $(STAMP) browser postgres
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered --cov-fail-under=80
	$(MAKE) --no-print-directory smoke

smoke: $(STAMP)
	BIN=$(BIN) sh scripts/smoke.sh

# The UI test drives a real browser: Debian's chromium, installed once when missing (needs root).
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" != 0 ]; then echo "make: the UI test needs chromium: run 'sudo apt-get install -y chromium'" >&2; exit 1; fi; \
	  echo "make: installing chromium for the UI test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; }

# The deployment test (metro_assets_tests/deploy) starts a real PostgreSQL server: Debian's postgresql,
# installed once when missing (needs root). The test runs its own throwaway cluster on a free loopback port.
postgres:
	@ls $(POSTGRES_BIN)/*/bin/postgres >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ]; then echo "make: the deployment test needs PostgreSQL: run 'sudo apt-get install -y postgresql'" >&2; exit 1; fi; \
	  echo "make: installing postgresql for the deployment test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }; }

## make ui: the Dagster web UI and daemon on http://127.0.0.1:3000 (UI_PORT=...); Ctrl-C stops both
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m metro_assets.definitions -h 127.0.0.1 -p $(UI_PORT)

## make serve: the recommendations API on http://127.0.0.1:8000 over the snapshot at METRO_SERVING
## (uvicorn with the API's connection guards: head size, read timeout, connection limit; docs/API.md)
serve: $(STAMP)
	$(BIN)/python -m api.server --host 127.0.0.1 --port 8000

## make docs: regenerate docs/DATA_MODEL.md from metro_assets/schema.sql (a test fails when they differ)
docs: $(STAMP)
	$(BIN)/python -m metro_assets.docs_data_model

## make bench: default-scale benchmark into benchmarks/results/
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --scale default --out benchmarks/results/run.json

clean:
	rm -rf data .dagster_home .coverage htmlcov .pytest_cache

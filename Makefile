# stx-pipeline: every command a user needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_VERSION ?= 3.11
UV_VERSION ?= 0.13.9
VENV := .venv
BIN := $(VENV)/bin
# Bytecode compiled at install (pip does it by default, uv only when asked): where PYTHONDONTWRITEBYTECODE is set,
# every process would otherwise compile Dagster, pydantic and DuckDB's Python side from source on each start
# (measured: `stx-pipeline status` 0.85 s -> 0.41 s, `import dagster` 2.8 s -> 1.1 s, docs/BENCHMARKS.md).
export UV_COMPILE_BYTECODE := 1
# The instance lives in the project: dagster.yaml here, everything it writes under .dagster/.
export DAGSTER_HOME ?= $(CURDIR)

UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
SIM_PORT ?= 3999
export STX_UI_URL ?= http://$(UI_HOST):$(UI_PORT)
# DAYS for the new targets; TARGET_DAYS still works as in the old scripts.
DAYS ?= $(if $(TARGET_DAYS),$(TARGET_DAYS),14)
BG := $(BIN)/python -m stx_pipeline.operations.background --host $(UI_HOST) --port $(UI_PORT) --simulator-port $(SIM_PORT)

.PHONY: help install test test-fast lint format bench up down logs ps backfill backfill-bg plan status dashboard demo demo-clean \
	simulate backfill-wallet backfill-status backfill-tail backfill-stop

help: ## list the commands
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv sync --frozen --python $(PYTHON_VERSION)
	$(BIN)/python -m compileall -q stx_pipeline
	@touch $@

install: $(VENV)/.installed ## install the locked dependencies into .venv (only what is missing)

test: install ## run the whole test suite
	$(BIN)/pytest

# The in-process tier: no test here starts a process or a browser (stx_pipeline_tests/tiers.py fails one that does
# without @pytest.mark.slow). Four workers on two cores, tests handed out one at a time (worksteal): several tests
# wait on sockets and retry back-offs rather than compute, so two workers left the cores half idle (56-59 s vs 44 s).
test-fast: install ## the in-process tests only (no Dagster/CLI/PostgreSQL process, no browser), < 1 min
	$(BIN)/pytest -m "not slow" -n 4 --dist worksteal

lint: install ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff format + fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install ## every benchmark of docs/BENCHMARKS.md, one after the other (~30 min; prints figures only)
	uv sync --frozen --group bench
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_status.py
	$(BIN)/python bench/bench_dashboard.py --source simulator
	$(BIN)/python bench/bench_backends.py
	$(BIN)/python bench/bench_backfill.py floor
	$(BIN)/python bench/bench_backfill.py share
	$(BIN)/python bench/bench_backfill.py peer
	uv sync --frozen

# The demo's own length and volume: 100 days at 400 simulated transactions a day fill every card of both pages
# (DAU / MAU needs 30 days, 90-day fee value and retention 91).
DEMO_DAYS ?= 100
DEMO_TXS_PER_DAY ?= 400

demo: install ## offline demo: simulator + Dagster, a 100-day backfill (DEMO_DAYS), both dashboard pages, the status
	DEMO_DAYS=$(DEMO_DAYS) DEMO_TXS_PER_DAY=$(DEMO_TXS_PER_DAY) STX_UI_HOST=$(UI_HOST) STX_UI_PORT=$(UI_PORT) STX_SIMULATOR_PORT=$(SIM_PORT) \
		$(BIN)/python -m stx_pipeline.operations.demo

demo-clean: down ## remove the demo's instance, database and page (demo/)
	rm -rf demo

up: install ## start the Dagster webserver + daemon in the background (UI on 127.0.0.1:3000)
	$(BG) up
	@# What daily_topup is about to fetch (STX_TARGET_DAYS) and how long at the request budget.
	-@$(BIN)/stx-pipeline plan --topup

down: install ## stop everything `make up` / `make demo` started
	$(BG) down

logs: install ## follow the background logs
	$(BG) logs

ps: install ## what is running in the background
	$(BG) status

simulate: install ## serve the API simulator in the foreground on SIM_PORT
	$(BIN)/stx-pipeline simulate --port $(SIM_PORT)

backfill: install ## launch a backfill of the last DAYS days and follow it (needs `make up`)
	$(BIN)/stx-pipeline backfill --days $(DAYS) --wait

backfill-bg: install ## launch a backfill of the last DAYS days and return (the daemon runs it)
	$(BIN)/stx-pipeline backfill --days $(DAYS)

plan: install ## how many of the last DAYS days are missing, and how long fetching them takes (launches nothing)
	$(BIN)/stx-pipeline plan --days $(DAYS)

status: install ## coverage of the last DAYS days, missing ranges, latest backfill
	$(BIN)/stx-pipeline status --target-days $(DAYS)

dashboard: install ## rebuild the wallet dashboard now
	$(BIN)/stx-pipeline dashboard

# The old script names, kept working.
backfill-wallet: backfill ## (old name) = make backfill, with TARGET_DAYS
backfill-status: status ## (old name) = make status, with TARGET_DAYS
backfill-tail: logs ## (old name) = make logs
backfill-stop: install ## (old name) cancel the running backfill (finished days stay)
	$(BIN)/stx-pipeline cancel

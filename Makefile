# stx-pipeline: every command a user needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_VERSION ?= 3.11
UV_VERSION ?= 0.13.9
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)

DAYS ?= 14
TARGET_DAYS ?= $(DAYS)

.PHONY: help install test lint format

help: ## list the commands
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	uv sync --frozen --python $(PYTHON_VERSION)
	@touch $@

install: $(VENV)/.installed ## install the locked dependencies into .venv (only what is missing)

test: install ## run the whole test suite
	$(BIN)/pytest

lint: install ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install ## ruff format + fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Situation Room — the single entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV     := .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
CONSOLE_JS := cloud/console/frontend/node_modules/.package-lock.json
DEMO_ARGS ?= --duration 120 --summary demo-summary.json

.PHONY: help setup system demo test lint types pytest check fmt images bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup: system $(STAMP) $(CONSOLE_JS) ## Install what is missing: Debian packages, .venv, the project

system:
	@deploy/setup-debian.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)
	@echo "setup: project installed in $(VENV)"

# The console's front-end libraries (Leaflet) from the npm registry, pinned by package-lock.json;
# FastAPI serves them, so no browser fetches anything from a CDN.
$(CONSOLE_JS): cloud/console/frontend/package-lock.json
	@cd cloud/console/frontend && npm ci --no-audit --no-fund --loglevel=error
	@echo "setup: console front-end installed (npm ci)"

demo: setup ## Run a simulated Prato end to end (DEMO_ARGS="--duration 60 --speed 60 ...")
	$(VENV)/bin/sitroom demo $(DEMO_ARGS)

test: setup lint types pytest ## Everything CI checks: lint, types, all tests (unit and end-to-end)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: setup
	$(VENV)/bin/mypy

pytest: setup
	$(VENV)/bin/pytest

check: lint types ## Lint and types only

fmt: setup ## Format and auto-fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

images: setup ## Refresh the README's console screenshots (docs/images) from the browser test
	SITROOM_REFRESH_IMAGES=1 $(VENV)/bin/pytest -q tests/e2e/test_console_browser.py

bench: setup ## Run the benchmarks in bench/ and print their figures
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: ## Remove the venv, caches and local state
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .sitroom demo-summary.json

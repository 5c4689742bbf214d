# The two commands a newcomer needs are `make demo` and `make test`; both bootstrap themselves.
# Bootstrap is incremental: the venv is rebuilt only when a requirements file changes, node_modules
# only when the npm lockfile changes.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
CHECKOV_VENV := .venv-checkov
STAMP_CHECKOV := $(CHECKOV_VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help bootstrap test test-ahead lint unit up down demo bench chaos clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP_PY): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(STAMP_CHECKOV): infra/requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	@touch $@

# The wall-clock shifter for `make test-ahead` (tools/clockshift/clockshift.c), built with the machine's cc.
CLOCKSHIFT := build/clockshift.so
#: How far ahead `make test-ahead` moves the wall clock: more than a year, past every lifetime and period.
AHEAD_DAYS ?= 400

$(CLOCKSHIFT): tools/clockshift/clockshift.c
	@mkdir -p $(dir $@)
	cc -shared -fPIC -O2 -Wall -Wextra -Werror -o $@ $< -ldl

local.settings.json: local.settings.sample.json
	@python3 tools/local_settings.py

bootstrap: $(STAMP_PY) $(STAMP_NODE) local.settings.json ## install .venv and Azurite (incremental)

lint: bootstrap $(STAMP_CHECKOV) ## ruff, mypy (strict on shared/ and nodeagent/), the layer contracts, bandit, pip-audit, checkov on infra/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared functions function_app.py cli tools bench nodeagent
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/bandit -c pyproject.toml -r shared functions function_app.py cli tools bench nodeagent -q
	DEP_AUDIT_OFFLINE=$${DEP_AUDIT_OFFLINE:-warn} $(PY) -m tools.audit_deps
	$(CHECKOV_VENV)/bin/checkov --directory infra --framework bicep --skip-download --quiet --compact

test: lint ## the whole test suite (starts its own Azurite and emulator on free ports), then test-ahead
	@bash tools/ensure_chromium.sh
	@bash tools/ensure_postgres.sh
	$(PY) -m pytest
	@$(MAKE) --no-print-directory test-ahead

test-ahead: bootstrap $(CLOCKSHIFT) ## the unit, CLI, rotation, lease and node-agent suites again with the wall clock 400 days ahead
	@echo "test-ahead: no test may depend on the day it runs; these suites again, every process's wall clock $(AHEAD_DAYS) days ahead"
	LD_PRELOAD=$(abspath $(CLOCKSHIFT)) CLOCKSHIFT_SECONDS=$$(( $(AHEAD_DAYS) * 86400 )) \
		$(PY) -m pytest -q -p no:cacheprovider tests/test_preflight.py tests/unit tests/cli tests/rotation tests/leases tests/nodeagent

up: bootstrap ## start Azurite, the Azure emulator, the founders' ceremony and one local Functions host per member
	$(PY) -m tools.stack up

down: ## stop what `make up` started
	@if [ -x $(PY) ]; then $(PY) -m tools.stack down; else echo "nothing to stop (no .venv)"; fi

demo: bootstrap ## play the consortium scenario end to end on the local stack, with a live view
	$(PY) -m tools.demo

bench: bootstrap ## run the benchmarks, print their tables, write bench/results/latest.json
	$(PY) -m bench $(BENCH)

chaos: bootstrap ## the long chaos and bad-input suite
	@if [ -d tests/chaos ]; then $(PY) -m pytest tests/chaos --chaos-long; \
	else echo "make chaos: the chaos suite (issue 10) is not built yet" >&2; exit 1; fi

clean: down ## remove local state (Azurite data, emulator state, logs); keeps .venv and node_modules
	rm -rf .local

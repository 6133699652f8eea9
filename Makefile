# Switchboard: the two commands are `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test deps venv stack-up stack-down lint unit integration e2e browser bench bench-load clean demo

deps:
	@bash deploy/local/install-deps.sh

$(VENV)/.installed: pyproject.toml setup.py switchboard/ami/_speedups.c
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	@touch $@

venv: $(VENV)/.installed

stack-up: deps venv
	@bash deploy/local/stack-up.sh

stack-down:
	@bash deploy/local/stack-down.sh

lint: venv
	$(VENV)/bin/ruff check switchboard tests bench
	$(VENV)/bin/mypy switchboard

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: venv
	$(VENV)/bin/pytest -q tests/integration

e2e: venv
	$(VENV)/bin/pytest -q tests/e2e

browser: venv
	$(VENV)/bin/pytest -q tests/browser

test: deps venv
	@bash deploy/local/run-tests.sh

run: deps venv
	@bash deploy/local/run.sh

bench: venv
	$(PY) bench/run_all.py

# The whole switchboard under SIP load, level by level (brings the local stack up if needed).
bench-load: deps venv
	$(PY) bench/load.py $(ARGS)

clean: stack-down
	rm -rf run artifacts

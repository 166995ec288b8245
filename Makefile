# datapipe-cdk: two commands do everything on a fresh machine (see README):
#   make demo   set up, bring the local stack up, deploy the example pipeline, run the notebooks
#   make test   set up and run every test tier (unit, toolchain, integration, notebooks)
# Downloads and builds are cached outside the clone, under $(DATAPIPE_CACHE).

SHELL := /bin/bash
PYTHON ?= python3
PY := .venv/bin/python
export DATAPIPE_CACHE ?= $(HOME)/.cache/datapipe-cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION ?= 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup venv synth test test-unit lint bench demo notebooks clean

help:
	@grep -hE '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## venv: the project virtualenv with datapipe-cdk[dev] installed (re-run when pyproject.toml changes)
venv: .venv/.installed
.venv/.installed: pyproject.toml
	@echo "==> python venv + pip install -e '.[dev]'"
	@test -x $(PY) || $(PYTHON) -m venv .venv
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

-include mk/toolchain.mk
-include mk/stack.mk

## setup: everything the tests and the demo need (venv, toolchain, stack dependencies)
setup: venv toolchain stack-deps

## synth: synthesize the example stacks into cdktf.out/
synth: venv
	$(PY) stacks/main.py

## lint: ruff and mypy
lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy datapipe_cdk

## test-unit: the fast tier only (no toolchain, no services)
test-unit: venv
	$(PY) -m pytest -q -m "not toolchain and not integration and not docker"

## test: set up from nothing and run every tier; tiers that cannot run report themselves skipped
test: setup lint
	$(PY) -m pytest

## bench: synth benchmarks; results recorded under bench/results/
bench: venv
	$(PY) bench/synth_bench.py

## demo: the main job: local stack up, example pipeline deployed, rows flowing, notebooks run
demo: setup
	$(PY) -m integration.demo

## notebooks: run both analyst notebooks headless against the deployed payments and ledger stacks
notebooks: venv
	$(PY) tools/run_notebooks.py --stack payments
	$(PY) tools/run_notebooks.py --stack ledger

clean:
	rm -rf cdktf.out .pytest_cache .mypy_cache .ruff_cache

# datapipe-cdk: two commands do everything on a fresh machine (see README):
#   make demo   set up, bring the local stack up, deploy the example app, watch rows land, run the notebooks
#   make test   set up and run every test tier (unit, toolchain, integration, notebooks)
# Downloads and builds are cached outside the clone, under $(DATAPIPE_CACHE).

SHELL := /bin/bash
PYTHON ?= python3
PY := .venv/bin/python
DATAPIPE := $(PY) -m datapipe_cdk.cli
export DATAPIPE_CACHE ?= $(HOME)/.cache/datapipe-cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION ?= 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup venv synth test test-unit test-cdktn lint bench demo notebooks clean toolchain stack-up stack-down stack-status provider-schemas

help:
	@grep -hE '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## venv: the project virtualenv with datapipe-cdk[dev] installed (re-run when pyproject.toml changes)
venv: .venv/.installed
.venv/.installed: pyproject.toml
	@echo "==> python venv + pip install -e '.[dev]'"
	@test -x $(PY) || $(PYTHON) -m venv .venv
	@$(PY) -m pip install -q --upgrade pip
	@# compat: a plain path entry, so type checkers (mypy, pyright) find the package from any folder
	@$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	@touch $@

## setup: everything the tests and the demo need (venv, then `datapipe local setup`: toolchain, jars, databases, emulator)
setup: venv
	$(DATAPIPE) local setup

## toolchain: only the offline OpenTofu toolchain (OpenTofu + providers from Go modules, cdktf-cli)
toolchain:
	bash datapipe_cdk/local/assets/toolchain.sh

## stack-up / stack-down / stack-status: the local stack (datapipe local up|down|status)
stack-up: setup
	$(DATAPIPE) local up
stack-down: venv
	$(DATAPIPE) local down
stack-status: venv
	$(DATAPIPE) local status

## provider-schemas: regenerate tests/data/provider_schemas.json from the mirrored providers
provider-schemas: venv
	$(PY) tools/dump_provider_schemas.py

## synth: synthesize the example app into cdktf.out/
synth: venv
	$(DATAPIPE) synth

## lint: ruff and mypy
lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy datapipe_cdk

## test-unit: the fast tier only (no toolchain, no services)
test-unit: venv
	$(PY) -m pytest -q -m "not toolchain and not integration and not docker"

## test: set up from nothing and run every tier (the fast tier on cdktn too); tiers that cannot run report themselves skipped.
## The three-broker fault runs last, in its own session on a three-broker local stack with its own run directory.
test: setup lint test-cdktn
	$(PY) -m pytest -m "not three_brokers"
	DATAPIPE_KAFKA_BROKERS=3 DATAPIPE_RUN_DIR=$(DATAPIPE_CACHE)/run-3-brokers $(PY) -m pytest -m three_brokers integration

# --- CDK Terrain (cdktn): the same library on the maintained fork of cdktf, with the Node.js it needs (>= 22) ---
NODE_VERSION := 22.23.3
NODE_ARCH := $(subst x86_64,x64,$(subst aarch64,arm64,$(shell uname -m)))
NODE_DIR := $(DATAPIPE_CACHE)/node-$(NODE_VERSION)
NODE22 := $(NODE_DIR)/node_modules/.bin/node
VENV_CDKTN := .venv-cdktn

$(NODE22):
	@echo "==> Node.js $(NODE_VERSION) for cdktn into $(NODE_DIR)"
	@npm install -q --prefix $(NODE_DIR) --ignore-scripts --no-audit --no-fund node-linux-$(NODE_ARCH)@$(NODE_VERSION)
	@test -x $(NODE22)

$(VENV_CDKTN)/.installed: pyproject.toml
	@echo "==> python venv $(VENV_CDKTN) with cdktn (instead of cdktf)"
	@test -x $(VENV_CDKTN)/bin/python || $(PYTHON) -m venv $(VENV_CDKTN)
	@$(VENV_CDKTN)/bin/python -m pip install -q --upgrade pip
	@$(VENV_CDKTN)/bin/python -m pip install -q -e '.[dev]' 'cdktn==0.24.0' --config-settings editable_mode=compat
	@touch $@

## test-cdktn: the fast tier on CDK Terrain (cdktn 0.24, Node 22), the same tests as on cdktf
test-cdktn: $(VENV_CDKTN)/.installed $(NODE22)
	PATH=$(NODE_DIR)/node_modules/.bin:$$PATH DATAPIPE_CDK_CORE=cdktn $(VENV_CDKTN)/bin/python -m pytest -q -p no:cacheprovider \
		-m "not toolchain and not integration and not docker" tests

## bench: synth benchmarks; results recorded under bench/results/
bench: venv
	$(PY) bench/synth_bench.py

## demo: the main job: local stack up, the example app deployed, rows flowing, notebooks run
demo: setup
	$(PY) -m integration.demo

## notebooks: run both analyst notebooks headless against the deployed payments and ledger stacks
notebooks: venv
	$(PY) tools/run_notebooks.py --stack payments
	$(PY) tools/run_notebooks.py --stack ledger

clean:
	rm -rf cdktf.out .pytest_cache .mypy_cache .ruff_cache $(VENV_CDKTN)

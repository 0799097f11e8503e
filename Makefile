# Every command a person or a pipeline runs locally. `make help` lists them.
# Values come from project.yaml through `python -m cloudbuild`; nothing here is
# specific to one project.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= training/data/penguins.csv
MODEL_DIR ?= build/model
HOST ?= 127.0.0.1
PORT ?= 8080
BRANCH ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo local)
CHANGED ?=
# Recipes read these from the environment ("$$BRANCH"), never as recipe text, so a
# branch name is data to the shell however it is spelt.
export BRANCH CHANGED

.PHONY: help setup system-packages lock train serve predict test lint unit plan preflight bootstrap clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed ## Create .venv with the locked dependencies

$(VENV)/.installed: requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else "Python 3.11 or 3.12 is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

lock: setup ## Re-resolve the lock files from pyproject.toml (dev first, then one per image)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --all-extras pyproject.toml -o requirements-dev.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra training -c requirements-dev.txt pyproject.toml -o training/requirements.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra api -c requirements-dev.txt pyproject.toml -o api/requirements.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 --extra cloud -c requirements-dev.txt pyproject.toml -o cloudbuild/requirements.txt

train: setup ## Train on DATA (the shipped sample) into MODEL_DIR
	rm -rf $(MODEL_DIR)
	$(BIN)/python -m training train --data $(DATA) --model-dir $(MODEL_DIR) --branch "$$BRANCH"

serve: setup ## Serve MODEL_DIR on http://HOST:PORT (HOST 127.0.0.1: loopback only) (Ctrl-C stops it)
	@test -f $(MODEL_DIR)/schema.json || { echo "no model in $(MODEL_DIR): run 'make train' first" >&2; exit 1; }
	MODEL_DIR=$(MODEL_DIR) HOST=$(HOST) AIP_HTTP_PORT=$(PORT) $(BIN)/python -m api

predict: ## Send the sample request to a running `make serve`
	curl -fsS -X POST -H 'Content-Type: application/json' --data @api/sample-request.json http://$(HOST):$(PORT)/predict
	@echo

test: lint unit ## Lint and run the tests (what CI runs)

lint: setup ## ruff, hadolint and YAML checks
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint training/Dockerfile api/Dockerfile auth/Dockerfile
	$(BIN)/python -m cloudbuild check-yaml

system-packages: ## Install what the tests run besides Python (redis-server; apt-get, once)
	bash tests/system-packages.sh

unit: setup system-packages ## Run the project's tests (a file's tests share a worker: fixtures span them)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

plan: setup ## Show what a push would fire: make plan BRANCH=b CHANGED="training/x.py ..."
	$(BIN)/python -m cloudbuild plan --branch "$$BRANCH" --changed $$CHANGED

preflight: setup ## Run a push's pipelines offline: make preflight BRANCH=b CHANGED="training/x.py ..."
	$(BIN)/python -m cloudbuild preflight --branch "$$BRANCH" --changed $$CHANGED --json build/preflight.json

bootstrap: setup ## One-time Google Cloud set-up with your own credentials (see README)
	$(BIN)/python -m cloudbuild bootstrap

clean: ## Remove build output (keeps .venv)
	rm -rf build .pytest_cache .ruff_cache

-include template.mk

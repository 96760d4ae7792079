# Two commands do all set-up on a fresh machine with python3 and make:
#   make demo   -> creates .venv if needed, installs the package, runs the zero-setup example
#   make test   -> creates .venv if needed, installs .[dev], runs ruff, mypy --strict, pytest
# Both are idempotent: the install steps re-run only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= examples/memory_workflow.py

.PHONY: demo test lint typecheck pytest bench bench-recall clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $@ $(VENV)/.installed-runtime

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev,bench]'
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed-runtime

demo: $(VENV)/.installed-runtime
	$(BIN)/python $(DEMO)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples scripts benchmarks
	$(BIN)/ruff format --check src tests examples scripts benchmarks

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy src tests/typing

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# Side-by-side benchmark with the peers (docs/benchmarks.md); not part of `make test`.
# Extra arguments: make bench BENCH_ARGS='--sizes 1000,10000 --systems dict,ours-'
# Redis Cluster scaling (1, 2, 3 masters) only: make bench BENCH_ARGS='--cluster'
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# Recall on long conversations (LoCoMo, docs/benchmarks.md); not part of `make test`.
# Data: ../shared/datasets/locomo, or RECALL_ARGS='--data PATH', or TTA_LOCOMO=PATH.
bench-recall: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.recall $(RECALL_ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache src/*.egg-info

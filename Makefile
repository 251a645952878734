# The README's two commands are `make demo` and `make test`; everything else is a step they call.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(abspath $(VENV))/bin:$(PATH)
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DO_NOT_TRACK := 1

.PHONY: setup demo test lint unit bench clean

setup: $(VENV)/.installed ## install system packages and the virtual environment (idempotent)

$(VENV)/.installed: requirements/dev.txt scripts/setup.sh pyproject.toml
	bash scripts/setup.sh $(VENV)
	touch $@

demo: setup ## the whole lifecycle, offline, on embedded defaults
	bash scripts/demo.sh

lint: setup ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: setup ## pytest only
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint unit ## what CI runs

bench: setup ## benchmarks/ with ratios against baselines measured in the same run
	$(PY) -m benchmarks.run
	$(PY) scripts/readme_bench.py

clean:
	rm -rf .terracover .pytest_cache .mypy_cache .ruff_cache

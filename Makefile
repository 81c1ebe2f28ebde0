# batch-rotate: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INPUT ?=

.PHONY: install demo demo-plan rotate plan test check lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m batch_rotate.sim.demo

demo-plan: $(STAMP)
	$(BIN)/python -m batch_rotate.sim.demo plan inputs/mixed-devices.csv

rotate: $(STAMP)
	@test -n "$(INPUT)" || { echo "usage: make rotate INPUT=devices.csv [ARGS='--yes ...']"; exit 2; }
	$(BIN)/batch-rotate rotate "$(INPUT)" $(ARGS)

plan: $(STAMP)
	@test -n "$(INPUT)" || { echo "usage: make plan INPUT=devices.csv"; exit 2; }
	$(BIN)/batch-rotate plan "$(INPUT)" $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check batch_rotate tests
	$(BIN)/ruff format --check batch_rotate tests
	$(BIN)/mypy

check: lint test

bench: $(STAMP)
	$(BIN)/python -m batch_rotate.sim.bench
	$(BIN)/python -m batch_rotate.sim.bench_select

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

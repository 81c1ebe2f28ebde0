# batch-rotate: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INPUT ?=
# The lowest versions pyproject.toml allows (.ci/lowest.py), in a venv of their own.
LOWEST := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed

.PHONY: install demo demo-campaign demo-plan rotate plan test test-lowest check lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m batch_rotate.sim.demo

demo-campaign: $(STAMP)
	$(BIN)/python -m batch_rotate.sim.demo campaign

demo-plan: $(STAMP)
	$(BIN)/python -m batch_rotate.sim.demo plan inputs/mixed-devices.csv

rotate: $(STAMP)
	@test -n "$(INPUT)" || { echo "usage: make rotate INPUT=devices.csv [ARGS='--yes ...']"; exit 2; }
	$(BIN)/batch-rotate rotate "$(INPUT)" $(ARGS)

plan: $(STAMP)
	@test -n "$(INPUT)" || { echo "usage: make plan INPUT=devices.csv"; exit 2; }
	$(BIN)/batch-rotate plan "$(INPUT)" $(ARGS)

# Four workers on two cores: the end-to-end tests mostly wait on the simulated tenant's paced
# windows (measured: 2 min 26 s with -n 4, 4 min 30 s with -n 2, on an idle 2-core machine).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 4

# Every runtime dependency at exactly its floor, then the whole suite: a floor that does not
# install or pass fails here instead of on an admin's machine.
$(LOWEST_STAMP): pyproject.toml .ci/lowest.py
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) .ci/lowest.py > $(LOWEST)/floors.txt
	$(LOWEST)/bin/python -m pip install --quiet -e '.[test]' --constraint $(LOWEST)/floors.txt
	touch $(LOWEST_STAMP)

# A representative subset at the floors: every test that drives a dependency's API (MSAL, aiohttp,
# openpyxl, Typer/rich, cryptography, PyJWT, filelock, msal-extensions, requests) end to end;
# the rest is pure logic the full `make test` already ran (CI's whole run stays under 8 minutes).
LOWEST_TESTS ?= tests/graph/test_client.py tests/graph/test_proxy.py \
	tests/graph/test_confinement.py tests/graph/test_identity_checks.py tests/sim/test_graph.py \
	tests/sim/test_identity.py tests/test_e2e.py tests/test_e2e_auth_faults.py \
	tests/test_signin_modes_e2e.py tests/test_proxy_e2e.py tests/test_operator_journey.py \
	tests/test_report.py tests/test_report_look.py tests/test_inputs_exports.py \
	tests/test_cli_options.py tests/test_ux_output.py tests/test_prompt.py tests/test_runlock.py \
	tests/test_readme_options.py tests/test_signin_interactive_e2e.py tests/test_signin_workload_e2e.py \
	tests/test_campaign_e2e.py tests/test_sweep_e2e.py tests/test_rollup.py

test-lowest: $(LOWEST_STAMP)
	@echo "lowest allowed versions:" $$(cat $(LOWEST)/floors.txt)
	$(LOWEST)/bin/python -m pip check
	$(LOWEST)/bin/python -m pytest -q -n 4 -p no:cacheprovider $(LOWEST_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check batch_rotate tests
	$(BIN)/ruff format --check batch_rotate tests
	$(BIN)/mypy

check: lint test

bench: $(STAMP)
	$(BIN)/python -m batch_rotate.sim.bench
	$(BIN)/python -m batch_rotate.sim.bench_select
	$(BIN)/python -m batch_rotate.sim.bench_report
	$(BIN)/python -m batch_rotate.sim.bench_recent
	$(BIN)/python -m batch_rotate.sim.bench_rollup
	$(BIN)/python -m batch_rotate.sim.bench_campaign
	$(BIN)/python -m batch_rotate.sim.bench_sweep

clean:
	rm -rf $(VENV) $(LOWEST) .mypy_cache .ruff_cache .pytest_cache

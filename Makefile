# Two commands: `make run` (the hosting service; `make run DOMAIN=example.com` checks a
# domain instead) and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DOMAIN ?=
ARGS ?=

.PHONY: run test lint soak bench bench-reports bench-monitor mutation clean i18n

# Python's cached bytecode, as an installed program has it: where the environment sets
# PYTHONDONTWRITEBYTECODE, every process (the test suite starts hundreds) would compile
# mtasts' sources anew.
unexport PYTHONDONTWRITEBYTECODE

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-test

run: $(VENV)/.installed
	@if [ -n "$(DOMAIN)" ]; then \
		$(BIN)/mtasts check $(DOMAIN) $(ARGS); \
	else \
		$(BIN)/mtasts serve $(ARGS); \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(VENV)/.installed-test
	bash scripts/system-deps.sh
	$(MAKE) lint
	$(BIN)/pytest $(ARGS)

# N runs of `CI=true make test` in a clean clone of HEAD, in a row, while a second clone
# runs the suite in a loop as the load (scripts/soak.sh; ~10 min per run on 2 cores).
N ?= 5
soak:
	bash scripts/soak.sh $(N)

$(VENV)/.installed-mutation: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,mutation]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-test

# Mutation testing (mutmut) of the modules where a silent bug costs the most, each against
# its own tests, one module at a time; prints the kill ratio per module. Not part of
# `make test`. `make mutation ARGS=protocol` runs one module; `ARGS=--list` shows them.
mutation: $(VENV)/.installed-mutation
	bash scripts/system-deps.sh
	$(BIN)/python scripts/mutation.py $(ARGS)

bench: $(VENV)/.installed-bench
	bash scripts/system-deps.sh
	$(BIN)/python bench/check_bulk.py $(ARGS)

bench-reports: $(VENV)/.installed-bench
	$(BIN)/python bench/reports_ingest.py $(ARGS)

bench-monitor: $(VENV)/.installed-test
	$(BIN)/python bench/monitor.py $(ARGS)

# Re-extract the messages and merge them into src/mtasts/i18n/locale/*/LC_MESSAGES/mtasts.po
# (then translate the new entries; tests/test_i18n.py fails while any is missing). The .po
# files are read at run time, so neither `make run` nor `make test` needs this step.
i18n: $(VENV)/.installed-test
	$(BIN)/python scripts/i18n.py

clean:
	rm -rf $(VENV) .mutation build *.egg-info .mypy_cache .ruff_cache .pytest_cache

.PHONY: bench-policy-host
bench-policy-host: $(VENV)/.installed
	bash scripts/system-deps.sh
	bash bench/policy_host.sh

# The anchor of bench/policyd.py: postfix-mta-sts-resolver 1.5.1 in a venv of its own.
PMR_VENV ?= .venv-pmr
$(PMR_VENV)/.installed:
	$(PYTHON) -m venv $(PMR_VENV)
	$(PMR_VENV)/bin/python -m pip install -q postfix-mta-sts-resolver==1.5.1
	touch $@

.PHONY: bench-policyd
bench-policyd: $(VENV)/.installed $(PMR_VENV)/.installed
	bash scripts/system-deps.sh
	$(BIN)/python bench/policyd.py --pmr $(PMR_VENV)/bin/mta-sts-daemon $(ARGS)

.PHONY: bench-attack
bench-attack: $(VENV)/.installed-test
	bash scripts/system-deps.sh
	$(BIN)/python bench/attack.py $(ARGS)

# Two commands, each sets up .venv on first use (and again only when pyproject.toml changes):
#   make demo   generate the synthetic CRM history, check it, train a champion and serve it (Ctrl-C stops)
#   make test   check the house rules (make check), then run the whole test suite
#   make check  ruff, mypy and the import contracts (see CONTRIBUTING.md)
#   make readme  re-run the commands behind the README's console examples and rewrite them (a test checks them)
#   make notebooks  install JupyterLab (the `notebooks` extra) and open notebooks/ in it
# Use another interpreter with `make demo PYTHON=python3.12`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_FLAGS ?= -q -n 2
BENCH_FLAGS ?=

NB_STAMP := $(VENV)/.notebooks-installed

.PHONY: demo check test bench install notebooks readme clean

demo: $(STAMP)
	$(BIN)/leadscore generate --out data/leads.parquet
	$(BIN)/leadscore validate data/leads.parquet
	$(BIN)/leadscore train --data data/leads.parquet
	$(BIN)/leadscore serve

# The house rules, checked before any test runs (CONTRIBUTING.md says why each exists).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/python -m pytest $(PYTEST_FLAGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_FLAGS)

install: $(STAMP)

# EXAMPLES="train-summary backtest" re-runs only those (names are in README.md's <!-- example ... --> comments).
readme: $(STAMP)
	$(BIN)/python tests/support/readme_examples.py $(EXAMPLES)

notebooks: $(NB_STAMP)
	$(BIN)/jupyter lab notebooks/

# JupyterLab is an extra, so `make test` and `make demo` do not wait for it.
$(NB_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,notebooks]'
	@touch $@

# The stamp is newer than pyproject.toml once the project and its dev tools are installed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "leadscore needs Python 3.11+; try: make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

clean:
	rm -rf $(VENV)

# Two commands matter: `make run` (the whole churn analysis) and `make test` (the whole suite).
# Both create .venv on first use and reuse it afterwards (reinstalling only when pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PARAMS ?= params/default.yaml
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: setup run test dashboard lab lint bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else "Python 3.11 or 3.12 is needed; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name sparkify --display-name "Python (sparkify)" >/dev/null
	@touch $(STAMP)

setup: $(STAMP)

## run: execute the notebook sequence (PARAMS=params/x.yaml, ARGS="-p key=value --only 02")
run: setup
	$(BIN)/sparkify run --params $(PARAMS) $(ARGS)

## test: the whole suite (unit tests, notebooks with nbmake, runner, cluster and browser tests)
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## dashboard: serve the churn dashboard of outputs/latest with Voila on 127.0.0.1
dashboard: setup
	$(BIN)/sparkify dashboard $(ARGS)

## lab: JupyterLab on the project, with the project's kernel
lab: setup
	$(BIN)/jupyter lab --notebook-dir=. --ServerApp.ip=127.0.0.1

lint: setup
	$(BIN)/ruff check .

bench: setup
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

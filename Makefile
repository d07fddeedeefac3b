# Two commands matter: `make run` (the whole churn analysis) and `make test` (the whole suite).
# Both create .venv on first use and reuse it afterwards (reinstalling only when the lock or pyproject.toml
# changes). `make help` lists every target.
#
# The environment is pinned, with hashes, in requirements/lock.txt: `uv pip compile --universal` output,
# one file for Linux, macOS and Windows on Python 3.11 and 3.12. A requirements file rather than uv.lock,
# because plain pip reads it too (`pip install --require-hashes -r requirements/lock.txt`), so conda
# (environment.yml) and a cluster node without uv install the very same versions. `make setup` syncs
# .venv to it exactly with uv (pinned in requirements/uv.txt) and never re-resolves; `make lock`
# re-resolves it from pyproject.toml's ranges, on purpose.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
UV     := $(BIN)/uv
LOCK   := requirements/lock.txt
UV_PIN := requirements/uv.txt
UV_VERSION := 0.13.9
PARAMS ?= params/default.yaml
ARGS   ?=
PYTEST_ARGS ?=
# The tests/ folder alone: nbmake's notebooks are left to `make test`; test-fast runs them once through the runner.
FAST_ARGS ?= -m "not slow and not browser" tests
# Both cores: pytest-xdist workers, each given whole groups of tests (tests/conftest.py); WORKERS=0 runs in one process.
WORKERS ?= 2
LINT_ARGS ?=
BENCH ?= $(wildcard benchmarks/bench_*.py)
BENCH_ARGS ?=
LOCK_ARGS ?= --upgrade
# JupyterLab refuses to start as root (in a container, say) without --allow-root.
LAB_ARGS = $(if $(filter 0,$(shell id -u)),--allow-root)

# `make` alone sets up .venv, as it always has.
.DEFAULT_GOAL := setup

.PHONY: help setup lock hooks run test test-fast dashboard lab lint bench

## help: list the targets
help:
	@awk '/^## [a-z-]+: / { sub(/^## /, ""); i = index($$0, ": "); \
		printf "  %-10s %s\n", substr($$0, 1, i - 1), substr($$0, i + 2) }' $(MAKEFILE_LIST)

# uv, at the version pinned (with hashes) in requirements/uv.txt, installed into .venv by pip.
$(UV): $(UV_PIN)
	@$(PYTHON) -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else "Python 3.11 or 3.12 is needed; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r $(UV_PIN)
	@touch $(UV)

# Exactly the lock (packages not in it are removed), then the project itself, editable, without its
# dependencies; setuptools, the build backend, is in the lock too, so nothing is resolved here.
# Then two steps side by side, as the archive's JVM keeps about one core busy and compiling uses the rest
# (measured on a 2-core machine, uv's cache warm: the whole setup in 90-103 s instead of 102-119 s, alternating):
# - every package's .pyc, written once: uv does not by default, and where PYTHONDONTWRITEBYTECODE is set (as on
#   our CI machines) Python never writes them either, so every process (each notebook kernel, each test worker)
#   compiles pandas, scipy and scikit-learn again. On a 2-core machine the default run's import cells took 18 s of
#   its 89 s that way, 7 s with .pyc (the run: 68 s). A file that does not compile is left to import (warned);
# - the archive of Spark's JVM classes that every driver maps at start (sparkify_utils/runtime/class_archive.py),
#   rebuilt with the jars it comes from.
# The Makefile is a prerequisite so that a change here reaches an existing .venv.
$(STAMP): $(LOCK) pyproject.toml $(UV) Makefile
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes $(LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name sparkify --display-name "Python (sparkify)" >/dev/null
	$(BIN)/python -m sparkify_utils.runtime.class_archive & archive=$$!; \
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
		|| echo "warning: some installed files could not be byte-compiled; Python compiles them when imported"; \
	wait $$archive
	@touch $(STAMP)

## setup: create or update .venv from the lock (only when requirements/ or pyproject.toml changed)
setup: $(STAMP)

## lock: re-resolve requirements/*.txt from pyproject.toml's ranges (LOCK_ARGS= keeps pins still allowed)
lock: $(UV)
	$(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
		| $(UV) pip compile --quiet pyproject.toml - --extra dev --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS) -o $(LOCK)
	echo "uv==$(UV_VERSION)" | $(UV) pip compile --quiet - --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" -o $(UV_PIN)

## hooks: install the git pre-commit hook (the checks of `make lint`, on the files of each commit)
hooks: setup
	$(BIN)/pre-commit install

## run: execute the notebook sequence (PARAMS=params/x.yaml, ARGS="-p key=value --only 02")
run: setup
	$(BIN)/sparkify run --params $(PARAMS) $(ARGS)

## test: the whole suite (unit tests, notebooks with nbmake, runner, cluster and browser tests)
test: setup
	$(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

## test-fast: unit tests and one run of the notebooks on params/ci.yaml (FAST_ARGS, default: not slow or browser)
test-fast: setup
	$(BIN)/python -m pytest -n $(WORKERS) $(FAST_ARGS)

## dashboard: serve the churn dashboard of outputs/latest with Voila on 127.0.0.1
dashboard: setup
	$(BIN)/sparkify dashboard $(ARGS)

## lab: JupyterLab on the project, with the project's kernel
lab: setup
	$(BIN)/jupyter lab --notebook-dir=. --ServerApp.ip=127.0.0.1 $(LAB_ARGS)

## lint: the pre-commit hooks on all files (ruff, ruff format, nbstripout, YAML, whitespace)
lint: setup
	$(BIN)/pre-commit run --all-files $(LINT_ARGS)

## bench: benchmarks that print numbers (BENCH=benchmarks/bench_loop.py runs one; BENCH_ARGS are passed to each)
bench: setup
	for script in $(BENCH); do $(BIN)/python $$script $(BENCH_ARGS) || exit 1; done

# agentrm: `make demo` runs the main job, `make test` runs every check. Both set themselves up on a fresh machine.
# The virtualenv lives in .venv; torch==2.13.0 (the local CPU wheel) is installed first where no torch is present,
# so nothing pulls CUDA torch onto a CPU machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q --disable-pip-version-check
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-dev demo test test-slow test-fast lint clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)

# Base install: what `agentrm demo/score/eval/view` need.
$(VENV)/.setup-base: pyproject.toml | $(VENV)/bin/python
	$(PY) -c "import torch" 2>/dev/null || $(PIP) torch==2.13.0
	$(PIP) -e ".[viewer,decord]"
	touch $@

# Everything the tests need: dev tools, verl + ray (their tests are marked and run), Debian chromium (browser tests).
$(VENV)/.setup-dev: $(VENV)/.setup-base
	$(PIP) -e ".[viewer,decord,dev,verl]"
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will be skipped"
	touch $@

setup: $(VENV)/.setup-base
setup-dev: $(VENV)/.setup-dev

demo: setup
	$(VENV)/bin/agentrm demo

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: setup-dev lint
	$(VENV)/bin/pytest -q

test-fast: setup-dev
	$(VENV)/bin/pytest -q -x

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache

test-slow: setup-dev
	$(VENV)/bin/pytest -q --runslow -m slow

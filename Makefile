# feasnet: `make bench` and `make test` each set up .venv (once) and then run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.feasnet-installed

.PHONY: bench test lint setup clean

setup: $(STAMP)

# requirements.lock pins every dependency, including the CPU build of torch 2.13.0;
# the project itself is then installed without touching those pins.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

bench: $(STAMP)
	$(BIN)/feasnet bench

test: $(STAMP)
	$(BIN)/ruff check src tests examples
	$(BIN)/python -m mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache

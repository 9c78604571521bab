# Everything installs into a local .venv; a fresh clone needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck format bench clean

# An editable install leaves the sources uncompiled: compile once, as a wheel install does.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q gradflow
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gradflow compare --depth 50

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check gradflow tests bench
	$(BIN)/ruff format --check gradflow tests bench
	$(BIN)/mypy

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format gradflow tests bench
	$(BIN)/ruff check --fix gradflow tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

# Everything installs into a local .venv; a fresh clone needs only python3 and make.
# `make demo` installs the package alone (seconds). test, lint, typecheck, format and bench add the
# dev extras on top (pytest with xdist, hypothesis, ruff, mypy, matplotlib, dask distributed and
# torch, the reference autograd).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# stamps: the package and what it needs to run; then the dev extras too
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PLOT_STAMP := $(VENV)/.installed-plot

.PHONY: install install-dev demo test lint typecheck format bench bench-quick figures clean

# An editable install leaves the sources uncompiled: compile once, as a wheel install does.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	$(BIN)/python -m compileall -q gradflow
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

$(PLOT_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[plot]'
	touch $(PLOT_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/gradflow compare --depth 50

test: $(DEV_STAMP)
	$(BIN)/pytest -q -n auto

lint: $(DEV_STAMP)
	$(BIN)/ruff check gradflow tests bench
	$(BIN)/ruff format --check gradflow tests bench
	$(BIN)/mypy
	$(BIN)/mypy --strict bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

format: $(DEV_STAMP)
	$(BIN)/ruff format gradflow tests bench
	$(BIN)/ruff check --fix gradflow tests bench

# bench writes bench/results.json; bench-quick (the headline ratios, <1 min) results-quick.json
bench: $(DEV_STAMP)
	$(BIN)/python -m bench

bench-quick: $(DEV_STAMP)
	$(BIN)/python -m bench --quick

# The README's figure: the headline run drawn by --plot, then reduced to 256 colours (Pillow
# comes with matplotlib), which keeps it looking the same at a third of the bytes.
figures: $(PLOT_STAMP)
	$(BIN)/gradflow compare --depth 50 --plot docs/compare-depth50.png -q
	$(BIN)/python -c "from PIL import Image; f = 'docs/compare-depth50.png'; \
	Image.open(f).convert('RGB').quantize(256, dither=0).save(f, optimize=True)"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

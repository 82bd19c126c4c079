# Helius front door: `make demo` and `make test` each set up everything on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.helius-installed
# torch is installed first, pinned, so the project's install keeps that version. The pin fixes
# the version, not the build: on Linux PyPI's wheel is the CUDA build; for the CPU-only wheel
# use TORCH_PIN="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
TORCH_PIN ?= torch==2.13.0
# Test workers (pytest-xdist): most of the suite's time is one-thread subprocess start-up, so
# two workers on two cores halve it; TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2

.PHONY: install demo test lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/helius demo --out demo_run

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) demo_run .pytest_cache .ruff_cache

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.cache/inductor
export MPLCONFIGDIR := $(CURDIR)/.cache/mpl
export XDG_CACHE_HOME := $(CURDIR)/.cache

.PHONY: demo test lint venv clean

$(BIN)/posekit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/posekit

venv: $(BIN)/posekit

demo: venv
	$(BIN)/posekit demo --out out/demo

lint: venv
	$(BIN)/ruff check posekit tests scripts

test: venv
	$(BIN)/ruff check posekit tests scripts
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf out .cache

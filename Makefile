# `make test` and `make demo` set up .venv themselves; nothing else needs installing first.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
# Stages run as `python -m stages.X` from DVC: the venv's python must come first on PATH.
export PATH := $(BIN):$(PATH)

.PHONY: test demo bench venv clean-demo paper-table

venv: $(VENV)/.installed

# Python writes each module's bytecode the first time a process imports it, here as on any
# machine: the make targets undo a PYTHONDONTWRITEBYTECODE set outside (CI's machine sets it),
# which would have every test's process compile torch, dvc and the rest again. Only what is
# imported gets compiled, not every module pip's own compile step would do one by one.
unexport PYTHONDONTWRITEBYTECODE

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --no-compile -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -c "import torch, open_clip, h5py, dvc, sklearn, pandas"
	touch $@

# The official code's metric library as the paper ran it (TorchMetrics 0.9.3, which needs a
# setuptools below 70 beside it, where torch needs one above 77): a folder of its own, used by
# tests/report/test_scoring.py in a subprocess.
REFERENCE := $(VENV)/reference
$(REFERENCE)/.installed: $(VENV)/.installed
	$(BIN)/python -m pip install -q --no-deps --target $(REFERENCE) "torchmetrics==0.9.3" "setuptools<70"
	touch $@

# Two workers, a file each at a time (module fixtures stay shared), one thread each: CI has two
# cores, and the stage and dvc processes the tests start inherit OMP_NUM_THREADS=1. The files go
# in tests/conftest.py's order, tests marked `slow` first, not xdist's (by number of tests).
test: venv $(REFERENCE)/.installed
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

demo: venv
	bash scripts/demo.sh

bench: venv
	$(BIN)/python -m benchmarks

# The paper's Table 1 as queued DVC experiments (after `dvc repro` and a commit); ARGS="--set ..."
paper-table: venv
	$(BIN)/python -m scripts.paper_table $(ARGS)

clean-demo:
	rm -rf demo

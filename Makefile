# The two set-up commands from the README: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
# torch first, pinned: here it is a CPU wheel on local disk; an unpinned torch pulls a CUDA build.
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test check format lint types bench docs clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '$(TORCH_SPEC)'
	$(PY) -m pip install --quiet -e '.[dev,train,lora,trl,ray,service,rlaif]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m execrl.cli demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench

lint: $(STAMP)
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench

types: $(STAMP)
	$(VENV)/bin/mypy

check: lint types test

bench: $(STAMP)
	$(PY) bench/engine_throughput.py

docs: $(STAMP)  # regenerate docs/cli.md from the parsers (a test fails when it is stale)
	$(PY) -m execrl.cli_reference

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

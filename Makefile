# Two entry points do all the set-up: `make demo` and `make test` create/refresh .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel on machines without CUDA; GPU users: `make TORCH_SPEC=torch` or pre-install torch in .venv.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ser run configs/demo.yaml --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

SUITE ?= all
bench: $(STAMP)
	$(BIN)/python -m jobs.bench $(SUITE)

clean:
	rm -rf runs .pytest_cache

# Two entry points do all the set-up: `make demo` and `make test` create/refresh .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel on machines without CUDA; GPU users: `make TORCH_SPEC=torch` or pre-install torch in .venv.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test bench docs clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ser run configs/demo.yaml --out runs/demo

# Headless Chromium and pdflatex for the report tests (no script runs in a hostile report; every table
# compiles). Best effort, root with apt only: without them those two tests are skipped, saying why.
TEST_TOOLS := $(VENV)/.test-tools
APT_TOOLS := chromium texlive-latex-base texlive-latex-recommended
$(TEST_TOOLS): $(STAMP)
	@if command -v chromium >/dev/null && command -v pdflatex >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q --no-install-recommends $(APT_TOOLS) || \
	   (apt-get update -q && apt-get install -y -q --no-install-recommends $(APT_TOOLS))) >/dev/null 2>&1 || \
	  echo "could not install $(APT_TOOLS): the browser and TeX tests will be skipped"; \
	else echo "no chromium/pdflatex (and no root apt-get): the browser and TeX tests will be skipped"; fi
	touch $@

# Two workers (pytest-xdist): the tests that start a Ray (marked `ray`) run one after another on one of them, as one
# group sharing the session's Ray; the other worker takes the rest (on 2 cores: 6–12 min by the hour; the Ray group
# is the longer half).
test: $(STAMP) $(TEST_TOOLS)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

SUITE ?= all
bench: $(STAMP)
	$(BIN)/python -m jobs.bench $(SUITE)

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

clean:
	rm -rf runs site .pytest_cache

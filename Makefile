# Two commands on a fresh machine: `make demo` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: venv demo test test-fast serve lab bench bench-quick chromium docs screenshots clean help

help:
	@echo "make demo   - create .venv, install, train the default run (MLP on a+b mod 97)"
	@echo "make test   - create/update .venv, install test deps (+ Debian chromium), run the suite"
	@echo "make serve  - dashboard on http://127.0.0.1:5006   make lab - JupyterLab"
	@echo "make bench  - benchmarks → benchmarks/results/ and docs/performance.md"
	@echo "make docs   - the documentation site → build/site (open build/site/index.html)"
	@echo "make screenshots - the dashboard tour test, saving the README/docs lens pictures (headless chromium)"

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned: the CPU wheel (an unpinned torch pulls GBs of CUDA).
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[dev]" "$(TORCH)"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	TQDM_MININTERVAL=1 $(VENV)/bin/workbench demo

# Browser tests drive Debian's chromium through Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

# The docs are built last, --strict (a broken link fails), so they render the notebooks just executed.
test: $(STAMP) chromium
	OMP_NUM_THREADS=1 TQDM_DISABLE=1 WORKBENCH_CHROMIUM=$$(command -v chromium) $(VENV)/bin/pytest -q -ra
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build
	@echo "docs: build/site/index.html"

screenshots: $(STAMP) chromium
	OMP_NUM_THREADS=1 TQDM_DISABLE=1 WORKBENCH_CHROMIUM=$$(command -v chromium) WORKBENCH_SCREENSHOTS=docs/images \
	  $(VENV)/bin/pytest -q tests/ui/test_tour.py

test-fast: $(STAMP)
	OMP_NUM_THREADS=1 TQDM_DISABLE=1 $(VENV)/bin/pytest -q -ra -m "not slow and not ui"

serve: $(STAMP)
	$(VENV)/bin/workbench serve

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --ip 127.0.0.1 notebooks/

bench: $(STAMP)
	$(PIP) install -q -e ".[dev,bench]" "$(TORCH)"
	$(PY) -m benchmarks.run

bench-quick: $(STAMP)
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) .pytest_cache

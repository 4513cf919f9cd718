# The book's two commands: `make book` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2
# Python sources that ruff lints and format-checks.
LINTED := code tests benchmarks tools conftest.py book/_ext
# nbval writes the chapters it executed here; the strict build renders them from the jupyter-cache.
EXECUTED := _build/nbval
# One id per `make` invocation: the cache records of this run's nbval carry it (tools/execution_cache.py).
# (Expanded once: a recursively expanded date would differ between recipe lines.)
ifndef LMLAB_RUN_ID
LMLAB_RUN_ID := $(shell date +%Y%m%dT%H%M%S)-$(shell echo $$PPID)
endif
export LMLAB_RUN_ID
# The network guard (tests/netguard/sitecustomize.py) for every process the site build starts, kernels included.
GUARD := LMLAB_BLOCK_NETWORK=1 PYTHONPATH=$(CURDIR)/tests/netguard LMLAB_QUIET=1 OMP_NUM_THREADS=1
# The Colab edition: the notebooks, and the separate virtual environment that runs them as Colab would.
COLAB_OUT := _build/colab
COLAB_VENV := .venv-colab
COLAB_STAMP := $(COLAB_VENV)/.installed
# Colab preinstalls torch and numpy; give the Colab environment the same versions as .venv before `pip install .`.
COLAB_PREINSTALLED := $(shell grep -E '^(torch|numpy)==' requirements.txt)
# Where the launch buttons' notebooks live: the Pages workflow pushes $(COLAB_OUT) to this branch.
COLAB_REF ?=

# The draw (seed offset, CPU kernel family, threads) a run is made on. `make test` runs everything on the machine's
# own draw, then once more on the second draw below; `make test-draws` runs all draws of DRAWS_OFFSETS x
# DRAWS_CAPABILITIES x DRAWS_THREADS (the scheduled workflow and the GPU job).
DRAW2_OFFSET ?= 1
DRAW2_CAPABILITY ?= default
DRAW2_THREADS ?= 1
DRAWS_OFFSETS ?= 0 1 2
DRAWS_CAPABILITIES ?= default avx2 native
DRAWS_THREADS ?= 1 2
DRAW_RECORDS := _build/draws

.PHONY: book book-strict test lint test-unit test-chapters test-draw2 test-draw test-draws colab test-colab test-site \
	clean help

help:
	@echo "make book    execute every chapter (with the execution cache) and build the site into _build/html"
	@echo "make test    everything CI checks: lint, unit tests, chapters under nbval, the site built from that"
	@echo "             execution, the Colab edition run as on Colab, the browser check"
	@echo "make colab   write the Colab edition of every chapter into $(COLAB_OUT)/ (after a build)"
	@echo "make test-draws  unit tests and chapters on every draw: seed offsets x CPU kernels x threads"

$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
	touch $(STAMP)

book: $(STAMP)
	$(GUARD) $(BIN)/jupyter-book build .
	$(PY) -m tools.colab.convert --out $(COLAB_OUT)
	@echo "Open _build/html/index.html; the Colab edition is in $(COLAB_OUT)/"

# 1. Lint and format check.
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

# 2. Unit tests of lmlab, the tooling and the book's consistency.
test-unit: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not site and not colab" tests

# 3. Every chapter executed once, cell by cell, by nbval (two at a time); each passing chapter is kept with its
#    outputs and stored in the build's jupyter-cache.
test-chapters: $(STAMP)
	rm -rf $(EXECUTED)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --nbval-lax --nbval-current-env --lmlab-executed $(EXECUTED) book
	$(PY) -m tools.execution_cache store $(EXECUTED)

# 3b. The unit tests and every chapter once more, on a second draw: another seed offset (LMLAB_SEED_OFFSET), the
#     portable CPU kernels and one thread. What the book asserts must hold on any draw, not on the one that wrote
#     it; the status page shows each chapter's second-draw result (_build/draws/second/<name>.json).
test-draw2: $(STAMP)
	$(MAKE) --no-print-directory test-draw DRAW_OFFSET=$(DRAW2_OFFSET) DRAW_CAPABILITY=$(DRAW2_CAPABILITY) \
		DRAW_THREADS=$(DRAW2_THREADS) DRAW_NAME=second

# One draw: `make test-draw DRAW_OFFSET=2 DRAW_CAPABILITY=avx2 DRAW_THREADS=1` (native = the machine's own kernels).
DRAW_OFFSET ?= 0
DRAW_CAPABILITY ?= native
DRAW_THREADS ?= 1
DRAW_NAME ?= offset$(DRAW_OFFSET)-$(DRAW_CAPABILITY)-t$(DRAW_THREADS)
test-draw: $(STAMP)
	rm -rf $(DRAW_RECORDS)/$(DRAW_NAME)
	LMLAB_SEED_OFFSET=$(DRAW_OFFSET) OMP_NUM_THREADS=$(DRAW_THREADS) \
		$(if $(filter native,$(DRAW_CAPABILITY)),,ATEN_CPU_CAPABILITY=$(DRAW_CAPABILITY)) \
		$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -m "not site and not colab" -p no:cacheprovider \
		--nbval-lax --nbval-current-env --lmlab-draw-record $(DRAW_RECORDS)/$(DRAW_NAME) tests book

test-draws: $(STAMP)
	@set -e; for o in $(DRAWS_OFFSETS); do for c in $(DRAWS_CAPABILITIES); do for t in $(DRAWS_THREADS); do \
		echo "== draw: seed offset $$o, CPU kernels $$c, $$t thread(s) =="; \
		$(MAKE) --no-print-directory test-draw DRAW_OFFSET=$$o DRAW_CAPABILITY=$$c DRAW_THREADS=$$t; \
	done; done; done

# 4. The strict site build (zero warnings), rendered from step 3's execution, under the network guard; then a
#    check that no chapter was executed again.
book-strict: test-chapters test-draw2
	$(GUARD) $(BIN)/jupyter-book build . --all -W -n --keep-going
	$(PY) -m tools.execution_cache check

# 5. The Colab edition: converted from the chapters and the build's executed notebooks, then run as on Colab.
colab: $(STAMP)
	$(PY) -m tools.colab.convert --out $(COLAB_OUT) $(if $(COLAB_REF),--ref $(COLAB_REF))

$(COLAB_STAMP): pyproject.toml requirements.txt
	rm -rf $(COLAB_VENV)
	$(PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/pip install --quiet $(COLAB_PREINSTALLED) setuptools ipykernel
	$(COLAB_VENV)/bin/pip install --quiet .
	touch $(COLAB_STAMP)

# lmlab is uninstalled first: each notebook's install cell must put it back (from a snapshot of this checkout).
test-colab: colab $(COLAB_STAMP)
	$(COLAB_VENV)/bin/pip uninstall --quiet --yes lmlab
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m colab tests/test_colab.py

# 6. The built site in a real browser.
test-site: $(STAMP)
	$(BIN)/pytest -m site tests

test: lint test-unit book-strict test-colab test-site

clean:
	rm -rf _build .jupyter_cache $(COLAB_VENV)

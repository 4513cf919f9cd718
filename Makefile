# The book's two commands: `make book` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
CHAPTERS = $(shell grep -l '^kernelspec:' book/[!_]*.md)
FORCED_CONFIG := _build/_config.force.yml
PYTEST_WORKERS ?= 2

.PHONY: book book-strict test test-unit test-site sync clean help

help:
	@echo "make book   execute every chapter (with the execution cache) and build the site into _build/html"
	@echo "make test   everything CI checks: unit tests, chapters under nbval, strict forced build, browser check"
	@echo "make sync   write each chapter's paired .ipynb (no outputs) from its .md"

$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" >/dev/null
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build .
	@echo "Open _build/html/index.html"

# CI's build: every chapter executed from scratch (the cache does not notice changes to lmlab), zero warnings.
book-strict: $(STAMP)
	mkdir -p _build
	sed -e 's/^\(  execute_notebooks:\).*/\1 force/' -e 's#\(lmlab_site:\) book/_ext#\1 $(CURDIR)/book/_ext#' _config.yml > $(FORCED_CONFIG)
	grep -q 'execute_notebooks: force' $(FORCED_CONFIG)
	LMLAB_QUIET=1 OMP_NUM_THREADS=1 $(BIN)/jupyter-book build . --config $(FORCED_CONFIG) --all -W -n --keep-going

test-unit: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --nbval-lax --nbval-current-env -m "not site" tests book

test-site: $(STAMP)
	$(BIN)/pytest -m site tests

test: test-unit book-strict test-site

sync: $(STAMP)
	for f in $(CHAPTERS); do $(BIN)/jupytext --set-formats ipynb,md:myst "$$f" >/dev/null && $(BIN)/jupytext --sync "$$f"; done

clean:
	rm -rf _build .jupyter_cache

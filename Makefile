# Two entry points: `make demo` (the main job) and `make test` (what CI runs; it builds the docs).
# Each creates or reuses the virtualenv in $(VENV) and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch lies on this machine's disk; pip elsewhere picks the platform's build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.mtlm-installed
DOCS_STAMP := $(VENV)/.mtlm-docs-installed

.PHONY: demo test test-lowest lint docs install bench bench-methods

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mtlm demo

# The documentation site, from docs/ and mkdocs.yml into site/. Strict: a broken link or anchor,
# or an API entry that names no object, fails the build. It needs no network.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks .ci
	$(VENV)/bin/ruff format --check src tests benchmarks .ci

# Speed and memory figures for BENCHMARKS.md (not part of the tests; about 18 minutes on 2
# cores). The first run also builds tasknet's own virtualenv (about 3 minutes more).
bench: $(STAMP)
	$(PY) benchmarks/training_speed.py --write
	$(PY) benchmarks/task_scaling.py --write
	$(PY) benchmarks/data_pipeline.py --write
	$(PY) benchmarks/inference.py --write

# What the balancing and sharing methods cost and score (about 40 minutes on 2 cores).
bench-methods: $(STAMP)
	$(PY) benchmarks/balancing.py --write
	$(PY) benchmarks/sharing.py --write

test: lint docs
	$(PY) -m pytest -q -p no:cacheprovider

# The tests again on the lowest releases pyproject.toml allows, in a virtualenv of their own:
# .ci/lowest_requirements.py pins every lower bound, torch excepted (the pinned build above).
# CI runs it after `test`.
LOWEST_VENV ?= .venv-lowest
LOWEST_STAMP := $(LOWEST_VENV)/.mtlm-installed

$(LOWEST_STAMP): pyproject.toml .ci/lowest_requirements.py
	test -x $(LOWEST_VENV)/bin/python || python3 -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install -q --upgrade pip "tomli; python_version < '3.11'"
	$(LOWEST_VENV)/bin/python .ci/lowest_requirements.py pyproject.toml > $(LOWEST_VENV)/requirements.txt
	$(LOWEST_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)" -r $(LOWEST_VENV)/requirements.txt
	$(LOWEST_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $(LOWEST_STAMP)

test-lowest: $(LOWEST_STAMP)
	$(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider

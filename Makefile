# The two commands: `make run` (the demo) and `make test` (everything).
# Both set up what they need and are safe to run again.
#
# Two virtualenvs: .venv-run holds meshgate as a user installs it (`pip install .`,
# runtime dependencies only) for `make run`; .venv is the developers' one
# (editable, with the test extra) for everything else.

VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUN_VENV  ?= .venv-run
RUN_STAMP := $(RUN_VENV)/.installed

.PHONY: run test lint unit peers bench clean

$(STAMP): pyproject.toml
	scripts/vendor_swagger_ui.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# A plain (non-editable) install: reinstalled when the sources change.
$(RUN_STAMP): pyproject.toml $(shell find gateway mesh filters -type f -not -name '*.pyc' 2>/dev/null)
	scripts/vendor_swagger_ui.sh
	test -x $(RUN_VENV)/bin/python || $(PYTHON) -m venv $(RUN_VENV)
	$(RUN_VENV)/bin/python -m pip install -q --upgrade pip
	$(RUN_VENV)/bin/python -m pip install -q .
	touch $@

run: $(RUN_STAMP)
	$(RUN_VENV)/bin/meshgate demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Builds the interop peers (Java Dubbo, dubbo-go, istiod) into the cache, and
# installs Debian's chromium for the OpenAPI page's browser test.
# Each script skips what it cannot build here and says why; the tests that
# need a missing peer then skip, or fail under CI=true.
peers: $(STAMP)
	@for script in tests/peers/build.sh tests/istio/build_istiod.sh scripts/install_browser.sh; do \
		if [ -x $$script ]; then PYTHON=$(PY) $$script || exit 1; fi; \
	done

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit

test: lint peers
	$(VENV)/bin/pytest

bench: $(STAMP)
	@if [ -x bench/run.sh ]; then bench/run.sh; else echo "no benchmark yet"; fi

clean:
	rm -rf $(VENV) $(RUN_VENV) .pytest_cache .mypy_cache .ruff_cache

# The two commands: `make run` (the demo) and `make test` (everything).
# Both set up what they need and are safe to run again.

VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint unit peers bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(STAMP)
	$(VENV)/bin/meshgate demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Builds the interop peers (Java Dubbo, dubbo-go, istiod), redis-server, the
# image's Debian base for buildah and the Kubernetes tools (helm, etcd,
# kube-apiserver) into the cache.
# Each script skips what it cannot build here and says why; the tests that
# need a missing peer then skip, or fail under CI=true.
peers: $(STAMP)
	@for script in tests/peers/build.sh tests/istio/build_istiod.sh \
		tests/support/install_redis.sh tests/support/build_image_base.sh \
		tests/k8s/build_k8s.sh; do \
		if [ -x $$script ]; then PYTHON=$(PY) $$script || exit 1; fi; \
	done

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit

test: lint peers
	$(VENV)/bin/pytest

bench: $(STAMP)
	@if [ -x bench/run.sh ]; then bench/run.sh; else echo "no benchmark yet"; fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

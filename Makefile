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

.PHONY: run test lint unit peers bench fuzz soak clean

$(STAMP): pyproject.toml
	scripts/vendor_swagger_ui.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# xds-protos installs an old copy of opentelemetry-proto's modules over the
	# real ones (grpc/grpc#42926); the OTLP exporter needs the real ones back.
	$(PY) -m pip install -q --force-reinstall --no-deps \
		"opentelemetry-proto==$$($(PY) -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
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

# Builds the interop peers (Java Dubbo, dubbo-go, istiod), redis-server, the
# image's Debian base for buildah, the Kubernetes tools (helm, etcd,
# kube-apiserver) and Debian's chromium (the OpenAPI page's browser test)
# into the cache.
# Each script skips what it cannot build here and says why; the tests that
# need a missing peer then skip, or fail under CI=true.
peers: $(STAMP)
	@for script in tests/peers/build.sh tests/istio/build_istiod.sh \
		tests/support/install_redis.sh tests/support/build_image_base.sh \
		tests/k8s/build_k8s.sh scripts/install_browser.sh; do \
		if [ -x $$script ]; then PYTHON=$(PY) $$script || exit 1; fi; \
	done

unit: $(STAMP)
	$(VENV)/bin/pytest tests/unit

# --durations: every run says where the suite's time goes.
test: lint peers
	$(VENV)/bin/pytest --durations=30

# Coverage-guided fuzzing (atheris): every target in tests/fuzz/targets.py for
# FUZZ_SECONDS each (default 60, so about 6 minutes), its corpus kept in the
# cache so later runs start where this one stopped. A finding is written as
# crash-* under $(FUZZ_DIR) and stops the run with a non-zero status.
FUZZ_SECONDS ?= 60
FUZZ_DIR     ?= $(HOME)/.cache/meshgate/fuzz
FUZZ_TARGETS := path_template json_protobuf hessian2 dubbo2_frames timeout_headers xds_route_config
fuzz: $(STAMP)
	@mkdir -p $(FUZZ_DIR)
	@for target in $(FUZZ_TARGETS); do \
		echo "== fuzz $$target ($(FUZZ_SECONDS)s)"; \
		(cd $(FUZZ_DIR) && PYTHONPATH=$(CURDIR) $(CURDIR)/$(VENV)/bin/python -m tests.fuzz.run \
			$$target $(FUZZ_DIR)/corpus-$$target -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=2048 -print_final_stats=1 2>&1 | grep -E "^(Done|stat::number_of_executed_units)|Uncaught Python exception|ERROR") \
			|| exit 1; \
		! ls $(FUZZ_DIR)/crash-* >/dev/null 2>&1 || { echo "fuzz: findings in $(FUZZ_DIR)"; exit 1; }; \
	done

# Five minutes of good and hostile clients, backend kills and SIGHUP reloads
# against one worker, on loopback; prints requests sent and failed, RSS and
# fds at the start and end (its 40-second form runs in `make test`).
SOAK_SECONDS ?= 300
soak: $(STAMP)
	$(PY) -m tests.soak --seconds $(SOAK_SECONDS)

bench: $(STAMP)
	@if [ -x bench/run.sh ]; then bench/run.sh; else echo "no benchmark yet"; fi

clean:
	rm -rf $(VENV) $(RUN_VENV) .pytest_cache .mypy_cache .ruff_cache

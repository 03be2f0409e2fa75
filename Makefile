# The two commands a newcomer needs: `make dev` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 7233
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: dev ui ui-if-go gocompat gocompat-if-go browser test test-full lint install install-test clean cassandra-up cassandra-down bench bench-cassandra proto cluster-up cluster-down conformance

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Stamp files make re-runs cheap; they are redone when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
# tests/ops run a real Prometheus and tests/ui Debian's chromium: Debian packages, installed once
# (Prometheus' service is never started).
install-test: $(VENV)/.installed-test browser
	@sh tools/prometheus/install.sh

# The official Web UI server (Go module github.com/temporalio/ui-server/v2, pinned), built once into
# build/ui-server/<version>/ui-server; start-dev serves it on --ui-port (8233). Needs Go.
ui:
	tools/ui/build.sh

# As `ui` where Go is present; elsewhere one line saying the UI is off (start-dev then runs headless).
ui-if-go:
	@tools/ui/build.sh || { rc=$$?; [ $$rc -eq 3 ] || exit $$rc; }

# The Go SDK programs of tests/compat/test_go_sdk.py (go.temporal.io/sdk from the module proxy), built into
# build/gocompat/gocompat. Needs Go; the test builds them itself too (incrementally) when run alone.
gocompat:
	tools/gocompat/build.sh

gocompat-if-go:
	@tools/gocompat/build.sh || { rc=$$?; [ $$rc -eq 3 ] || exit $$rc; }

# Debian's chromium for tests/ui (Playwright drives it; no browser download). Skipped when present.
browser:
	tools/ui/install-browser.sh

dev: install ui-if-go
	$(BIN)/hourglass server start-dev --port $(PORT)

lint: install-test
	$(BIN)/ruff check .

# Everything on the embedded store (and Cassandra's own tests), then the SDK compat suite on Cassandra. The
# differential scenarios (histories compared with the reference's) and the CLI sweep (the text and JSON of
# every `temporal` command, a third of the compat tests) run on Cassandra in test-full only: the histories
# and the CLI's output are built by the same engine and frontend whatever the store, and CI's time (.ci/run
# under 45 min) is tight. --durations names the slowest tests, to see where that time goes.
test: install-test ui-if-go gocompat-if-go lint
	$(BIN)/python -m pytest -q --durations=15 tests
	HOURGLASS_COMPAT_TARGET=hourglass-cassandra $(BIN)/python -m pytest -q --durations=15 tests/compat \
		--ignore=tests/compat/test_differential.py --ignore=tests/compat/test_cli_sweep.py

test-full: test
	HOURGLASS_COMPAT_TARGET=hourglass-cassandra $(BIN)/python -m pytest -q tests/compat/test_differential.py \
		tests/compat/test_cli_sweep.py

# Hourglass vs the reference, same run: writes loadtest/RESULTS.md (a benchmark, never part of `make test`).
bench: install-test
	$(BIN)/python -m hourglass.loadtest.bench

# What one workflow transition costs on Cassandra vs the embedded store and vs the real Temporal server on
# the same Cassandra (built from the Go module proxy by tools/temporal/build.sh, at nice 10, into build/),
# 16 history shards each: writes loadtest/RESULTS-cassandra.md. BENCH_CASSANDRA_ARGS adds options (e.g.
# --rounds 3 --concurrency 20 --concurrency 100). Uses $$HOURGLASS_CASSANDRA_HOSTS if set, else the local
# node (started here if it is not running).
bench-cassandra: install-test
	@if [ -z "$$HOURGLASS_CASSANDRA_HOSTS" ]; then $(BIN)/python tools/cassandra/devserver.py up; fi
	tools/temporal/build.sh
	$(BIN)/python -m hourglass.loadtest.store_cost --reference --shards 16 $(BENCH_CASSANDRA_ARGS)

# The official Python SDK's own tests against the reference and Hourglass: writes conformance/RESULTS.md.
# SDK_TESTS is a checkout of temporalio/sdk-python (holding tests/) at the pinned temporalio version. Its
# packages go into their own venv (pytest-asyncio 0.21 there, 1.x here). Never part of `make test` or CI.
# CONFORMANCE_ARGS passes options through, e.g. CONFORMANCE_ARGS='--target hourglass -k test_workflow_signal'.
CONFORMANCE_VENV := build/conformance-venv
$(CONFORMANCE_VENV)/.installed: tools/conformance/requirements.txt
	$(PYTHON) -m venv $(CONFORMANCE_VENV)
	$(CONFORMANCE_VENV)/bin/pip install -q -r tools/conformance/requirements.txt
	touch $@

conformance: install-test $(CONFORMANCE_VENV)/.installed
	@test -n "$(SDK_TESTS)" || { echo "usage: make conformance SDK_TESTS=DIR [SDK_LABEL=tag] [CONFORMANCE_ARGS=...]"; exit 2; }
	$(BIN)/python tools/conformance/run.py --sdk-tests "$(SDK_TESTS)" --suite-python $(CONFORMANCE_VENV)/bin/python \
		--sdk-label "$(SDK_LABEL)" $(CONFORMANCE_ARGS)

# A real single-node Cassandra 5 from Maven Central jars (no Docker): 127.0.0.1:9042, data under build/.
cassandra-up: install
	$(BIN)/python tools/cassandra/devserver.py up

cassandra-down:
	$(PYTHON) tools/cassandra/devserver.py down

# A local 3-node cluster (frontends on 127.0.0.1-3:7233) over the local Cassandra (started if needed).
cluster-up: install
	$(BIN)/python tools/cluster/local.py up

cluster-down:
	$(BIN)/python tools/cluster/local.py down

# The internal node-to-node API: regenerate cluster/rpc/internal_pb2.py(i) after editing the .proto.
# grpcio-tools lives in a venv of its own so its protobuf pin never touches the project's.
PROTO_VENV := build/proto-venv
GRPCIO_TOOLS ?= grpcio-tools==1.85.1
proto:
	test -x $(PROTO_VENV)/bin/python || $(PYTHON) -m venv $(PROTO_VENV)
	$(PROTO_VENV)/bin/pip install -q '$(GRPCIO_TOOLS)'
	rm -rf build/proto-out && mkdir -p build/proto-out
	$(PROTO_VENV)/bin/python -m grpc_tools.protoc -Iproto --python_out=build/proto-out --pyi_out=build/proto-out \
		proto/hourglass/internal/v1/internal.proto
	cp build/proto-out/hourglass/internal/v1/internal_pb2.py build/proto-out/hourglass/internal/v1/internal_pb2.pyi cluster/rpc/

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

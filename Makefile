# Two entry points, each self-installing: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint venv clean tools kafka

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's metadata changes.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The main job: the live twin on the embedded broker, the demo scenario replayed through
# every department service, the summary, then everything stopped again (also on failure).
DEMO_DATA := .govflow-demo
demo: $(STAMP)
	@GOVFLOW_DATA_DIR=$(DEMO_DATA) $(BIN)/govflow down > /dev/null
	GOVFLOW_DATA_DIR=$(DEMO_DATA) $(BIN)/govflow up
	GOVFLOW_DATA_DIR=$(DEMO_DATA) $(BIN)/govflow replay --scenario scenarios/demo.yaml \
		--speed 86400 --out out/demo; status=$$?; \
		GOVFLOW_DATA_DIR=$(DEMO_DATA) $(BIN)/govflow down; \
		echo "report: out/demo/report.html"; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Debian tools the tests drive: promtool and a real Prometheus (package prometheus), and
# docker-compose to validate the compose file (no Docker engine is needed for that).
TOOLS := /usr/bin/promtool /usr/bin/prometheus /usr/bin/docker-compose

$(TOOLS):
	@command -v promtool >/dev/null && command -v prometheus >/dev/null \
		&& command -v docker-compose >/dev/null || { \
		SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y \
			-qq --no-install-recommends prometheus docker-compose >/dev/null; }
	@# the package enables a system Prometheus where systemd runs; the tests start their own
	@-pkill -x prometheus -u prometheus 2>/dev/null || true

tools: $(TOOLS)

# Apache Kafka's broker (deploy/kafka/pom.xml pins the version) from Maven Central into
# .kafka/libs, for `govflow up --broker kafka` and the tests on it; needs Java 17 and Maven.
KAFKA_HOME  := .kafka
KAFKA_STAMP := $(KAFKA_HOME)/.installed
$(KAFKA_STAMP): deploy/kafka/pom.xml
	rm -rf $(KAFKA_HOME)/libs
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory=$(abspath $(KAFKA_HOME))/libs
	touch $@

kafka: $(KAFKA_STAMP)

test: $(STAMP) $(TOOLS) $(KAFKA_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis $(KAFKA_HOME)

# Benchmarks (docs/BENCHMARKS.md).  Ciw goes into .venv through the `bench` extra;
# Prosimos 2.1.0 pins click>=8.4.2, which conflicts with faust-streaming (click<8.4),
# so it gets a virtualenv of its own that bench/des_vs_prosimos.py drives as a subprocess.
BENCH_STAMP    := $(VENV)/.installed-bench
PROSIMOS_VENV  := .venv-prosimos
PROSIMOS_STAMP := $(PROSIMOS_VENV)/.installed

.PHONY: bench

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

$(PROSIMOS_STAMP):
	test -x $(PROSIMOS_VENV)/bin/python || $(PYTHON) -m venv $(PROSIMOS_VENV)
	$(PROSIMOS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PROSIMOS_VENV)/bin/python -m pip install --quiet 'prosimos==2.1.0'
	touch $(PROSIMOS_STAMP)

bench: $(BENCH_STAMP) $(PROSIMOS_STAMP)
	$(BIN)/python bench/des_vs_ciw.py
	$(BIN)/python bench/des_vs_prosimos.py
	$(BIN)/python bench/city_year.py
	$(BIN)/python bench/discover.py

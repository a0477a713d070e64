# StreamPipeline — developer entry points.  `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/streampipeline
export STREAMPIPELINE_CACHE := $(CACHE)
EXAMPLE ?= k8s/examples/pipeline.yaml
RECORDS ?= 30000
OUTPUT ?= output/payments
PYTEST_ARGS ?=

STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: help
help: ## show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v java >/dev/null || { echo "Java 17+ is required (e.g. apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "Maven is required to fetch Kafka/Spark jars (e.g. apt-get install maven)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv with every Python dependency (pinned)

.PHONY: jars
jars: venv ## fetch Kafka broker + Spark Kafka connector jars from Maven Central into $(CACHE)
	$(PY) -m streampipeline.local.jars

.PHONY: run
run: jars ## run the example pipeline locally (embedded Kafka + local Spark), then show where the Parquet is
	$(VENV)/bin/streampipeline run $(EXAMPLE) --records $(RECORDS) --output $(OUTPUT) --fresh --summary-json $(OUTPUT)-summary.json

.PHONY: k8s-tools
k8s-tools: ## build etcd, kube-apiserver, kube-controller-manager, kubectl, helm from Go modules (cached)
	bash tests/harness/k8s/build.sh

.PHONY: test
test: jars k8s-tools ## install everything and run the whole suite (unit, real Kafka/Spark, real k8s control plane)
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv ## fast tests only (no broker, no Spark streaming)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: bench
bench: jars ## measure generator, Spark job and freshness against baselines; writes out/bench.json
	$(PY) -m streampipeline.bench --output out/bench.json
	$(PY) -m streampipeline.bench_operator --output out/bench-operator.json

.PHONY: lint
lint: venv ## ruff check + format check
	$(VENV)/bin/ruff check operator jobs tests
	$(VENV)/bin/ruff format --check operator jobs tests

.PHONY: lint-fix
lint-fix: venv ## ruff autofix + format
	$(VENV)/bin/ruff check --fix operator jobs tests
	$(VENV)/bin/ruff format operator jobs tests

.PHONY: clean
clean: ## remove local outputs (keeps the download cache)
	rm -rf output out .pytest_cache

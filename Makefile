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

.PHONY: lock
lock: venv ## re-lock the images' dependencies with hashes from pyproject.toml (images/requirements/)
	$(PY) images/lock.py

.PHONY: jars
jars: venv ## fetch Kafka broker + Spark Kafka connector jars from Maven Central into $(CACHE)
	$(PY) -m streampipeline.local.jars

.PHONY: run
run: jars ## run the example pipeline locally (embedded Kafka + local Spark), then show where the Parquet is
	$(VENV)/bin/streampipeline run $(EXAMPLE) --records $(RECORDS) --output $(OUTPUT) --fresh --summary-json $(OUTPUT)-summary.json

.PHONY: k8s-tools
k8s-tools: ## build etcd, kube-apiserver, kube-controller-manager, kubectl, helm and the test node's kube-scheduler, kubelet, kube-proxy, coredns from Go modules (cached)
	bash tests/harness/k8s/build.sh
	bash tests/harness/k8s/build.sh node

# Debian packages the image tests need (the suite's own dockerd; debootstrap for the stand-in bases).
IMAGE_TOOLS_PKGS := docker.io debootstrap containernetworking-plugins iptables

.PHONY: image-tools
image-tools: ## apt-get install what the image tests need (docker.io, debootstrap, CNI plugins, iptables)
	@missing=""; for p in $(IMAGE_TOOLS_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "as root: apt-get install$$missing (the image tests need them)"; exit 1; fi; \
	  echo "installing$$missing"; \
	  apt-get -o DPkg::Lock::Timeout=600 update -q && DEBIAN_FRONTEND=noninteractive \
	    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $$missing; \
	fi

.PHONY: test
test: jars k8s-tools image-tools airflow-venv ## install everything and run the whole suite (unit, real Kafka/Spark, real k8s control plane, images, Airflow)
	$(PY) -m pytest $(PYTEST_ARGS)

# --- Airflow: the DAGs of jobs/airflow/ are tested in their own locked virtualenv -------
AIRFLOW_LOCK := jobs/airflow/requirements.lock

.PHONY: airflow-venv
airflow-venv: venv ## build the Airflow 3 virtualenv the DAG tests use (cached by the lock's hash)
	UV=$(VENV)/bin/uv PYTHON=$(PYTHON) bash jobs/airflow/venv.sh

.PHONY: airflow-lock
airflow-lock: venv ## re-resolve jobs/airflow/requirements.in into the hash-locked requirements.lock
	UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv pip compile -q --universal --python-version 3.11 \
	  --generate-hashes -o $(AIRFLOW_LOCK) jobs/airflow/requirements.in
.PHONY: test-node
test-node: venv k8s-tools ## the tests on a real node (root: containerd, kubelet, kube-proxy, CoreDNS)
	$(PY) -m pytest tests/node $(PYTEST_ARGS)

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

# --- The kind path (needs Docker, kind, kubectl and helm on the user's machine) -----------
KIND_CLUSTER ?= streampipeline
IMAGE_TAG ?= 0.1.0
REGISTRY ?= ghcr.io/streampipeline
STRIMZI_VERSION ?= 1.2.0
SPARK_OPERATOR_VERSION ?= 2.5.2
PIPELINE_NS ?= streampipeline

.PHONY: kind-up
kind-up: ## create a local kind cluster (k8s/kind/cluster.yaml)
	kind create cluster --config k8s/kind/cluster.yaml --name $(KIND_CLUSTER)

.PHONY: images
images: ## build the operator, generator and Spark images (Docker with BuildKit)
	DOCKER_BUILDKIT=1 docker build -f images/operator/Dockerfile -t $(REGISTRY)/operator:$(IMAGE_TAG) .
	DOCKER_BUILDKIT=1 docker build -f images/generator/Dockerfile -t $(REGISTRY)/generator:$(IMAGE_TAG) .
	DOCKER_BUILDKIT=1 docker build -f images/spark/Dockerfile -t $(REGISTRY)/spark:$(IMAGE_TAG) .

.PHONY: kind-load
kind-load: ## load the three images into the kind cluster
	for i in operator generator spark; do kind load docker-image $(REGISTRY)/$$i:$(IMAGE_TAG) --name $(KIND_CLUSTER); done

.PHONY: deploy
deploy: ## install Strimzi and spark-operator from their public charts, then our chart with a dev Kafka
	kubectl create namespace $(PIPELINE_NS) --dry-run=client -o yaml | kubectl apply -f -
	helm upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator --version $(STRIMZI_VERSION) \
	  -n strimzi-system --create-namespace --set watchNamespaces='{$(PIPELINE_NS)}' --wait
	helm repo add spark-operator https://kubeflow.github.io/spark-operator --force-update
	helm upgrade --install spark-operator spark-operator/spark-operator --version $(SPARK_OPERATOR_VERSION) \
	  -n spark-operator --create-namespace --set 'spark.jobNamespaces={$(PIPELINE_NS)}' \
	  --set webhook.enable=true --wait
	# Our chart goes into the pipelines' namespace so its dev Kafka sits beside the topics.
	helm upgrade --install streampipeline charts/streampipeline-operator -n $(PIPELINE_NS) \
	  --set image.tag=$(IMAGE_TAG) --set 'watchNamespaces={$(PIPELINE_NS)}' \
	  --set examples.kafka.enabled=true --wait

.PHONY: demo
demo: ## apply the example pipeline, wait until Ready, show Parquet rows written
	kubectl apply -f k8s/examples/pipeline.yaml
	kubectl wait --for=condition=Ready sp/payments -n $(PIPELINE_NS) --timeout=10m
	kubectl get sp,kafkatopics,deploy,sparkapplications -n $(PIPELINE_NS)
	sleep 60
	kubectl exec -n $(PIPELINE_NS) payments-processor-driver -- python3 -c \
	  "import pyarrow.dataset as ds; print('transactions rows:', ds.dataset('/data/streampipeline/transactions', format='parquet', partitioning='hive').count_rows())"

.PHONY: kind-down
kind-down: ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

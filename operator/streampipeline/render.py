"""The Kubernetes objects a StreamPipeline becomes: one pure function per child.

Every function takes a validated :class:`~streampipeline.spec.StreamPipeline` (and, where
images matter, the operator :class:`~streampipeline.settings.Settings`) and returns a plain
``dict`` ready for the API server.  Nothing here talks to a cluster: owner references are
added by the caller (``kopf.adopt``), and ``streampipeline render`` prints exactly
:func:`children`.

Child names (the pipeline name is at most 40 characters, so all of these are valid):

=======================  ==================================  ===========================
``<name>-customers``     ``kafka.strimzi.io/v1`` KafkaTopic   ``spec.topicName`` = Kafka
``<name>-transactions``  ``kafka.strimzi.io/v1`` KafkaTopic   name when it differs
``<name>-config``        ConfigMap (``pipeline.json``)
``<name>-data``          PersistentVolumeClaim (unless ``spec.sink.volume.existingClaim``)
``<name>-generator``     Deployment
``<name>-processor``     ``sparkoperator.k8s.io/v1beta2`` SparkApplication
``<name>-api``           Deployment and Service (only while ``spec.api.enabled``)
=======================  ==================================  ===========================
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from spjobs.kafka_time import with_required
from spjobs.processor.config import JVM_OPTIONS

from .api.config import TOKEN_ENV
from .settings import Settings
from .spec import API_TOKEN_KEY, StreamPipeline

__all__ = [
    "API_PORT",
    "CONFIG_DIR",
    "CONFIG_KEY",
    "SPEC_HASH_ANNOTATION",
    "ChildNames",
    "api_deployment",
    "api_service",
    "children",
    "common_labels",
    "configmap",
    "generator_deployment",
    "kafka_topic",
    "names",
    "pvc",
    "selector_labels",
    "spark_application",
]

CONFIG_DIR = "/etc/streampipeline"
CONFIG_KEY = "pipeline.json"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
SPEC_HASH_ANNOTATION = "streampipeline.io/spec-hash"
CONFIG_HASH_ANNOTATION = "streampipeline.io/config-hash"
MANAGED_BY = "streampipeline-operator"
TOPIC_ROLES = ("customers", "transactions")
RUN_AS_USER = 10001
API_PORT = 8000
SPARK_USER = 185  # the apache/spark image's "spark" user (images/spark/Dockerfile: USER 185)

KAFKA_TOPIC_API = "kafka.strimzi.io/v1"
SPARK_APP_API = "sparkoperator.k8s.io/v1beta2"


class ChildNames(dict):
    """``{"customers": ..., "transactions": ..., "config": ..., "data": ..., "generator": ...,
    "processor": ..., "api": ...}`` (``data`` is the claim the sink uses: ours or the existing
    one; ``api`` names the REST service's Deployment and Service, which exist only when enabled)."""


def names(p: StreamPipeline) -> ChildNames:
    volume = p.spec.sink.volume
    return ChildNames(
        customers=f"{p.name}-customers",
        transactions=f"{p.name}-transactions",
        config=f"{p.name}-config",
        data=volume.existing_claim or f"{p.name}-data",
        generator=f"{p.name}-generator",
        processor=f"{p.name}-processor",
        api=f"{p.name}-api",
    )


def selector_labels(p: StreamPipeline, component: str) -> dict[str, str]:
    """The immutable subset used in selectors."""
    return {
        "app.kubernetes.io/name": "streampipeline",
        "app.kubernetes.io/instance": p.name,
        "app.kubernetes.io/component": component,
    }


def common_labels(p: StreamPipeline, component: str) -> dict[str, str]:
    return {
        **selector_labels(p, component),
        "app.kubernetes.io/part-of": "streampipeline",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def _metadata(p: StreamPipeline, name: str, component: str, **extra_labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": p.namespace,
        "labels": {**common_labels(p, component), **extra_labels},
    }


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


# --- Kafka topics -------------------------------------------------------------------------


def kafka_topic(p: StreamPipeline, role: str) -> dict[str, Any]:
    """A Strimzi ``KafkaTopic`` for ``role`` (``customers`` or ``transactions``); its config
    always sets LogAppendTime (:mod:`spjobs.kafka_time`), and Strimzi applies it to an
    existing topic too."""
    if role not in TOPIC_ROLES:
        raise ValueError(f"role must be one of {TOPIC_ROLES}, got {role!r}")
    topic = getattr(p.spec.kafka.topics, role)
    name = names(p)[role]
    kafka_name = topic.resolved_name(p.name)
    spec: dict[str, Any] = {
        "partitions": topic.partitions,
        "replicas": topic.replicas,
        "config": with_required(topic.config),
    }
    if kafka_name != name:
        spec = {"topicName": kafka_name, **spec}
    return {
        "apiVersion": KAFKA_TOPIC_API,
        "kind": "KafkaTopic",
        "metadata": _metadata(p, name, f"topic-{role}", **{"strimzi.io/cluster": p.spec.kafka.cluster}),
        "spec": spec,
    }


# --- configuration and storage ------------------------------------------------------------


def configmap(p: StreamPipeline) -> dict[str, Any]:
    """The jobs' configuration, mounted at ``/etc/streampipeline`` in every pod."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(p, names(p)["config"], "config"),
        "data": {CONFIG_KEY: json.dumps(p.to_job_config())},
    }


def pvc(p: StreamPipeline) -> dict[str, Any] | None:
    """The sink's claim, or ``None`` when ``spec.sink.volume.existingClaim`` is set.

    ReadWriteOnce: the Spark driver and executors must then share a node (true of
    single-node dev clusters); multi-node clusters need an RWX class via existingClaim.
    """
    volume = p.spec.sink.volume
    if volume.existing_claim:
        return None
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": volume.size}},
    }
    if volume.storage_class_name is not None:
        spec["storageClassName"] = volume.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(p, names(p)["data"], "data"),
        "spec": spec,
    }


# --- the generator ------------------------------------------------------------------------


def _rate(p: StreamPipeline) -> str:
    rate = p.spec.generator.rate_per_second
    return str(int(rate)) if float(rate).is_integer() else repr(rate)


def _pod_security_context(user: int) -> dict[str, Any]:
    """Non-root as the image's user; ``fsGroup`` makes a fresh volume writable for it."""
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": user,
        "fsGroup": user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


# Liveness: the generator has no HTTP endpoint and no heartbeat file, so the honest check is
# that PID 1 (the generator) is neither a zombie nor stopped.  There is no readiness probe:
# a generator serves no traffic, so "running" is "ready" (availableReplicas counts it).
_LIVENESS_SCRIPT = (
    "import sys; s = open('/proc/1/status').read(); "
    "sys.exit(1 if ('State:\\tZ' in s or 'State:\\tT' in s) else 0)"
)


def generator_deployment(p: StreamPipeline, settings: Settings) -> dict[str, Any]:
    """The data generator: ``replicas`` pods (0 while suspended) producing at ``ratePerSecond``."""
    g = p.spec.generator
    n = names(p)
    job_config = p.to_job_config()
    # Pods restart when what the generator reads changes (rate and bootstrap are also in args).
    config_hash = _digest({"kafka": job_config["kafka"], "generator": job_config["generator"]})
    container = {
        "name": "generator",
        "image": settings.generator_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-m", "spjobs.generator"],
        "args": [
            "--config",
            CONFIG_PATH,
            "--rate",
            _rate(p),
            "--bootstrap-servers",
            p.bootstrap_servers,
            "--instance",
            "$(POD_NAME)",
        ],
        "env": [
            # The generator is configured by its arguments alone (one source); POD_NAME only
            # feeds --instance.
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": g.resources.to_k8s(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "securityContext": _container_security_context(),
        "livenessProbe": {
            "exec": {"command": ["python", "-c", _LIVENESS_SCRIPT]},
            "initialDelaySeconds": 10,
            "periodSeconds": 30,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(p, n["generator"], "generator"),
        "spec": {
            "replicas": 0 if p.spec.suspend else g.replicas,
            "selector": {"matchLabels": selector_labels(p, "generator")},
            "template": {
                "metadata": {
                    "labels": common_labels(p, "generator"),
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security_context(RUN_AS_USER),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": n["config"]}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


# --- the Spark job ------------------------------------------------------------------------


def _processor_config(p: StreamPipeline) -> dict[str, Any]:
    """The part of ``pipeline.json`` the Spark job depends on: a change here means a new run.
    Generator settings and topic partitions/replicas/configs are not in it (Spark's Kafka
    source picks up new partitions by itself)."""
    config = p.to_job_config()
    kafka = config["kafka"]
    return {
        "name": config["name"],
        "bootstrapServers": kafka["bootstrapServers"],
        "topics": {role: kafka["topics"][role]["name"] for role in TOPIC_ROLES},
        "processing": config["processing"],
        "sink": config["sink"],
    }


def _spark_container_security_context() -> dict[str, Any]:
    # Not readOnlyRootFilesystem: Spark writes its work and local dirs inside the image.
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def spark_application(p: StreamPipeline, settings: Settings) -> dict[str, Any]:
    """The Spark Structured Streaming job (checkpoints under ``<sink.path>/_checkpoints``).

    The ``streampipeline.io/spec-hash`` annotation lets the controller see that the job
    must be replaced (spark-operator does not restart a running application in place).
    Volumes are mounted by spark-operator's mutating webhook, which must be enabled.

    ``restartPolicy: Always``: a streaming job has no successful end.  With ``OnFailure``
    a driver that exits cleanly (SIGTERM on a node drain) ends ``COMPLETED`` for good, and
    the failure budget counts every attempt of the application's life.  Only the driver
    mounts the volume and the config: parsing and checks run in the executors' JVMs, every
    file is written by the driver, and a ReadWriteOnce claim mounted by executors on other
    nodes would keep them from starting.  ``fsGroup`` 185 (the Spark image's user) makes a
    freshly formatted volume writable.
    """
    proc = p.spec.processing
    n = names(p)
    labels = common_labels(p, "processor")
    mounts = [
        {"name": "data", "mountPath": p.spec.sink.path},
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
    ]
    spec: dict[str, Any] = {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": settings.spark_image,
        "imagePullPolicy": settings.image_pull_policy,
        "mainApplicationFile": settings.spark_main_file,
        "arguments": ["--config", CONFIG_PATH],
        "sparkVersion": settings.spark_version,
        "restartPolicy": {
            "type": "Always",
            "onFailureRetryInterval": 10,
            "onSubmissionFailureRetryInterval": 20,
        },
        # A clean stop on SIGTERM is the job's own (between batches), not a Spark setting:
        # Spark 4.1 has no streaming "stop gracefully" key for Structured Streaming, and the
        # image's entrypoint delivers the signal to the Python driver.
        "sparkConf": {"spark.ui.showConsoleProgress": "false"},
        "driver": {
            "cores": proc.driver.cores,
            "memory": proc.driver.memory,
            "javaOptions": JVM_OPTIONS,
            "serviceAccount": settings.spark_service_account,
            "labels": labels,
            "volumeMounts": mounts,
            "podSecurityContext": _pod_security_context(SPARK_USER),
            "securityContext": _spark_container_security_context(),
            **({"memoryOverhead": proc.driver.memory_overhead} if proc.driver.memory_overhead else {}),
        },
        "executor": {
            "instances": proc.executor.instances,
            "cores": proc.executor.cores,
            "memory": proc.executor.memory,
            "javaOptions": JVM_OPTIONS,
            "labels": labels,
            "podSecurityContext": _pod_security_context(SPARK_USER),
            "securityContext": _spark_container_security_context(),
        },
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": n["data"]}},
            {"name": "config", "configMap": {"name": n["config"]}},
        ],
    }
    metadata = _metadata(p, n["processor"], "processor")
    metadata["annotations"] = {SPEC_HASH_ANNOTATION: _digest({"spec": spec, "config": _processor_config(p)})}
    return {"apiVersion": SPARK_APP_API, "kind": "SparkApplication", "metadata": metadata, "spec": spec}


# --- the REST service ----------------------------------------------------------------------


def _api_args(p: StreamPipeline) -> list[str]:
    # The rendered job config (the ConfigMap), not a manifest: one source for every pod.
    # --no-new-token: a pod never invents a token (it would differ per replica and land in logs).
    args = ["api", "--config", CONFIG_PATH, "--host", "0.0.0.0", "--port", str(API_PORT), "--no-new-token"]
    if not p.spec.api.mount_sink:
        args.append("--no-sink")  # the ReadWriteOnce claim is the Spark driver's
    return args


def api_deployment(p: StreamPipeline, settings: Settings) -> dict[str, Any]:
    """The REST service and dashboard (``streampipeline api``) for this pipeline's topics.

    It reads ``pipeline.json`` from the ConfigMap; the write token comes from
    ``spec.api.tokenSecretName`` (key ``token``) or, unset, it is read-only.  Without
    ``mountSink`` it serves the Kafka endpoints only: the claim the operator creates is
    ReadWriteOnce and mounted by the Spark driver.  Not scaled down by ``suspend``: topics
    and data stay, and so does the service that shows them.
    """
    api = p.spec.api
    n = names(p)
    job_config = p.to_job_config()
    env: list[dict[str, Any]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    if api.token_secret_name:
        ref = {"name": api.token_secret_name, "key": API_TOKEN_KEY}
        env.append({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": ref}})
    mounts = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": n["config"]}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if api.mount_sink:
        mounts.append({"name": "data", "mountPath": p.spec.sink.path, "readOnly": True})
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": n["data"], "readOnly": True}})

    def probe(path: str, period: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        }

    container = {
        "name": "api",
        "image": settings.api_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["streampipeline"],
        "args": _api_args(p),
        "env": env,
        "ports": [{"name": "http", "containerPort": API_PORT, "protocol": "TCP"}],
        "resources": api.resources.to_k8s(),
        "volumeMounts": mounts,
        "securityContext": _container_security_context(),
        # /readyz fails while the broker does not answer; /healthz only says the process is up.
        "readinessProbe": probe("/readyz", 10),
        "livenessProbe": {**probe("/healthz", 20), "initialDelaySeconds": 10},
    }
    # Pods restart when what the service reads from pipeline.json changes.
    config_hash = _digest({"kafka": job_config["kafka"], "sink": job_config["sink"], "name": p.name})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(p, n["api"], "api"),
        "spec": {
            "replicas": api.replicas,
            "selector": {"matchLabels": selector_labels(p, "api")},
            "template": {
                "metadata": {
                    "labels": common_labels(p, "api"),
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security_context(RUN_AS_USER),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def api_service(p: StreamPipeline) -> dict[str, Any]:
    """A ClusterIP Service in front of the API pods (``kubectl port-forward svc/<name>-api``)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(p, names(p)["api"], "api"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(p, "api"),
            "ports": [{"name": "http", "port": API_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def children(p: StreamPipeline, settings: Settings) -> list[dict[str, Any]]:
    """Every child object, in apply order (topics and config before their consumers).

    While ``spec.suspend`` is true the generator has 0 replicas and there is no
    SparkApplication; the REST service's Deployment and Service exist while
    ``spec.api.enabled`` (suspended or not).
    """
    out = [kafka_topic(p, role) for role in TOPIC_ROLES]
    out.append(configmap(p))
    claim = pvc(p)
    if claim is not None:
        out.append(claim)
    out.append(generator_deployment(p, settings))
    if not p.spec.suspend:
        out.append(spark_application(p, settings))
    if p.spec.api.enabled:
        out += [api_deployment(p, settings), api_service(p)]
    return out

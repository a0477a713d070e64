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
=======================  ==================================  ===========================
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from spjobs.kafka_time import with_required
from spjobs.processor.config import JVM_OPTIONS

from .settings import Settings
from .spec import StreamPipeline

__all__ = [
    "CONFIG_DIR",
    "CONFIG_KEY",
    "SPEC_HASH_ANNOTATION",
    "ChildNames",
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
SPARK_USER = 185  # the apache/spark image's "spark" user (images/spark/Dockerfile: USER 185)

KAFKA_TOPIC_API = "kafka.strimzi.io/v1"
SPARK_APP_API = "sparkoperator.k8s.io/v1beta2"


class ChildNames(dict):
    """``{"customers": ..., "transactions": ..., "config": ..., "data": ..., "generator": ...,
    "processor": ...}`` (``data`` is the claim the sink uses: ours or the existing one)."""


def names(p: StreamPipeline) -> ChildNames:
    volume = p.spec.sink.volume
    return ChildNames(
        customers=f"{p.name}-customers",
        transactions=f"{p.name}-transactions",
        config=f"{p.name}-config",
        data=volume.existing_claim or f"{p.name}-data",
        generator=f"{p.name}-generator",
        processor=f"{p.name}-processor",
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


def children(p: StreamPipeline, settings: Settings) -> list[dict[str, Any]]:
    """Every child object, in apply order (topics and config before their consumers).

    While ``spec.suspend`` is true the generator has 0 replicas and there is no
    SparkApplication.
    """
    out = [kafka_topic(p, role) for role in TOPIC_ROLES]
    out.append(configmap(p))
    claim = pvc(p)
    if claim is not None:
        out.append(claim)
    out.append(generator_deployment(p, settings))
    if not p.spec.suspend:
        out.append(spark_application(p, settings))
    return out

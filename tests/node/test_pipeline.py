"""One pipeline end to end on the real node: the operator (installed by the chart, a real pod)
turns a StreamPipeline into a generator Deployment whose real pods produce to a real broker pod.

What stands in for Strimzi, which cannot be had here: the broker is one KRaft pod built from
the project's Maven Kafka jars (tests/harness/broker/) behind the Service name the pipeline's
``kafka.cluster`` implies (``<cluster>-kafka-bootstrap``); the test does the topic operator's
part (creates each KafkaTopic's topic on the broker with its partitions and config, then writes
the KafkaTopic's Ready status). Nothing runs the SparkApplication (no spark-operator here).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml
from harness.node import NodeCluster
from node_util import RESTRICTED_CONTAINER, RESTRICTED_POD

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "streampipeline-operator"
NS = "pipes"
CLUSTER = "dev-cluster"
BOOTSTRAP = f"{CLUSTER}-kafka-bootstrap"
KAFKA_CP = "/opt/kafka/libs/*"
SHARED = Path(os.environ.get("STREAMPIPELINE_SHARED") or ROOT.parent / "shared")
UPSTREAM_CRDS = [
    SHARED / "crds" / "strimzi-1.2.0" / "043-Crd-kafkatopic.yaml",
    SHARED / "crds" / "spark-operator-2.5.2" / "sparkoperator.k8s.io_sparkapplications.yaml",
]

pytestmark = [pytest.mark.node, pytest.mark.integration]


def _json(node: NodeCluster, *args: str) -> dict:
    return json.loads(node.kubectl(*args, "-o", "json").stdout)


def _wait(what: str, check, timeout: float = 180.0, every: float = 2.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def broker_manifests(image: str) -> list[dict]:
    labels = {"app.kubernetes.io/name": "test-kafka-broker", "strimzi.io/cluster": CLUSTER}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{CLUSTER}-kafka-0", "namespace": NS, "labels": labels},
        "spec": {
            "securityContext": {**RESTRICTED_POD, "runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 1001},
            "containers": [
                {
                    "name": "kafka",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "env": [
                        {"name": "KAFKA_ADVERTISED_HOST", "value": f"{BOOTSTRAP}.{NS}.svc.cluster.local"},
                        {"name": "KAFKA_HEAP", "value": "384m"},
                    ],
                    "ports": [{"containerPort": 9092, "name": "tcp-clients"}],
                    "readinessProbe": {"tcpSocket": {"port": 9092}, "periodSeconds": 2},
                    "securityContext": RESTRICTED_CONTAINER,
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "512Mi"},
                        "limits": {"memory": "1Gi"},
                    },
                    "volumeMounts": [
                        {"name": "data", "mountPath": "/var/lib/kafka"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
        },
    }
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": BOOTSTRAP, "namespace": NS},
        "spec": {"selector": labels, "ports": [{"name": "tcp-clients", "port": 9092, "targetPort": 9092}]},
    }
    return [pod, svc]


def kafka_tool(node: NodeCluster, main: str, *args: str) -> str:
    """A Kafka CLI tool run inside the broker pod (its JDK and jars) against itself."""
    return node.kubectl(
        "exec", "-n", NS, f"{CLUSTER}-kafka-0", "--",
        "java", "-Xmx128m", "-cp", KAFKA_CP, main, "--bootstrap-server", "localhost:9092", *args,
        timeout=120,
    ).stdout  # fmt: skip


def end_offsets(node: NodeCluster, topic: str) -> int:
    out = kafka_tool(node, "org.apache.kafka.tools.GetOffsetShell", "--topic", topic)
    return sum(int(line.rsplit(":", 1)[1]) for line in out.split() if line.count(":") == 2)


def reconcile_topics(node: NodeCluster) -> list[str]:
    """Strimzi's topic operator's part: create each KafkaTopic's topic, then mark it Ready."""
    topics = _json(node, "get", "kafkatopics.kafka.strimzi.io", "-n", NS)["items"]
    done = []
    for kt in topics:
        name = kt["spec"].get("topicName") or kt["metadata"]["name"]
        args = ["--create", "--if-not-exists", "--topic", name]
        args += ["--partitions", str(kt["spec"].get("partitions", 1))]
        args += ["--replication-factor", str(kt["spec"].get("replicas", 1))]
        for k, v in (kt["spec"].get("config") or {}).items():
            args += ["--config", f"{k}={v}"]
        kafka_tool(node, "org.apache.kafka.tools.TopicCommand", *args)
        status = {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
                ],
                "observedGeneration": kt["metadata"]["generation"],
                "topicName": name,
            }
        }
        node.kubectl(
            "patch", "kafkatopics.kafka.strimzi.io", kt["metadata"]["name"], "-n", NS,
            "--subresource=status", "--type=merge", "-p", json.dumps(status),
        )  # fmt: skip
        done.append(name)
    return done


def pipeline_manifest(**generator) -> dict:
    return {
        "apiVersion": "streampipeline.io/v1alpha1",
        "kind": "StreamPipeline",
        "metadata": {"name": "payments", "namespace": NS},
        "spec": {
            "kafka": {
                "cluster": CLUSTER,
                "topics": {
                    "customers": {"partitions": 1, "replicas": 1},
                    "transactions": {"partitions": 2, "replicas": 1},
                },
            },
            "generator": {
                "replicas": 1,
                "ratePerSecond": 20,
                "customers": 50,
                "resources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "384Mi"}},
                **generator,
            },
        },
    }


def condition(node: NodeCluster, kind: str) -> str | None:
    sp = _json(node, "get", "streampipeline", "payments", "-n", NS)
    for c in (sp.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return c["status"]
    return None


def generator_pods(node: NodeCluster) -> list[dict]:
    pods = _json(node, "get", "pods", "-n", NS, "-l", "app.kubernetes.io/component=generator")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


@pytest.fixture(scope="module")
def cluster(node: NodeCluster, node_image, docker_engine):
    from harness.docker_engine import ensure_broker_image, save_image

    operator, generator = node_image("operator"), node_image("generator")
    (broker,) = node.import_image(save_image(docker_engine, ensure_broker_image(docker_engine)))
    node.kubectl("create", "namespace", NS)
    node.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted")
    node.apply_crds(UPSTREAM_CRDS)
    repository, _, tag = operator.rpartition(":")
    try:
        node.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(broker_manifests(broker)))
        node.helm(
            "install", "op", str(CHART), "-n", NS,
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never", "--set", f"watchNamespaces={{{NS}}}",
            "--set", f"pipelines.generatorImage={generator}", "--set", "pipelines.imagePullPolicy=Never",
            "--wait", "--timeout", "180s",
        )  # fmt: skip
        node.kubectl(
            "wait", "-n", NS, "--for=condition=Ready", f"pod/{CLUSTER}-kafka-0", "--timeout=180s", timeout=200
        )
        yield node
    finally:
        node.kubectl(
            "delete",
            "streampipeline",
            "--all",
            "-n",
            NS,
            "--wait=true",
            "--timeout=120s",
            check=False,
            timeout=150,
        )
        node.helm("uninstall", "op", "-n", NS, "--wait", check=False)
        node.kubectl("delete", "namespace", NS, "--wait=true", "--timeout=120s", check=False, timeout=150)


def test_pipeline_generator_pods_produce_to_the_broker_pod(cluster: NodeCluster) -> None:
    node = cluster
    node.kubectl("apply", "-f", "-", input=yaml.safe_dump(pipeline_manifest()))
    _wait(
        "the operator's KafkaTopics",
        lambda: len(_json(node, "get", "kafkatopics.kafka.strimzi.io", "-n", NS)["items"]) == 2,
    )
    topics = reconcile_topics(node)
    assert sorted(topics) == ["payments-customers", "payments-transactions"]
    _wait("TopicsReady", lambda: condition(node, "TopicsReady") == "True")

    # GeneratorReady comes from the Deployment's real availability.
    _wait("GeneratorReady=True", lambda: condition(node, "GeneratorReady") == "True", timeout=240)
    dep = _json(node, "get", "deployment", "-n", NS, "-l", "app.kubernetes.io/component=generator")["items"][
        0
    ]
    assert dep["status"]["availableReplicas"] == 1
    (pod,) = generator_pods(node)
    assert pod["status"]["phase"] == "Running"

    # Records land in the broker's topics.
    first = _wait("records in payments-transactions", lambda: end_offsets(node, "payments-transactions"))
    assert end_offsets(node, "payments-customers") > 0
    later = _wait("more records", lambda: (n := end_offsets(node, "payments-transactions")) > first and n)
    assert later > first

    # A rate change rolls the pods: the new pod runs with the new rate.
    node.kubectl(
        "patch",
        "streampipeline",
        "payments",
        "-n",
        NS,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"generator": {"ratePerSecond": 7}}}),
    )

    def rolled() -> bool:
        pods = generator_pods(node)
        return (
            len(pods) == 1
            and "7" in pods[0]["spec"]["containers"][0]["args"]
            and pods[0]["status"].get("phase") == "Running"
            and pods[0]["metadata"]["name"] != pod["metadata"]["name"]
        )

    _wait("a generator pod with --rate 7", rolled, timeout=240)
    _wait(
        "GeneratorReady=True after the rate change",
        lambda: condition(node, "GeneratorReady") == "True",
        timeout=240,
    )

    # Suspend stops the real pods; production stops.
    node.kubectl(
        "patch", "streampipeline", "payments", "-n", NS, "--type=merge", "-p", '{"spec": {"suspend": true}}'
    )
    _wait(
        "no generator pods",
        lambda: generator_pods(node) == []
        and _json(node, "get", "pods", "-n", NS, "-l", "app.kubernetes.io/component=generator")["items"]
        == [],
        timeout=180,
    )
    stopped = end_offsets(node, "payments-transactions")
    time.sleep(5)
    assert end_offsets(node, "payments-transactions") == stopped

    # Resume: a pod runs again and production goes on from where it stopped.
    node.kubectl(
        "patch", "streampipeline", "payments", "-n", NS, "--type=merge", "-p", '{"spec": {"suspend": false}}'
    )
    _wait(
        "production after resume", lambda: end_offsets(node, "payments-transactions") > stopped, timeout=240
    )

    # Delete: garbage collection removes the Deployment and its pods; the PVC (retainOnDelete) stays.
    pvcs = [c["metadata"]["name"] for c in _json(node, "get", "pvc", "-n", NS)["items"]]
    assert pvcs == ["payments-data"]
    node.kubectl("delete", "streampipeline", "payments", "-n", NS, "--timeout=120s", timeout=150)
    _wait(
        "the generator Deployment and pods gone",
        lambda: not _json(
            node, "get", "deployments,pods", "-n", NS, "-l", "app.kubernetes.io/component=generator"
        )["items"],
        timeout=180,
    )
    assert [c["metadata"]["name"] for c in _json(node, "get", "pvc", "-n", NS)["items"]] == pvcs

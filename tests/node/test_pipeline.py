"""One pipeline end to end on the real node: the operator (installed by the chart, a real pod)
turns a StreamPipeline into a generator Deployment whose real pods produce to a real broker pod.

What stands in for Strimzi, which cannot be had here: the broker is one KRaft pod built from
the project's Maven Kafka jars (tests/harness/broker/) behind the Service name the pipeline's
``kafka.cluster`` implies (``<cluster>-kafka-bootstrap``); the test does the topic operator's
part (creates each KafkaTopic's topic on the broker with its partitions and config, then writes
the KafkaTopic's Ready status).

What stands in for spark-operator: tests/harness/spark_submit.py turns the operator's
SparkApplication into the ``spark-submit --deploy-mode cluster`` call spark-operator makes (plus
pod templates for what its webhook adds); the driver pod then creates its executor pod itself.
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


# --- the Spark job as real pods (spark-submit standing in for spark-operator) -------------

# Reads a topic from inside the cluster (the broker advertises its Service name, which only
# the cluster's DNS knows) and prints each record as a JSON line, bytes in base64.
_DUMP_TOPIC = r"""
import base64, json, sys
from confluent_kafka import Consumer, TopicPartition
bootstrap, topic = sys.argv[1], sys.argv[2]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "sp-reference",
              "enable.auto.commit": False, "auto.offset.reset": "earliest"})
parts = c.list_topics(topic, timeout=30).topics[topic].partitions
ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in parts}
c.assign([TopicPartition(topic, p, 0) for p in parts])
done = {p for p, e in ends.items() if e == 0}
b64 = lambda b: None if b is None else base64.b64encode(b).decode()
while len(done) < len(parts):
    for m in c.consume(10000, timeout=1.0):
        if m.error():
            continue
        print(json.dumps([m.partition(), m.offset(), m.timestamp()[1], b64(m.key()), b64(m.value())]))
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
    for tp in c.position([TopicPartition(topic, p) for p in parts if p not in done]):
        if tp.offset >= ends[tp.partition]:
            done.add(tp.partition)
c.close()
"""


def read_topic_in_cluster(node: NodeCluster, image: str, bootstrap: str, topic: str) -> list:
    """Every record of ``topic``, read by a pod (the Spark image's Python and client)."""
    import base64

    from integration.reference import Raw

    name = f"dump-{topic}"[:60]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {**RESTRICTED_POD, "runAsUser": 185, "runAsGroup": 185},
            "containers": [
                {
                    "name": "dump",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", _DUMP_TOPIC, bootstrap, topic],
                    "securityContext": RESTRICTED_CONTAINER,
                    "resources": {
                        "requests": {"cpu": "50m", "memory": "128Mi"},
                        "limits": {"memory": "512Mi"},
                    },
                }
            ],
        },
    }
    node.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    try:
        _wait(
            f"pod {name} to finish",
            lambda: _json(node, "get", "pod", name, "-n", NS)["status"].get("phase")
            in ("Succeeded", "Failed"),
            timeout=180,
        )
        phase = _json(node, "get", "pod", name, "-n", NS)["status"]["phase"]
        out = node.kubectl("logs", name, "-n", NS, timeout=120).stdout
        assert phase == "Succeeded", out[-3000:]
    finally:
        node.kubectl("delete", "pod", name, "-n", NS, "--wait=false", check=False)

    def unb64(s):
        return None if s is None else base64.b64decode(s)

    rows = [json.loads(line) for line in out.splitlines() if line.startswith("[")]
    return [Raw(topic, p, o, ts, unb64(k), unb64(v)) for p, o, ts, k, v in rows]


def _pv_dir(node: NodeCluster, claim: str) -> Path:
    pvc = _json(node, "get", "pvc", claim, "-n", NS)
    pv = _json(node, "get", "pv", pvc["spec"]["volumeName"])
    return Path(pv["spec"]["hostPath"]["path"])


def _spark_pods(node: NodeCluster, app: str) -> list[dict]:
    return _json(node, "get", "pods", "-n", NS, "-l", f"sparkoperator.k8s.io/app-name={app}")["items"]


def _driver_logs(node: NodeCluster, pod: str) -> str:
    return node.kubectl("logs", pod, "-n", NS, "--tail=80", check=False).stdout[-6000:]


# Small CPU requests: the node has 2 allocatable CPUs, and the rendered SparkApplication's
# driver and executor (1 core each, Spark's request = cores) would not fit beside the broker,
# the operator and CoreDNS. The job still runs with spark.{driver,executor}.cores = 1.
SMALL_REQUESTS = {
    "spark.kubernetes.driver.request.cores": "200m",
    "spark.kubernetes.executor.request.cores": "200m",
}


def test_spark_job_runs_as_driver_and_executor_pods_and_writes_the_contract(
    cluster: NodeCluster, node_image, tmp_path: Path
) -> None:
    from harness.spark_submit import submit, submit_command
    from integration.reference import compute
    from integration.verify import assert_outputs_match

    from spjobs.processor.batch import read_progress

    node = cluster
    spark_image = node_image("spark")
    t0 = time.monotonic()
    manifest = pipeline_manifest(ratePerSecond=40)
    manifest["metadata"]["name"] = "ledger"
    node.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    app_name = "ledger-processor"
    app = _wait(
        "the operator's SparkApplication",
        lambda: next(
            (
                a
                for a in _json(node, "get", "sparkapplications", "-n", NS)["items"]
                if a["metadata"]["name"] == app_name
            ),
            None,
        ),
    )
    assert spark_image.endswith(app["spec"]["image"].split("/", 1)[-1]), (app["spec"]["image"], spark_image)
    _wait(
        "the ledger KafkaTopics",
        lambda: len(reconcile_topics(node)) >= 2 and condition_of(node, "ledger", "TopicsReady"),
    )
    _wait(
        "records in ledger-transactions", lambda: end_offsets(node, "ledger-transactions") > 200, timeout=300
    )
    # Stop production (0 replicas keeps the SparkApplication): the topics then hold a fixed set.
    node.kubectl(
        "patch", "streampipeline", "ledger", "-n", NS, "--type=merge",
        "-p", json.dumps({"spec": {"generator": {"replicas": 0}}}),
    )  # fmt: skip
    _wait(
        "no ledger generator pods",
        lambda: not [p for p in generator_pods(node) if p["metadata"]["name"].startswith("ledger-")],
        timeout=180,
    )
    produced = end_offsets(node, "ledger-transactions")
    app = _json(node, "get", "sparkapplication", app_name, "-n", NS)  # as it is now

    # spark-submit runs as a ServiceAccount with the driver's Role, as spark-operator runs
    # it with its own ServiceAccount (not as the cluster's admin).
    node.kubectl("create", "serviceaccount", "spark-submitter", "-n", NS)
    node.kubectl(
        "create", "rolebinding", "spark-submitter", "-n", NS,
        f"--role={app['spec']['driver']['serviceAccount']}", f"--serviceaccount={NS}:spark-submitter",
    )  # fmt: skip
    token = tmp_path / "token"
    token.write_text(
        node.kubectl("create", "token", "spark-submitter", "-n", NS, "--duration=1h").stdout.strip()
    )
    argv = submit_command(
        app,
        master=node.server,
        workdir=tmp_path,
        submission_auth={"caCertFile": str(node.pki / "ca.crt"), "oauthTokenFile": str(token)},
        extra_conf=SMALL_REQUESTS,
    )
    driver_pod = f"{app_name}-driver"
    try:
        t_submit = time.monotonic()
        proc = submit(argv)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        submitted = time.monotonic() - t_submit

        # The driver pod, with the SparkApplication's ServiceAccount and the PVC, creates its
        # executor pod itself (its RBAC), and both run.
        driver = _wait(
            "the driver pod",
            lambda: next(
                (p for p in _spark_pods(node, app_name) if p["metadata"]["name"] == driver_pod), None
            ),
        )
        assert driver["spec"]["serviceAccountName"] == app["spec"]["driver"]["serviceAccount"]
        claims = [
            v["persistentVolumeClaim"]["claimName"]
            for v in driver["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        ]
        assert claims == ["ledger-data"]

        def executor_running():
            pods = _spark_pods(node, app_name)
            d = next((p for p in pods if p["metadata"]["name"] == driver_pod), None)
            assert d is not None and d["status"].get("phase") != "Failed", _driver_logs(node, driver_pod)
            ex = [p for p in pods if p["metadata"].get("labels", {}).get("spark-role") == "executor"]
            return [p for p in ex if p["status"].get("phase") == "Running"]

        executors = _wait("a running executor pod", executor_running, timeout=300)
        assert len(executors) == app["spec"]["executor"]["instances"]
        owner = executors[0]["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("Pod", driver_pod)

        # The job catches up with what was produced, writing to the PVC's host directory.
        sink = _pv_dir(node, "ledger-data")

        def caught_up():
            d = _json(node, "get", "pod", driver_pod, "-n", NS)
            assert d["status"].get("phase") == "Running", _driver_logs(node, driver_pod)
            progress = read_progress(sink) or {}
            return (progress.get("input") or {}).get("ledger-transactions", 0) >= produced

        _wait(f"the job to consume {produced} transactions", caught_up, timeout=600, every=3)
        caught = time.monotonic() - t_submit
    finally:
        node.kubectl(
            "delete", "pod", driver_pod, "-n", NS, "--wait=true", "--timeout=120s", check=False, timeout=150
        )
    _wait(
        "the executor pods gone (owned by the driver)", lambda: not _spark_pods(node, app_name), timeout=180
    )

    config = json.loads(_json(node, "get", "configmap", "ledger-config", "-n", NS)["data"]["pipeline.json"])
    bootstrap = config["kafka"]["bootstrapServers"]
    topics = config["kafka"]["topics"]
    exp = compute(
        read_topic_in_cluster(node, spark_image, bootstrap, topics["customers"]["name"]),
        read_topic_in_cluster(node, spark_image, bootstrap, topics["transactions"]["name"]),
        tuple(config["processing"]["ageBands"]),
    )
    figures = assert_outputs_match(sink, exp)
    assert figures["transactions"] > 0
    node.kubectl("delete", "streampipeline", "ledger", "-n", NS, "--timeout=120s", timeout=150)
    print(
        f"spark on the node: submit {submitted:.1f}s, caught up {caught:.1f}s after submit, "
        f"total {time.monotonic() - t0:.1f}s, {figures}"
    )


def condition_of(node: NodeCluster, name: str, kind: str) -> bool:
    sp = _json(node, "get", "streampipeline", name, "-n", NS)
    return any(
        c["type"] == kind and c["status"] == "True" for c in (sp.get("status") or {}).get("conditions") or []
    )

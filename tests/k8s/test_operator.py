"""The operator end to end against a real API server and garbage collector.

The tests in this module run in order and share one pipeline (k8s/examples/pipeline.yaml):
create -> Running -> updates -> suspend/resume -> delete.  Strimzi, spark-operator and the
kubelet cannot run here, so where they would write status (KafkaTopic Ready, SparkApplication
RUNNING, Pod Ready) the tests write it with ``kubectl patch --subresource=status``; everything
else (schema validation of every child against the upstream CRDs, Deployment/ReplicaSet
controllers, garbage collection) is the real thing.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone

import pytest
import yaml
from conftest import EXAMPLE, NAMESPACE
from k8s_util import apply_under_relaxed_crd, wait_for

from streampipeline import render
from streampipeline.settings import Settings
from streampipeline.spec import load_manifest

pytestmark = pytest.mark.k8s

NAME = "payments"
CHILDREN = [
    ("kafkatopic", "payments-customers"),
    ("kafkatopic", "payments-transactions"),
    ("configmap", "payments-config"),
    ("persistentvolumeclaim", "payments-data"),
    ("deployment", "payments-generator"),
    ("sparkapplication", "payments-processor"),
]
# retainOnDelete (true in the example) keeps the claim and the topics its checkpoint refers to.
RETAINED = [c for c in CHILDREN if c[0] in ("persistentvolumeclaim", "kafkatopic")]
OWNED = [c for c in CHILDREN if c not in RETAINED]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subset(expected, actual, path="") -> None:
    """Everything rendered is in the live object (which also has server defaults)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            _subset(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (e, a) in enumerate(zip(expected, actual)):
            _subset(e, a, f"{path}[{i}]")
    else:
        assert expected == actual, f"{path}: {expected!r} != {actual!r}"


def _status(kget, name=NAME) -> dict:
    return (kget("streampipeline", name) or {}).get("status") or {}


def _condition(kget, type_: str, name=NAME) -> dict:
    return next((c for c in _status(kget, name).get("conditions") or [] if c["type"] == type_), {})


def _patch_status(cp, kind: str, name: str, status: dict) -> None:
    cp.kubectl(
        "patch", kind, name, "-n", NAMESPACE, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def _patch_spec(cp, spec: dict, check: bool = True):
    """A merge patch of the pipeline's spec, as a user would ``kubectl patch`` it."""
    patch = json.dumps({"spec": spec}, separators=(",", ":"))
    return cp.kubectl("patch", "sp", NAME, "-n", NAMESPACE, "--type=merge", "-p", patch, check=check)


def _strimzi_marks_topics_ready(cp) -> None:
    for name in ("payments-customers", "payments-transactions"):
        topic = json.loads(cp.kubectl("get", "kafkatopic", name, "-n", NAMESPACE, "-o", "json").stdout)
        _patch_status(
            cp,
            "kafkatopic",
            name,
            {
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": _now()}],
                "observedGeneration": topic["metadata"]["generation"],
                "topicName": name,
            },
        )


def _spark_operator_marks_running(cp) -> None:
    _patch_status(
        cp,
        "sparkapplication",
        "payments-processor",
        {"applicationState": {"state": "RUNNING"}, "driverInfo": {"podName": "payments-processor-driver"}},
    )


def _kubelet_marks_generator_pods_ready(cp) -> int:
    """What the kubelet would report for each generator pod once its container runs."""
    selector = "app.kubernetes.io/instance=payments,app.kubernetes.io/component=generator"
    out = cp.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json", "-l", selector).stdout
    pods = json.loads(out)["items"]
    for pod in pods:
        ready = [
            {"type": t, "status": "True", "lastTransitionTime": _now()} for t in ("Ready", "ContainersReady")
        ]
        _patch_status(cp, "pod", pod["metadata"]["name"], {"phase": "Running", "conditions": ready})
    return len(pods)


@pytest.fixture(scope="module")
def pipeline(cp, operator, kget):
    cp.kubectl("apply", "-f", str(EXAMPLE))
    wait_for(lambda: all(kget(k, n) for k, n in CHILDREN), 30, "every child to be created")
    return kget("streampipeline", NAME)


def test_children_created_with_owner_references(pipeline, kget):
    uid = pipeline["metadata"]["uid"]
    owner = {
        "apiVersion": "streampipeline.io/v1alpha1",
        "kind": "StreamPipeline",
        "name": NAME,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    for kind, name in OWNED:
        assert kget(kind, name)["metadata"]["ownerReferences"] == [owner], (kind, name)
    # retainOnDelete: true -> the claim and the topics are not owned, so they outlive the pipeline
    for kind, name in RETAINED:
        assert not kget(kind, name)["metadata"].get("ownerReferences"), (kind, name)


def test_children_match_render(pipeline, kget):
    """The live objects (accepted, i.e. validated, by the upstream CRD schemas) carry every
    rendered field; `streampipeline render` shows exactly what the operator applies."""
    p = load_manifest(EXAMPLE)
    for obj in render.children(p, Settings()):
        live = kget(obj["kind"].lower(), obj["metadata"]["name"])
        assert live is not None, obj["metadata"]["name"]
        for part in ("spec", "data"):
            if part in obj:
                _subset(obj[part], live[part], f"{obj['kind']}.{part}")
        _subset(obj["metadata"]["labels"], live["metadata"]["labels"])
    topic = kget("kafkatopic", "payments-transactions")
    assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "dev-cluster"
    assert topic["spec"]["partitions"] == 3
    config = json.loads(kget("configmap", "payments-config")["data"]["pipeline.json"])
    assert config == p.to_job_config()
    app = kget("sparkapplication", "payments-processor")
    assert app["spec"]["type"] == "Python" and app["spec"]["mode"] == "cluster"
    assert app["spec"]["sparkConf"] == render.spark_application(p, Settings())["spec"]["sparkConf"]


def test_status_provisioning_until_children_ready(pipeline, kget):
    status = wait_for(
        lambda: _status(kget).get("phase") == "Provisioning" and _status(kget), 20, "Provisioning"
    )
    assert status["observedGeneration"] == pipeline["metadata"]["generation"]
    assert status["topics"] == "0/2" and status["generator"] == "0/1"
    assert status["children"]["sparkApplication"] == "payments-processor"
    conditions = {c["type"]: c for c in status["conditions"]}
    # the advisory driver-memory condition went through the real status schema too
    memory = conditions.pop("DriverMemorySufficient")
    assert (memory["status"], memory["reason"]) == ("True", "Sufficient")  # the example's 1536m
    assert set(conditions) == {"TopicsReady", "GeneratorReady", "ProcessorRunning", "Ready"}
    assert all(c["status"] == "False" for c in conditions.values())
    assert "payments-customers" in conditions["TopicsReady"]["message"]


def test_running_once_strimzi_kubelet_and_spark_report(pipeline, cp, kget):
    _strimzi_marks_topics_ready(cp)
    wait_for(lambda: _condition(kget, "TopicsReady").get("status") == "True", 20, "TopicsReady")
    assert _status(kget)["phase"] == "Provisioning"
    wait_for(lambda: _kubelet_marks_generator_pods_ready(cp), 20, "a generator pod")
    wait_for(lambda: _condition(kget, "GeneratorReady").get("status") == "True", 30, "GeneratorReady")
    _spark_operator_marks_running(cp)
    wait_for(lambda: _status(kget).get("phase") == "Running", 20, "phase Running")
    cp.kubectl("wait", "--for=condition=Ready", f"sp/{NAME}", "-n", NAMESPACE, "--timeout=30s")
    table = cp.kubectl("get", "sp", NAME, "-n", NAMESPACE).stdout
    assert re.search(r"payments\s+Running\s+500\s+2/2\s+1/1\s+RUNNING", table), table
    wide = cp.kubectl("get", "sp", NAME, "-n", NAMESPACE, "-o", "wide").stdout
    assert "dev-cluster" in wide and "True" in wide


def test_rate_change_patches_deployment_in_place(pipeline, cp, kget):
    dep_uid = kget("deployment", "payments-generator")["metadata"]["uid"]
    app_uid = kget("sparkapplication", "payments-processor")["metadata"]["uid"]
    _patch_spec(cp, {"generator": {"ratePerSecond": 250}})

    def rate():
        (c,) = kget("deployment", "payments-generator")["spec"]["template"]["spec"]["containers"]
        return c["args"][c["args"].index("--rate") + 1]

    wait_for(lambda: rate() == "250", 20, "the Deployment's --rate to become 250")
    assert kget("deployment", "payments-generator")["metadata"]["uid"] == dep_uid
    assert kget("sparkapplication", "payments-processor")["metadata"]["uid"] == app_uid  # untouched
    config = json.loads(kget("configmap", "payments-config")["data"]["pipeline.json"])
    assert config["generator"]["ratePerSecond"] == 250
    generation = kget("streampipeline", NAME)["metadata"]["generation"]
    wait_for(lambda: _status(kget).get("observedGeneration") == generation, 10, "observedGeneration")


def test_partitions_grow_patches_topic_and_never_shrink(pipeline, cp, kget):
    uid = kget("kafkatopic", "payments-transactions")["metadata"]["uid"]
    _patch_spec(cp, {"kafka": {"topics": {"transactions": {"partitions": 6}}}})
    wait_for(
        lambda: kget("kafkatopic", "payments-transactions")["spec"]["partitions"] == 6, 20, "6 partitions"
    )
    assert kget("kafkatopic", "payments-transactions")["metadata"]["uid"] == uid
    # Strimzi's Ready was for the old spec: it no longer counts until Strimzi observes this one.
    wait_for(
        lambda: "not reconciled by Strimzi yet" in _condition(kget, "TopicsReady").get("message", ""),
        20,
        "TopicsReady to wait for Strimzi",
    )
    _strimzi_marks_topics_ready(cp)
    wait_for(lambda: _condition(kget, "TopicsReady").get("status") == "True", 20, "TopicsReady again")
    proc = _patch_spec(cp, {"kafka": {"topics": {"transactions": {"partitions": 2}}}}, check=False)
    assert proc.returncode != 0
    assert "spec.kafka.topics.transactions.partitions may only grow" in proc.stderr


def test_deleted_child_is_recreated(pipeline, cp, kget):
    uid = kget("deployment", "payments-generator")["metadata"]["uid"]
    cp.kubectl("delete", "deployment", "payments-generator", "-n", NAMESPACE)
    wait_for(
        lambda: (kget("deployment", "payments-generator") or {}).get("metadata", {}).get("uid")
        not in (None, uid),
        30,
        "the generator Deployment to be re-created",
    )
    wait_for(lambda: _kubelet_marks_generator_pods_ready(cp), 20, "a generator pod")
    wait_for(lambda: _status(kget).get("phase") == "Running", 30, "phase Running again")


def test_drift_is_corrected(pipeline, cp, kget):
    """A hand edit of an owned field (here the Deployment's replicas) is reverted by the resync."""
    cp.kubectl("scale", "deployment", "payments-generator", "-n", NAMESPACE, "--replicas=3")
    wait_for(
        lambda: kget("deployment", "payments-generator")["spec"]["replicas"] == 1, 20, "replicas back to 1"
    )
    assert not kget("streampipeline", NAME)["metadata"].get("finalizers")  # nothing can hang a deletion


def _driver_pod(cp, app: dict) -> None:
    """The old run's driver pod as spark-operator creates it (owned, blocking its owner's
    deletion), held in Terminating by a finalizer as a pod is during its grace period."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "payments-processor-driver",
            "namespace": NAMESPACE,
            "finalizers": ["streampipeline.io/test-hold"],
            "ownerReferences": [
                {
                    "apiVersion": app["apiVersion"],
                    "kind": "SparkApplication",
                    "name": app["metadata"]["name"],
                    "uid": app["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {"containers": [{"name": "spark-kubernetes-driver", "image": "example.invalid/spark:4.1.1"}]},
    }
    cp.kubectl("apply", "-f", "-", input=json.dumps(pod))


def _release_driver_pod(cp) -> None:
    cp.kubectl(
        "patch", "pod", "payments-processor-driver", "-n", NAMESPACE, "--type=merge",
        "-p", '{"metadata":{"finalizers":null}}',
    )  # fmt: skip


def _app_meta(kget) -> dict:
    return (kget("sparkapplication", "payments-processor") or {}).get("metadata", {})


def test_processing_change_replaces_spark_application(pipeline, cp, kget):
    old = kget("sparkapplication", "payments-processor")
    _driver_pod(cp, old)
    _patch_spec(cp, {"processing": {"trigger": "3s", "driver": {"memoryOverhead": "2g"}}})
    # Deleted in the foreground: while the old driver pod exists, the old application stays
    # (terminating) and no new one is submitted under the same driver pod name.
    terminating = lambda: _app_meta(kget).get("deletionTimestamp")  # noqa: E731
    wait_for(terminating, 30, "the old SparkApplication to be terminating")
    time.sleep(3)
    held = kget("sparkapplication", "payments-processor")
    assert held is not None and held["metadata"]["uid"] == old["metadata"]["uid"]
    _release_driver_pod(cp)
    new = wait_for(
        lambda: (app := kget("sparkapplication", "payments-processor"))
        and app["metadata"]["uid"] != old["metadata"]["uid"]
        and app,
        30,
        "a new SparkApplication",
    )
    hash_key = render.SPEC_HASH_ANNOTATION
    assert new["metadata"]["annotations"][hash_key] != old["metadata"]["annotations"][hash_key]
    assert new["spec"]["driver"]["memoryOverhead"] == "2g"  # accepted by spark-operator's CRD
    assert (
        json.loads(kget("configmap", "payments-config")["data"]["pipeline.json"])["processing"]["trigger"]
        == "3s"
    )
    # The new application has not been picked up yet: no longer Ready, Degraded (it was Running).
    wait_for(lambda: _status(kget).get("phase") == "Degraded", 20, "phase Degraded")
    _spark_operator_marks_running(cp)
    wait_for(lambda: _status(kget).get("phase") == "Running", 20, "phase Running")


def test_suspend_and_resume(pipeline, cp, kget):
    old = kget("sparkapplication", "payments-processor")
    _driver_pod(cp, old)  # still stopping (finishing its batch) when the user resumes
    _patch_spec(cp, {"suspend": True})
    wait_for(lambda: _app_meta(kget).get("deletionTimestamp"), 20, "SparkApplication terminating")
    assert kget("deployment", "payments-generator")["spec"]["replicas"] == 0
    wait_for(lambda: _status(kget).get("phase") == "Suspended", 20, "phase Suspended")
    ready = _condition(kget, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "Suspended"
    assert kget("kafkatopic", "payments-customers") and kget("persistentvolumeclaim", "payments-data")

    _patch_spec(cp, {"suspend": False})
    time.sleep(3)  # no new run while the old driver pod exists
    assert _app_meta(kget)["uid"] == old["metadata"]["uid"]
    _release_driver_pod(cp)
    recreated = lambda: _app_meta(kget).get("uid") not in (None, old["metadata"]["uid"])  # noqa: E731
    wait_for(recreated, 30, "SparkApplication re-created")
    assert kget("deployment", "payments-generator")["spec"]["replicas"] == 1
    wait_for(lambda: _kubelet_marks_generator_pods_ready(cp), 20, "a generator pod")
    _spark_operator_marks_running(cp)
    wait_for(lambda: _status(kget).get("phase") == "Running", 30, "phase Running after resume")


def test_invalid_spec_fails_without_creating_anything(pipeline, cp, kget, operator):
    """A stored spec parse_spec rejects (a port above 65535, stored before the CRD got the
    rule: the API server and the model otherwise agree): phase Failed, the reason in the Ready
    condition, nothing created, no retry loop."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["name"] = "broken"
    doc["spec"]["kafka"]["bootstrapServers"] = "kafka:99999"
    apply_under_relaxed_crd(cp, [doc])
    wait_for(lambda: _status(kget, "broken").get("phase") == "Failed", 20, "phase Failed")
    ready = _condition(kget, "Ready", "broken")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.kafka.bootstrapServers" in ready["message"] and "65535" in ready["message"]
    assert kget("deployment", "broken-generator") is None
    assert kget("kafkatopic", "broken-customers") is None
    assert 'streampipeline_reconciles_total{result="invalid"}' in operator.metrics()
    cp.kubectl("delete", "sp", "broken", "-n", NAMESPACE)


def test_metrics_and_liveness(pipeline, operator):
    metrics = operator.metrics()
    assert re.search(r'^streampipeline_reconciles_total\{result="success"\} [1-9]', metrics, re.M)
    assert re.search(r"^streampipeline_reconcile_duration_seconds_count [1-9]", metrics, re.M)
    assert 'streampipeline_pipelines{phase="Running"} 1.0' in metrics
    assert "streampipeline_reconcile_errors_total" in metrics
    assert "pipelines" in json.loads(operator.healthz())  # kopf caches probe results for a while


def test_retain_on_delete_toggles_ownership_of_claim_and_topics(pipeline, cp, kget):
    def owners():
        return {
            name: [r["name"] for r in kget(kind, name)["metadata"].get("ownerReferences") or []]
            for kind, name in RETAINED
        }

    _patch_spec(cp, {"sink": {"retainOnDelete": False}})
    wait_for(lambda: set(map(tuple, owners().values())) == {(NAME,)}, 20, "claim and topics owned")
    _patch_spec(cp, {"sink": {"retainOnDelete": True}})
    wait_for(lambda: set(map(tuple, owners().values())) == {()}, 20, "claim and topics released again")


def test_delete_collects_owned_children_and_a_recreated_pipeline_reuses_the_retained(pipeline, cp, kget):
    retained = {(k, n): kget(k, n)["metadata"]["uid"] for k, n in RETAINED}
    cp.kubectl("delete", "sp", NAME, "-n", NAMESPACE, "--timeout=30s")
    # The real garbage collector removes owned objects; custom resources may lag ~30 s after
    # their CRD was created (the GC discovers new types on its periodic resync).
    wait_for(lambda: all(kget(k, n) is None for k, n in OWNED), 90, "owned children to be collected", 1.0)
    for kind, name in RETAINED:  # retainOnDelete: true
        assert kget(kind, name) is not None, (kind, name)
    # Re-created: the same claim (checkpoint) and the same topics (offsets), so the job resumes.
    cp.kubectl("apply", "-f", str(EXAMPLE))
    wait_for(lambda: all(kget(k, n) for k, n in CHILDREN), 30, "every child to be created again")
    assert {(k, n): kget(k, n)["metadata"]["uid"] for k, n in RETAINED} == retained
    cp.kubectl("delete", "sp", NAME, "-n", NAMESPACE, "--timeout=30s")
    wait_for(lambda: all(kget(k, n) is None for k, n in OWNED), 90, "owned children collected again", 1.0)

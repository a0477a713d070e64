"""render.py: the objects a StreamPipeline becomes (pure; no cluster)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spjobs.processor.config import ProcessorConfig
from streampipeline import render
from streampipeline.controller.status import Observed, compute_status, failed_status
from streampipeline.crd import CONDITION_TYPES
from streampipeline.settings import Settings
from streampipeline.spec import load_manifest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "k8s" / "examples" / "pipeline.yaml"
SETTINGS = Settings()


def _manifest(**spec_overrides) -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text())
    for path, value in spec_overrides.items():
        node = doc["spec"]
        *parents, last = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return doc


@pytest.fixture(scope="module")
def p():
    return load_manifest(EXAMPLE)


def _by_kind(objs):
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


# --- children ---------------------------------------------------------------------------------


def test_children_in_apply_order(p):
    objs = render.children(p, SETTINGS)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("KafkaTopic", "payments-customers"),
        ("KafkaTopic", "payments-transactions"),
        ("ConfigMap", "payments-config"),
        ("PersistentVolumeClaim", "payments-data"),
        ("Deployment", "payments-generator"),
        ("SparkApplication", "payments-processor"),
    ]
    for o in objs:
        assert o["metadata"]["namespace"] == "streampipeline"
        assert "ownerReferences" not in o["metadata"]  # the controller adopts them
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "streampipeline"
        assert labels["app.kubernetes.io/instance"] == "payments"
        assert labels["app.kubernetes.io/part-of"] == "streampipeline"
        assert labels["app.kubernetes.io/managed-by"] == "streampipeline-operator"
        assert labels["app.kubernetes.io/component"]


def test_children_is_pure_and_deterministic(p):
    assert render.children(p, SETTINGS) == render.children(p, SETTINGS)
    assert json.dumps(render.children(p, SETTINGS))  # JSON-serialisable


def test_kafka_topics(p):
    customers = render.kafka_topic(p, "customers")
    assert customers["apiVersion"] == "kafka.strimzi.io/v1"
    assert customers["kind"] == "KafkaTopic"
    assert customers["metadata"]["labels"]["strimzi.io/cluster"] == "dev-cluster"
    assert customers["metadata"]["labels"]["app.kubernetes.io/component"] == "topic-customers"
    log_append = {"message.timestamp.type": "LogAppendTime"}  # the job refuses CreateTime topics
    assert customers["spec"] == {
        "partitions": 3,
        "replicas": 1,
        "config": {"cleanup.policy": "compact", **log_append},
    }
    transactions = render.kafka_topic(p, "transactions")
    assert transactions["metadata"]["name"] == "payments-transactions"
    assert transactions["spec"]["config"] == {"retention.ms": "604800000", **log_append}
    assert "topicName" not in transactions["spec"]  # metadata.name is the Kafka name
    with pytest.raises(ValueError):
        render.kafka_topic(p, "orders")


def test_kafka_topic_name_differs_from_resource_name():
    doc = _manifest(kafka__topics__customers__name="Payments.Customers_v1")
    doc["spec"]["kafka"]["topics"]["customers"]["partitions"] = 12
    p = load_manifest(doc)
    topic = render.kafka_topic(p, "customers")
    assert topic["metadata"]["name"] == "payments-customers"  # always a valid k8s name
    assert topic["spec"]["topicName"] == "Payments.Customers_v1"
    assert topic["spec"]["partitions"] == 12


def test_configmap_holds_job_config(p):
    cm = render.configmap(p)
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "payments-config"
    assert list(cm["data"]) == ["pipeline.json"]
    assert cm["data"]["pipeline.json"] == json.dumps(p.to_job_config())
    config = json.loads(cm["data"]["pipeline.json"])
    assert config["kafka"]["bootstrapServers"] == "dev-cluster-kafka-bootstrap:9092"
    assert config["generator"]["ratePerSecond"] == 500


def test_pvc(p):
    claim = render.pvc(p)
    assert claim["metadata"]["name"] == "payments-data"
    assert claim["spec"]["resources"] == {"requests": {"storage": "10Gi"}}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]  # cluster default
    with_class = load_manifest(_manifest(sink__volume={"size": "20Gi", "storageClassName": "fast"}))
    assert render.pvc(with_class)["spec"]["storageClassName"] == "fast"
    assert render.pvc(with_class)["spec"]["resources"]["requests"]["storage"] == "20Gi"


def test_existing_claim_means_no_pvc():
    p = load_manifest(_manifest(sink__volume={"existingClaim": "shared-data"}))
    assert render.pvc(p) is None
    kinds = [o["kind"] for o in render.children(p, SETTINGS)]
    assert "PersistentVolumeClaim" not in kinds
    app = render.spark_application(p, SETTINGS)
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}} in app["spec"]["volumes"]


def test_generator_deployment(p):
    dep = render.generator_deployment(p, SETTINGS)
    assert dep["apiVersion"] == "apps/v1" and dep["kind"] == "Deployment"
    assert dep["metadata"]["name"] == "payments-generator"
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "streampipeline",
        "app.kubernetes.io/instance": "payments",
        "app.kubernetes.io/component": "generator",
    }
    template = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert render.CONFIG_HASH_ANNOTATION in template["metadata"]["annotations"]
    pod = template["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "config", "configMap": {"name": "payments-config"}} in pod["volumes"]
    (c,) = pod["containers"]
    assert c["image"] == "ghcr.io/streampipeline/generator:0.1.0"
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == ["python", "-m", "spjobs.generator"]
    assert c["args"][:2] == ["--config", "/etc/streampipeline/pipeline.json"]
    assert c["args"][c["args"].index("--rate") + 1] == "500"
    assert c["args"][c["args"].index("--bootstrap-servers") + 1] == "dev-cluster-kafka-bootstrap:9092"
    env = {e["name"]: e for e in c["env"]}
    # Only what the generator reads: it takes its settings from its arguments, not from env.
    assert set(env) == {"POD_NAME", "PYTHONUNBUFFERED"}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "config", "mountPath": "/etc/streampipeline", "readOnly": True} in c["volumeMounts"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]  # writable scratch, r/o root
    assert c["livenessProbe"]["exec"]["command"][0] == "python"
    assert "/proc/1/status" in c["livenessProbe"]["exec"]["command"][-1]


def test_generator_bootstrap_override_and_fractional_rate():
    p = load_manifest(
        _manifest(kafka__bootstrapServers="broker-0:9093,broker-1:9093", generator__ratePerSecond=12.5)
    )
    (c,) = render.generator_deployment(p, SETTINGS)["spec"]["template"]["spec"]["containers"]
    assert c["args"][c["args"].index("--bootstrap-servers") + 1] == "broker-0:9093,broker-1:9093"
    assert c["args"][c["args"].index("--rate") + 1] == "12.5"


def test_generator_env_is_only_what_the_generator_reads(p):
    """No variable the generator ignores: each one is read by its code, used in its arguments
    (``$(POD_NAME)``), or is the interpreter's own (``PYTHON*``)."""
    (c,) = render.generator_deployment(p, SETTINGS)["spec"]["template"]["spec"]["containers"]
    sources = "\n".join(f.read_text() for f in sorted((ROOT / "jobs" / "spjobs").rglob("*.py")))
    args = " ".join(c["args"])
    for env in c["env"]:
        name = env["name"]
        assert name.startswith("PYTHON") or f"$({name})" in args or f'"{name}"' in sources, (
            f"the generator Deployment sets {name}, which the generator never reads"
        )
    # ... and the image says nothing else: its Dockerfile names no variable the generator ignores.
    dockerfile = (ROOT / "images" / "generator" / "Dockerfile").read_text()
    assert "environment variables" not in dockerfile


def test_rate_change_rolls_generator_but_not_processor(p):
    faster = load_manifest(_manifest(generator__ratePerSecond=900))
    assert render.generator_deployment(faster, SETTINGS) != render.generator_deployment(p, SETTINGS)
    old = render.spark_application(p, SETTINGS)["metadata"]["annotations"][render.SPEC_HASH_ANNOTATION]
    new = render.spark_application(faster, SETTINGS)["metadata"]["annotations"][render.SPEC_HASH_ANNOTATION]
    assert old == new  # the Spark job keeps running
    more_partitions = load_manifest(_manifest(kafka__topics__transactions__partitions=6))
    app = render.spark_application(more_partitions, SETTINGS)
    assert app["metadata"]["annotations"][render.SPEC_HASH_ANNOTATION] == old


def test_processing_change_changes_spark_hash(p):
    slower = load_manifest(_manifest(processing__trigger="10s"))
    old = render.spark_application(p, SETTINGS)["metadata"]["annotations"][render.SPEC_HASH_ANNOTATION]
    new = render.spark_application(slower, SETTINGS)["metadata"]["annotations"][render.SPEC_HASH_ANNOTATION]
    assert old != new


def test_spark_application(p):
    app = render.spark_application(p, SETTINGS)
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert app["kind"] == "SparkApplication"
    assert app["metadata"]["name"] == "payments-processor"
    spec = app["spec"]
    assert spec["type"] == "Python"
    assert spec["pythonVersion"] == "3"
    assert spec["mode"] == "cluster"
    assert spec["image"] == "ghcr.io/streampipeline/spark:0.1.0"
    assert spec["mainApplicationFile"] == "local:///opt/streampipeline/processor_main.py"
    assert spec["arguments"] == ["--config", "/etc/streampipeline/pipeline.json"]
    assert spec["sparkVersion"] == "4.1.1"
    # A streaming job is restarted whatever its end (a clean exit on a node drain included),
    # and spark-operator counts no failure budget down for it.
    assert spec["restartPolicy"] == {
        "type": "Always",
        "onFailureRetryInterval": 10,
        "onSubmissionFailureRetryInterval": 20,
    }
    # Only keys Spark knows (tests/unit/test_spark_conf.py checks them against Spark's registry).
    assert spec["sparkConf"] == {"spark.ui.showConsoleProgress": "false"}
    driver, executor = spec["driver"], spec["executor"]
    assert driver["cores"] == 1 and driver["memory"] == "1g"
    assert driver["memoryOverhead"] == "1536m"  # the example sets it (the default is Spark's)
    assert driver["serviceAccount"] == "streampipeline-spark"
    assert driver["labels"]["app.kubernetes.io/component"] == "processor"
    assert executor["instances"] == 1 and executor["cores"] == 1 and executor["memory"] == "1g"
    # Only the driver writes files: executors on other nodes must not need the RWO claim.
    assert driver["volumeMounts"] == [
        {"name": "data", "mountPath": "/data/streampipeline"},
        {"name": "config", "mountPath": "/etc/streampipeline", "readOnly": True},
    ]
    assert "volumeMounts" not in executor
    for part in (driver, executor):
        # the JVMs that run the validation JIT-compile its (large) generated method
        assert part["javaOptions"] == "-XX:-DontCompileHugeMethods"
        # the image's user (185) can write a freshly formatted volume; restricted-PSS compatible
        assert part["podSecurityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 185,
            "runAsGroup": 185,
            "fsGroup": 185,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        no_privileges = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
        assert part["securityContext"] == no_privileges
    assert spec["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "payments-data"}},
        {"name": "config", "configMap": {"name": "payments-config"}},
    ]
    assert len(app["metadata"]["annotations"][render.SPEC_HASH_ANNOTATION]) == 16


def test_driver_memory_overhead_and_dedup_window_reach_the_job():
    sized = load_manifest(
        _manifest(processing__driver__memoryOverhead="2g", processing__deduplicationWindow="6h")
    )
    app = render.spark_application(sized, SETTINGS)
    assert app["spec"]["driver"]["memoryOverhead"] == "2g"
    assert "memoryOverhead" not in app["spec"]["executor"]
    config = json.loads(render.configmap(sized)["data"][render.CONFIG_KEY])
    assert ProcessorConfig.from_job_config(config).dedup_window_seconds == 6 * 3600


def test_settings_from_env_reach_the_objects(p):
    settings = Settings.from_env(
        {
            "STREAMPIPELINE_GENERATOR_IMAGE": "registry.local/gen:dev",
            "STREAMPIPELINE_SPARK_IMAGE": "registry.local/spark:dev",
            "STREAMPIPELINE_SPARK_MAIN_FILE": "local:///app/main.py",
            "STREAMPIPELINE_SPARK_SERVICE_ACCOUNT": "spark-sa",
            "STREAMPIPELINE_SPARK_VERSION": "4.0.0",
            "STREAMPIPELINE_IMAGE_PULL_POLICY": "Always",
            "STREAMPIPELINE_NAMESPACES": " a, b ,,",
        }
    )
    assert settings.namespaces == ("a", "b") and not settings.clusterwide
    (c,) = render.generator_deployment(p, settings)["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "registry.local/gen:dev" and c["imagePullPolicy"] == "Always"
    spec = render.spark_application(p, settings)["spec"]
    assert spec["image"] == "registry.local/spark:dev"
    assert spec["mainApplicationFile"] == "local:///app/main.py"
    assert spec["driver"]["serviceAccount"] == "spark-sa"
    assert spec["sparkVersion"] == "4.0.0"
    assert Settings.from_env({}) == Settings() and Settings().clusterwide
    with pytest.raises(ValueError, match="STREAMPIPELINE_IMAGE_PULL_POLICY"):
        Settings.from_env({"STREAMPIPELINE_IMAGE_PULL_POLICY": "Sometimes"})


def test_suspend_scales_to_zero_and_drops_spark():
    p = load_manifest(_manifest(suspend=True, generator__replicas=3))
    objs = _by_kind(render.children(p, SETTINGS))
    assert objs[("Deployment", "payments-generator")]["spec"]["replicas"] == 0
    assert ("SparkApplication", "payments-processor") not in objs
    assert ("KafkaTopic", "payments-customers") in objs  # topics and data are kept


def test_render_cli_prints_children(p):
    out = subprocess.run(
        [sys.executable, "-m", "streampipeline.cli", "render", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert list(yaml.safe_load_all(out)) == render.children(p, Settings.from_env())


# --- status (pure) ------------------------------------------------------------------------------


def _ready_topic():
    return {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def test_status_phases(p):
    empty = compute_status(p, Observed(topics={"customers": None, "transactions": None}), now="T0")
    assert empty["phase"] == "Pending"
    assert empty["topics"] == "0/2" and empty["processor"] == "-"
    observed = Observed(
        topics={"customers": _ready_topic(), "transactions": {"status": {}}},
        deployment={"status": {"availableReplicas": 0}},
        spark_application={"status": {"applicationState": {"state": "SUBMITTED"}}},
    )
    s1 = compute_status(p, observed, empty, observed_generation=1, now="T1")
    assert s1["phase"] == "Provisioning"
    assert s1["topics"] == "1/2" and s1["generator"] == "0/1" and s1["processor"] == "SUBMITTED"
    assert s1["observedGeneration"] == 1
    conds = {c["type"]: c for c in s1["conditions"]}
    assert conds["TopicsReady"]["status"] == "False"
    assert "payments-transactions" in conds["TopicsReady"]["message"]
    assert conds["Ready"]["status"] == "False"
    assert s1["children"]["deployment"] == "payments-generator"

    observed.topics["transactions"] = _ready_topic()
    observed.deployment = {"status": {"availableReplicas": 1}}
    observed.spark_application = {"status": {"applicationState": {"state": "RUNNING"}}}
    s2 = compute_status(p, observed, s1, now="T2")
    assert s2["phase"] == "Running" and s2["message"] == ""
    assert all(c["status"] == "True" for c in s2["conditions"])
    assert s2["observedGeneration"] == 1  # kept
    conds2 = {c["type"]: c for c in s2["conditions"]}
    assert conds2["Ready"]["lastTransitionTime"] == "T2"

    observed.deployment = {"status": {"availableReplicas": 0}}
    s3 = compute_status(p, observed, s2, now="T3")
    assert s3["phase"] == "Degraded"
    conds3 = {c["type"]: c for c in s3["conditions"]}
    assert conds3["TopicsReady"]["lastTransitionTime"] == "T2"  # unchanged condition keeps its time
    assert conds3["GeneratorReady"]["lastTransitionTime"] == "T3"

    # A failed submission is retried by spark-operator (restartPolicy Always): degraded, not failed.
    observed.spark_application = {
        "status": {"applicationState": {"state": "SUBMISSION_FAILED", "errorMessage": "driver pod exists"}}
    }
    s4 = compute_status(p, observed, s3, now="T4")
    assert s4["phase"] == "Degraded" and "driver pod exists" in s4["message"]
    conds4 = {c["type"]: c for c in s4["conditions"]}
    assert conds4["ProcessorRunning"]["reason"] == "SubmissionFailed"

    observed.spark_application = {"status": {"applicationState": {"state": "FAILED", "errorMessage": "oom"}}}
    s5 = compute_status(p, observed, s4, now="T5")
    assert s5["phase"] == "Failed" and "oom" in s5["message"]


def test_topics_ready_only_for_the_generation_strimzi_observed(p):
    def topic(generation, observed):
        return {
            "metadata": {"generation": generation},
            "status": {"observedGeneration": observed, "conditions": [{"type": "Ready", "status": "True"}]},
        }

    observed = Observed(topics={"customers": topic(1, 1), "transactions": topic(2, 1)})
    s = compute_status(p, observed)
    cond = {c["type"]: c for c in s["conditions"]}["TopicsReady"]
    assert s["topics"] == "1/2" and cond["status"] == "False"
    assert "payments-transactions: generation 2 not reconciled by Strimzi yet" in cond["message"]
    observed.topics["transactions"] = topic(2, 2)
    assert compute_status(p, observed)["topics"] == "2/2"


def test_status_suspended_and_invalid(p):
    suspended = load_manifest(_manifest(suspend=True))
    s = compute_status(suspended, Observed(topics={"customers": _ready_topic()}, deployment={"status": {}}))
    assert s["phase"] == "Suspended" and s["generator"] == "0/0"
    assert {c["type"]: c["reason"] for c in s["conditions"]}["Ready"] == "Suspended"
    f = failed_status(["spec.kafka.bootstrapServers: bad port"], s, observed_generation=3)
    assert f["phase"] == "Failed" and f["observedGeneration"] == 3
    ready = next(c for c in f["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.kafka.bootstrapServers" in ready["message"]


def test_driver_memory_condition(p):
    """Advisory, from the spec alone: the example's 1536m holds its batch and 1 h window at
    500/s; Spark's default does not, and the message says what to set."""

    def cond(pipeline):
        s = compute_status(pipeline, Observed())
        return next(c for c in s["conditions"] if c["type"] == "DriverMemorySufficient")

    ok = cond(p)
    assert (ok["status"], ok["reason"]) == ("True", "Sufficient")
    assert "1536 MiB" in ok["message"] and "1,874,250 ids in the 1h deduplication window" in ok["message"]
    unset = cond(load_manifest(_manifest(processing__driver={"cores": 1, "memory": "1g"})))
    assert (unset["status"], unset["reason"]) == ("False", "BelowEstimate")
    assert "Spark's default memoryOverhead (410 MiB" in unset["message"]
    assert unset["message"].endswith("set spec.processing.driver.memoryOverhead: 1536m")
    assert "about 1053 MiB" in unset["message"]
    unbounded = cond(load_manifest(_manifest(generator__ratePerSecond=0)))
    assert (unbounded["status"], unbounded["reason"]) == ("Unknown", "RateUnbounded")
    assert "ratePerSecond is 0" in unbounded["message"]
    # every condition type the status carries is one the CRD's status schema accepts
    assert {c["type"] for c in compute_status(p, Observed())["conditions"]} == set(CONDITION_TYPES)
    # not part of Ready, and not in the way of an invalid spec's status
    f = failed_status(["spec.kafka.cluster: missing"], compute_status(p, Observed()))
    assert [c["type"] for c in f["conditions"]].count("DriverMemorySufficient") == 1


def test_manifest_helper_does_not_leak():
    a, b = _manifest(suspend=True), _manifest()
    assert a["spec"]["suspend"] is True and b["spec"]["suspend"] is False
    assert copy.deepcopy(b) == b


def test_operator_cli_arguments():
    from streampipeline.cli import build_parser

    args = build_parser().parse_args(["operator", "-n", "a", "--namespace", "b", "--metrics-port", "0"])
    assert args.namespace == ["a", "b"] and not args.all_namespaces
    assert args.metrics_port == 0 and args.peering is None  # standalone by default
    assert args.liveness == "http://0.0.0.0:8081/healthz"
    args = build_parser().parse_args(["operator", "--all-namespaces", "--peering", "streampipeline"])
    assert args.all_namespaces and args.namespace is None and args.peering == "streampipeline"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["operator", "-A", "-n", "a"])

"""The Helm chart (charts/streampipeline-operator): lint, render and check what comes out.

Needs the ``helm`` binary the Kubernetes harness builds (tests/harness); skipped without it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from streampipeline import crd, rbac
from streampipeline.settings import ENV, Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "streampipeline-operator"
CRD_FILE = ROOT / "k8s" / "crd" / "streampipelines.streampipeline.io.yaml"
EXAMPLE = ROOT / "k8s" / "examples" / "pipeline.yaml"
STRIMZI = ROOT.parent / "shared" / "crds" / "strimzi-1.2.0"
EXTRAS = ("examples.kafka.enabled=true", "examples.pipeline.enabled=true", "kafkaUi.enabled=true")


@pytest.fixture(scope="module")
def helm() -> Path:
    try:
        from harness.controlplane import ControlPlaneError, ensure_binaries

        path = ensure_binaries(quiet=True) / "helm"
    except (ImportError, ControlPlaneError) as exc:
        pytest.skip(f"helm is not available (tests/harness builds it with Go): {exc}")
    if not path.is_file():
        pytest.skip(f"helm is not available: {path} missing")
    return path


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def render(helm):
    def _render(*sets: str, namespace: str = "sp-system", extra: tuple[str, ...] = ()) -> list[dict]:
        args = ["template", "rel", str(CHART), "-n", namespace, *extra]
        for s in sets:
            args += ["--set", s]
        docs = [d for d in yaml.safe_load_all(run_helm(helm, *args).stdout) if d]
        # every document parses to a Kubernetes object
        for d in docs:
            assert {"apiVersion", "kind", "metadata"} <= d.keys(), d
        return docs

    return _render


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def operator_container(docs: list[dict]) -> dict:
    dep = one(docs, "Deployment", "rel-streampipeline-operator")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return container


# --- static files ------------------------------------------------------------------------------


def test_chart_metadata():
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["version"] == "0.1.0" and str(meta["appVersion"]) == "0.1.0"
    assert meta["kubeVersion"].startswith(">=1.28")


def test_chart_crd_is_the_generated_crd():
    chart_crd = CHART / "crds" / CRD_FILE.name
    assert chart_crd.read_bytes() == CRD_FILE.read_bytes(), f"cp {CRD_FILE} {chart_crd}"
    assert yaml.safe_load(chart_crd.read_text()) == crd.crd_manifest()
    assert [p.name for p in (CHART / "crds").iterdir()] == [CRD_FILE.name]


def test_chart_example_pipeline_is_the_example():
    copy = CHART / "files" / "pipeline.yaml"
    assert copy.read_bytes() == EXAMPLE.read_bytes(), f"cp {EXAMPLE} {copy}"


def test_values_defaults_match_operator_settings():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    defaults = Settings()
    pipelines = values["pipelines"]
    assert pipelines["generatorImage"] == defaults.generator_image
    assert pipelines["sparkImage"] == defaults.spark_image
    assert pipelines["sparkMainFile"] == defaults.spark_main_file
    assert pipelines["sparkServiceAccount"] == defaults.spark_service_account
    assert pipelines["sparkVersion"] == defaults.spark_version
    assert pipelines["imagePullPolicy"] == defaults.image_pull_policy


def test_values_schema_is_draft07_and_closed():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"]), set(values) - set(schema["properties"])


# --- helm lint / template ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [(), ("watchNamespaces={a,b}",), (*EXTRAS, "metrics.serviceMonitor.enabled=true")],
    ids=["defaults", "namespaced", "everything"],
)
def test_helm_lint(helm, sets):
    args = ["lint", "--strict", str(CHART)]
    for s in sets:
        args += ["--set", s]
    out = run_helm(helm, *args).stdout
    assert "0 chart(s) failed" in out


def test_operator_deployment_defaults(render):
    docs = render()
    dep = one(docs, "Deployment")
    assert dep["metadata"]["namespace"] == "sp-system"
    assert dep["spec"]["replicas"] == 1
    pod = dep["spec"]["template"]["spec"]
    assert (
        pod["serviceAccountName"]
        == one(docs, "ServiceAccount", "rel-streampipeline-operator")["metadata"]["name"]
    )
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = operator_container(docs)
    assert c["image"] == "ghcr.io/streampipeline/operator:0.1.0"
    assert c["args"] == [
        "operator",
        "--all-namespaces",
        "--liveness",
        "http://0.0.0.0:8081/healthz",
        "--metrics-port",
        "8080",
    ]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz" and ports[get["port"]] == 8081, probe
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]  # read-only root fs


def test_operator_env_covers_every_setting(render):
    env = {e["name"]: e.get("value") for e in operator_container(render())["env"]}
    defaults = Settings()
    for field, var in ENV.items():
        if field == "namespaces":  # given as -n flags instead
            continue
        assert env[var] == getattr(defaults, field), var
    # The rendered environment is one the operator accepts.
    assert Settings.from_env({k: v for k, v in env.items() if v is not None}) == defaults


def test_operator_env_follows_values(render):
    c = operator_container(
        render(
            "pipelines.sparkImage=reg.example/spark:9",
            "pipelines.imagePullPolicy=Always",
            "image.tag=1.2.3",
            "extraEnv[0].name=FOO",
            "extraEnv[0].value=bar",
        )
    )
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["STREAMPIPELINE_SPARK_IMAGE"] == "reg.example/spark:9"
    assert env["STREAMPIPELINE_IMAGE_PULL_POLICY"] == "Always"
    assert env["FOO"] == "bar"
    assert c["image"].endswith(":1.2.3")
    # The REST service runs the operator image (it carries the `api` extra) unless told otherwise.
    assert env["STREAMPIPELINE_API_IMAGE"] == c["image"] == "ghcr.io/streampipeline/operator:1.2.3"


def test_api_image_can_be_set_apart(render):
    env = {
        e["name"]: e.get("value")
        for e in operator_container(render("pipelines.apiImage=reg.example/api:4"))["env"]
    }
    assert env["STREAMPIPELINE_API_IMAGE"] == "reg.example/api:4"


def test_service_exposes_metrics(render):
    docs = render()
    svc = one(docs, "Service")
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert ports["metrics"] == 8080
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_cluster_wide_rbac_equals_rbac_py(render):
    docs = render()
    role = one(docs, "ClusterRole")
    assert role["rules"] == rbac.rules(cluster=True)
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    sa = one(docs, "ServiceAccount", "rel-streampipeline-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-streampipeline-operator", "namespace": "sp-system"}
    ]
    assert sa["metadata"]["namespace"] == "sp-system"
    # no operator Roles in cluster-wide mode (only the Spark driver's, in the release namespace)
    assert [r["metadata"]["name"] for r in by_kind(docs, "Role")] == [Settings().spark_service_account]


def test_namespaced_rbac_equals_rbac_py(render):
    docs = render("watchNamespaces={team-a,team-b}")
    assert operator_container(docs)["args"][:5] == ["operator", "-n", "team-a", "-n", "team-b"]
    roles = {
        r["metadata"]["namespace"]: r
        for r in by_kind(docs, "Role")
        if r["metadata"]["name"] == "rel-streampipeline-operator"
    }
    assert set(roles) == {"team-a", "team-b"}
    for ns, role in roles.items():
        assert role["rules"] == rbac.rules(cluster=False), ns
    bindings = [b for b in by_kind(docs, "RoleBinding") if b["roleRef"]["kind"] == "Role"]
    operator_bindings = {
        b["metadata"]["namespace"]: b
        for b in bindings
        if b["metadata"]["name"] == "rel-streampipeline-operator"
    }
    assert set(operator_bindings) == {"team-a", "team-b"}
    for b in operator_bindings.values():
        assert b["subjects"][0]["namespace"] == "sp-system"
    # The only cluster-wide permission left is kopf's reading of CRDs, as rbac.namespaced_rbac().
    (cluster_role,) = by_kind(docs, "ClusterRole")
    expected = next(d for d in rbac.namespaced_rbac("team-a") if d["kind"] == "ClusterRole")
    assert cluster_role["rules"] == expected["rules"]
    assert not any(
        "namespaces" in r["resources"] or "streampipelines" in r["resources"] for r in cluster_role["rules"]
    )
    assert one(docs, "ClusterRoleBinding")["roleRef"]["name"] == cluster_role["metadata"]["name"]


def test_spark_driver_rbac_equals_rbac_py(render):
    docs = render("watchNamespaces={team-a,team-b}")
    name = Settings().spark_service_account
    expected = {d["kind"]: d for d in rbac.spark_rbac("team-a")}
    for ns in ("team-a", "team-b"):
        role = next(
            r
            for r in by_kind(docs, "Role")
            if r["metadata"] == {**r["metadata"], "name": name, "namespace": ns}
        )
        assert role["rules"] == expected["Role"]["rules"] == rbac.spark_rules()
        binding = next(
            b
            for b in by_kind(docs, "RoleBinding")
            if b["metadata"]["name"] == name and b["metadata"]["namespace"] == ns
        )
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    assert not [d for d in render("sparkRbac.create=false") if d["metadata"]["name"] == name]


def test_rbac_and_service_account_can_be_turned_off(render):
    docs = render("rbac.create=false", "serviceAccount.create=false", "sparkRbac.create=false")
    assert not {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ServiceAccount"} & {
        d["kind"] for d in docs
    }
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "default"


def test_extras_off_by_default(render):
    kinds = {d["kind"] for d in render()}
    assert kinds == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "Pod",
    }
    assert "ServiceMonitor" not in kinds and "Kafka" not in kinds and "StreamPipeline" not in kinds


def test_service_monitor_when_enabled(render):
    docs = render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom")
    sm = one(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["metadata"]["labels"]["release"] == "prom"
    assert sm["spec"]["selector"]["matchLabels"].items() <= one(docs, "Service")["metadata"]["labels"].items()


def test_extras_when_enabled(render):
    docs = render(*EXTRAS)
    kafka, pool = one(docs, "Kafka"), one(docs, "KafkaNodePool")
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1"
    assert kafka["metadata"]["name"] == "dev-cluster"
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "dev-cluster"
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"] and pool["spec"]["replicas"] == 1
    assert kafka["spec"]["kafka"]["config"]["offsets.topic.replication.factor"] == 1
    pipeline = one(docs, "StreamPipeline")
    example = yaml.safe_load(EXAMPLE.read_text())
    assert pipeline["metadata"]["namespace"] == "sp-system"
    assert pipeline["metadata"]["name"] == example["metadata"]["name"]
    assert pipeline["spec"] == example["spec"]
    ui = one(docs, "Deployment", "rel-streampipeline-operator-kafka-ui")
    (c,) = ui["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "ghcr.io/kafbat/kafka-ui:v1.3.0", "provectuslabs/kafka-ui is unmaintained"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == "dev-cluster-kafka-bootstrap:9092"
    svc = one(docs, "Service", "rel-streampipeline-operator-kafka-ui")
    assert svc["spec"]["selector"].items() <= ui["spec"]["template"]["metadata"]["labels"].items()
    # a renamed cluster moves the pipeline and the UI with it
    docs = render(*EXTRAS, "examples.kafka.name=other", "examples.kafka.replicas=3")
    assert one(docs, "StreamPipeline")["spec"]["kafka"]["cluster"] == "other"
    assert one(docs, "Kafka")["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    # ... and its topics are replicated enough for the generator's acks=all writes
    topics = one(docs, "StreamPipeline")["spec"]["kafka"]["topics"]
    assert topics["customers"]["replicas"] == topics["transactions"]["replicas"] == 3
    docs = render(*EXTRAS, "examples.kafka.replicas=5")
    isr = one(docs, "Kafka")["spec"]["kafka"]["config"]["min.insync.replicas"]
    topics = one(docs, "StreamPipeline")["spec"]["kafka"]["topics"]
    assert isr <= topics["customers"]["replicas"] == topics["transactions"]["replicas"] == 3


def _strimzi_schema(file: str) -> dict:
    doc = yaml.safe_load((STRIMZI / file).read_text())
    (version,) = [v for v in doc["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def test_extras_match_strimzi_schemas(render):
    """Structural check against the upstream CRDs (the k8s test lets the API server validate)."""
    if not STRIMZI.is_dir():
        pytest.skip(f"upstream Strimzi CRDs not found in {STRIMZI}")
    docs = render(*EXTRAS)

    def check(obj, schema, path):
        if "properties" in schema and isinstance(obj, dict):
            for req in schema.get("required", []):
                assert req in obj, f"{path}.{req} is required"
            for key, val in obj.items():
                if key in schema["properties"]:
                    check(val, schema["properties"][key], f"{path}.{key}")
                else:
                    assert (
                        schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
                    ), f"{path}.{key} is not in the schema"
        if "enum" in schema:
            assert obj in schema["enum"], f"{path}: {obj!r} not in {schema['enum']}"
        if schema.get("type") == "array":
            for i, item in enumerate(obj):
                check(item, schema.get("items", {}), f"{path}[{i}]")

    check(
        one(docs, "Kafka")["spec"], _strimzi_schema("040-Crd-kafka.yaml")["properties"]["spec"], "Kafka.spec"
    )
    check(
        one(docs, "KafkaNodePool")["spec"],
        _strimzi_schema("045-Crd-kafkanodepool.yaml")["properties"]["spec"],
        "KafkaNodePool.spec",
    )


def test_test_hook_pod(render):
    """By default the hook runs in the operator's own image (on the node already: no pull)."""
    docs = render()
    pod = one(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    (operator,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert c["image"] == operator["image"]
    assert c["imagePullPolicy"] == operator["imagePullPolicy"]
    assert c["command"][:2] == ["python", "-c"]
    assert c["command"][-1] == "http://rel-streampipeline-operator:8081/healthz"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_test_hook_pod_with_its_own_image(render):
    (c,) = one(render("test.image=busybox:1.37"), "Pod")["spec"]["containers"]
    assert c["image"] == "busybox:1.37"
    assert c["command"][:2] == ["wget", "-q"]
    assert c["command"][-1] == "http://rel-streampipeline-operator:8081/healthz"


def test_include_crds(helm):
    out = run_helm(helm, "template", "rel", str(CHART), "--include-crds").stdout
    crds = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "CustomResourceDefinition"]
    assert crds == [crd.crd_manifest()]


@pytest.mark.parametrize("sets", [(), ("examples.pipeline.enabled=true",)], ids=["plain", "with-example"])
def test_notes_tell_the_next_command(helm, tmp_path, sets):
    # A client-side dry run renders NOTES.txt without a cluster.
    args = [
        "install",
        "rel",
        str(CHART),
        "-n",
        "sp-system",
        "--dry-run=client",
        "--kubeconfig",
        str(tmp_path / "none"),
    ]
    for s in sets:
        args += ["--set", s]
    notes = run_helm(helm, *args).stdout.split("NOTES:", 1)[1]
    assert "get sp" in notes
    if not sets:
        assert "kubectl apply -f k8s/examples/pipeline.yaml" in notes
    assert "helm test rel -n sp-system" in notes


@pytest.mark.parametrize(
    ("setting", "field", "message"),
    [
        ("replicaCount=two", "/replicaCount", "want integer"),
        ("replicaCount=abc", "/replicaCount", "want integer"),
        ("replicaCount=2", "/replicaCount", "maximum"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy", "value must be one of"),
        ("pipelines.imagePullPolicy=Sometimes", "/pipelines/imagePullPolicy", "value must be one of"),
        ("unknownKey=1", "'unknownKey' not allowed", "additional properties"),
        ("image.tagg=1", "'tagg' not allowed", "additional properties"),
        ("watchNamespaces[0]=Not_A_Namespace", "/watchNamespaces/0", "does not match pattern"),
        ("metrics.port=0", "/metrics/port", "minimum"),
        ("resyncSeconds=-1", "/resyncSeconds", "minimum"),  # 0 turns resync off: allowed
        ("examples.kafka.storage.type=nfs", "/examples/kafka/storage/type", "value must be one of"),
        ("kafkaUi.enabled=yes", "/kafkaUi/enabled", "want boolean"),
    ],
)
def test_values_schema_rejects_bad_values(helm, setting, field, message):
    proc = run_helm(
        helm,
        "template",
        "rel",
        str(CHART),
        "--set-string" if "yes" in setting else "--set",
        setting,
        check=False,
    )
    assert proc.returncode != 0, f"--set {setting} was accepted"
    assert field in proc.stderr and message in proc.stderr, proc.stderr


def test_health_and_metrics_ports_must_differ(helm):
    proc = run_helm(helm, "template", "rel", str(CHART), "--set", "healthPort=8080", check=False)
    assert proc.returncode != 0, "one port for both servers was accepted"
    assert "healthPort and metrics.port must differ" in proc.stderr, proc.stderr

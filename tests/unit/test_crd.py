"""crd.py / rbac.py: the generated files in k8s/ never drift from the code; the operator's
Deployment manifest (k8s/operator/) agrees with the code it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streampipeline import __version__, crd, rbac, render
from streampipeline.cli import build_parser
from streampipeline.settings import ENV, Settings
from streampipeline.spec import load_manifest, openapi_schema

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "k8s" / "crd" / "streampipelines.streampipeline.io.yaml"
RBAC_FILE = ROOT / "k8s" / "rbac" / "operator.yaml"
RBAC_NS_FILE = ROOT / "k8s" / "rbac" / "operator-namespaced.yaml"
SPARK_RBAC_FILE = ROOT / "k8s" / "rbac" / "spark.yaml"
OPERATOR_DIR = ROOT / "k8s" / "operator"
REGEN = (
    "regenerate: streampipeline crd > k8s/crd/streampipelines.streampipeline.io.yaml; "
    "streampipeline crd --rbac > k8s/rbac/operator.yaml; "
    "streampipeline crd --rbac --watch-namespace streampipeline > k8s/rbac/operator-namespaced.yaml; "
    "python -m streampipeline.rbac --spark > k8s/rbac/spark.yaml"
)


def _rules(node, path="", out=None):
    out = {} if out is None else out
    for rule in node.get("x-kubernetes-validations", []):
        out.setdefault(path, []).append(rule)
    for key, child in (node.get("properties") or {}).items():
        _rules(child, f"{path}.{key}" if path else key, out)
    return out


@pytest.fixture(scope="module")
def manifest():
    return crd.crd_manifest()


def test_crd_file_is_generated(manifest):
    assert yaml.safe_load(CRD_FILE.read_text()) == manifest, REGEN
    assert CRD_FILE.read_text() == crd.crd_yaml(), REGEN


def test_rbac_files_are_generated():
    assert list(yaml.safe_load_all(RBAC_FILE.read_text())) == rbac.cluster_rbac(), REGEN
    assert list(yaml.safe_load_all(RBAC_NS_FILE.read_text())) == rbac.namespaced_rbac("streampipeline"), REGEN


def test_crd_cli_prints_the_manifest(manifest):
    out = subprocess.run(
        [sys.executable, "-m", "streampipeline.cli", "crd"], capture_output=True, text=True, check=True
    ).stdout
    assert yaml.safe_load(out) == manifest


def test_crd_identity(manifest):
    assert manifest["apiVersion"] == "apiextensions.k8s.io/v1"
    assert manifest["metadata"]["name"] == "streampipelines.streampipeline.io"
    spec = manifest["spec"]
    assert spec["group"] == "streampipeline.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "StreamPipeline"
    assert spec["names"]["plural"] == "streampipelines"
    assert spec["names"]["shortNames"] == ["sp"]
    assert spec["names"]["categories"] == ["streampipeline"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_spec_schema_is_openapi_schema_plus_rules(manifest):
    schema = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "x-kubernetes-validations"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    assert strip(schema["properties"]["spec"]) == openapi_schema()
    assert "x-kubernetes-validations" not in str(openapi_schema())  # crd.py did not mutate spec.py's


def test_status_schema(manifest):
    status = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    props = status["properties"]
    assert props["phase"]["enum"] == [
        "Pending",
        "Provisioning",
        "Running",
        "Degraded",
        "Suspended",
        "Failed",
        "Deleting",
    ]
    assert props["observedGeneration"]["type"] == "integer"
    cond = props["conditions"]["items"]["properties"]
    assert set(cond) >= {"type", "status", "reason", "message", "lastTransitionTime"}
    assert cond["type"]["enum"] == [
        "TopicsReady",
        "GeneratorReady",
        "ProcessorRunning",
        "Ready",
        "DriverMemorySufficient",
    ]
    assert cond["status"]["enum"] == ["True", "False", "Unknown"]
    assert set(props["children"]["properties"]) == {
        "kafkaTopics",
        "configMap",
        "persistentVolumeClaim",
        "deployment",
        "sparkApplication",
        "apiDeployment",
        "apiService",
    }


def test_printer_columns(manifest):
    columns = {c["name"]: c for c in manifest["spec"]["versions"][0]["additionalPrinterColumns"]}
    default = [n for n, c in columns.items() if not c.get("priority")]
    assert default == ["Phase", "Rate", "Topics", "Generator", "Processor", "Age"]
    assert columns["Phase"]["jsonPath"] == ".status.phase"
    assert columns["Rate"]["jsonPath"] == ".spec.generator.ratePerSecond"
    assert columns["Age"]["type"] == "date"
    wide = [n for n, c in columns.items() if c.get("priority") == 1]
    assert {"Cluster", "Replicas", "Suspended", "Message"} <= set(wide)


def test_cel_rules_present_and_name_their_field(manifest):
    rules = _rules(manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    expected = {
        "spec.kafka.cluster": "self == oldSelf",
        "spec.kafka.topics.customers.partitions": "self >= oldSelf",
        "spec.kafka.topics.transactions.partitions": "self >= oldSelf",
        "spec.processing.trigger": "duration('100ms')",
        "spec.processing.ageBands": "self[i - 1] < self[i]",
        "spec.sink.path": "[.][.]",
        "spec.sink.volume.size": "quantity",
        "spec.processing.driver.memory": "524288",
        "spec.kafka.topics.customers.name": "'..'",
    }
    for path, fragment in expected.items():
        assert any(fragment in r["rule"] for r in rules[path]), path
    for role in ("customers", "transactions"):
        (immutable,) = [r for r in rules[f"spec.kafka.topics.{role}"] if "oldSelf" in r["rule"]]
        assert immutable["fieldPath"] == ".name"
    assert any("limits.memory" in r["fieldPath"] for r in rules["spec.generator.resources"])
    assert any("metadata.name" in r["rule"] for r in rules[""])
    for path, path_rules in rules.items():
        for r in path_rules:
            named = path or r["message"].split(" ")[0]
            field = f"{path}{r.get('fieldPath', '')}" if path else named
            assert r["message"].startswith(field), (path, r)


def test_rbac_least_privilege():
    role = next(o for o in rbac.cluster_rbac() if o["kind"] == "ClusterRole")
    grants = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert grants[("streampipeline.io", "streampipelines/status")] >= {"patch"}
    assert "delete" in grants[("sparkoperator.k8s.io", "sparkapplications")]
    assert "delete" not in grants[("kafka.strimzi.io", "kafkatopics")]
    # The REST service's Deployment and Service are removed when spec.api.enabled turns false.
    assert "delete" in grants[("apps", "deployments")] and "delete" in grants[("", "services")]
    assert "delete" not in grants[("", "persistentvolumeclaims")]
    assert grants[("apiextensions.k8s.io", "customresourcedefinitions")] == {"get", "list", "watch"}
    assert ("", "secrets") not in grants and ("", "pods") not in grants
    assert all("*" not in rule["verbs"] and "*" not in rule["resources"] for rule in role["rules"])
    binding = next(o for o in rbac.cluster_rbac() if o["kind"] == "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "streampipeline-operator", "namespace": "streampipeline-system"}
    ]


def test_spark_rbac_file_is_generated():
    assert SPARK_RBAC_FILE.read_text() == rbac.spark_rbac_yaml(), REGEN
    assert list(yaml.safe_load_all(SPARK_RBAC_FILE.read_text())) == rbac.spark_rbac(), REGEN
    out = subprocess.run(
        [sys.executable, "-m", "streampipeline.rbac", "--spark"], capture_output=True, text=True, check=True
    ).stdout
    assert out == rbac.spark_rbac_yaml()


def test_spark_rbac_is_what_the_driver_needs():
    sa, role, binding = rbac.spark_rbac("team-a")
    # The ServiceAccount every rendered SparkApplication's driver runs as, in the pipelines' namespace.
    app = render.spark_application(load_manifest(ROOT / "k8s" / "examples" / "pipeline.yaml"), Settings())
    assert sa["metadata"]["name"] == app["spec"]["driver"]["serviceAccount"] == "streampipeline-spark"
    assert app["metadata"]["namespace"] == rbac.SPARK_NAMESPACE
    assert {o["metadata"]["namespace"] for o in (sa, role, binding)} == {"team-a"}
    assert role["kind"] == "Role"  # namespaced only, never a ClusterRole
    (rule,) = role["rules"]
    assert rule["apiGroups"] == [""]
    assert set(rule["resources"]) == {"pods", "services", "configmaps", "persistentvolumeclaims"}
    assert {"create", "get", "list", "watch", "delete", "deletecollection"} <= set(rule["verbs"])
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": sa["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "streampipeline-spark", "namespace": "team-a"}
    ]


@pytest.fixture(scope="module")
def operator_objects():
    docs = [d for f in sorted(OPERATOR_DIR.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    return {d["kind"]: d for d in docs}


def test_operator_manifests(operator_objects):
    assert set(operator_objects) == {"Namespace", "Deployment"}
    ns = operator_objects["Namespace"]["metadata"]["name"]
    dep = operator_objects["Deployment"]
    assert ns == dep["metadata"]["namespace"] == rbac.OPERATOR_NAMESPACE
    pod = dep["spec"]["template"]["spec"]
    # The ServiceAccount k8s/rbac/ binds.
    assert pod["serviceAccountName"] == rbac.OPERATOR_NAME
    sa = next(o for o in rbac.cluster_rbac() if o["kind"] == "ServiceAccount")["metadata"]
    assert (sa["name"], sa["namespace"]) == (rbac.OPERATOR_NAME, ns)
    # Standalone kopf: never two operators at once.
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    assert (
        dep["spec"]["selector"]["matchLabels"].items()
        <= dep["spec"]["template"]["metadata"]["labels"].items()
    )


def test_operator_container(operator_objects):
    pod = operator_objects["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == f"ghcr.io/streampipeline/operator:{__version__}"
    assert c["command"] == [
        "streampipeline", "operator", "--all-namespaces",
        "--liveness", "http://0.0.0.0:8081/healthz", "--metrics-port", "8080",
    ]  # fmt: skip
    args = build_parser().parse_args(c["command"][1:])  # flags the CLI really has
    assert args.all_namespaces and args.metrics_port == 8080 and args.liveness.endswith(":8081/healthz")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": 8080, "healthz": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}, probe
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    # Restricted pod security: non-root, read-only root filesystem (with a writable /tmp), no caps.
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] == 10001 and sc["readOnlyRootFilesystem"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/tmp"]


def test_operator_env_is_settings_defaults(operator_objects):
    """Every image/installation setting is spelled out, with settings.py's defaults (the
    namespaces setting is left out: the command says --all-namespaces)."""
    (c,) = operator_objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"] if e["name"].startswith("STREAMPIPELINE_")}
    expected = {var: getattr(Settings(), field) for field, var in ENV.items() if field != "namespaces"}
    assert env == expected
    assert Settings.from_env(env) == Settings()


def _declared(cls, path):
    from streampipeline.fields import Obj
    from streampipeline.spec import spec_fields

    for f in spec_fields(cls):
        yield f"{path}.{f.yaml}", f
        if isinstance(f.kind, Obj):
            yield from _declared(f.kind.cls, f"{path}.{f.yaml}")


def test_every_python_only_check_has_its_cel_rule(manifest):
    """A check the model makes beyond the OpenAPI schema is also a CEL rule of the CRD, from
    the same declaration, with a message naming the field (issue 15)."""
    from streampipeline import fields as fw
    from streampipeline.spec import PipelineSpec

    rules = _rules(manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"], "spec")
    for path, f in _declared(PipelineSpec, "spec"):
        kind, here = f.kind, [r["message"] for r in rules.get(path, [])]
        needs = []
        if isinstance(kind, (fw.Str, fw.ListOf)) and kind.check is not None:
            needs.append(bool(kind.check_cel))
        if isinstance(kind, fw.Duration):
            needs.append(any("at most" in m for m in here))
        if isinstance(kind, fw.SparkMemory):
            needs.append(any(f"at least {kind.minimum}" in m for m in here))
        if isinstance(kind, fw.Quantity):  # an integer >= 0 (the pattern is for strings), then m, > 0
            needs.append(len(here) == 1 + kind.memory + kind.positive)
        if isinstance(kind, fw.MapOf) and kind.key_pattern:
            needs.append(any("keys must be" in m for m in here))
        if isinstance(kind, fw.Obj) and hasattr(kind.cls, "_problems"):
            needs.append(len(getattr(kind.cls, "CEL", ())) > 0)
        if f.info.transition:
            needs.append(
                any(
                    ("immutable" in m or "may only grow" in m) and path in m
                    for r in rules.values()
                    for m in [x["message"] for x in r]
                )
            )
        assert all(needs), (path, here)
        for message in here:
            assert message.startswith(path), (path, message)

"""crd.py / rbac.py: the generated files in k8s/ never drift from the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from streampipeline import crd, rbac
from streampipeline.spec import openapi_schema

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "k8s" / "crd" / "streampipelines.streampipeline.io.yaml"
RBAC_FILE = ROOT / "k8s" / "rbac" / "operator.yaml"
RBAC_NS_FILE = ROOT / "k8s" / "rbac" / "operator-namespaced.yaml"
REGEN = (
    "regenerate: streampipeline crd > k8s/crd/streampipelines.streampipeline.io.yaml; "
    "streampipeline crd --rbac > k8s/rbac/operator.yaml; "
    "streampipeline crd --rbac --watch-namespace streampipeline > k8s/rbac/operator-namespaced.yaml"
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
    assert cond["type"]["enum"] == ["TopicsReady", "GeneratorReady", "ProcessorRunning", "Ready"]
    assert set(props["children"]["properties"]) == {
        "kafkaTopics",
        "configMap",
        "persistentVolumeClaim",
        "deployment",
        "sparkApplication",
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
    assert "delete" not in grants[("apps", "deployments")]
    assert "delete" not in grants[("", "persistentvolumeclaims")]
    assert grants[("apiextensions.k8s.io", "customresourcedefinitions")] == {"get", "list", "watch"}
    assert ("", "secrets") not in grants and ("", "pods") not in grants
    assert all("*" not in rule["verbs"] and "*" not in rule["resources"] for rule in role["rules"])
    binding = next(o for o in rbac.cluster_rbac() if o["kind"] == "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "streampipeline-operator", "namespace": "streampipeline-system"}
    ]

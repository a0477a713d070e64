"""Every manifest under k8s/ is accepted by a real API server (``kubectl apply --dry-run=server``):
schema and CEL validation, admission (PodSecurity included) and RBAC object checks, nothing
persisted.  The examples go last, against the installed StreamPipeline CRD."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import ROOT

pytestmark = pytest.mark.k8s

K8S = ROOT / "k8s"
DIRS = ["crd", "rbac", "operator", "examples"]  # apply order: the examples need the CRD


def _files(sub: str) -> list:
    files = sorted(p for p in (K8S / sub).rglob("*") if p.suffix in (".yaml", ".yml"))
    assert files, f"no manifests in k8s/{sub}"
    return files


def test_every_manifest_passes_server_side_dry_run(cp):
    # Namespaced objects need their namespace to exist; apply the operator's for real
    # (idempotent; the pipelines' namespace is created by the session fixture).
    cp.kubectl("apply", "-f", str(K8S / "operator" / "namespace.yaml"))
    accepted: dict[str, list[str]] = {}
    for sub in DIRS:
        args = ["apply", "--dry-run=server", "-o", "json"]
        for path in _files(sub):
            args += ["-f", str(path)]
        proc = cp.kubectl(*args, check=False)
        assert proc.returncode == 0, f"k8s/{sub} rejected:\n{proc.stderr}"
        assert "would violate PodSecurity" not in proc.stderr, proc.stderr
        out = json.loads(proc.stdout)
        items = out["items"] if out.get("kind") == "List" else [out]
        accepted[sub] = [f"{o['kind']}/{o['metadata']['name']}" for o in items]
    assert "CustomResourceDefinition/streampipelines.streampipeline.io" in accepted["crd"]
    assert {"ServiceAccount/streampipeline-spark", "Role/streampipeline-spark"} <= set(accepted["rbac"])
    assert {"Namespace/streampipeline-system", "Deployment/streampipeline-operator"} <= set(
        accepted["operator"]
    )
    assert "StreamPipeline/payments" in accepted["examples"]
    # Nothing was created by the dry run.
    proc = cp.kubectl(
        "get", "deployment", "streampipeline-operator", "-n", "streampipeline-system", check=False
    )
    assert proc.returncode != 0 and "NotFound" in proc.stderr


def test_operator_pod_is_admitted_under_restricted_pod_security(cp):
    """The Deployment's pod template, submitted as a Pod to the operator's namespace (which
    enforces the ``restricted`` Pod Security profile): admitted, not just warned about."""
    dep = next(
        d
        for d in yaml.safe_load_all((K8S / "operator" / "deployment.yaml").read_text())
        if d["kind"] == "Deployment"
    )
    namespace = dep["metadata"]["namespace"]
    cp.kubectl("apply", "-f", str(K8S / "operator" / "namespace.yaml"))
    labels = json.loads(cp.kubectl("get", "namespace", namespace, "-o", "json").stdout)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-pod-check", "namespace": namespace},
        "spec": dep["spec"]["template"]["spec"],
    }
    proc = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert proc.returncode == 0, proc.stderr
    # ...and the same check does reject a pod that is not restricted.
    pod["spec"] = {**pod["spec"], "securityContext": {}}
    pod["spec"]["containers"] = [{**c, "securityContext": {}} for c in pod["spec"]["containers"]]
    proc = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert proc.returncode != 0 and "violates PodSecurity" in proc.stderr, proc.stderr

"""``helm install`` of the chart on the real node: the operator runs as a real pod under the
``restricted`` Pod Security level with the chart's ServiceAccount and RBAC, and ``helm test``
passes.

The operator image is images/operator/Dockerfile built by the suite's own Docker engine and
imported into the node's containerd (fixture ``node_image``): nothing is pulled.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from harness.node import NodeCluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "streampipeline-operator"
SHARED = Path(os.environ.get("STREAMPIPELINE_SHARED") or ROOT.parent / "shared")
UPSTREAM_CRDS = [
    SHARED / "crds" / "strimzi-1.2.0" / "043-Crd-kafkatopic.yaml",
    SHARED / "crds" / "spark-operator-2.5.2" / "sparkoperator.k8s.io_sparkapplications.yaml",
]
pytestmark = [pytest.mark.node, pytest.mark.integration]


@pytest.fixture(scope="module")
def operator_image(node_image) -> str:
    return node_image("operator")


def test_helm_install_runs_the_operator_as_a_restricted_pod(node: NodeCluster, operator_image: str) -> None:
    ns = "chart-test"
    node.kubectl("create", "namespace", ns)
    node.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    node.apply_crds(UPSTREAM_CRDS)
    repository, _, tag = operator_image.rpartition(":")
    try:
        node.helm(
            "install", "sp", str(CHART), "-n", ns,
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never",
            "--set", f"watchNamespaces={{{ns}}}", "--wait", "--timeout", "180s",
        )  # fmt: skip
        dep = json.loads(node.kubectl("get", "deployment", "-n", ns, "-o", "json").stdout)["items"][0]
        assert dep["status"].get("availableReplicas") == 1
        pod = json.loads(node.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"][0]
        assert pod["spec"]["serviceAccountName"] == dep["spec"]["template"]["spec"]["serviceAccountName"]
        assert pod["status"]["phase"] == "Running"
        ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert ready["Ready"] == "True"  # its readiness probe, /healthz, reaches the API server
        (status,) = pod["status"]["containerStatuses"]
        assert status["restartCount"] == 0, status
        # The operator's own image runs the hook (default test.image): nothing is pulled.
        out = node.helm("test", "sp", "-n", ns, "--timeout", "120s")
        assert re.search(r"Phase:\s+Succeeded", out.stdout), out.stdout
        logs = node.kubectl("logs", "-n", ns, pod["metadata"]["name"]).stdout
        assert "Traceback" not in logs, logs[-3000:]
    finally:
        node.helm("uninstall", "sp", "-n", ns, "--wait", check=False)
        node.kubectl("delete", "namespace", ns, "--wait=false", check=False)

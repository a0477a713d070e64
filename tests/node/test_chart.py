"""``helm install`` of the chart on the real node: the operator runs as a real pod under the
``restricted`` Pod Security level with the chart's ServiceAccount and RBAC, and ``helm test``
passes.

The operator image comes from a Docker engine (images/operator/Dockerfile), which this
module does not run: set ``STREAMPIPELINE_OPERATOR_IMAGE_ARCHIVE`` to a ``docker save``
tarball of it (the images harness provides one); without it the test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from harness.images import DEBIAN_IMAGE
from harness.node import NodeCluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "streampipeline-operator"
SHARED = Path(os.environ.get("STREAMPIPELINE_SHARED") or ROOT.parent / "shared")
UPSTREAM_CRDS = [
    SHARED / "crds" / "strimzi-1.2.0" / "043-Crd-kafkatopic.yaml",
    SHARED / "crds" / "spark-operator-2.5.2" / "sparkoperator.k8s.io_sparkapplications.yaml",
]
ENV_ARCHIVE = "STREAMPIPELINE_OPERATOR_IMAGE_ARCHIVE"

pytestmark = [
    pytest.mark.node,
    pytest.mark.integration,
    # Checked before the session's node is started just to skip.
    pytest.mark.skipif(
        not os.environ.get(ENV_ARCHIVE),
        reason=f"no operator image: set {ENV_ARCHIVE} to a `docker save` tarball of images/operator",
    ),
]


@pytest.fixture(scope="module")
def operator_image(node: NodeCluster) -> str:
    (name,) = node.import_image(os.environ[ENV_ARCHIVE])
    return name


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
            "--set", "image.pullPolicy=Never", "--set", f"test.image={DEBIAN_IMAGE}",
            "--set", f"watchNamespaces={{{ns}}}", "--wait", "--timeout", "180s",
        )  # fmt: skip
        dep = json.loads(node.kubectl("get", "deployment", "-n", ns, "-o", "json").stdout)["items"][0]
        assert dep["status"].get("availableReplicas") == 1
        pod = json.loads(node.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)["items"][0]
        assert pod["spec"]["serviceAccountName"] == dep["spec"]["template"]["spec"]["serviceAccountName"]
        assert pod["status"]["phase"] == "Running"
        out = node.helm("test", "sp", "-n", ns, "--timeout", "120s")
        assert "Phase:          Succeeded" in out.stdout or "Succeeded" in out.stdout, out.stdout
    finally:
        node.helm("uninstall", "sp", "-n", ns, "--wait", check=False)
        node.kubectl("delete", "namespace", ns, "--wait=false", check=False)

"""charts/streampipeline-operator against the real control plane: install, upgrade, uninstall.

No kubelet runs here, so nothing waits for Pods to become ready; what is checked is that the
API server accepts every object (our CRD, the upstream Strimzi schemas, RBAC) and that the
release's lifecycle leaves nothing behind. Our CRD is installed by the session fixture, so
installs use ``--skip-crds`` (tests/unit/test_chart.py checks ``--include-crds``).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from conftest import ROOT, SHARED

pytestmark = pytest.mark.k8s

CHART = ROOT / "charts" / "streampipeline-operator"
STRIMZI_CRDS = [
    SHARED / "crds" / "strimzi-1.2.0" / "040-Crd-kafka.yaml",
    SHARED / "crds" / "strimzi-1.2.0" / "045-Crd-kafkanodepool.yaml",
]


@pytest.fixture
def namespace(cp):
    """A fresh namespace; deleted afterwards, and its deletion must complete (no stuck finalizers)."""
    name = f"helm-{uuid.uuid4().hex[:6]}"
    cp.kubectl("create", "namespace", name)
    yield name
    cp.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false")
    _wait_gone(cp, "namespace", name)


def _wait_gone(cp, kind: str, name: str, ns: str | None = None, timeout: float = 45.0) -> None:
    args = ["get", kind, name, "--ignore-not-found", "-o", "json", *(["-n", ns] if ns else [])]
    deadline = time.monotonic() + timeout
    while True:
        out = cp.kubectl(*args).stdout.strip()
        if not out:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{kind}/{name} still exists after {timeout}s:\n{out[:2000]}")
        time.sleep(0.5)


def _get(cp, kind: str, name: str, ns: str | None = None) -> dict | None:
    args = ["get", kind, name, "--ignore-not-found", "-o", "json", *(["-n", ns] if ns else [])]
    out = cp.kubectl(*args).stdout
    return json.loads(out) if out.strip() else None


def _can(cp, sa: str, verb: str, resource: str, ns: str | None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={sa}", *(["-n", ns] if ns else [])]
    return cp.kubectl(*args, check=False).stdout.strip() == "yes"


def _env(deployment: dict) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_install_upgrade_uninstall(cp, namespace):
    release = f"sp-{namespace}"
    full = f"{release}-streampipeline-operator"
    sa = f"system:serviceaccount:{namespace}:{full}"

    # The values schema stops a bad install before anything is created.
    bad = cp.helm(
        "install", release, CHART, "-n", namespace, "--skip-crds", "--set", "replicaCount=abc", check=False
    )
    assert bad.returncode != 0 and "/replicaCount" in bad.stderr, bad.stderr
    assert "not found" in cp.helm("status", release, "-n", namespace, check=False).stderr

    # Cluster-wide install.
    out = cp.helm("install", release, CHART, "-n", namespace, "--skip-crds").stdout
    assert "kubectl get sp" in out  # NOTES.txt
    dep = _get(cp, "deployment", full, namespace)
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["operator", "--all-namespaces"]
    for kind, name, ns in [
        ("serviceaccount", full, namespace),
        ("service", full, namespace),
        ("clusterrole", full, None),
        ("clusterrolebinding", full, None),
        ("serviceaccount", "streampipeline-spark", namespace),
        ("role", "streampipeline-spark", namespace),
        ("rolebinding", "streampipeline-spark", namespace),
    ]:
        assert _get(cp, kind, name, ns) is not None, f"{kind}/{name} missing"
    # The RBAC is in force: the operator may work in any namespace, and no more.
    assert _can(cp, sa, "create", "kafkatopics.kafka.strimzi.io", "default")
    assert _can(cp, sa, "watch", "namespaces", None)
    assert _can(cp, sa, "delete", "services", "default")  # the REST service's, when spec.api is disabled
    assert not _can(cp, sa, "delete", "kafkatopics.kafka.strimzi.io", "default")
    assert not _can(cp, sa, "get", "secrets", namespace)

    # Upgrade: other images, and watch only this namespace.
    cp.helm(
        "upgrade",
        release,
        CHART,
        "-n",
        namespace,
        "--skip-crds",
        "--set",
        "pipelines.sparkImage=registry.example/spark:2.0.0",
        "--set",
        f"watchNamespaces={{{namespace}}}",
    )
    dep2 = _get(cp, "deployment", full, namespace)
    assert dep2["metadata"]["generation"] > dep["metadata"]["generation"]
    assert _env(dep2)["STREAMPIPELINE_SPARK_IMAGE"] == "registry.example/spark:2.0.0"
    assert dep2["spec"]["template"]["spec"]["containers"][0]["args"][:3] == ["operator", "-n", namespace]
    assert _get(cp, "clusterrole", full) is None  # replaced by a Role + the CRD reader
    assert _get(cp, "clusterrole", f"{full}-crds") is not None
    assert _get(cp, "role", full, namespace) is not None
    assert _can(cp, sa, "create", "kafkatopics.kafka.strimzi.io", namespace)
    assert not _can(cp, sa, "create", "kafkatopics.kafka.strimzi.io", "default")
    history = json.loads(cp.helm("history", release, "-n", namespace, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1, 2]

    # Uninstall removes everything, cluster-scoped objects included.
    cp.helm("uninstall", release, "-n", namespace)
    assert _get(cp, "deployment", full, namespace) is None
    for kind in ("clusterrole", "clusterrolebinding"):
        assert _get(cp, kind, f"{full}-crds") is None
    for kind in ("role", "rolebinding", "serviceaccount"):
        assert _get(cp, kind, "streampipeline-spark", namespace) is None
    assert cp.helm("list", "-n", namespace, "-q").stdout.strip() == ""


def test_extras_accepted_by_upstream_schemas(cp, namespace):
    """The dev Kafka (Strimzi v1 Kafka + KafkaNodePool), the example pipeline and Kafka UI."""
    missing = [str(p) for p in STRIMZI_CRDS if not p.is_file()]
    assert not missing, f"upstream CRDs not found (set STREAMPIPELINE_SHARED): {missing}"
    cp.apply_crds(STRIMZI_CRDS)  # server-side apply: a no-op when already there
    release = f"ex-{namespace}"
    cp.helm(
        "install",
        release,
        CHART,
        "-n",
        namespace,
        "--skip-crds",
        "--set",
        "examples.kafka.enabled=true",
        "--set",
        "examples.pipeline.enabled=true",
        "--set",
        "kafkaUi.enabled=true",
        "--set",
        "examples.kafka.storage.type=persistent-claim",
    )
    kafka = _get(cp, "kafkas.kafka.strimzi.io", "dev-cluster", namespace)
    pool = _get(cp, "kafkanodepools.kafka.strimzi.io", "dev-cluster-dual-role", namespace)
    assert kafka and pool
    assert pool["spec"]["storage"]["volumes"][0]["kraftMetadata"] == "shared"
    pipeline = _get(cp, "streampipelines.streampipeline.io", "payments", namespace)
    assert pipeline["spec"]["kafka"]["cluster"] == "dev-cluster"
    assert _get(cp, "deployment", f"{release}-streampipeline-operator-kafka-ui", namespace)
    assert _get(cp, "service", f"{release}-streampipeline-operator-kafka-ui", namespace)
    # A server-side dry run of an invalid Strimzi object is refused: the schema is really checked.
    bad = cp.helm(
        "template",
        release,
        CHART,
        "-n",
        namespace,
        "--set",
        "examples.kafka.enabled=true",
        "--show-only",
        "templates/example-kafka.yaml",
    ).stdout.replace("type: ephemeral", "type: tmpfs")
    refused = cp.kubectl("apply", "--dry-run=server", "-f", "-", input=bad, check=False)
    assert refused.returncode != 0 and "spec.storage.type" in refused.stderr, refused.stderr

    cp.helm("uninstall", release, "-n", namespace)
    for kind, name in [
        ("kafkas.kafka.strimzi.io", "dev-cluster"),
        ("kafkanodepools.kafka.strimzi.io", "dev-cluster-dual-role"),
        ("streampipelines.streampipeline.io", "payments"),
    ]:
        _wait_gone(cp, kind, name, namespace, timeout=30)

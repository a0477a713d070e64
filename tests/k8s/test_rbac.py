"""k8s/rbac/: the operator's ServiceAccount may do what the controller does, and no more;
the Spark driver's may manage its executors in the pipelines' namespace, and no more."""

from __future__ import annotations

import pytest
from conftest import ROOT

pytestmark = pytest.mark.k8s

SA = "system:serviceaccount:streampipeline-system:streampipeline-operator"
WATCHED = "streampipeline"


def _can(cp, verb: str, resource: str, ns: str | None = WATCHED, sub: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={SA}"]
    args += ["-n", ns] if ns else []
    args += [f"--subresource={sub}"] if sub else []
    proc = cp.kubectl(*args, check=False)
    assert proc.stdout.strip() in ("yes", "no"), proc.stderr
    return proc.stdout.strip() == "yes"


ALLOWED = [
    ("get", "streampipelines.streampipeline.io", None),
    ("watch", "streampipelines.streampipeline.io", None),
    ("patch", "streampipelines.streampipeline.io", None),
    ("patch", "streampipelines.streampipeline.io", "status"),
    ("update", "streampipelines.streampipeline.io", "finalizers"),
    ("create", "kafkatopics.kafka.strimzi.io", None),
    ("patch", "kafkatopics.kafka.strimzi.io", None),
    ("create", "sparkapplications.sparkoperator.k8s.io", None),
    ("delete", "sparkapplications.sparkoperator.k8s.io", None),
    ("patch", "deployments.apps", None),
    ("delete", "deployments.apps", None),  # the REST service's, when spec.api is disabled
    ("create", "services", None),
    ("delete", "services", None),
    ("create", "configmaps", None),
    ("create", "persistentvolumeclaims", None),
    ("create", "events", None),
]
DENIED = [
    ("create", "streampipelines.streampipeline.io"),
    ("delete", "streampipelines.streampipeline.io"),
    ("delete", "kafkatopics.kafka.strimzi.io"),
    ("delete", "persistentvolumeclaims"),
    ("get", "secrets"),
    ("create", "pods"),
    ("create", "serviceaccounts"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
]


def test_operator_rbac(cp):
    cp.kubectl("apply", "-f", str(ROOT / "k8s" / "operator" / "namespace.yaml"))
    # Namespace mode first: a Role in the watched namespace only.
    cp.kubectl("apply", "-f", str(ROOT / "k8s" / "rbac" / "operator-namespaced.yaml"))
    assert _can(cp, "create", "deployments.apps")
    assert _can(cp, "list", "customresourcedefinitions.apiextensions.k8s.io", ns=None)
    assert not _can(cp, "create", "deployments.apps", ns="default")
    assert not _can(cp, "list", "namespaces", ns=None)

    cp.kubectl("apply", "-f", str(ROOT / "k8s" / "rbac" / "operator.yaml"))
    for verb, resource, sub in ALLOWED:
        assert _can(cp, verb, resource, sub=sub), (verb, resource, sub)
        if sub is None:
            assert _can(cp, verb, resource, ns="default"), ("cluster-wide", verb, resource)
    assert _can(cp, "watch", "customresourcedefinitions.apiextensions.k8s.io", ns=None)
    assert _can(cp, "list", "namespaces", ns=None)
    for verb, resource in DENIED:
        assert not _can(cp, verb, resource), (verb, resource)
    assert not _can(cp, "create", "customresourcedefinitions.apiextensions.k8s.io", ns=None)
    assert not _can(cp, "delete", "namespaces", ns=None)


SPARK_SA = f"system:serviceaccount:{WATCHED}:streampipeline-spark"


def test_spark_driver_rbac(cp):
    cp.kubectl("apply", "-f", str(ROOT / "k8s" / "rbac" / "spark.yaml"))

    def can(verb: str, resource: str, ns: str = WATCHED) -> bool:
        proc = cp.kubectl("auth", "can-i", verb, resource, f"--as={SPARK_SA}", "-n", ns, check=False)
        assert proc.stdout.strip() in ("yes", "no"), proc.stderr
        return proc.stdout.strip() == "yes"

    # What spark-submit's driver does with its executors, their Service, conf map and PVCs.
    for resource in ("pods", "services", "configmaps", "persistentvolumeclaims"):
        for verb in ("create", "watch", "deletecollection"):
            assert can(verb, resource), (verb, resource)
        assert not can("create", resource, ns="default"), ("other namespace", resource)
    for verb, resource in [
        ("get", "secrets"),
        ("create", "deployments.apps"),
        ("create", "sparkapplications.sparkoperator.k8s.io"),
        ("get", "streampipelines.streampipeline.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
    ]:
        assert not can(verb, resource), (verb, resource)

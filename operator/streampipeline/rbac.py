"""RBAC for the operator, generated (``streampipeline crd --rbac``; files in ``k8s/rbac/``),
and for the Spark driver the SparkApplications run as (``python -m streampipeline.rbac
--spark``; ``k8s/rbac/spark.yaml``).

Least privilege: exactly the verbs the controller uses on each resource, plus what kopf
itself needs (watching CRDs and namespaces, posting Events).  Peering resources are not
included: the operator runs standalone unless ``--peering`` is given, which also needs
kopf's peering CRDs and a rule for ``kopf.dev`` ``(cluster)kopfpeerings``.
"""

from __future__ import annotations

from typing import Any

import yaml

from .settings import Settings
from .spec import GROUP, PLURAL

__all__ = [
    "OPERATOR_NAME",
    "OPERATOR_NAMESPACE",
    "SPARK_NAMESPACE",
    "cluster_rbac",
    "namespaced_rbac",
    "rbac_yaml",
    "rules",
    "spark_rbac",
    "spark_rbac_yaml",
    "spark_rules",
]

OPERATOR_NAME = "streampipeline-operator"
OPERATOR_NAMESPACE = "streampipeline-system"
SPARK_NAMESPACE = "streampipeline"  # where the example pipeline (and its Spark driver) runs
_LABELS = {"app.kubernetes.io/name": "streampipeline", "app.kubernetes.io/component": "operator"}

_WATCH = ["get", "list", "watch"]
_APPLY = [*_WATCH, "create", "patch", "update"]


def _r(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def rules(*, cluster: bool = True) -> list[dict[str, Any]]:
    """The operator's permissions; ``cluster=False`` leaves out the cluster-scoped ones."""
    out = [
        # The custom resource: read, kopf's annotations/finalizer bookkeeping, status.
        _r([GROUP], [PLURAL], [*_WATCH, "patch", "update"]),
        _r([GROUP], [f"{PLURAL}/status"], ["get", "patch", "update"]),
        # ownerReferences with blockOwnerDeletion need update on the owner's finalizers.
        _r([GROUP], [f"{PLURAL}/finalizers"], ["update"]),
        # Children. Topics/ConfigMaps/PVCs are never deleted by the operator (garbage
        # collection does it); SparkApplications are replaced and removed on suspend, and the
        # REST service's Deployment and Service removed when spec.api.enabled turns false.
        _r(["kafka.strimzi.io"], ["kafkatopics"], _APPLY),
        _r(["sparkoperator.k8s.io"], ["sparkapplications"], [*_APPLY, "delete"]),
        _r(["apps"], ["deployments"], [*_APPLY, "delete"]),
        _r([""], ["services"], [*_APPLY, "delete"]),
        _r([""], ["configmaps", "persistentvolumeclaims"], _APPLY),
        # kopf posts Events about the handling of each object.
        _r(["", "events.k8s.io"], ["events"], ["create", "patch"]),
    ]
    if cluster:
        out += [
            # kopf discovers/observes CRDs, and namespaces when watching by pattern.
            _r(["apiextensions.k8s.io"], ["customresourcedefinitions"], _WATCH),
            _r([""], ["namespaces"], _WATCH),
        ]
    return out


def _service_account(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": OPERATOR_NAME, "namespace": namespace, "labels": _LABELS},
    }


def _subject(namespace: str) -> dict[str, Any]:
    return {"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": namespace}


def cluster_rbac(namespace: str = OPERATOR_NAMESPACE) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding for a cluster-wide operator."""
    return [
        _service_account(namespace),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": OPERATOR_NAME, "labels": _LABELS},
            "rules": rules(cluster=True),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": OPERATOR_NAME, "labels": _LABELS},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": OPERATOR_NAME,
            },
            "subjects": [_subject(namespace)],
        },
    ]


def namespaced_rbac(watched: str, namespace: str = OPERATOR_NAMESPACE) -> list[dict[str, Any]]:
    """A Role + RoleBinding in the watched namespace (``--namespace watched``).

    kopf still needs to read CRDs cluster-wide, so this comes with a small ClusterRole.
    """
    crd_reader = f"{OPERATOR_NAME}-crds"
    return [
        _service_account(namespace),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": OPERATOR_NAME, "namespace": watched, "labels": _LABELS},
            "rules": rules(cluster=False),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": OPERATOR_NAME, "namespace": watched, "labels": _LABELS},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": OPERATOR_NAME},
            "subjects": [_subject(namespace)],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": crd_reader, "labels": _LABELS},
            "rules": [_r(["apiextensions.k8s.io"], ["customresourcedefinitions"], _WATCH)],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": crd_reader, "labels": _LABELS},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": crd_reader},
            "subjects": [_subject(namespace)],
        },
    ]


HEADER = "# Generated by `streampipeline crd --rbac{}` from operator/streampipeline/rbac.py -- do not edit.\n"


def rbac_yaml(watched: str | None = None) -> str:
    docs = cluster_rbac() if watched is None else namespaced_rbac(watched)
    flag = "" if watched is None else f" --watch-namespace {watched}"
    return HEADER.format(flag) + yaml.safe_dump_all(docs, sort_keys=False, width=100)


# --- the Spark driver ---------------------------------------------------------------------------
#
# spark-operator submits each SparkApplication with ``spark-submit`` in cluster mode; the driver
# pod then runs as ``spec.driver.serviceAccount`` (``$STREAMPIPELINE_SPARK_SERVICE_ACCOUNT``) and
# itself creates, watches and deletes its executor pods, a headless Service for them, the
# ConfigMap with its Spark conf, and on-demand PVCs.  These are the rules of spark-operator's
# own Helm chart (``spark.rbac``), in the pipelines' namespace only.

_SPARK_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]


def spark_rules() -> list[dict[str, Any]]:
    """What a Spark driver needs to manage its executors (namespaced)."""
    return [_r([""], ["pods", "services", "configmaps", "persistentvolumeclaims"], _SPARK_VERBS)]


def spark_rbac(namespace: str = SPARK_NAMESPACE, name: str | None = None) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for the Spark driver in a pipelines' namespace."""
    name = name or Settings().spark_service_account

    def meta() -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": "streampipeline", "app.kubernetes.io/component": "spark"}
        return {"name": name, "namespace": namespace, "labels": labels}

    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta()},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(),
            "rules": spark_rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


SPARK_HEADER = (
    "# Generated by `python -m streampipeline.rbac --spark{}` from operator/streampipeline/rbac.py"
    " -- do not edit.\n"
    "# The Spark driver's ServiceAccount (spec.driver.serviceAccount of every SparkApplication):\n"
    "# apply it in each namespace that has StreamPipelines (`--namespace NS` to generate another).\n"
)


def spark_rbac_yaml(namespace: str = SPARK_NAMESPACE) -> str:
    flag = "" if namespace == SPARK_NAMESPACE else f" --namespace {namespace}"
    return SPARK_HEADER.format(flag) + yaml.safe_dump_all(spark_rbac(namespace), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m streampipeline.rbac", description="print generated RBAC")
    p.add_argument("--spark", action="store_true", help="the Spark driver's ServiceAccount and Role")
    p.add_argument("--namespace", metavar="NS", help="with --spark: the pipelines' namespace")
    p.add_argument("--watch-namespace", metavar="NS", help="the operator's Role for one watched namespace")
    args = p.parse_args(argv)
    if args.spark:
        print(spark_rbac_yaml(args.namespace or SPARK_NAMESPACE), end="")
    else:
        print(rbac_yaml(args.watch_namespace), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""RBAC for the operator, generated (``streampipeline crd --rbac``; files in ``k8s/rbac/``).

Least privilege: exactly the verbs the controller uses on each resource, plus what kopf
itself needs (watching CRDs and namespaces, posting Events).  Peering resources are not
included: the operator runs standalone unless ``--peering`` is given, which also needs
kopf's peering CRDs and a rule for ``kopf.dev`` ``(cluster)kopfpeerings``.
"""

from __future__ import annotations

from typing import Any

import yaml

from .spec import GROUP, PLURAL

__all__ = [
    "OPERATOR_NAME",
    "OPERATOR_NAMESPACE",
    "cluster_rbac",
    "namespaced_rbac",
    "rbac_yaml",
    "rules",
]

OPERATOR_NAME = "streampipeline-operator"
OPERATOR_NAMESPACE = "streampipeline-system"
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
        # Children. Topics/Deployments/ConfigMaps/PVCs are never deleted by the operator
        # (garbage collection does it); SparkApplications are replaced and removed on suspend.
        _r(["kafka.strimzi.io"], ["kafkatopics"], _APPLY),
        _r(["sparkoperator.k8s.io"], ["sparkapplications"], [*_APPLY, "delete"]),
        _r(["apps"], ["deployments"], _APPLY),
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

"""Helpers for tests on the real node: restricted pods, apply, wait."""

from __future__ import annotations

import json
import time

import yaml
from harness.images import DEBIAN_IMAGE
from harness.node import NodeCluster

NAMESPACE = "node-test"
# Pod Security "restricted" asks for all of these.
RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "runAsGroup": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}


def restricted_pod(name: str, command: list[str], *, image: str = DEBIAN_IMAGE, labels=None, **spec) -> dict:
    """A Pod that passes the ``restricted`` Pod Security level, running ``command``."""
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": command,
        "securityContext": RESTRICTED_CONTAINER,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels or {"test": name}},
        "spec": {
            "restartPolicy": "Never",
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": RESTRICTED_POD,
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
            **spec,
        },
    }


def apply(node: NodeCluster, *objs: dict) -> None:
    node.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))


def get_pod(node: NodeCluster, name: str) -> dict:
    return json.loads(node.kubectl("get", "pod", name, "-n", NAMESPACE, "-o", "json").stdout)


def describe(node: NodeCluster, name: str) -> str:
    return node.kubectl("describe", "pod", name, "-n", NAMESPACE, check=False).stdout


def wait_pod(node: NodeCluster, name: str, until, what: str, timeout: float = 120.0) -> dict:
    """Poll the pod until ``until(pod)``; a pod that Failed (unless awaited) ends the wait."""
    deadline = time.monotonic() + timeout
    while True:
        pod = get_pod(node, name)
        if until(pod):
            return pod
        if pod.get("status", {}).get("phase") == "Failed":
            logs = node.kubectl("logs", name, "-n", NAMESPACE, check=False).stdout
            raise AssertionError(
                f"pod {name} failed while waiting for {what}:\n{logs}\n{describe(node, name)}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name}: no {what} after {timeout:.0f}s:\n{describe(node, name)}")
        time.sleep(0.5)


def run_to_completion(node: NodeCluster, pod: dict, timeout: float = 120.0) -> str:
    """Create ``pod``, wait until it Succeeded, return its log (and delete it)."""
    name = pod["metadata"]["name"]
    apply(node, pod)
    try:
        wait_pod(node, name, lambda p: p.get("status", {}).get("phase") == "Succeeded", "success", timeout)
        return node.kubectl("logs", name, "-n", NAMESPACE).stdout
    finally:
        node.kubectl("delete", "pod", name, "-n", NAMESPACE, "--wait=false", check=False)

"""Pods on the real node: a locally built image under the ``restricted`` Pod Security level,
a ClusterIP Service found by its DNS name, DNS that answers only the cluster's names, no
route off the machine, no image pulls, and volumes from the host-path provisioner."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from harness.controlplane import KubectlError
from harness.node import GATEWAY, POD_CIDR, SERVICE_CIDR, NodeCluster
from node_util import NAMESPACE, apply, restricted_pod, run_to_completion, wait_pod

pytestmark = [pytest.mark.node, pytest.mark.integration]


def dns_query(server: str, name: str, qtype: int = 1) -> tuple[int, list[str]]:
    """One UDP query; returns (rcode, A records). Sent only to the node's own CoreDNS."""
    qid = random.randrange(1 << 16)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(packet, (server, 53))
        reply, _ = s.recvfrom(4096)
    rid, flags, _qd, an, _, _ = struct.unpack(">HHHHHH", reply[:12])
    assert rid == qid
    offset = 12 + len(question) + 4
    answers = []
    for _ in range(an):
        offset += 2 if reply[offset] & 0xC0 == 0xC0 else reply.index(b"\0", offset) + 1 - offset
        rtype, _, _, rdlen = struct.unpack(">HHIH", reply[offset : offset + 10])
        offset += 10
        if rtype == 1:
            answers.append(socket.inet_ntoa(reply[offset : offset + rdlen]))
        offset += rdlen
    return flags & 0xF, answers


@pytest.fixture(scope="module")
def web(node: NodeCluster) -> str:
    """A busybox httpd pod behind the ClusterIP Service ``web`` (port 80); returns its ClusterIP."""
    server = restricted_pod(
        "web",
        ["sh", "-c", "mkdir /tmp/www && echo served-by-$(hostname) > /tmp/www/index.html"
         " && exec busybox httpd -f -p 8080 -h /tmp/www"],
        labels={"app": "web"},
        container={
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
        },
    )  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    apply(node, server, service)

    def ready(pod: dict) -> bool:
        conditions = pod["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    wait_pod(node, "web", ready, "Ready")
    svc = json.loads(node.kubectl("get", "service", "web", "-n", NAMESPACE, "-o", "json").stdout)
    return svc["spec"]["clusterIP"]


# One pod checks everything seen from inside a pod; each test reads its part of the log.
PROBE = r"""
echo "uid=$(id -u) gid=$(id -g)"
echo "debian=$(cat /etc/debian_version)"
echo "resolv=$(grep -v '^#' /etc/resolv.conf | tr '\n' ';')"
echo "routes=$(awk 'NR>1 {print $2"/"$8}' /proc/net/route | tr '\n' ' ')"
echo "web-fqdn=$(wget -q -T 5 -O - http://web.node-test.svc.cluster.local/ 2>&1)"
echo "web-short=$(wget -q -T 5 -O - http://web/ 2>&1)"
if (exec 3<>/dev/tcp/kubernetes.default.svc.cluster.local/443) 2>/dev/null; then
  echo "kubernetes=connected"; else echo "kubernetes=failed"; fi
echo "outside=$( (exec 3<>/dev/tcp/198.51.100.1/80) 2>&1 | sed 's/.*: //')"
if getent hosts example.com >/dev/null; then echo "example=resolved"; else echo "example=unresolved"; fi
echo "writable-root=$( (touch /probe) 2>&1 | sed 's/.*: //')"
"""


@pytest.fixture(scope="module")
def probe(node: NodeCluster, web: str) -> dict[str, str]:
    log = run_to_completion(node, restricted_pod("probe", ["bash", "-c", PROBE]))
    return dict(line.split("=", 1) for line in log.splitlines() if "=" in line)


def test_restricted_pod_runs_a_locally_built_image(node: NodeCluster, probe: dict[str, str]) -> None:
    assert probe["uid"] == "65534 gid=65534"
    assert probe["debian"].startswith("12."), probe  # bookworm, from debootstrap, imported
    assert probe["writable-root"] == "Read-only file system"
    # The namespace really enforces "restricted": a root pod is refused at admission.
    root = restricted_pod("as-root", ["true"])
    root["spec"]["securityContext"] = {"runAsUser": 0}
    with pytest.raises(KubectlError) as refused:
        apply(node, root)
    assert "violates PodSecurity" in str(refused.value)


def test_service_is_reachable_by_its_dns_name(node: NodeCluster, web: str, probe: dict[str, str]) -> None:
    assert ipaddress.ip_address(web) in ipaddress.ip_network(SERVICE_CIDR)
    assert probe["web-fqdn"] == "served-by-web"
    assert probe["web-short"] == "served-by-web"  # through the search path
    # kube-proxy's rules take the kubernetes Service to the API server on the bridge address.
    assert probe["kubernetes"] == "connected"
    rcode, addrs = dns_query(GATEWAY, f"web.{NAMESPACE}.svc.cluster.local")
    assert (rcode, addrs) == (0, [web])


def test_dns_answers_only_cluster_names(node: NodeCluster, probe: dict[str, str]) -> None:
    assert probe["resolv"].startswith(
        f"search {NAMESPACE}.svc.cluster.local svc.cluster.local cluster.local;"
    )
    assert f"nameserver {GATEWAY};" in probe["resolv"]
    assert probe["example"] == "unresolved"
    for name in ("example.com", "deb.debian.org", "kubernetes.default.svc.cluster.local.example.com"):
        assert dns_query(GATEWAY, name)[0] == 5, name  # REFUSED: not a zone CoreDNS serves
    assert dns_query(GATEWAY, "kubernetes.default.svc.cluster.local") == (0, ["10.0.0.1"])
    assert dns_query(GATEWAY, "absent.default.svc.cluster.local")[0] == 3  # NXDOMAIN


def test_pods_have_no_route_off_the_machine(node: NodeCluster, probe: dict[str, str]) -> None:
    routes = set(probe["routes"].split())

    # /proc/net/route: little-endian hex destination/mask. Only the pod and Service ranges.
    def cidr(entry: str) -> str:
        dst, mask = (socket.inet_ntoa(struct.pack("<I", int(x, 16))) for x in entry.split("/"))
        return str(ipaddress.ip_network(f"{dst}/{mask}"))

    assert {cidr(r) for r in routes} == {POD_CIDR, SERVICE_CIDR}
    assert probe["outside"] == "Network is unreachable"
    # And the host drops anything from the bridge towards another interface.
    forward = subprocess.run(["iptables", "-S", "SP-NODE-FORWARD"], capture_output=True, text=True).stdout
    assert "-A SP-NODE-FORWARD -i spnode0 -j DROP" in forward


def test_a_missing_image_fails_fast_instead_of_pulling(node: NodeCluster) -> None:
    reasons = {}
    for name, policy in (("never-pull", "Never"), ("may-pull", "IfNotPresent")):
        apply(node, restricted_pod(name, ["true"], image="streampipeline.local/absent:1",
                                   container={"imagePullPolicy": policy}))  # fmt: skip
    try:
        for name in ("never-pull", "may-pull"):
            t0 = time.monotonic()

            def waiting(pod: dict, name: str = name) -> bool:
                for c in pod.get("status", {}).get("containerStatuses") or []:
                    reason = (c.get("state", {}).get("waiting") or {}).get("reason")
                    if reason in ("ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff"):
                        reasons[name] = (reason, c["state"]["waiting"].get("message", ""))
                        return True
                return False

            wait_pod(node, name, waiting, "an image error", timeout=90)
            print(f"{name}: {reasons[name][0]} after {time.monotonic() - t0:.1f}s")
    finally:
        node.kubectl("delete", "pod", "never-pull", "may-pull", "-n", NAMESPACE, "--wait=false", check=False)
    assert reasons["never-pull"][0] == "ErrImageNeverPull"
    assert reasons["may-pull"][0] in ("ErrImagePull", "ImagePullBackOff")
    # The pull went to the closed loopback proxy, not to a registry.
    events = node.kubectl(
        "get", "events", "-n", NAMESPACE, "--field-selector=involvedObject.name=may-pull", "-o", "json"
    ).stdout  # fmt: skip
    assert "proxyconnect" in events or "connection refused" in events, events


def test_a_claim_gets_a_host_path_volume_a_non_root_pod_can_write(node: NodeCluster) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": NAMESPACE},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Mi"}}},
    }
    apply(node, claim)
    # Bound, and the harness has opened the provisioner's root-only directory to every user.
    deadline = time.monotonic() + 60
    while True:
        pvc = json.loads(node.kubectl("get", "pvc", "data", "-n", NAMESPACE, "-o", "json").stdout)
        volume = pvc["spec"].get("volumeName")
        if pvc.get("status", {}).get("phase") == "Bound" and volume:
            pv = json.loads(node.kubectl("get", "pv", volume, "-o", "json").stdout)
            host_dir = Path(pv["spec"]["hostPath"]["path"])
            if host_dir.is_dir() and host_dir.stat().st_mode & 0o777 == 0o777:
                break
        assert time.monotonic() < deadline, f"claim not bound to a writable directory: {pvc}"
        time.sleep(0.5)
    writer = restricted_pod(
        "writer", ["sh", "-c", "echo written-by-$(id -u) > /data/proof && cat /data/proof"]
    )
    writer["spec"]["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "data"}})
    writer["spec"]["containers"][0]["volumeMounts"].append({"name": "data", "mountPath": "/data"})
    assert run_to_completion(node, writer).strip() == "written-by-65534"
    assert pv["spec"]["storageClassName"] == "standard"
    assert (host_dir / "proof").read_text() == "written-by-65534\n"


def test_stack_memory_and_start_time(node: NodeCluster, record_property) -> None:
    """Measured, not asserted against a budget: printed and recorded for the README."""
    memory = node.memory_mb()
    for component in (
        "etcd",
        "kube-apiserver",
        "kube-scheduler",
        "containerd",
        "kubelet",
        "kube-proxy",
        "coredns",
    ):
        assert memory.get(component, 0) > 0, f"{component} is not running: {memory}"
    record_property("node_memory_mb", json.dumps({k: round(v) for k, v in memory.items()}))
    record_property("node_ready_seconds", round(node.node_ready_seconds, 1))
    print(f"node ready after {node.node_ready_seconds:.1f}s; memory (MB): "
          + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))  # fmt: skip
    node_obj = json.loads(node.kubectl("get", "node", node.node_name, "-o", "json").stdout)
    assert node_obj["status"]["allocatable"]["cpu"] == str(os.cpu_count())

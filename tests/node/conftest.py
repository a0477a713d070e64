"""A real node (tests/harness/node.py): the control plane plus containerd, kubelet,
kube-proxy and CoreDNS, so that Pods run. Needs root and Debian's containerd,
containernetworking-plugins and iptables (``.ci/run`` installs them)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.controlplane import ControlPlaneError, ensure_binaries
from harness.images import debian_archive
from harness.node import NodeCluster, ensure_node_binaries
from node_util import NAMESPACE


def _go_available() -> bool:
    return bool(shutil.which("go")) or Path("/usr/local/go/bin/go").is_file()


@pytest.fixture(scope="session")
def node() -> Iterator[NodeCluster]:
    """One node for the session; its teardown fails the run if anything is left on the host."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("the test node needs root on Linux (it runs containerd and a kubelet)")
    try:
        bin_dir, node_bin = ensure_binaries(quiet=True), ensure_node_binaries(quiet=True)
    except ControlPlaneError as exc:
        if not _go_available():
            pytest.skip(f"node binaries are not built and Go is not installed to build them: {exc}")
        raise
    cluster = NodeCluster(bin_dir, node_bin).start()
    try:
        cluster.import_image(debian_archive())
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.kubectl(
            "label", "namespace", NAMESPACE,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        )  # fmt: skip
        yield cluster
    finally:
        cluster.stop()
    assert cluster.leftovers == [], f"the node left these on the host: {cluster.leftovers}"

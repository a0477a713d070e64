"""A real node (tests/harness/node.py): the control plane plus containerd, kubelet,
kube-proxy and CoreDNS, so that Pods run. Needs root and Debian's containerd,
containernetworking-plugins and iptables (``.ci/run`` installs them)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="session")
def node_image(node: NodeCluster, docker_engine, project_images) -> Callable[[str], str]:
    """``node_image("operator")`` -> the image's name in the node's store.

    The project images are built by the suite's own Docker engine (cached by their inputs),
    saved once per image id (``save_image``) and imported into the node's containerd on
    first use; the engine runs without iptables or a bridge, so it and the node coexist.
    """
    from harness.docker_engine import save_image

    imported: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in imported:
            t0 = time.monotonic()
            archive = save_image(docker_engine, project_images[name])
            t1 = time.monotonic()
            names = node.import_image(archive)
            tag = project_images[name]
            imported[name] = next(n for n in names if n.endswith(tag.split("/", 1)[-1]))
            print(f"node image {name}: save {t1 - t0:.1f}s, import {time.monotonic() - t1:.1f}s")
        return imported[name]

    return get

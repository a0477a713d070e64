"""A real control plane (etcd + kube-apiserver + kube-controller-manager) with the upstream
Strimzi/spark-operator CRDs and ours installed, and the operator running against it.

Strimzi and spark-operator themselves cannot run here (no kubelet, no images): tests
write the status those operators would write, with ``kubectl patch --subresource=status``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness.controlplane import ControlPlane, ControlPlaneError, ensure_binaries

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("STREAMPIPELINE_SHARED") or ROOT.parent / "shared")
UPSTREAM_CRDS = [
    SHARED / "crds" / "strimzi-1.2.0" / "043-Crd-kafkatopic.yaml",
    SHARED / "crds" / "spark-operator-2.5.2" / "sparkoperator.k8s.io_sparkapplications.yaml",
]
OUR_CRD = ROOT / "k8s" / "crd" / "streampipelines.streampipeline.io.yaml"
EXAMPLE = ROOT / "k8s" / "examples" / "pipeline.yaml"
NAMESPACE = "streampipeline"  # the example's namespace


def pytest_configure(config):
    config.addinivalue_line("markers", "k8s: needs the real control plane")


def _go_available() -> bool:
    return bool(shutil.which("go")) or Path("/usr/local/go/bin/go").is_file()


@pytest.fixture(scope="session")
def cp() -> Iterator[ControlPlane]:
    try:
        bin_dir = ensure_binaries(quiet=True)
    except ControlPlaneError as exc:
        if not _go_available():
            pytest.skip(f"control-plane binaries are not built and Go is not installed to build them: {exc}")
        raise
    missing = [str(p) for p in UPSTREAM_CRDS if not p.is_file()]
    assert not missing, f"upstream CRDs not found (set STREAMPIPELINE_SHARED): {missing}"
    plane = ControlPlane(bin_dir).start()
    try:
        plane.apply_crds([*UPSTREAM_CRDS, OUR_CRD])
        plane.kubectl("create", "namespace", NAMESPACE)
        yield plane
    finally:
        plane.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Operator:
    def __init__(self, proc: subprocess.Popen, metrics_port: int, liveness_port: int, log: Path):
        self.proc, self.metrics_port, self.liveness_port, self.log = proc, metrics_port, liveness_port, log

    def get(self, port: int, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.read().decode()

    def metrics(self) -> str:
        return self.get(self.metrics_port, "/metrics")

    def healthz(self) -> str:
        return self.get(self.liveness_port, "/healthz")

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def launch_operator(cp: ControlPlane, namespace: str, log: Path) -> Operator:
    """Start ``streampipeline operator`` watching ``namespace``; return once it is healthy."""
    metrics_port, liveness_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(cp.kubeconfig),
        "PYTHONUNBUFFERED": "1",
        "STREAMPIPELINE_RESYNC_SECONDS": "3",  # drift correction within the tests' patience
    }
    with log.open("a") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streampipeline.cli",
                "operator",
                "--namespace",
                namespace,
                "--metrics-port",
                str(metrics_port),
                "--liveness",
                f"http://127.0.0.1:{liveness_port}/healthz",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    op = Operator(proc, metrics_port, liveness_port, log)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"operator exited {proc.returncode}:\n{op.log_tail()}")
        try:
            op.healthz()
            return op
        except OSError:
            if time.monotonic() > deadline:
                stop_operator(op)
                raise AssertionError(f"operator not healthy after 60s:\n{op.log_tail()}") from None
            time.sleep(0.3)


def stop_operator(op: Operator) -> None:
    op.proc.terminate()
    try:
        op.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        op.proc.kill()
        op.proc.wait()


@pytest.fixture(scope="session")
def operator(cp: ControlPlane, tmp_path_factory) -> Iterator[Operator]:
    """``streampipeline operator`` as a subprocess, watching the example's namespace."""
    op = launch_operator(cp, NAMESPACE, tmp_path_factory.mktemp("operator") / "operator.log")
    try:
        yield op
    finally:
        stop_operator(op)


@pytest.fixture(scope="session")
def kget(cp: ControlPlane) -> Callable[..., dict | None]:
    """``kget(kind, name, ns=...)`` -> the object as a dict, or None if it does not exist."""

    def get(kind: str, name: str, ns: str = NAMESPACE) -> dict | None:
        proc = cp.kubectl("get", kind, name, "-n", ns, "-o", "json", "--ignore-not-found", check=True)
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    return get

"""The operator fails fast without a cluster configuration, and its /healthz tells whether it
can reach its API server (liveness and readiness both probe it).

kopf alone retries its login every 60 s forever with /healthz unserved, and with a dead API
server answers /healthz 200 while every call fails: a pod that never restarts and looks fine.
These run the real ``streampipeline operator`` command; the k8s suite's operator fixture
waits for /healthz 200 against the real control plane (the probe's passing side).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("kopf")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, kubeconfig: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.update(KUBECONFIG=kubeconfig, HOME=str(tmp_path))
    return env


def _operator(tmp_path: Path, kubeconfig: str, liveness_port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "streampipeline.cli", "operator", "-n", "default",
            "--metrics-port", "0", "--liveness", f"http://127.0.0.1:{liveness_port}/healthz",
        ],
        env=_env(tmp_path, kubeconfig),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def test_no_cluster_configuration_exits_with_a_clear_error(tmp_path):
    proc = _operator(tmp_path, str(tmp_path / "missing-kubeconfig"), _free_port())
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "cannot configure the Kubernetes client" in out and "KUBECONFIG" in out, out
    assert "Traceback" not in out


def test_healthz_fails_while_the_api_server_is_unreachable(tmp_path):
    closed = _free_port()  # nothing listens here
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: dead, cluster: {{server: 'https://127.0.0.1:{closed}', "
        "insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: dead, user: u}}]\ncurrent-context: c\n"
    )
    port = _free_port()
    proc = _operator(tmp_path, str(kubeconfig), port)
    try:
        status, body = None, ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                    status, body = r.status, r.read().decode()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read().decode()
            except OSError:
                time.sleep(0.5)
                continue
            break
        assert status is not None, f"/healthz never answered (exit {proc.poll()})"
        assert status >= 500, f"/healthz answered {status} with the API server down: {body}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""The operator image, built from images/operator/Dockerfile, run as the chart's Deployment
runs it, against the real control plane.

The container gets the chart's rendered Deployment (``helm template``): its arguments,
environment, pod and container securityContext (user 10001, read-only root filesystem, no
privilege escalation, all capabilities dropped) and its ``/tmp`` emptyDir. Only the way it
reaches the API server differs: no kubelet mounts a ServiceAccount token here, so it gets a
kubeconfig (read-only) and the host's network (the API server listens on loopback).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLE, _free_port
from harness.podrun import security_flags
from k8s_util import wait_for

pytestmark = [pytest.mark.k8s, pytest.mark.images]

ROOT = Path(__file__).resolve().parents[2]
NS = "image-test"


def _portable_kubeconfig(cp, tmp: Path) -> Path:
    """The admin kubeconfig with its certificate files beside it, readable by user 10001."""
    doc = yaml.safe_load(cp.kubeconfig.read_text())
    out = tmp / "kube"
    out.mkdir()
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in doc[section]:
            for field, value in list(entry[key].items()):
                if field.endswith(("-authority", "-certificate", "-key")) and isinstance(value, str):
                    target = out / Path(value).name
                    shutil.copy(value, target)
                    target.chmod(0o644)
                    entry[key][field] = f"/kube/{target.name}"
    (out / "config").write_text(yaml.safe_dump(doc))
    for f in out.iterdir():
        f.chmod(0o644)
    out.chmod(0o755)
    return out


def _chart_deployment(cp, health: int, metrics: int, image: str) -> dict:
    repo, _, tag = image.rpartition(":")
    rendered = cp.helm(
        "template", "sp", str(ROOT / "charts" / "streampipeline-operator"), "-n", "streampipeline-system",
        "--set", f"watchNamespaces={{{NS}}}", "--set", f"healthPort={health}",
        "--set", f"metrics.port={metrics}", "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
    ).stdout  # fmt: skip
    (dep,) = [d for d in yaml.safe_load_all(rendered) if d and d.get("kind") == "Deployment"]
    return dep


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_operator_image_runs_the_chart_deployment(cp, kget, project_images, docker_engine, tmp_path):
    health, metrics = _free_port(), _free_port()
    dep = _chart_deployment(cp, health, metrics, project_images["operator"])
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == project_images["operator"]
    kube = _portable_kubeconfig(cp, tmp_path)
    flags = security_flags(pod["securityContext"], c["securityContext"])
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        assert "emptyDir" in volumes[m["name"]], f"volume {m['name']} is not emulated"
        flags += ["--tmpfs", f"{m['mountPath']}:rw,mode=1777"]
    for e in c.get("env", []):
        flags += ["-e", f"{e['name']}={e['value']}"]
    flags += ["-v", f"{kube}:/kube:ro", "-e", "KUBECONFIG=/kube/config"]
    cp.kubectl("create", "namespace", NS)
    name = f"sp-operator-image-{int(time.time())}"
    docker_engine.docker("run", "-d", "--name", name, "--network", "host", *flags, c["image"], *c["args"])
    try:
        _, body = wait_for(
            lambda: (r := _try(f"http://127.0.0.1:{health}/healthz")) and r[0] == 200 and r,
            90,
            "the operator image's /healthz to answer 200",
        )
        assert "apiserver" in json.loads(body), body  # the probe that reaches the API server
        manifest = yaml.safe_load(EXAMPLE.read_text())
        manifest["metadata"]["namespace"] = NS
        cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
        name_ = manifest["metadata"]["name"]
        wait_for(lambda: kget("deployment", f"{name_}-generator", ns=NS), 60, "the generator Deployment")
        wait_for(lambda: kget("sparkapplication", f"{name_}-processor", ns=NS), 60, "the SparkApplication")

        def phased():
            o = kget("streampipeline", name_, ns=NS)
            return o if o and (o.get("status") or {}).get("phase") else None

        sp = wait_for(phased, 60, "a status phase")
        assert sp["status"]["phase"] in {"Provisioning", "Running", "Degraded"}, sp["status"]
        code, text = _get(f"http://127.0.0.1:{metrics}/metrics")
        assert code == 200 and "streampipeline" in text
        state = docker_engine.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
        assert state == "true"
    finally:
        logs = docker_engine.docker("logs", "--tail", "50", name, check=False)
        docker_engine.docker("rm", "-f", name, check=False)
        cp.kubectl("delete", "namespace", NS, "--wait=false", check=False)
    print((logs.stdout + logs.stderr)[-2000:])


def _try(url: str) -> tuple[int, str] | None:
    try:
        return _get(url)
    except OSError:
        return None

"""The kind path cannot run here (no Docker): check that its pieces fit together."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("kind-up", "images", "kind-load", "deploy", "demo", "kind-down")


def makefile_vars() -> dict[str, str]:
    text = (ROOT / "Makefile").read_text()
    return dict(re.findall(r"^([A-Z_]+) \?= (\S+)$", text, re.M))


def test_makefile_has_every_kind_target():
    text = (ROOT / "Makefile").read_text()
    for target in TARGETS:
        assert re.search(rf"^{target}:.*## ", text, re.M), f"make {target} missing or undocumented"


def test_kind_cluster_config():
    cfg = yaml.safe_load((ROOT / "k8s" / "kind" / "cluster.yaml").read_text())
    assert cfg["kind"] == "Cluster" and cfg["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [n["role"] for n in cfg["nodes"]]
    assert roles.count("control-plane") == 1 and "worker" in roles
    gomod = (ROOT / "tests" / "harness" / "k8s" / "kube" / "go.mod").read_text()
    minor = re.search(r"k8s\.io/kubernetes v1\.(\d+)\.\d+", gomod).group(1)
    for node in cfg["nodes"]:
        assert re.fullmatch(rf"kindest/node:v1\.{minor}\.\d+", node["image"]), (
            "same minor as the tests' apiserver"
        )


def test_workflow_runs_the_kind_path_in_order():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "kind.yml").read_text())
    runs = " ".join(step.get("run", "") for step in wf["jobs"]["kind"]["steps"])
    positions = [
        runs.find(t)
        for t in ("make images", "kind-up", "kind-load", "make deploy", "make demo", "make kind-down")
    ]
    assert -1 not in positions and positions == sorted(positions), runs


def test_operator_versions_match_the_crds_tested_against():
    shared = Path(os.environ.get("STREAMPIPELINE_SHARED") or ROOT.parent / "shared") / "crds"
    if not shared.exists():
        pytest.skip("upstream CRDs not found beside the repo")
    v = makefile_vars()
    assert (shared / f"strimzi-{v['STRIMZI_VERSION']}").is_dir()
    assert (shared / f"spark-operator-{v['SPARK_OPERATOR_VERSION']}").is_dir()


def test_deploy_uses_only_values_the_chart_accepts():
    values = yaml.safe_load((ROOT / "charts" / "streampipeline-operator" / "values.yaml").read_text())
    recipe = (ROOT / "Makefile").read_text().split("\ndeploy:", 1)[1].split("\n\n", 1)[0]
    ours = recipe.split("charts/streampipeline-operator", 1)[1]
    for key in re.findall(r"--set '?([A-Za-z.]+)=", ours):
        node = values
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"--set {key}: not in values.yaml"
            node = node[part]

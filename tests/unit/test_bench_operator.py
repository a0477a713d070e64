"""bench_operator's baseline: the same children the operator renders, and the ratios from them."""

from __future__ import annotations

from pathlib import Path

import yaml

from streampipeline import bench_operator as B
from streampipeline import render
from streampipeline.settings import Settings
from streampipeline.spec import parse_spec

EXAMPLE = Path(__file__).resolve().parents[2] / "k8s" / "examples" / "pipeline.yaml"


def test_the_baseline_writes_what_the_operator_renders_under_its_own_manager_label():
    base = yaml.safe_load(EXAMPLE.read_text())
    direct = B._direct_children("direct-007", base)
    rendered = render.children(parse_spec("direct-007", base["spec"], B.NAMESPACE), Settings())
    assert [o["kind"] for o in direct] == [o["kind"] for o in rendered]
    assert len(direct) == B.CHILDREN_PER_PIPELINE
    for mine, theirs in zip(direct, rendered):
        labels = mine["metadata"]["labels"]
        # The operator does not watch the baseline's children; the bench's watcher sees both.
        assert labels["app.kubernetes.io/managed-by"] == B.BASELINE_MANAGER
        assert B.BASELINE_MANAGER in B.MANAGED_SELECTOR
        assert theirs["metadata"]["labels"]["app.kubernetes.io/managed-by"] in B.MANAGED_SELECTOR
        labels["app.kubernetes.io/managed-by"] = theirs["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        assert mine == theirs


class _FakeWatcher:
    """Children appear a fixed time after the call: 0.3 s through the operator, 0.1 s direct."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    def wait(self, names: list[str], timeout: float) -> float:
        return self.clock[0] + (0.1 if names[0].startswith("direct-") else 0.3)


class _FakeKube:
    def __init__(self) -> None:
        self.created: list[str] = []
        self.applied: list[str] = []

    def create(self, obj: dict) -> None:
        self.created.append(obj["metadata"]["name"])

    def apply(self, obj: dict) -> None:
        self.applied.append(obj["metadata"]["name"])


def test_single_alternates_operator_and_baseline_and_reports_their_p50_ratio(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(B.time, "monotonic", lambda: clock[0])
    kube = _FakeKube()
    base = yaml.safe_load(EXAMPLE.read_text())
    result = B.bench_single(kube, _FakeWatcher(clock), base, 3, timeout=5)
    assert kube.created == ["single-000", "single-001", "single-002"]
    assert len(kube.applied) == 3 * B.CHILDREN_PER_PIPELINE
    assert result["p50_s"] == 0.3 and result["direct"]["p50_s"] == 0.1
    assert result["ratio_p50_vs_direct"] == 3.0
    assert result["timed_out"] == []
    assert "direct writes p50 0.1s (operator 3.0x)" in B.format_table({"single": result, "machine": {}})

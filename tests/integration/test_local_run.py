"""A bounded local run on a real broker and a real Spark job, checked against the reference."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from spjobs import contract as C
from streampipeline.local.runner import LocalRun, RunOptions
from streampipeline.spec import load_manifest

from .verify import assert_outputs_match, reference_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 21_000


@pytest.fixture(scope="module")
def bounded_run(tmp_path_factory):
    manifest = load_manifest(ROOT / "k8s" / "examples" / "pipeline.yaml").to_manifest()
    manifest["spec"]["generator"].update({"ratePerSecond": 0, "invalidRatio": 0.03, "customers": 1500})
    manifest["spec"]["processing"].update({"trigger": "1s"})
    pipeline = load_manifest(manifest)
    out = tmp_path_factory.mktemp("run") / "out"
    lines: list[str] = []
    run = LocalRun(
        pipeline, RunOptions(output=out, records=EVENTS, track_injected=True), printer=lines.append
    )
    try:
        summary = run.run()
        exp = reference_for(run.bootstrap, run.job_config)
    finally:
        run.close()
    return summary, exp, out, lines


def test_run_completes_and_reports(bounded_run):
    summary, _, _out, lines = bounded_run
    assert summary.complete, summary
    assert summary.produced["events"] == EVENTS
    assert summary.produced["transactions"] >= 20_000 * 0.95
    assert summary.consumed["transactions_topic"] == summary.produced["transactions_topic"]
    assert any("produced" in line and "processed" in line for line in lines), "live progress was shown"
    assert summary.rows[C.OUT_TRANSACTIONS] == summary.produced["transactions"]


def test_transactions_exactly_the_valid_ones(bounded_run):
    summary, exp, out, _ = bounded_run
    figures = assert_outputs_match(out, exp)
    assert figures["transactions"] == summary.produced["transactions"]


def test_every_injected_record_is_quarantined_with_its_reason(bounded_run):
    summary, exp, _out, _ = bounded_run
    injected = Counter(r["kind"] for r in summary.injected)
    assert sum(injected.values()) == summary.produced["invalid_total"] > 0
    assert set(injected) == set(C.INJECTED_KINDS), f"every kind injected at least once: {injected}"
    want = Counter()
    for kind, n in injected.items():
        want[C.INJECTED_KINDS[kind]] += n
    assert Counter(exp.reasons.values()) == want, "the reference agrees with what the generator injected"
    assert summary.quarantined == dict(want)

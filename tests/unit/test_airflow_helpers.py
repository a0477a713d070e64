"""The DAGs' helpers are plain functions (no Airflow import): their rules, checked fast.
The DAGs themselves run in real Airflow in tests/airflow/."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "jobs" / "airflow" / "dags"))

from streampipeline_airflow import health, kube, report

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _pipeline(phase: str, ready: str, since: datetime, message: str = "") -> dict:
    cond = {"type": "Ready", "status": ready, "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"kafka": {"topics": {"transactions": {"name": "tx"}}}},
        "status": {"phase": phase, "message": message, "conditions": [cond]},
    }


def test_not_ready_fails_only_past_the_threshold():
    p = _pipeline("Degraded", "False", NOW - timedelta(minutes=7), "Spark job is PENDING_RERUN")
    within = health.evaluate(p, health.Thresholds(max_not_ready_minutes=10), now=NOW)
    assert within.ok and "not Ready for 7.0 min (phase Degraded)" in within.notes[0]
    past = health.evaluate(p, health.Thresholds(max_not_ready_minutes=5), now=NOW)
    assert not past.ok and "Spark job is PENDING_RERUN" in past.problems[0]


def test_failed_always_fails_and_suspended_is_not_judged():
    assert not health.evaluate(_pipeline("Failed", "False", NOW), health.Thresholds(), now=NOW).ok
    assert health.evaluate(
        _pipeline("Suspended", "False", NOW - timedelta(days=1)), health.Thresholds(), now=NOW
    ).ok


def test_lag_and_quarantine_share():
    progress = {
        "input": {"tx": 90, "p-customers": 10},
        "quarantined": {"malformed_json": 5},
        "offsets": {"tx": {"0": 50, "1": 40}},
    }
    ends = {"p-customers": {"0": 10}, "tx": {"0": 55, "1": 40, "2": 3}}
    assert health.lag(progress, ends) == {"p-customers": 10, "tx": 8}  # unread partitions count from 0
    assert health.kafka_topics(_pipeline("Running", "True", NOW)) == ["p-customers", "tx"]
    t = health.Thresholds(max_lag=17, max_quarantine_share=0.05)
    h = health.evaluate(_pipeline("Running", "True", NOW), t, progress=progress, ends=ends, now=NOW)
    assert (h.figures["lag"], h.figures["quarantine_share"]) == (18, 0.05)  # a share at the limit passes
    assert [p.split(": ", 1)[1][:20] for p in h.problems] == ["the processor is 18 "]
    assert health.evaluate(
        _pipeline("Running", "True", NOW),
        health.Thresholds(max_lag=18),
        progress=progress,
        ends=ends,
        now=NOW,
    ).ok


def test_desired_manifest_overlays_params_on_the_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        "apiVersion: streampipeline.io/v1alpha1\nkind: StreamPipeline\nmetadata: {name: a}\n"
        "spec: {kafka: {cluster: k}, generator: {ratePerSecond: 5}}\nstatus: {phase: Running}\n"
    )
    doc = kube.desired_manifest(
        {"manifest": str(f), "rate_per_second": 7, "replicas": None, "suspend": False}
    )
    assert doc["metadata"] == {"name": "a", "namespace": "default"}
    assert doc["spec"] == {"kafka": {"cluster": "k"}, "generator": {"ratePerSecond": 7}, "suspend": False}
    assert "status" not in doc
    with pytest.raises(kube.PipelineFailed, match="kafka_cluster"):
        kube.desired_manifest({"name": "a"})


def test_a_local_day_can_span_two_utc_months():
    start, end = report.day_window(date(2026, 11, 30), "America/Sao_Paulo")
    assert (start.isoformat(), end.isoformat()) == ("2026-11-30T03:00:00+00:00", "2026-12-01T03:00:00+00:00")
    assert report._months(start, end) == [(2026, 11), (2026, 12)]
    assert report._months(*report.day_window(date(2026, 12, 31))) == [(2026, 12)]


ROOT = Path(__file__).resolve().parents[2]


def test_airflow_stays_out_of_the_project_and_its_images():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [*project["dependencies"], *(d for ds in project["optional-dependencies"].values() for d in ds)]
    assert not [p for p in pins if "airflow" in p.lower()]
    assert project["optional-dependencies"]["operator"].count("kubernetes==34.1.0") == 1  # not the provider's
    for dockerfile in (ROOT / "images").glob("*/Dockerfile"):
        assert "airflow" not in dockerfile.read_text().lower(), dockerfile
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert not any(p.startswith("streampipeline_airflow") or p.startswith("airflow") for p in find["include"])


def test_the_airflow_lock_pins_every_package_with_hashes():
    lock = (ROOT / "jobs" / "airflow" / "requirements.lock").read_text()
    pins = [ln for ln in lock.splitlines() if ln and not ln[0].isspace() and not ln.startswith("#")]
    assert len(pins) > 100
    assert all("==" in p and p.endswith("\\") for p in pins), [p for p in pins if "==" not in p][:3]
    wanted = [
        ln
        for ln in (ROOT / "jobs" / "airflow" / "requirements.in").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    for requirement in wanted:
        assert any(p.startswith(requirement + " ") or p.startswith(requirement + ";") for p in pins), (
            requirement
        )

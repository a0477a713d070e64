"""Crashes in the middle of a run lose nothing and duplicate nothing.

One run, two kinds of fault, each at a moment that cannot be clean:
* the Kafka broker is SIGKILLed and restarted while the generator is producing;
* the Spark job (driver JVM and all) is SIGKILLed twice while batches are in flight,
  and restarted from its checkpoint.
Afterwards every output must equal the reference computed from the raw topics.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streampipeline.local.runner import LocalRun, RunOptions
from streampipeline.spec import load_manifest

from .verify import assert_outputs_match, reference_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 12_000


def wait_for(cond, timeout: float = 300.0, what: str = "condition", run=None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if run is not None and run.processor.proc is not None and run.processor.proc.poll() not in (None, 0):
            raise AssertionError(f"the Spark job died on its own:\n{run.processor.tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    manifest = load_manifest(ROOT / "k8s" / "examples" / "pipeline.yaml").to_manifest()
    manifest["spec"]["generator"].update({"ratePerSecond": 150, "invalidRatio": 0.03, "customers": 500})
    manifest["spec"]["processing"].update({"trigger": "1s"})
    pipeline = load_manifest(manifest)
    out = tmp_path_factory.mktemp("faults") / "out"
    run = LocalRun(
        pipeline, RunOptions(output=out, records=EVENTS, track_injected=True), printer=lambda s: None
    )
    log: list[str] = []
    try:
        run.prepare()
        assert run.kafka is not None and run.processor is not None
        run.processor.start()
        gen = run.start_generator()

        # 1. Broker crash while producing.
        wait_for(lambda: run._last_tally.events >= 2_000, what="2,000 events produced")
        before = run._last_tally.total
        run.kafka.restart(kill=True)
        log.append(f"broker SIGKILLed and restarted after {before} records")
        wait_for(lambda: run._last_tally.total > before + 500, what="production to resume")

        # 2. Spark job crashes while batches are in flight (just after one finished, and later).
        for delay in (0.2, 1.3):
            batches = (run.progress() or {}).get("batches", 0)
            wait_for(
                lambda b=batches: (run.progress() or {}).get("batches", 0) > b or run._all_consumed(),
                what="another batch",
                run=run,
            )
            time.sleep(delay)
            run.processor.kill()
            log.append(f"spark job SIGKILLed {delay}s after batch {(run.progress() or {}).get('batch_id')}")
            run.processor.start()

        gen.join(timeout=600)
        assert not gen.is_alive() and run._generator_error is None, run._generator_error
        wait_for(run._all_consumed, timeout=600, what="the job to consume everything", run=run)
        run.processor.stop()
        exp = reference_for(run.bootstrap, run.job_config)
        summary = run._summary(0)
    finally:
        run.close()
    return summary, exp, out, log


def test_no_loss_no_duplicates_after_broker_and_job_crashes(faulty_run):
    summary, exp, out, log = faulty_run
    assert len(log) == 3, log
    assert summary.produced["events"] == EVENTS, "every event was acknowledged despite the broker crash"
    figures = assert_outputs_match(out, exp)
    assert figures["transactions"] == summary.produced["transactions"]
    assert figures["quarantine"] == summary.produced["invalid_total"]


def test_broker_crash_did_not_duplicate_records_in_kafka(faulty_run):
    """The idempotent producer: the topics hold each acknowledged record exactly once."""
    summary, exp, _, _ = faulty_run
    assert summary.consumed["transactions_topic"] == summary.produced["transactions_topic"]
    assert summary.consumed["customers_topic"] == summary.produced["customers_topic"]
    assert len(exp.transactions) == summary.produced["transactions"]

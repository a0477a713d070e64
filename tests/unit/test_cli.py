"""The command line: clear errors with exit code 2, never a traceback; pinned versions agree."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pyspark
import pytest

from streampipeline.cli import _stop_cleanly_on_signals, main
from streampipeline.local.jars import SPARK_VERSION, _artifact

ROOT = Path(__file__).resolve().parents[2]


def test_validate_ok(capsys):
    assert main(["validate", str(ROOT / "k8s" / "examples" / "pipeline.yaml")]) == 0
    out = capsys.readouterr()
    assert "is valid" in out.out and out.err == ""  # its driver memory holds batch and window


def test_validate_warns_when_the_driver_memory_is_below_the_estimate(tmp_path, capsys):
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text(
        "apiVersion: streampipeline.io/v1alpha1\nkind: StreamPipeline\nmetadata: {name: p}\n"
        "spec:\n  kafka: {cluster: c}\n"
    )
    assert main(["validate", str(minimal)]) == 0  # valid: the warning is advisory
    out = capsys.readouterr()
    assert "is valid" in out.out
    assert out.err.startswith("warning: on Kubernetes, the Spark driver needs about 794 MiB")
    assert "set spec.processing.driver.memoryOverhead: 1g (BelowEstimate)" in out.err


def test_validate_names_every_bad_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: streampipeline.io/v1alpha1\nkind: StreamPipeline\nmetadata: {name: p}\n"
        "spec:\n  kafka: {cluster: c}\n  generator: {ratePerSec: 1, invalidRatio: 2}\n"
    )
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "spec.generator.ratePerSec" in err and "did you mean 'ratePerSecond'" in err
    assert "spec.generator.invalidRatio" in err
    assert "Traceback" not in err


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_connector_matches_pyspark():
    assert pyspark.__version__ == SPARK_VERSION, "bump jars.SPARK_VERSION together with pyspark"


def test_jar_artifact_names():
    assert _artifact("commons-pool2-2.12.1.jar") == "commons-pool2"
    assert _artifact("spark-sql-kafka-0-10_2.13-4.1.1.jar") == "spark-sql-kafka-0-10_2.13"


def test_one_duration_grammar_for_spec_generator_and_job():
    from spjobs.generator.config import GeneratorConfig
    from spjobs.processor.config import ProcessorConfig

    gen = GeneratorConfig.from_job_config(
        {"kafka": {"bootstrapServers": "k:9092"}, "generator": {"maxLateness": "1m30s"}}
    )
    job = ProcessorConfig.from_job_config({"processing": {"trigger": "1m30s", "watermark": "250ms"}})
    assert (gen.max_lateness_seconds, job.trigger_seconds, job.watermark_seconds) == (90.0, 90.0, 0.25)


@pytest.fixture
def restore_signal_handlers():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_stops_cleanly_on_sigint_and_sigterm_even_if_sigint_was_ignored(sig, restore_signal_handlers):
    """`streampipeline run` turns both into the runner's KeyboardInterrupt path (drain, stop
    the Spark job and the broker, print the summary), also when started with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a script's background job
    _stop_cleanly_on_signals()
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), sig)
        time.sleep(5)  # interrupted at once by the handler's exception

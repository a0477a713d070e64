"""Ctrl-C during ``streampipeline run``: nothing acknowledged is lost, nothing is doubled.

The command runs as a user would start it, in its own process group, against the test
broker (so the topics outlive it and the reference can be read afterwards), with two
generator processes.  Ctrl-C is a terminal's: SIGINT to the whole foreground group.  The
generator stops, the Spark job drains everything that Kafka acknowledged, then stops
between batches; the Parquet must equal the reference computed from the raw topics.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from spjobs import contract as C
from spjobs.processor.batch import read_progress
from streampipeline.spec import load_manifest

from .verify import assert_outputs_match, reference_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 1_000_000  # far more than are produced before the interrupt


@pytest.fixture(scope="module")
def interrupted_run(kafka, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("interrupt")
    doc = load_manifest(ROOT / "k8s" / "examples" / "pipeline.yaml").to_manifest()
    doc["metadata"]["name"] = "ctrl-c"
    doc["spec"]["kafka"]["bootstrapServers"] = kafka.bootstrap_servers
    for role in ("customers", "transactions"):
        doc["spec"]["kafka"]["topics"][role]["name"] = f"ctrl-c-{role}"
    doc["spec"]["generator"].update({"ratePerSecond": 800, "invalidRatio": 0.03, "customers": 400})
    doc["spec"]["processing"]["trigger"] = "1s"
    manifest = tmp / "pipeline.yaml"
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    out, summary_file = tmp / "out", tmp / "summary.json"
    cmd = [sys.executable, "-m", "streampipeline.cli", "run", str(manifest), "--records", str(RECORDS)]
    cmd += ["--output", str(out), "--summary-json", str(summary_file), "--workers", "2"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while ((read_progress(out) or {}).get("written") or {}).get(C.OUT_TRANSACTIONS, 0) < 2_000:
            assert proc.poll() is None, f"the run ended on its own:\n{proc.communicate()[0]}"
            assert time.monotonic() < deadline, "no transactions written within 300 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    exp = reference_for(kafka.bootstrap_servers, load_manifest(manifest).to_job_config())
    summary = json.loads(summary_file.read_text())
    return proc.returncode, output, summary, out, exp


def test_ctrl_c_stops_the_run_cleanly_with_a_summary(interrupted_run):
    code, output, summary, _, _ = interrupted_run
    assert code == 0, output
    assert "Interrupted" in output and "Run summary" in output, output
    assert summary["interrupted"] is True
    assert summary["embedded_kafka"] is False, "the run used the broker the manifest names"
    assert 0 < summary["produced"]["events"] < RECORDS, "the generator stopped early"


def test_everything_acknowledged_before_ctrl_c_is_written_exactly_once(interrupted_run):
    _, output, summary, out, exp = interrupted_run
    assert summary["complete"], f"the job did not drain what was produced:\n{output}"
    assert summary["consumed"]["transactions_topic"] == summary["produced"]["transactions_topic"]
    assert summary["consumed"]["customers_topic"] == summary["produced"]["customers_topic"]
    figures = assert_outputs_match(out, exp)
    assert figures["transactions"] == summary["produced"]["transactions"]
    assert figures["quarantine"] == summary["produced"]["invalid_total"]

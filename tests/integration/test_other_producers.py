"""``streampipeline run`` beside other producers: a bounded run ends when the job has read
every offset up to the topics' end offsets taken when generation ended, not when it has
read as many records as its own generator wrote.

An extra producer writes into both topics while the generator runs (its own customers,
transactions for them and for unknown customers, some through a Kafka transaction so a
commit marker takes offsets no record has); the run must exit 0, complete, with every
record in the Parquet exactly as the reference computes it from the raw topics.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer

from streampipeline.local.kafka import TopicSpec, end_offsets, ensure_topics
from streampipeline.spec import load_manifest

from .verify import assert_outputs_match, reference_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "others"
RECORDS = 6_000
EXTRA_CUSTOMERS = 20
EXTRA_TRANSACTIONS = 300


def _customer(i: int) -> bytes:
    return json.dumps(
        {
            "customer_id": f"EXT-C{i}",
            "name": "Outside",
            "email": f"ext{i}@example.org",
            "birth_date": "1985-03-04",
            "state": "SP",
            "city": "Campinas",
            "signup_time": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:00.000Z",
        }
    ).encode()


def _transaction(i: int, customer: str) -> bytes:
    return json.dumps(
        {
            "transaction_id": f"EXT-T{i}",
            "customer_id": customer,
            "event_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "amount": "12.34",
            "currency": "BRL",
            "category": "groceries",
            "city": "Campinas",
            "payment_method": "pix",
            "merchant": "Outside Ltda",
        }
    ).encode()


class ExtraProducer:
    """Two producers made ready before the run (a transactional one takes seconds on a fresh
    broker), writing once the generator has begun, so all of it lands while it runs."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.plain = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
        self.tx = Producer({"bootstrap.servers": bootstrap, "transactional.id": "sp-test-others"})
        self.tx.init_transactions(60)
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 180
            topic = f"{NAME}-transactions"
            while not sum(end_offsets(self.bootstrap, [topic])[topic].values()):
                assert time.monotonic() < deadline, "the generator never wrote a transaction"
                time.sleep(0.1)
            for i in range(EXTRA_CUSTOMERS):
                self.plain.produce(f"{NAME}-customers", key=f"EXT-C{i}".encode(), value=_customer(i))
            assert self.plain.flush(30) == 0  # acknowledged before any transaction names them
            for i in range(EXTRA_TRANSACTIONS):
                cid = f"EXT-C{i % EXTRA_CUSTOMERS}" if i % 3 else f"EXT-X{i}"  # a third: unknown customers
                self.plain.produce(topic, key=cid.encode(), value=_transaction(i, cid))
            assert self.plain.flush(30) == 0
            self.tx.begin_transaction()
            for i in range(EXTRA_TRANSACTIONS, EXTRA_TRANSACTIONS + 10):
                cid = f"EXT-C{i % EXTRA_CUSTOMERS}"
                self.tx.produce(topic, key=cid.encode(), value=_transaction(i, cid))
            self.tx.commit_transaction(30)
        except BaseException as exc:
            self.errors.append(exc)


@pytest.fixture(scope="module")
def shared_run(kafka, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("others")
    doc = load_manifest(ROOT / "k8s" / "examples" / "pipeline.yaml").to_manifest()
    doc["metadata"]["name"] = NAME
    doc["spec"]["kafka"]["bootstrapServers"] = kafka.bootstrap_servers
    for role in ("customers", "transactions"):
        doc["spec"]["kafka"]["topics"][role]["name"] = f"{NAME}-{role}"
    doc["spec"]["generator"].update({"ratePerSecond": 600, "invalidRatio": 0.02, "customers": 300})
    doc["spec"]["processing"]["trigger"] = "1s"
    manifest = tmp / "pipeline.yaml"
    manifest.write_text(yaml.safe_dump(doc, sort_keys=False))
    out, summary_file = tmp / "out", tmp / "summary.json"
    cmd = [sys.executable, "-m", "streampipeline.cli", "run", str(manifest), "--records", str(RECORDS)]
    cmd += ["--output", str(out), "--summary-json", str(summary_file)]
    # The topics exist before the run (as on a shared cluster), so the producers can be ready.
    pipeline = load_manifest(manifest)
    topics = pipeline.to_job_config()["kafka"]["topics"]
    ensure_topics(kafka.bootstrap_servers, [TopicSpec(t["name"], t["partitions"]) for t in topics.values()])
    extra = ExtraProducer(kafka.bootstrap_servers)
    writer = threading.Thread(target=extra.run, daemon=True)
    writer.start()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    writer.join(60)
    assert not extra.errors, extra.errors
    assert summary_file.exists(), (
        f"no summary (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    )
    exp = reference_for(kafka.bootstrap_servers, pipeline.to_job_config())
    return proc, json.loads(summary_file.read_text()), out, exp


def test_the_run_completes_with_exit_0_though_others_wrote_into_the_topics(shared_run):
    proc, summary, _, _ = shared_run
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert summary["complete"] and not any(summary["unread"].values()), output
    # The extra records went in while the generator ran (so the end offsets include them):
    extra = EXTRA_TRANSACTIONS + 10
    assert summary["appended"]["transactions_topic"] >= summary["produced"]["transactions_topic"] + extra
    assert summary["appended"]["customers_topic"] >= summary["produced"]["customers_topic"] + EXTRA_CUSTOMERS
    assert summary["consumed"]["transactions_topic"] == summary["produced"]["transactions_topic"] + extra
    assert summary["consumed"]["customers_topic"] == summary["produced"]["customers_topic"] + EXTRA_CUSTOMERS
    assert "appended to the topics during the run" in proc.stdout


def test_every_record_of_every_producer_is_in_the_parquet_once(shared_run):
    _, summary, out, exp = shared_run
    figures = assert_outputs_match(out, exp)
    ours = {t for t in exp.transactions["transaction_id"] if t.startswith("EXT-T")}
    assert len(ours) == EXTRA_TRANSACTIONS * 2 // 3 + 10, "their valid transactions were accepted"
    assert figures["transactions"] == summary["produced"]["transactions"] + len(ours)

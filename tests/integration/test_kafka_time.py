"""LogAppendTime on a real broker: what the runner creates, what the job refuses, and that a
producer's timestamp no longer reaches the job."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from spjobs.kafka_time import CreateTimeTopic, check_topics, timestamp_types
from streampipeline.local.kafka import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration


def _create_time_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(name, 1, 1, config={"message.timestamp.type": "CreateTime"})])[name]
    fut.result(30)


def test_runner_topics_are_log_append_time_and_a_producer_timestamp_is_replaced(kafka):
    bootstrap = kafka.bootstrap_servers
    ensure_topics(bootstrap, [TopicSpec("lat-new", 1, 1, {"cleanup.policy": "compact"})])
    assert timestamp_types(bootstrap, ["lat-new"]) == {"lat-new": "LogAppendTime"}
    check_topics(bootstrap, ["lat-new"])  # passes
    stamped_1970 = 86_400_000
    p = Producer({"bootstrap.servers": bootstrap})
    before = int(time.time() * 1000)
    p.produce("lat-new", key=b"C1", value=b"{}", timestamp=stamped_1970)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "lat", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition("lat-new", 0, 0)])
        msg = c.poll(30)
        assert msg is not None and msg.error() is None
        kind, ts = msg.timestamp()
        assert kind == TIMESTAMP_LOG_APPEND_TIME
        assert ts >= before - 1000, "the broker's clock, not the producer's 1970"
    finally:
        c.close()


def test_the_job_refuses_a_create_time_topic_and_says_what_to_do(kafka, tmp_path):
    bootstrap = kafka.bootstrap_servers
    _create_time_topic(bootstrap, "lat-old-transactions")
    ensure_topics(bootstrap, [TopicSpec("lat-old-customers", 1, 1)])
    with pytest.raises(CreateTimeTopic) as err:
        check_topics(bootstrap, ["lat-old-customers", "lat-old-transactions"])
    assert "'lat-old-transactions' has message.timestamp.type=CreateTime" in str(err.value)
    assert "lat-old-customers" not in str(err.value)
    assert "--add-config message.timestamp.type=LogAppendTime" in str(err.value)

    config = {
        "kafka": {
            "bootstrapServers": bootstrap,
            "topics": {
                "customers": {"name": "lat-old-customers"},
                "transactions": {"name": "lat-old-transactions"},
            },
        },
        "sink": {"path": str(tmp_path / "out")},
    }
    (tmp_path / "job.json").write_text(json.dumps(config))
    job = subprocess.run(
        [sys.executable, "-m", "spjobs.processor", "--config", str(tmp_path / "job.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert job.returncode == 2, job.stderr
    assert "create_time_topic" in job.stderr and "kafka-configs.sh" in job.stderr
    assert not (tmp_path / "out").exists(), "refused before Spark started"

    # The runner switches an existing topic, as Strimzi does for the operator's KafkaTopic.
    ensure_topics(bootstrap, [TopicSpec("lat-old-transactions", 1, 1)])
    check_topics(bootstrap, ["lat-old-customers", "lat-old-transactions"])

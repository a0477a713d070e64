"""The pipeline's notion of time: Kafka's LogAppendTime, checked when the job starts.

Why: the job's clock is the newest Kafka timestamp it has seen.  It measures the
deduplication window, orders a customer's versions against a transaction ("as of the
transaction") and bounds the lateness reference.  With the topic default, CreateTime,
those timestamps are whatever a producer writes: a transaction stamped 1970 would be
forgotten at the next batch and its id accepted twice, one stamped ahead could pick a
customer version sent after it.  With ``message.timestamp.type: LogAppendTime`` the
broker stamps every record as it appends it, so no producer can steer the job's time.

Every topic the pipeline creates carries :data:`REQUIRED_TOPIC_CONFIG` (the Strimzi
KafkaTopics the operator renders, the local runner's topics); the spec refuses a topic
config that sets another timestamp type.  A topic made elsewhere may still be on
CreateTime, so the job refuses to start on one (:func:`check_topics`): running would
quietly break exactly-once for any producer with a wrong clock, and the fix is one
command.  Records written before a topic was switched keep their CreateTime; the job
still bounds those (see :mod:`spjobs.processor.batch`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

TIMESTAMP_TYPE: str = "message.timestamp.type"
LOG_APPEND_TIME: str = "LogAppendTime"
REQUIRED_TOPIC_CONFIG: Mapping[str, str] = {TIMESTAMP_TYPE: LOG_APPEND_TIME}


class CreateTimeTopic(RuntimeError):
    """A pipeline topic whose records carry producers' timestamps; the message says what to do."""


def with_required(config: Mapping[str, str] | None) -> dict[str, str]:
    """A topic's configs with the ones the job relies on."""
    return {**(config or {}), **REQUIRED_TOPIC_CONFIG}


def fix_hint(bootstrap_servers: str, topic: str) -> str:
    return (
        f"set it with: kafka-configs.sh --bootstrap-server {bootstrap_servers} --alter --entity-type topics "
        f"--entity-name {topic} --add-config {TIMESTAMP_TYPE}={LOG_APPEND_TIME} "
        "(on Kubernetes the operator's KafkaTopic sets it and Strimzi applies it; the job retries)"
    )


def timestamp_types(bootstrap_servers: str, topics: Sequence[str], timeout: float = 30.0) -> dict[str, str]:
    """``message.timestamp.type`` of each topic, as the broker reports it (a topic created
    a moment ago may be unknown for a moment: retried until ``timeout``)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    deadline = time.monotonic() + timeout
    out: dict[str, str] = {}
    for topic in topics:
        while True:
            fut = admin.describe_configs([ConfigResource(ResourceType.TOPIC, topic)], request_timeout=timeout)
            try:
                entry = next(iter(fut.values())).result(timeout).get(TIMESTAMP_TYPE)
                break
            except KafkaException as exc:
                unknown = exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
                if not unknown or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        out[topic] = entry.value if entry is not None else "CreateTime"
    return out


def check_topics(bootstrap_servers: str, topics: Sequence[str], timeout: float = 30.0) -> None:
    """Raise :class:`CreateTimeTopic` naming every topic that is not on LogAppendTime."""
    wrong = {
        t: v for t, v in timestamp_types(bootstrap_servers, topics, timeout).items() if v != LOG_APPEND_TIME
    }
    if wrong:
        lines = [
            f"topic {t!r} has {TIMESTAMP_TYPE}={v}: its timestamps are the producers', and the job's "
            f"deduplication window, enrichment order and lateness are measured in Kafka time; "
            f"{fix_hint(bootstrap_servers, t)}"
            for t, v in sorted(wrong.items())
        ]
        raise CreateTimeTopic("\n".join(lines))

"""Kafka for the service: reads by offsets (no consumer group) and acknowledged produce.

A read assigns partitions at computed offsets and never commits, so it joins no group
and leaves no trace on the broker: two replicas, or one before and after a restart,
return the same records for the same query.  Produce uses ``acks=all`` with
idempotence, and a batch is produced only after every record of it passed validation.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

Start = Literal["latest", "earliest"] | int


class KafkaUnavailable(RuntimeError):
    """The broker did not answer in time."""


@dataclass(frozen=True)
class Window:
    """Offsets ``[start, end)`` to read from one partition."""

    partition: int
    start: int
    end: int


def read_windows(watermarks: dict[int, tuple[int, int]], start: Start, limit: int) -> list[Window]:
    """Which offsets answer a read: per partition, at most ``limit`` records (pure).

    ``latest`` is each partition's last ``limit`` records, ``earliest`` its first, and an
    integer the ``limit`` records from that offset on (clamped to what is retained).
    """
    out = []
    for p, (low, high) in sorted(watermarks.items()):
        if start == "latest":
            lo, hi = max(low, high - limit), high
        elif start == "earliest":
            lo, hi = low, min(high, low + limit)
        else:
            lo = max(int(start), low)
            hi = min(high, lo + limit)
        if lo < hi:
            out.append(Window(p, lo, hi))
    return out


def pick(records: list[dict[str, Any]], start: Start, limit: int) -> list[dict[str, Any]]:
    """Across partitions, the ``limit`` newest (``latest``) or oldest, in (partition, offset) order."""
    if len(records) > limit:
        order = sorted(records, key=lambda r: (r["timestamp_ms"] or 0, r["partition"], r["offset"]))
        records = order[-limit:] if start == "latest" else order[:limit]
    return sorted(records, key=lambda r: (r["partition"], r["offset"]))


def _text(data: bytes | None) -> tuple[str | None, str]:
    if data is None:
        return None, "none"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def message_dict(msg: Any) -> dict[str, Any]:
    """A Kafka message as the API shows it: coordinates, timestamp, key and value as text or base64."""
    ts_type, ts = msg.timestamp()
    key, key_enc = _text(msg.key())
    value, value_enc = _text(msg.value())
    return {
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp_ms": ts if ts_type != 0 else None,
        "timestamp": (
            datetime.fromtimestamp(ts / 1000, timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
            if ts_type != 0
            else None
        ),
        "key": key,
        "key_encoding": key_enc,
        "value": value,
        "value_encoding": value_enc,
    }


class KafkaGateway:
    """One broker connection for metadata and produce; a fresh assigned consumer per read."""

    def __init__(self, bootstrap: str, timeout: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._lock = threading.Lock()
        self._meta: Consumer | None = None
        self._producer: Producer | None = None

    def _consumer_conf(self) -> dict[str, Any]:
        # group.id is required by the client's config but never used: partitions are
        # assigned, nothing is committed, no group is joined.
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": "streampipeline-api-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "socket.timeout.ms": int(self.timeout * 1000),
            "log_level": 0,
        }

    def _metadata_consumer(self) -> Consumer:
        if self._meta is None:
            self._meta = Consumer(self._consumer_conf())
        return self._meta

    def partitions(self, topic: str) -> list[int] | None:
        """The topic's partition ids, or None when the topic does not exist."""
        try:
            with self._lock:
                md = self._metadata_consumer().list_topics(topic, timeout=self.timeout)
        except KafkaException as exc:
            raise KafkaUnavailable(str(exc)) from exc
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return None
        return sorted(t.partitions)

    def watermarks(self, topic: str, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """(low, high) offsets of each partition, as the broker has them now."""
        out = {}
        try:
            with self._lock:
                c = self._metadata_consumer()
                for p in partitions:
                    out[p] = c.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=self.timeout, cached=False
                    )
        except KafkaException as exc:
            raise KafkaUnavailable(str(exc)) from exc
        if any(v is None for v in out.values()):
            raise KafkaUnavailable(f"no offsets for {topic} within {self.timeout}s")
        return out

    def reachable(self) -> bool:
        try:
            with self._lock:
                self._metadata_consumer().list_topics(timeout=min(self.timeout, 2.0))
            return True
        except KafkaException:
            return False

    def read(self, topic: str, windows: list[Window], max_bytes: int) -> tuple[list[dict[str, Any]], bool]:
        """The records of ``windows``; stops early (second value True) past ``max_bytes``."""
        if not windows:
            return [], False
        consumer = Consumer(self._consumer_conf())
        records: list[dict[str, Any]] = []
        size = 0
        truncated = False
        try:
            ends = {w.partition: w.end for w in windows}
            consumer.assign([TopicPartition(topic, w.partition, w.start) for w in windows])
            pending = set(ends)
            deadline = time.monotonic() + self.timeout
            while pending and time.monotonic() < deadline:
                for msg in consumer.consume(500, timeout=0.5):
                    p = msg.partition()
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            pending.discard(p)
                            continue
                        raise KafkaUnavailable(str(err))
                    if p not in pending or msg.offset() >= ends[p]:
                        pending.discard(p)
                        continue
                    size += len(msg.value() or b"") + len(msg.key() or b"") + 200
                    if size > max_bytes:
                        truncated = True
                        pending.clear()
                        break
                    records.append(message_dict(msg))
                    if msg.offset() >= ends[p] - 1:
                        pending.discard(p)
            if pending:
                raise KafkaUnavailable(f"reading {topic} timed out after {self.timeout}s")
        finally:
            consumer.close()
        return records, truncated

    # -- produce ------------------------------------------------------------------------
    def _get_producer(self) -> Producer:
        with self._lock:
            if self._producer is None:
                self._producer = Producer(
                    {
                        "bootstrap.servers": self.bootstrap,
                        "acks": "all",
                        "enable.idempotence": True,
                        "linger.ms": 5,
                        "message.timeout.ms": int(self.timeout * 3000),
                        "log_level": 0,
                    }
                )
            return self._producer

    def produce(self, topic: str, records: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        """Produce ``(key, value)`` records; each answer is its partition and offset or its error."""
        producer = self._get_producer()
        results: list[dict[str, Any]] = [{} for _ in records]

        def on_delivery(i: int) -> Any:
            def done(err: Any, msg: Any) -> None:
                if err is not None:
                    results[i] = {"error": str(err)}
                else:
                    results[i] = {"partition": msg.partition(), "offset": msg.offset()}

            return done

        for i, (key, value) in enumerate(records):
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=on_delivery(i))
                    break
                except BufferError:
                    producer.poll(0.1)
        remaining = producer.flush(self.timeout * 3)
        if remaining:
            for r in results:
                if not r:
                    r["error"] = "not acknowledged in time"
        return results

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(self.timeout)
                self._producer = None
            if self._meta is not None:
                self._meta.close()
                self._meta = None


__all__ = ["KafkaGateway", "KafkaUnavailable", "Window", "message_dict", "pick", "read_windows"]

"""Judge a pipeline's health from its status and the processor's progress, against thresholds.

The operator's status says whether the pipeline is Ready and since when.  The processor's
own figures (records read per topic, quarantined by reason, next offset per partition)
are in ``<sink>/_checkpoints/processor/progress.json``, written after every committed
micro-batch; the lag is the topics' end offsets minus those next offsets, so it needs
the Kafka bootstrap address.  Each check is skipped, and says so, when its input is not
given: a worker that does not mount the sink still checks the status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PROGRESS_FILE = Path("_checkpoints") / "processor" / "progress.json"

__all__ = ["Health", "Thresholds", "end_offsets", "evaluate", "kafka_topics", "lag", "read_progress"]


def kafka_topics(pipeline: Mapping[str, Any]) -> list[str]:
    """The Kafka topic names the pipeline reads (spec.kafka.topics.*.name, else the defaults)."""
    name = (pipeline.get("metadata") or {}).get("name")
    topics = (((pipeline.get("spec") or {}).get("kafka") or {}).get("topics")) or {}
    return [
        (topics.get(role) or {}).get("name") or f"{name}-{role}" for role in ("customers", "transactions")
    ]


@dataclass(frozen=True)
class Thresholds:
    max_not_ready_minutes: float = 10.0  # Ready may be False this long (a restart, a rollout)
    max_lag: int | None = None  # records behind the topics' end offsets
    max_quarantine_share: float | None = None  # quarantined / records read, 0..1


@dataclass
class Health:
    ok: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def read_progress(sink_path: str | Path) -> dict[str, Any] | None:
    """The processor's figures after its last committed batch (None before the first)."""
    try:
        return json.loads((Path(sink_path) / PROGRESS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def end_offsets(
    bootstrap_servers: str, topics: list[str], timeout: float = 10.0
) -> dict[str, dict[str, int]]:
    """High watermark of every partition of ``topics`` (confluent-kafka, no consumer group)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "streampipeline-airflow-health",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        meta = consumer.list_topics(timeout=timeout)
        out: dict[str, dict[str, int]] = {}
        for topic in topics:
            if topic not in meta.topics or meta.topics[topic].error is not None:
                raise RuntimeError(f"Kafka topic {topic!r} not found at {bootstrap_servers}")
            for p in meta.topics[topic].partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                out.setdefault(topic, {})[str(p)] = int(high)
        return out
    finally:
        consumer.close()


def lag(progress: Mapping[str, Any], ends: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """Records not yet processed, per topic: end offset minus the processor's next offset."""
    done = progress.get("offsets") or {}
    return {
        topic: sum(max(0, high - int((done.get(topic) or {}).get(p, 0))) for p, high in parts.items())
        for topic, parts in ends.items()
    }


def evaluate(
    pipeline: Mapping[str, Any],
    thresholds: Thresholds,
    *,
    progress: Mapping[str, Any] | None = None,
    ends: Mapping[str, Mapping[str, int]] | None = None,
    now: datetime | None = None,
) -> Health:
    """Every crossed threshold becomes one problem sentence; ``ok`` when there is none."""
    now = now or datetime.now(timezone.utc)
    meta, status = pipeline.get("metadata") or {}, pipeline.get("status") or {}
    ref = f"StreamPipeline {meta.get('namespace')}/{meta.get('name')}"
    phase = status.get("phase") or "none yet"
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    h = Health(ok=True, figures={"phase": phase, "ready": ready.get("status", "Unknown")})
    message = status.get("message") or ready.get("message") or ""

    if phase == "Failed":
        h.problems.append(f"{ref} is Failed: {message}")
    elif phase == "Suspended":
        h.notes.append(f"{ref} is Suspended (spec.suspend): readiness not checked")
    elif ready.get("status") != "True":
        since = _parse_time(ready.get("lastTransitionTime")) or _parse_time(meta.get("creationTimestamp"))
        minutes = (now - since).total_seconds() / 60 if since else 0.0
        h.figures["not_ready_minutes"] = round(minutes, 1)
        text = f"{ref} not Ready for {minutes:.1f} min (phase {phase}): {message or 'no message'}"
        if minutes >= thresholds.max_not_ready_minutes:
            h.problems.append(f"{text}; threshold max_not_ready_minutes={thresholds.max_not_ready_minutes:g}")
        else:
            h.notes.append(f"{text}; within max_not_ready_minutes={thresholds.max_not_ready_minutes:g}")

    if progress is None:
        h.notes.append("no processor progress (param sink_path unset, or no batch committed yet)")
    else:
        read = sum(int(v) for v in (progress.get("input") or {}).values())
        by_reason = {k: int(v) for k, v in sorted((progress.get("quarantined") or {}).items())}
        quarantined = sum(by_reason.values())
        share = quarantined / read if read else 0.0
        h.figures.update(
            batch_id=progress.get("batch_id"),
            last_batch_at=progress.get("updated_at"),
            records_read=read,
            quarantined=quarantined,
            quarantined_by_reason=by_reason,
            quarantine_share=round(share, 6),
        )
        limit = thresholds.max_quarantine_share
        if limit is not None and share > limit:
            h.problems.append(
                f"{ref}: quarantine share {share:.2%} ({quarantined:,} of {read:,} records) is above "
                f"max_quarantine_share={limit:g}; by reason: "
                + ", ".join(f"{k} {v:,}" for k, v in by_reason.items())
            )
        if ends is not None:
            per_topic = lag(progress, ends)
            total = sum(per_topic.values())
            h.figures.update(lag=total, lag_by_topic=per_topic)
            if thresholds.max_lag is not None and total > thresholds.max_lag:
                topics = ", ".join(f"{t} {n:,}" for t, n in per_topic.items())
                h.problems.append(
                    f"{ref}: the processor is {total:,} records behind the topics' end offsets "
                    f"({topics}), above max_lag={thresholds.max_lag:,}"
                )
        else:
            h.notes.append("lag not checked (param bootstrap_servers unset)")
    h.ok = not h.problems
    return h

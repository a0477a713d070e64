"""The pipeline's figures now (``status``) and over time (``Sampler``), for the status
endpoint and the dashboard's charts.

Produced is what the broker holds (the topics' end offsets), processed is what the Spark
job committed (its progress file on the sink), so the figures need neither the generator
nor the job to report to the service, and every replica computes the same.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from spjobs import contract as C

from .config import ApiConfig
from .kafka_io import KafkaGateway, KafkaUnavailable

log = logging.getLogger(__name__)


def topic_offsets(gw: KafkaGateway, topic: str) -> dict[str, Any] | None:
    parts = gw.partitions(topic)
    if parts is None:
        return None
    marks = gw.watermarks(topic, parts)
    return {
        "partitions": [{"partition": p, "low": lo, "high": hi} for p, (lo, hi) in sorted(marks.items())],
        "end_offset_total": sum(hi for _, hi in marks.values()),
    }


def read_progress(sink: Path) -> dict[str, Any] | None:
    """The Spark job's progress file, as ``spjobs.processor.batch.read_progress`` reads it
    (a test holds the two equal). Not imported from there: that module needs pyspark and
    pandas, which the service's image (the operator's) does not carry."""
    try:
        doc = json.loads((Path(sink) / C.CHECKPOINTS_DIR / "processor" / "progress.json").read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def processor_progress(sink: Path | None) -> dict[str, Any] | None:
    p = read_progress(sink) if sink is not None else None
    if not p:
        return None
    return {
        "last_batch": p.get("batch_id"),
        "updated_at": p.get("updated_at"),
        "batch_seconds": p.get("batch_seconds"),
        "processed": {k: int(v) for k, v in p.get("input", {}).items()},
        "written": {k: int(v) for k, v in p.get("written", {}).items()},
        "quarantined": {k: int(v) for k, v in p.get("quarantined", {}).items()},
        "offsets": {
            t: {str(k): int(v) for k, v in parts.items()} for t, parts in p.get("offsets", {}).items()
        },
    }


def lag(topics: dict[str, Any], progress: dict[str, Any] | None) -> dict[str, int]:
    """Per topic: records on the broker past what the job committed (pure)."""
    out = {}
    for name, t in topics.items():
        if t is None:
            continue
        done = (progress or {}).get("offsets", {}).get(name, {})
        out[name] = sum(
            max(p["high"] - max(int(done.get(str(p["partition"]), 0)), p["low"]), 0) for p in t["partitions"]
        )
    return out


def status(cfg: ApiConfig, gw: KafkaGateway) -> dict[str, Any]:
    """The broker, each pipeline topic's offsets, and the processor's progress."""
    topics: dict[str, Any] = {}
    reachable = True
    try:
        for name in cfg.topics:
            topics[name] = topic_offsets(gw, name)
    except KafkaUnavailable:
        reachable = False
        topics = {}
    progress = processor_progress(cfg.sink)
    return {
        "pipeline": cfg.pipeline,
        "kafka": {"bootstrap_servers": cfg.bootstrap_servers, "reachable": reachable},
        "topics": {
            name: ({"kind": kind, **topics[name]} if topics.get(name) else None)
            for name, kind in cfg.topics.items()
        },
        "processor": progress,
        "lag": lag(topics, progress) if reachable else {},
    }


class Sampler:
    """Samples produced/processed totals every ``cfg.sample_every`` seconds in a thread and
    keeps the last ``cfg.history`` samples with the rates between them."""

    def __init__(self, cfg: ApiConfig, gw: KafkaGateway) -> None:
        self.cfg = cfg
        self.gw = gw
        self.samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=cfg.history)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> dict[str, Any] | None:
        s = status(self.cfg, self.gw)
        if not s["kafka"]["reachable"]:
            return None
        produced = sum(t["end_offset_total"] for t in s["topics"].values() if t)
        proc = s["processor"] or {}
        processed = sum(proc.get("processed", {}).get(name, 0) for name in self.cfg.topics)
        now = time.time()
        point = {
            "t": round(now, 3),
            "produced": produced,
            "processed": processed,
            "lag": sum(s["lag"].values()),
            "quarantined": sum(proc.get("quarantined", {}).values()),
            "last_batch": proc.get("last_batch"),
            "produced_per_s": 0.0,
            "processed_per_s": 0.0,
        }
        with self._lock:
            if self.samples:
                prev = self.samples[-1]
                dt = now - prev["t"]
                if dt > 0:
                    point["produced_per_s"] = round(max(produced - prev["produced"], 0) / dt, 1)
                    point["processed_per_s"] = round(max(processed - prev["processed"], 0) / dt, 1)
            self.samples.append(point)
        return point

    def history(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.samples)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # a sampler must outlive a broker restart
                log.warning("sampling the pipeline's figures failed", exc_info=True)
            self._stop.wait(self.cfg.sample_every)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="api-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

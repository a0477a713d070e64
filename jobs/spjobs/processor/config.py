"""What the Spark job reads from the pipeline's job config (written by the operator/runner)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..contract import CHECKPOINTS_DIR, DEFAULT_AGE_BANDS
from ..durations import to_seconds

parse_duration = to_seconds  # Go-style durations ("5s", "1m30s") or plain seconds

# JVM options for the driver and executors.  The validation's whole-stage generated code
# has a method just over HotSpot's 8,000-bytecode limit for JIT compilation, so by default
# it runs interpreted: compiling it anyway makes a batch's Spark job ~25% faster.
JVM_OPTIONS = "-XX:-DontCompileHugeMethods"


@dataclass(frozen=True)
class ProcessorConfig:
    bootstrap_servers: str
    customers_topic: str = "customers"
    transactions_topic: str = "transactions"
    sink_path: str = "/data/streampipeline"
    trigger_seconds: float = 5.0
    watermark_seconds: float = 30.0  # events older than (latest event time - this) are flagged late
    dedup_window_seconds: float = 3600.0  # transaction ids are remembered this long (Kafka time)
    max_offsets_per_trigger: int | None = None
    age_bands: tuple[int, ...] = DEFAULT_AGE_BANDS
    compact_every: int = 50  # batches between compactions of the state deltas
    available_now: bool = False  # process what is there now (in batches), then stop
    kafka_options: dict[str, str] = field(default_factory=dict)

    @property
    def checkpoint_root(self) -> Path:
        return Path(self.sink_path) / CHECKPOINTS_DIR / "processor"

    @classmethod
    def from_job_config(cls, cfg: dict, **overrides: object) -> ProcessorConfig:
        kafka = cfg.get("kafka", {})
        topics = kafka.get("topics", {})
        proc = cfg.get("processing", {})
        values: dict[str, object] = {
            "bootstrap_servers": kafka.get("bootstrapServers", "localhost:9092"),
            "customers_topic": topics.get("customers", {}).get("name", "customers"),
            "transactions_topic": topics.get("transactions", {}).get("name", "transactions"),
            "sink_path": cfg.get("sink", {}).get("path", "/data/streampipeline"),
            "trigger_seconds": parse_duration(proc.get("trigger", "5s")),
            "watermark_seconds": parse_duration(proc.get("watermark", "30s")),
            "dedup_window_seconds": parse_duration(proc.get("deduplicationWindow", "1h")),
            "max_offsets_per_trigger": proc.get("maxOffsetsPerTrigger"),
            "age_bands": tuple(proc.get("ageBands", DEFAULT_AGE_BANDS)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_file(cls, path: str | Path, **overrides: object) -> ProcessorConfig:
        return cls.from_job_config(json.loads(Path(path).read_text()), **overrides)

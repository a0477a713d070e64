"""Generator settings, read from the JSON job config the operator writes.

One frozen dataclass so that a worker process receives exactly what its parent saw
(it is pickled across ``multiprocessing``) and nothing mutates it mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..durations import to_seconds

# Go-style durations ("5s", "1m30s") or plain seconds, as everywhere in StreamPipeline.
parse_duration = to_seconds


@dataclass(frozen=True)
class GeneratorConfig:
    """What one generator process produces, where to, and how fast."""

    bootstrap_servers: str
    customers_topic: str = "customers"
    transactions_topic: str = "transactions"
    rate_per_second: float = 0.0  # events/s for this process (split across workers); 0 = unthrottled
    customers: int = 1000  # customer population of this process (split across workers)
    locale: str = "pt_BR"
    seed: int = 42
    invalid_ratio: float = 0.02  # probability that an event is an injected invalid record
    max_lateness_seconds: float = 5.0  # event_time = now - uniform(0, max_lateness)
    records: int | None = None  # events to send (valid transactions + invalid records)
    duration_seconds: float | None = None
    instance: str = "0"  # distinct per replica/worker: goes into every id and the seed
    workers: int = 1
    customer_update_ratio: float = 0.002  # per event: chance that a customer moves (re-sent)
    linger_ms: int = 20
    batch_size: int = 1 << 20
    compression: str = "lz4"
    track_injected: bool = False  # keep a list of every injected record in the tally (tests)

    def __post_init__(self) -> None:
        """Fail at startup, not minutes into a run, on settings that cannot work."""
        if not self.bootstrap_servers:
            raise ValueError("bootstrap_servers is required")
        if self.rate_per_second < 0:
            raise ValueError("rate_per_second must be >= 0")
        if self.customers < 1:
            raise ValueError("customers must be >= 1")
        if not 0.0 <= self.invalid_ratio <= 1.0:
            raise ValueError("invalid_ratio must be within [0, 1]")
        if not 0.0 <= self.customer_update_ratio <= 1.0:
            raise ValueError("customer_update_ratio must be within [0, 1]")
        if self.max_lateness_seconds < 0:
            raise ValueError("max_lateness_seconds must be >= 0")
        if self.records is not None and self.records < 0:
            raise ValueError("records must be >= 0")
        if self.duration_seconds is not None and self.duration_seconds < 0:
            raise ValueError("duration_seconds must be >= 0")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.workers > self.customers:
            raise ValueError("workers must not exceed customers (each worker owns its customers)")
        if not self.instance or any(c in self.instance for c in '"\\\n'):
            raise ValueError(f"instance must be a non-empty plain string, got {self.instance!r}")

    @classmethod
    def from_job_config(cls, d: dict[str, Any], **overrides: Any) -> GeneratorConfig:
        """Build from the operator's camelCase job config; missing keys take the defaults.

        ``overrides`` (snake_case field names) win over the file, e.g. CLI flags.
        """
        kafka = d.get("kafka") or {}
        topics = kafka.get("topics") or {}
        gen = d.get("generator") or {}
        kw: dict[str, Any] = {}
        if "bootstrapServers" in kafka:
            kw["bootstrap_servers"] = kafka["bootstrapServers"]
        for role in ("customers", "transactions"):
            name = (topics.get(role) or {}).get("name")
            if name:
                kw[f"{role}_topic"] = name
        simple = {
            "ratePerSecond": ("rate_per_second", float),
            "customers": ("customers", int),
            "locale": ("locale", str),
            "seed": ("seed", int),
            "invalidRatio": ("invalid_ratio", float),
            "instance": ("instance", str),
            "workers": ("workers", int),
            "customerUpdateRatio": ("customer_update_ratio", float),
            "lingerMs": ("linger_ms", int),
            "batchSize": ("batch_size", int),
            "compression": ("compression", str),
        }
        for key, (name, conv) in simple.items():
            if gen.get(key) is not None:
                kw[name] = conv(gen[key])
        if gen.get("maxLateness") is not None:
            kw["max_lateness_seconds"] = parse_duration(gen["maxLateness"])
        if gen.get("records") is not None:
            kw["records"] = int(gen["records"])
        if gen.get("duration") is not None:
            kw["duration_seconds"] = parse_duration(gen["duration"])
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown GeneratorConfig fields: {sorted(unknown)}")
        kw.update({k: v for k, v in overrides.items() if v is not None})
        if "bootstrap_servers" not in kw:
            raise ValueError("kafka.bootstrapServers is missing (or pass bootstrap_servers)")
        return cls(**kw)

"""What one service instance serves, and its limits: one immutable value built once."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKEN_ENV = "STREAMPIPELINE_API_TOKEN"


@dataclass(frozen=True)
class ApiConfig:
    """The pipeline's Kafka and sink, the write token and the bounds on every request."""

    pipeline: str
    bootstrap_servers: str
    customers_topic: str
    transactions_topic: str
    sink: Path | None = None  # None: the dataset endpoints answer 503 (e.g. no volume mounted)
    token: str | None = None  # None: every write is refused (401), reads stay open
    max_body_bytes: int = 1 << 20
    max_batch: int = 500
    max_limit: int = 500
    max_response_bytes: int = 4 << 20
    kafka_timeout: float = 5.0
    sample_every: float = 2.0  # seconds between the dashboard's samples
    history: int = 600  # samples kept (20 minutes at 2 s)

    @property
    def topics(self) -> dict[str, str]:
        """Topic name -> record kind of the two pipeline topics (the only ones served)."""
        return {self.customers_topic: "customer", self.transactions_topic: "transaction"}

    @classmethod
    def from_job_config(cls, cfg: dict[str, Any], **overrides: Any) -> ApiConfig:
        """From the resolved job configuration (``StreamPipeline.to_job_config()``)."""
        topics = cfg["kafka"]["topics"]
        sink = cfg.get("sink", {}).get("path")
        values: dict[str, Any] = {
            "pipeline": str(cfg.get("name", "")),
            "bootstrap_servers": cfg["kafka"]["bootstrapServers"],
            "customers_topic": topics["customers"]["name"],
            "transactions_topic": topics["transactions"]["name"],
            "sink": Path(sink) if sink else None,
        }
        values.update(overrides)
        return cls(**values)


def token_from_env() -> str | None:
    """The write token from the environment (a Secret on Kubernetes), None when unset or blank."""
    value = os.environ.get(TOKEN_ENV, "").strip()
    return value or None


def new_token() -> str:
    """A fresh random token for a local run (printed once, never stored)."""
    return secrets.token_urlsafe(32)

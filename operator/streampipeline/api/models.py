"""Response documents, so the OpenAPI at ``/docs`` says exactly what each route returns
(and the schema fuzz can hold every response to it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    kafka: str


class PartitionOffsets(BaseModel):
    partition: int
    low: int
    high: int


class TopicInfo(BaseModel):
    kind: Literal["customer", "transaction"]
    partitions: list[PartitionOffsets]
    end_offset_total: int


class KafkaInfo(BaseModel):
    bootstrap_servers: str
    reachable: bool


class Progress(BaseModel):
    last_batch: int | None = None
    updated_at: str | None = None
    batch_seconds: float | None = None
    processed: dict[str, int]
    written: dict[str, int]
    quarantined: dict[str, int]
    offsets: dict[str, dict[str, int]]


class Status(BaseModel):
    pipeline: str
    kafka: KafkaInfo
    topics: dict[str, TopicInfo | None]
    processor: Progress | None = Field(
        description="the Spark job's last committed batch (null before the first)"
    )
    lag: dict[str, int]


class TopicSummary(BaseModel):
    name: str
    kind: Literal["customer", "transaction"]
    partitions: int | None = Field(description="null when the topic does not exist on the broker")


class Topics(BaseModel):
    topics: list[TopicSummary]


class Message(BaseModel):
    partition: int
    offset: int
    timestamp_ms: int | None
    timestamp: str | None
    key: str | None
    key_encoding: Literal["utf-8", "base64", "none"]
    value: str | None
    value_encoding: Literal["utf-8", "base64", "none"]


class Messages(BaseModel):
    topic: str
    start: str
    limit: int
    truncated: bool = Field(description="true when the response size bound stopped the read early")
    messages: list[Message]


class Delivery(BaseModel):
    partition: int
    offset: int
    key: str


class Produced(BaseModel):
    topic: str
    count: int
    records: list[Delivery]


class DatasetInfo(BaseModel):
    name: str
    filters: list[str]


class DatasetList(BaseModel):
    datasets: list[DatasetInfo]
    available: bool = Field(description="false when this instance has no access to the sink")


class Rows(BaseModel):
    dataset: str
    filters: dict[str, str]
    limit: int
    truncated: bool = Field(description="true when more rows match than were returned")
    rows: list[dict[str, Any]]


class Sample(BaseModel):
    t: float
    produced: int
    processed: int
    lag: int
    quarantined: int
    last_batch: int | None
    produced_per_s: float
    processed_per_s: float


class Timeseries(BaseModel):
    interval_seconds: float
    samples: list[Sample]


class LegacyStatus(BaseModel):
    status: Literal["ok", "unavailable"]
    kafka_connected: bool
    bootstrap_servers: str


class LegacyMessages(BaseModel):
    topic: str
    total: int
    mensagens: list[Any] = Field(description="each value parsed as JSON when it is JSON, else its text")


class LegacyPublished(BaseModel):
    status: Literal["ok"]
    topic: str
    partition: int
    offset: int


class Endpoints(BaseModel):
    service: str
    endpoints: list[str]

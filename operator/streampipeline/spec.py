"""The StreamPipeline custom resource: the single source of truth for its spec.

Every field is declared once, as a frozen dataclass field whose metadata carries a
:class:`~streampipeline.fields.FieldInfo` (a *kind* such as ``Int`` or ``Duration``, a
description and whether it is required; the framework is :mod:`streampipeline.fields`).
The same declarations drive

* parsing, defaulting and validation (:func:`load_manifest`, :func:`parse_spec`),
* serialisation (:meth:`StreamPipeline.to_manifest`, :meth:`StreamPipeline.to_job_config`),
* the CRD's structural OpenAPI v3 schema (:func:`openapi_schema`), and
* the field reference in ``docs/spec.md`` (:func:`markdown_reference`).

Validation never stops at the first problem: every error is collected and raised
together as one :class:`SpecError` whose ``errors`` are :class:`FieldError` objects
with a field path such as ``spec.generator.ratePerSecond``.

Defaulting follows Kubernetes' structural-schema semantics so that a manifest defaulted
by the API server and one defaulted here are identical: a default applies only when the
field is absent (an explicit ``null`` counts as absent); object fields default to ``{}``
so that their own fields are defaulted in turn; maps and lists are replaced, never merged.
"""

# spec_field() returns a dataclasses.Field, like dataclasses.field() itself:
# ruff: noqa: RUF009

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from spjobs.durations import parse_duration
from spjobs.kafka_time import LOG_APPEND_TIME, TIMESTAMP_TYPE

from .fields import (
    _INVALID,
    Bool,
    Duration,
    FieldError,
    FrozenMap,
    Int,
    ListOf,
    MapOf,
    Number,
    Obj,
    Quantity,
    SparkMemory,
    Str,
    _Errors,
    _Field,
    _schema_default,
    parse_quantity,
    parse_spark_memory,
    spec_field,
    spec_fields,
)
from .kubeyaml import MAX_BYTES, decode_manifest, load_document
from .locales import FAKER_LOCALES, FAKER_VERSION

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ApiSpec",
    "CustomersTopicSpec",
    "DriverMemoryEstimate",
    "DriverSpec",
    "ExecutorSpec",
    "FieldError",
    "FrozenMap",
    "GeneratorSpec",
    "KafkaSpec",
    "PipelineSpec",
    "ProcessingSpec",
    "ResourceList",
    "ResourcesSpec",
    "SinkSpec",
    "SpecError",
    "StreamPipeline",
    "TopicSpec",
    "TopicsSpec",
    "TransactionsTopicSpec",
    "VolumeSpec",
    "load_manifest",
    "markdown_reference",
    "memory_step",
    "openapi_schema",
    "parse_duration",
    "parse_quantity",
    "parse_spark_memory",
    "parse_spec",
]

# The driver's memory outside the JVM heap, measured in local mode (Python RSS against batch
# size and remembered ids; README, "Driver memory on Kubernetes"): Spark's own minimum for
# a JVM's non-heap memory (384 MiB) plus the Python runtime with pyspark, pyarrow and
# pandas loaded (192 MiB); then per record of a batch (collected, checked, settled and
# written: peak, not average) and per id in the deduplication window.
DRIVER_BASE_OVERHEAD_MIB: Final = 384 + 192
DRIVER_BYTES_PER_BATCH_ROW: Final = 1600
DRIVER_BYTES_PER_WINDOW_ID: Final = 180


def memory_step(mib: float) -> str:
    """A Spark memory size for ``mib``: the smallest of 768m, 1g, 1536m, 2g, 3g, 4g, 6g, ...
    that holds it (capped at 1024g, beyond any pod)."""
    step = 768
    while step < min(mib, 2**20):  # also ends for inf and nan
        step = step * 4 // 3 if step & (step - 1) else step * 3 // 2  # 2^k -> 1.5x, 1.5x -> 2^k
    return f"{step // 1024}g" if step % 1024 == 0 else f"{step}m"


@dataclass(frozen=True)
class DriverMemoryEstimate:
    """The Spark driver's memory outside its JVM heap: estimated need against what it gets."""

    needed_mib: float  # without the window when its size is unknown (window_ids None)
    configured_mib: float  # memoryOverhead, or Spark's default for a Python job
    explicit: bool  # memoryOverhead is set
    batch_records: int
    window_ids: float | None  # None: ratePerSecond 0 ("as fast as possible"): unknown

    @property
    def sufficient(self) -> bool | None:
        """Whether the configured overhead holds the estimate; None if the window is unknown."""
        if self.configured_mib < self.needed_mib:
            return False  # short even without the window
        return None if self.window_ids is None else True

    @property
    def suggestion(self) -> str:
        """A ``memoryOverhead`` value that holds the estimate."""
        return memory_step(self.needed_mib)


GROUP: Final = "streampipeline.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "StreamPipeline"
PLURAL: Final = "streampipelines"
DEFAULT_NAMESPACE: Final = "default"
MAX_NAME_LENGTH: Final = 40
# The API server's limit on metadata.annotations (keys and values, in bytes, together).
MAX_ANNOTATIONS_BYTES: Final = 256 * 1024

# --- errors ---------------------------------------------------------------------------


class SpecError(ValueError):
    """An invalid StreamPipeline; ``errors`` lists every problem found."""

    def __init__(self, errors: Iterable[FieldError], source: str | None = None) -> None:
        self.errors: list[FieldError] = list(errors)
        self.source = source
        n = len(self.errors)
        where = f" in {source}" if source else ""
        lines = [f"invalid {KIND}{where}: {n} error{'' if n == 1 else 's'}"]
        lines += [f"  - {e}" for e in self.errors]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        return (SpecError, (self.errors, self.source))

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.errors]

    def __str__(self) -> str:
        return str(self.args[0])


# --- patterns and checks ----------------------------------------------------------------

DNS1123_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUB = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
DNS1123_SUBDOMAIN: Final = rf"^{_DNS1123_SUB}$"
TOPIC_NAME: Final = r"^[a-zA-Z0-9._-]{1,249}$"
_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)"
BOOTSTRAP_SERVERS: Final = rf"^{_HOST}:[0-9]{{1,5}}(,{_HOST}:[0-9]{{1,5}})*$"
ABSOLUTE_PATH: Final = r"^/[^\x00]+$"
KAFKA_CONFIG_KEY: Final = r"^[a-z0-9]+([._-][a-z0-9]+)*$"
# A qualified name as the API server checks label and annotation keys: an optional DNS
# subdomain prefix (<= 253) and '/', then a name of <= 63 characters (Python regex only).
_LABEL_KEY = (
    rf"^((?=[^/]{{1,253}}/){_DNS1123_SUB}/)?(?=[^/]{{1,63}}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"

_DNS_LABEL_DESC = (
    "a DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)"
)
_DNS_SUBDOMAIN_DESC = "a DNS-1123 subdomain (lower-case letters, digits, '-' and '.')"


def _check_topic_name(name: str) -> str | None:
    return "must not be '.' or '..'" if name in (".", "..") else None


def _check_ports(servers: str) -> str | None:
    for server in servers.split(","):
        port = int(server.rsplit(":", 1)[1])
        if not 1 <= port <= 65535:
            return f"port must be 1..65535, got {port} in {server!r}"
    return None


def _check_sink_path(path: str) -> str | None:
    if path.rstrip("/") == "":
        return "must not be the root directory"
    if ".." in path.split("/"):
        return f"must not contain '..' segments, got {path!r}"
    return None


def _check_ascending(bands: tuple) -> str | None:
    for lower, upper in itertools.pairwise(bands):
        if upper <= lower:
            return f"must be strictly ascending, got {list(bands)} ({upper} after {lower})"
    return None


def _dns_label(max_length: int = 63, reason: str = "") -> Str:
    return Str(DNS1123_LABEL, _DNS_LABEL_DESC, min_length=1, max_length=max_length, length_reason=reason)


def _dns_subdomain() -> Str:
    return Str(DNS1123_SUBDOMAIN, _DNS_SUBDOMAIN_DESC, min_length=1, max_length=253)


def _kafka_config_kind() -> MapOf:
    return MapOf(
        Str(),
        key_pattern=KAFKA_CONFIG_KEY,
        key_desc="a Kafka topic config name such as 'retention.ms'",
    )


# --- the spec ---------------------------------------------------------------------------

_TOPIC_NAME_KIND: Final = Str(
    TOPIC_NAME,
    "a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)",
    min_length=1,
    max_length=249,
    check=_check_topic_name,
    check_desc="not `.` or `..`",
    check_cel=(("self != '.' && self != '..'", "must not be '.' or '..'"),),
)


_RENAME: Final = "a Kafka topic cannot be renamed"


def kafka_topic_collision_key(name: str) -> str:
    """Kafka refuses a topic whose name equals an existing one's with '.' and '_' swapped
    (metric names would collide)."""
    return name.replace(".", "_")


@dataclass(frozen=True)
class TopicSpec:
    """One Kafka topic (a Strimzi ``KafkaTopic``). Subclasses fix the role and the config default."""

    ROLE: ClassVar[str] = ""

    name: str | None = spec_field(
        _TOPIC_NAME_KIND, "Kafka topic name.", transition="immutable", transition_reason=_RENAME
    )
    partitions: int = spec_field(
        Int(1, 1000),
        "Number of partitions.",
        default=3,
        transition="grow",
        transition_reason="Kafka cannot remove partitions from a topic",
    )
    replicas: int = spec_field(
        Int(1, 10),
        "Replication factor. 1 suits a single-broker development cluster; use 3 in production. "
        "Strimzi changes it on an existing topic only with Cruise Control; without it the "
        "KafkaTopic stays not ready (TopicsReady says why).",
        default=1,
    )
    config: FrozenMap = spec_field(
        _kafka_config_kind(),
        "Kafka topic configs (string values: quote numbers). Replaces the default map as a whole.",
        default=FrozenMap(),
    )

    # The job measures deduplication, enrichment and lateness in Kafka time, so a topic
    # must carry the broker's clock (see spjobs.kafka_time); the same rule as CEL for the CRD.
    CEL: ClassVar = (
        (
            f"!has(self.config) || !('{TIMESTAMP_TYPE}' in self.config) || "
            f"self.config['{TIMESTAMP_TYPE}'] == '{LOG_APPEND_TIME}'",
            "config",
            f"{TIMESTAMP_TYPE} must be {LOG_APPEND_TIME} (the broker's clock: producers must not "
            f"steer the job's time); remove it, the pipeline's topics always use {LOG_APPEND_TIME}",
        ),
    )

    def _problems(self) -> Iterator[tuple[str, str]]:
        stamped = self.config.get(TIMESTAMP_TYPE, LOG_APPEND_TIME)
        if stamped != LOG_APPEND_TIME:
            yield (
                "config",
                f"{TIMESTAMP_TYPE} must be {LOG_APPEND_TIME} (the broker's clock: producers must not "
                f"steer the job's time), got {stamped!r}; remove it, the pipeline's topics always "
                f"use {LOG_APPEND_TIME}",
            )

    def resolved_name(self, pipeline_name: str) -> str:
        """``name`` if set, else ``<pipeline name>-<role>``."""
        return self.name or f"{pipeline_name}-{self.ROLE}"


@dataclass(frozen=True)
class CustomersTopicSpec(TopicSpec):
    """The compacted customers topic (key = customer_id, latest version wins)."""

    ROLE: ClassVar[str] = "customers"

    name: str | None = spec_field(
        _TOPIC_NAME_KIND,
        "Kafka topic name.",
        computed_default="`<metadata.name>-customers`",
        transition="immutable",
        transition_reason=_RENAME,
    )
    config: FrozenMap = spec_field(
        _kafka_config_kind(),
        "Kafka topic configs (string values: quote numbers). Replaces the default map as a whole, "
        "so keep `cleanup.policy: compact` when overriding it.",
        default=FrozenMap({"cleanup.policy": "compact"}),
    )


@dataclass(frozen=True)
class TransactionsTopicSpec(TopicSpec):
    """The transactions topic (an append-only event stream)."""

    ROLE: ClassVar[str] = "transactions"

    name: str | None = spec_field(
        _TOPIC_NAME_KIND,
        "Kafka topic name.",
        computed_default="`<metadata.name>-transactions`",
        transition="immutable",
        transition_reason=_RENAME,
    )
    config: FrozenMap = spec_field(
        _kafka_config_kind(),
        "Kafka topic configs (string values: quote numbers). Replaces the default map as a whole.",
        default=FrozenMap({"retention.ms": "604800000"}),
    )


@dataclass(frozen=True)
class TopicsSpec:
    """The pipeline's two input topics."""

    customers: CustomersTopicSpec = spec_field(
        Obj(CustomersTopicSpec), "Customer records (compacted).", default_factory=CustomersTopicSpec
    )
    transactions: TransactionsTopicSpec = spec_field(
        Obj(TransactionsTopicSpec), "Transaction events.", default_factory=TransactionsTopicSpec
    )


@dataclass(frozen=True)
class KafkaSpec:
    """Where the topics live."""

    cluster: str = spec_field(
        _dns_label(47, " ('<cluster>-kafka-bootstrap' must fit in 63)"),
        "Name of the Strimzi `Kafka` cluster (in the pipeline's namespace) that hosts the topics.",
        required=True,
        transition="immutable",
        transition_reason="the topics live in that Kafka cluster (create a new StreamPipeline instead)",
    )
    bootstrap_servers: str | None = spec_field(
        Str(
            BOOTSTRAP_SERVERS,
            "a comma-separated list of host:port",
            check=_check_ports,
            check_desc="ports 1..65535",
            max_length=2048,
            check_cel=(
                (  # a port of 0 or above 65535 (at most 5 digits: the pattern), then ',' or the end
                    "!self.matches(':(0+|6553[6-9]|655[4-9][0-9]|65[6-9][0-9]{2}|6[6-9][0-9]{3}|[7-9][0-9]{4})(,|$)')",
                    "ports must be 1..65535",
                ),
            ),
        ),
        "Kafka bootstrap servers the generator and the Spark job connect to.",
        computed_default="`<cluster>-kafka-bootstrap:9092` (Strimzi's plain listener)",
    )
    topics: TopicsSpec = spec_field(Obj(TopicsSpec), "The input topics.", default_factory=TopicsSpec)

    def resolved_bootstrap_servers(self) -> str:
        """``bootstrapServers`` if set, else Strimzi's in-namespace bootstrap service."""
        return self.bootstrap_servers or f"{self.cluster}-kafka-bootstrap:9092"


@dataclass(frozen=True)
class ResourceList:
    """CPU and memory amounts (a subset of a Kubernetes ResourceList)."""

    cpu: str | None = spec_field(Quantity(), "CPU, e.g. `100m` or `1`.")
    memory: str | None = spec_field(Quantity(memory=True), "Memory, e.g. `128Mi` or `1Gi`.")


@dataclass(frozen=True)
class ResourcesSpec:
    """Kubernetes ResourceRequirements (cpu and memory only)."""

    requests: ResourceList = spec_field(
        Obj(ResourceList, omit_none=True), "Guaranteed resources.", default_factory=ResourceList
    )
    limits: ResourceList = spec_field(
        Obj(ResourceList, omit_none=True),
        "Hard caps; each must be >= its request.",
        default_factory=ResourceList,
    )

    CEL: ClassVar = tuple(
        (
            f"!has(self.requests) || !has(self.limits) || !has(self.requests.{r}) || "
            f"!has(self.limits.{r}) || "
            f"quantity(string(self.limits.{r})).compareTo(quantity(string(self.requests.{r}))) >= 0",
            f"limits.{r}",
            f"must be >= requests.{r}",
        )
        for r in ("cpu", "memory")
    )

    def _problems(self) -> Iterator[tuple[str, str]]:
        for resource in ("cpu", "memory"):
            request, limit = getattr(self.requests, resource), getattr(self.limits, resource)
            if request is not None and limit is not None and parse_quantity(limit) < parse_quantity(request):
                yield f"limits.{resource}", f"must be >= requests.{resource} ({request}), got {limit!r}"

    def to_k8s(self) -> dict[str, dict[str, str]]:
        """As a Kubernetes ``resources`` block (unset amounts left out)."""
        return Obj(ResourcesSpec).plain(self, keep_none=False)


DEFAULT_GENERATOR_RESOURCES: Final = ResourcesSpec(
    requests=ResourceList(cpu="100m", memory="128Mi"), limits=ResourceList(memory="512Mi")
)


@dataclass(frozen=True)
class GeneratorSpec:
    """The data generator Deployment."""

    replicas: int = spec_field(Int(0, 100), "Generator pods; 0 pauses data generation.", default=1)
    rate_per_second: float = spec_field(
        Number(0, 1_000_000),
        "Transactions per second produced by each replica; 0 means as fast as possible.",
        default=100.0,
    )
    customers: int = spec_field(
        Int(1, 10_000_000), "Number of simulated customers (distinct customer ids).", default=1000
    )
    locale: str = spec_field(
        Str(
            enum=FAKER_LOCALES,
            enum_desc=f"a locale such as 'pt_BR' or 'en_US' that Faker {FAKER_VERSION} has",
        ),
        "Faker locale for names, cities and states.",
        default="pt_BR",
    )
    seed: int = spec_field(Int(0, 2**32 - 1), "Random seed, for reproducible data.", default=42)
    invalid_ratio: float = spec_field(
        Number(0, 1),
        "Fraction of records deliberately made invalid, to exercise the quarantine.",
        default=0.02,
    )
    max_lateness: str = spec_field(
        Duration(),
        "How far behind the wall clock an event's event_time may be (simulated late data).",
        default="5s",
    )
    resources: ResourcesSpec = spec_field(
        Obj(ResourcesSpec),
        "CPU/memory requests and limits of each generator pod. Replaces the default as a whole.",
        default=DEFAULT_GENERATOR_RESOURCES,
    )


@dataclass(frozen=True)
class DriverSpec:
    """The Spark driver."""

    cores: int = spec_field(Int(1, 64), "Driver cores (`spark.driver.cores`).", default=1)
    memory: str = spec_field(SparkMemory(), "Driver heap (`spark.driver.memory`).", default="1g")
    memory_overhead: str | None = spec_field(
        SparkMemory(minimum="1m"),
        "Driver memory outside the JVM heap (`spark.driver.memoryOverhead`): the JVM's own "
        "non-heap memory and the Python process, which holds each batch and the deduplication "
        "window's ids. Unset: Spark's default (for Python jobs on Kubernetes 40% of `memory`, "
        "at least 384 MiB). The status condition `DriverMemorySufficient` compares it with "
        "an estimate (576 MiB + 1,600 B per record of a full batch + 180 B per id in the "
        "window) and says what to set; `streampipeline validate` prints the same.",
    )


@dataclass(frozen=True)
class ExecutorSpec:
    """The Spark executors (ignored by the local runner, which runs Spark in local mode)."""

    instances: int = spec_field(Int(1, 100), "Executor pods (`spark.executor.instances`).", default=1)
    cores: int = spec_field(Int(1, 64), "Cores per executor (`spark.executor.cores`).", default=1)
    memory: str = spec_field(SparkMemory(), "Heap per executor (`spark.executor.memory`).", default="1g")


@dataclass(frozen=True)
class ProcessingSpec:
    """The Spark Structured Streaming job."""

    trigger: str = spec_field(Duration(minimum="100ms"), "Micro-batch interval.", default="5s")
    watermark: str = spec_field(
        Duration(),
        "Event-time lateness bound: a transaction whose event_time is more than this before the "
        "latest event time of the valid transactions of earlier batches (each counted at most as "
        "its Kafka timestamp, so one event stamped in the future cannot move it) is flagged "
        "is_late (it is still written and aggregated).",
        default="30s",
    )
    deduplication_window: str = spec_field(
        Duration(minimum="1s"),
        "How long a transaction id is remembered, in Kafka time: a record whose id was "
        "accepted less than this before it is quarantined as duplicate_transaction_id; older "
        "ids are forgotten (up to 1/16 later), which bounds the job's state. Each remembered "
        "id costs about 180 bytes of driver memory: ratePerSecond x replicas x window.",
        default="1h",
    )
    max_offsets_per_trigger: int = spec_field(
        Int(1, 2**31 - 1),
        "Upper bound on transaction records read per micro-batch. A batch is collected on the "
        "Spark driver after validation, so this also bounds the driver's memory per batch.",
        default=100_000,
    )
    age_bands: tuple[int, ...] = spec_field(
        ListOf(
            Int(1, 150),
            min_items=1,
            max_items=10,
            check=_check_ascending,
            check_desc="strictly ascending",
            check_cel=(
                (
                    "[1, 2, 3, 4, 5, 6, 7, 8, 9].all(i, i >= size(self) || self[i - 1] < self[i])",
                    "must be strictly ascending",
                ),
            ),
        ),
        "Age cut-offs in years; n cut-offs make n+1 bands (the default gives <30, 30-59, 60+).",
        default=(30, 60),
    )
    driver: DriverSpec = spec_field(Obj(DriverSpec), "Spark driver.", default_factory=DriverSpec)
    executor: ExecutorSpec = spec_field(Obj(ExecutorSpec), "Spark executors.", default_factory=ExecutorSpec)


@dataclass(frozen=True)
class VolumeSpec:
    """The PersistentVolumeClaim that holds the sink."""

    size: str = spec_field(Quantity(positive=True), "Requested storage.", default="10Gi")
    storage_class_name: str | None = spec_field(
        Str(
            rf"^({_DNS1123_SUB})?$",
            "empty or " + _DNS_SUBDOMAIN_DESC,
            max_length=253,
        ),
        'StorageClass; unset uses the cluster default, "" disables dynamic provisioning.',
    )
    existing_claim: str | None = spec_field(
        _dns_subdomain(),
        "Use this existing PVC instead of creating one (`size` and `storageClassName` are then ignored).",
    )


@dataclass(frozen=True)
class SinkSpec:
    """Where the Parquet output goes."""

    path: str = spec_field(
        Str(
            ABSOLUTE_PATH,
            "an absolute path",
            check=_check_sink_path,
            check_desc="not `/`, no `..`",
            check_cel=(
                ("self.matches('[^/]')", "must not be the root directory"),
                ("!self.matches('(^|/)[.][.](/|$)')", "must not contain '..' segments"),
            ),
        ),
        "Directory (the volume's mount point) for the Parquet datasets and checkpoints.",
        default="/data/streampipeline",
    )
    volume: VolumeSpec = spec_field(Obj(VolumeSpec), "Storage for `path`.", default_factory=VolumeSpec)
    retain_on_delete: bool = spec_field(
        Bool(),
        "Keep the volume and the two Kafka topics (the checkpoint on the volume refers to their "
        "offsets) when the StreamPipeline is deleted: re-created, it resumes where it stopped.",
        default=True,
    )


DEFAULT_API_RESOURCES: Final = ResourcesSpec(
    requests=ResourceList(cpu="50m", memory="128Mi"), limits=ResourceList(memory="512Mi")
)
API_TOKEN_KEY: Final = "token"  # the key of spec.api.tokenSecretName's Secret


@dataclass(frozen=True)
class ApiSpec:
    """The REST service and dashboard (``streampipeline api``): a Deployment and a Service."""

    enabled: bool = spec_field(
        Bool(),
        "Deploy the REST service and dashboard for this pipeline (`<name>-api`: a Deployment and a "
        "ClusterIP Service on port 8000). It keeps serving while `suspend` is true.",
        default=False,
    )
    replicas: int = spec_field(
        Int(1, 10),
        "API pods. Reads are by offset with no consumer group, so replicas answer alike.",
        default=1,
    )
    token_secret_name: str | None = spec_field(
        _dns_subdomain(),
        f"Secret (in the pipeline's namespace) whose key `{API_TOKEN_KEY}` is the bearer token for "
        "writes (POST). Unset: the service is read-only, every write is refused (401). The pod "
        "does not start until the Secret exists.",
    )
    mount_sink: bool = spec_field(
        Bool(),
        "Mount the sink's claim (read-only) for the dataset endpoints. Needs "
        "`sink.volume.existingClaim` naming a ReadWriteMany claim: the claim the operator creates is "
        "ReadWriteOnce and the Spark driver's. False: Kafka endpoints only (datasets answer 503).",
        default=False,
    )
    resources: ResourcesSpec = spec_field(
        Obj(ResourcesSpec),
        "CPU/memory requests and limits of each API pod. Replaces the default as a whole.",
        default=DEFAULT_API_RESOURCES,
    )


@dataclass(frozen=True)
class PipelineSpec:
    """Desired state of a StreamPipeline: Kafka topics, a data generator and a Spark
    Structured Streaming job that writes Parquet."""

    kafka: KafkaSpec = spec_field(Obj(KafkaSpec), "Kafka cluster and topics.", required=True)
    generator: GeneratorSpec = spec_field(
        Obj(GeneratorSpec), "Data generator.", default_factory=GeneratorSpec
    )
    processing: ProcessingSpec = spec_field(
        Obj(ProcessingSpec), "Spark streaming job.", default_factory=ProcessingSpec
    )
    sink: SinkSpec = spec_field(Obj(SinkSpec), "Parquet output.", default_factory=SinkSpec)
    suspend: bool = spec_field(
        Bool(), "Stop the generator and the Spark job, keeping topics and data.", default=False
    )
    api: ApiSpec = spec_field(Obj(ApiSpec), "REST service and dashboard.", default_factory=ApiSpec)

    CEL: ClassVar = (
        (
            "!self.api.mountSink || has(self.sink.volume.existingClaim)",
            "api.mountSink",
            "needs spec.sink.volume.existingClaim (a ReadWriteMany claim)",
        ),
    )

    def _problems(self) -> Iterator[tuple[str, str]]:
        if self.api.mount_sink and not self.sink.volume.existing_claim:
            yield (
                "api.mountSink",
                "needs spec.sink.volume.existingClaim (a ReadWriteMany claim): the claim the "
                "operator creates is ReadWriteOnce and mounted by the Spark driver",
            )


# --- the manifest -----------------------------------------------------------------------

_NAME_KIND: Final = _dns_label(MAX_NAME_LENGTH, " (child resource names append suffixes)")
_NAMESPACE_KIND: Final = _dns_label()

# ObjectMeta fields the API server fills in; accepted (e.g. from `kubectl get -o yaml`) and dropped.
_SERVER_METADATA: Final = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "finalizers",
        "ownerReferences",
        "managedFields",
        "selfLink",
        "generateName",
    }
)


@dataclass(frozen=True)
class _Metadata:
    name: str = spec_field(_NAME_KIND, "Pipeline name.", required=True)
    namespace: str | None = spec_field(_NAMESPACE_KIND, "Namespace.")
    labels: FrozenMap = spec_field(
        MapOf(
            Str(_LABEL_VALUE, "a label value (<= 63 of A-Z a-z 0-9 - _ .)", max_length=63),
            key_pattern=_LABEL_KEY,
            key_desc="a label key such as 'app.kubernetes.io/part-of'",
        ),
        "Labels.",
        default=FrozenMap(),
    )
    annotations: FrozenMap = spec_field(
        MapOf(Str(), key_pattern=_LABEL_KEY, key_desc="an annotation key such as 'example.com/owner'"),
        "Annotations.",
        default=FrozenMap(),
    )

    def _problems(self) -> Iterator[tuple[str, str]]:
        size = sum(len(k.encode()) + len(v.encode()) for k, v in self.annotations.items())
        if size > MAX_ANNOTATIONS_BYTES:
            yield (
                "annotations",
                (
                    f"must total at most {MAX_ANNOTATIONS_BYTES} bytes (keys and values), "
                    f"got {size}: the API server refuses more"
                ),
            )


@dataclass(frozen=True)
class _Manifest:
    api_version: str = spec_field(Str(enum=(API_VERSION,)), "API version.", required=True)
    kind: str = spec_field(Str(enum=(KIND,)), "Kind.", required=True)
    metadata: _Metadata = spec_field(Obj(_Metadata, ignored=_SERVER_METADATA), "Metadata.", required=True)
    spec: PipelineSpec = spec_field(Obj(PipelineSpec), "Spec.", required=True)


_MANIFEST_KIND: Final = Obj(_Manifest, ignored=frozenset({"status"}))
SPEC_KIND: Final = Obj(PipelineSpec)


@dataclass(frozen=True)
class StreamPipeline:
    """A validated, fully defaulted StreamPipeline."""

    name: str
    namespace: str
    spec: PipelineSpec
    labels: FrozenMap = FrozenMap()
    annotations: FrozenMap = FrozenMap()

    @property
    def bootstrap_servers(self) -> str:
        return self.spec.kafka.resolved_bootstrap_servers()

    @property
    def customers_topic(self) -> str:
        return self.spec.kafka.topics.customers.resolved_name(self.name)

    @property
    def transactions_topic(self) -> str:
        return self.spec.kafka.topics.transactions.resolved_name(self.name)

    def driver_memory(self) -> DriverMemoryEstimate:
        """What the Spark driver needs outside its JVM heap on Kubernetes, and what it gets.

        The pod's memory limit is heap + ``memoryOverhead``, and the overhead must hold the
        JVM's own non-heap memory and the whole Python process, with a collected batch and
        the deduplication window's ids. Spark's default (40% of the heap, at least 384 MiB)
        is less than the example's Python process alone once its window has filled, and a
        driver killed for memory rebuilds the same window when it restarts: a crash loop.
        The operator reports this as a condition; it does not size the pod itself, because
        the window outlives a change of rate (a lower rate would shrink the pod below the
        window it still has to rebuild).
        """
        g, proc = self.spec.generator, self.spec.processing
        # Each generator pod has its own customer population, and the first batch (or the
        # first after a rollout) carries every customer version: customers are not capped.
        batch = proc.max_offsets_per_trigger + g.customers * max(g.replicas, 1)
        ids: float | None = None
        if g.rate_per_second > 0 or g.replicas == 0:
            window_s = parse_duration(proc.deduplication_window)
            ids = g.rate_per_second * g.replicas * (1 - g.invalid_ratio) * window_s * 17 / 16
        needed = (
            DRIVER_BASE_OVERHEAD_MIB
            + (batch * DRIVER_BYTES_PER_BATCH_ROW + (ids or 0) * DRIVER_BYTES_PER_WINDOW_ID) / 2**20
        )
        explicit = proc.driver.memory_overhead
        if explicit:
            configured = parse_spark_memory(explicit) / 2**20
        else:  # Spark's default for a Python job on Kubernetes
            configured = max(0.4 * parse_spark_memory(proc.driver.memory) / 2**20, 384.0)
        return DriverMemoryEstimate(needed, configured, bool(explicit), batch, ids)

    def to_manifest(self) -> dict[str, Any]:
        """The fully defaulted manifest (computed defaults stay implicit); it round-trips
        through :func:`load_manifest`."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": metadata,
            "spec": SPEC_KIND.plain(self.spec, keep_none=False),
        }

    def to_job_config(self) -> dict[str, Any]:
        """The JSON-serialisable config the generator and the Spark job read: camelCase,
        every field present (unset optional fields as ``None``), computed defaults resolved,
        durations as written ("5s"); ``suspend`` and ``api`` are left out (not the jobs' business)."""
        spec = SPEC_KIND.plain(self.spec, keep_none=True)
        del spec["suspend"], spec["api"]
        kafka = spec["kafka"]
        kafka["bootstrapServers"] = self.bootstrap_servers
        kafka["topics"]["customers"]["name"] = self.customers_topic
        kafka["topics"]["transactions"]["name"] = self.transactions_topic
        return {"name": self.name, "namespace": self.namespace, **spec}


def _finish(
    name: Any, namespace: str, spec: Any, labels: Any, annotations: Any, errs: _Errors, source: str | None
) -> StreamPipeline:
    pipeline = None
    if not any(part is _INVALID for part in (name, namespace, spec, labels, annotations)):
        pipeline = StreamPipeline(name, namespace, spec, labels, annotations)
        customers, transactions = pipeline.customers_topic, pipeline.transactions_topic
        if customers == transactions:
            errs.add(
                "spec.kafka.topics.transactions.name",
                f"must differ from the customers topic, both are {customers!r}",
            )
        elif kafka_topic_collision_key(customers) == kafka_topic_collision_key(transactions):
            errs.add(
                "spec.kafka.topics.transactions.name",
                f"collides with the customers topic {customers!r}: Kafka treats '.' and '_' "
                f"as the same in topic names and refuses the second one, got {transactions!r}",
            )
    if errs.items or pipeline is None:
        raise SpecError(errs.items, source)
    return pipeline


def check_update(old: StreamPipeline, new: StreamPipeline) -> None:
    """Raise :class:`SpecError` if the update ``old`` -> ``new`` breaks a transition rule
    (immutable and grow-only fields): what the CRD's CEL transition rules refuse."""
    errors = list(SPEC_KIND.transition_errors(old.spec, new.spec, "spec"))
    if errors:
        raise SpecError(errors)


def parse_spec(
    name: str, spec: Mapping[str, Any] | None, namespace: str = DEFAULT_NAMESPACE
) -> StreamPipeline:
    """Validate a custom resource's ``spec`` (e.g. kopf's ``spec`` argument).

    Raises :class:`SpecError` listing every problem, including a bad ``name``/``namespace``.
    """
    errs = _Errors()
    parsed_name = _NAME_KIND.parse(name, "metadata.name", errs, None)
    parsed_namespace = _NAMESPACE_KIND.parse(namespace, "metadata.namespace", errs, None)
    if spec is None:
        errs.add("spec", "required field is missing")
        parsed_spec = _INVALID
    else:
        parsed_spec = SPEC_KIND.parse(spec, "spec", errs, None)
    return _finish(parsed_name, parsed_namespace, parsed_spec, FrozenMap(), FrozenMap(), errs, None)


def load_manifest(
    source: str | Path | Mapping[str, Any], *, default_namespace: str = DEFAULT_NAMESPACE
) -> StreamPipeline:
    """Load a StreamPipeline manifest from a file path, YAML text or an already-parsed dict.

    A ``str`` is YAML text if it spans several lines or looks like a mapping, else a path;
    YAML is read as kubectl reads it (:mod:`streampipeline.kubeyaml`).
    ``default_namespace`` applies when ``metadata.namespace`` is absent.  Raises
    :class:`SpecError` (with line numbers when the input was YAML) for bytes that are not
    UTF-8/UTF-16 text, malformed YAML, several documents, an empty document and every
    invalid field; ``OSError`` if a file cannot be read (a directory, no permission...).
    """
    errs = _Errors()
    label: str | None = None
    if isinstance(source, Mapping):
        raw: Any = source
    elif isinstance(source, (str, Path)):
        if isinstance(source, Path) or not _looks_like_yaml(source):
            label = str(source)
            with Path(source).open("rb") as file:
                text = decode_manifest(file.read(MAX_BYTES + 1), errs)
        else:
            text = source
        raw = _INVALID if text is _INVALID else load_document(text, errs, KIND)
        if raw is _INVALID:
            raise SpecError(errs.items, label)
    else:
        raise TypeError(f"load_manifest() takes a path, YAML text or a dict, not {type(source).__name__}")
    manifest = _MANIFEST_KIND.parse(raw, "", errs, None)
    if manifest is _INVALID:
        raise SpecError(errs.items, label)
    meta = manifest.metadata
    namespace = meta.namespace or default_namespace
    return _finish(meta.name, namespace, manifest.spec, meta.labels, meta.annotations, errs, label)


def _looks_like_yaml(text: str) -> bool:
    stripped = text.strip()
    if not stripped or "\n" in stripped or ": " in stripped or stripped.endswith(":"):
        return True
    return stripped[:1] in ("{", "[", "-", "#")


# --- generated artefacts ----------------------------------------------------------------


def openapi_schema() -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``spec`` for the CRD (``properties.spec``).

    Checks that a schema cannot express (ascending ``ageBands``, minimum trigger and Spark
    memory, limits >= requests, distinct topic names...) are enforced by :func:`parse_spec`.
    """
    schema = SPEC_KIND.schema()
    return {"description": _first_paragraph(PipelineSpec.__doc__), **copy.deepcopy(schema)}


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _default_text(f: _Field) -> str:
    if f.info.required:
        return "**required**"
    if f.info.computed_default:
        return f.info.computed_default
    default = _schema_default(f)
    if default is MISSING:
        return "unset"
    if default == {}:
        return "`{}`"
    return f"`{json.dumps(default)}`"


def _reference_rows(cls: type, prefix: str) -> Iterator[str]:
    for f in spec_fields(cls):
        path = f"{prefix}.{f.yaml}"
        constraints = "; ".join(f.kind.constraints()) or ""
        cells = [f"`{path}`", f.kind.type_name, _default_text(f), constraints, f.info.doc]
        yield "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
        if isinstance(f.kind, Obj):
            yield from _reference_rows(f.kind.cls, path)


def markdown_reference() -> str:
    """The field table of ``docs/spec.md`` (a test keeps the two identical)."""
    header = ["| Field | Type | Default | Constraints | Meaning |", "|---|---|---|---|---|"]
    return "\n".join([*header, *_reference_rows(PipelineSpec, "spec")]) + "\n"


if __name__ == "__main__":  # python -m streampipeline.spec [schema|markdown]
    import sys

    if sys.argv[1:] == ["markdown"]:
        print(markdown_reference(), end="")
    else:
        print(json.dumps(openapi_schema(), indent=2, ensure_ascii=False))

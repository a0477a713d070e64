"""Tests of streampipeline.spec: parsing, defaults, validation, serialisation, schema."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from spjobs.durations import DURATION_PATTERN, is_duration, parse_duration
from streampipeline import spec as sp
from streampipeline.spec import (
    API_VERSION,
    KIND,
    FieldError,
    KafkaSpec,
    PipelineSpec,
    SpecError,
    StreamPipeline,
    load_manifest,
    markdown_reference,
    openapi_schema,
    parse_quantity,
    parse_spark_memory,
    parse_spec,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "k8s" / "examples" / "pipeline.yaml"
DOCS = ROOT / "docs" / "spec.md"

DELETE = object()


def minimal() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "payments"},
        "spec": {"kafka": {"cluster": "dev-cluster"}},
    }


def manifest(**changes: Any) -> dict[str, Any]:
    """The minimal manifest with changes; keys are '/'-separated paths (dots occur in
    Kafka config names), values are set (creating parents) or DELETEd."""
    doc = minimal()
    for dotted, value in changes.items():
        *parents, last = dotted.split("/")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


def errors_of(source: Any) -> list[FieldError]:
    with pytest.raises(SpecError) as info:
        load_manifest(source)
    return info.value.errors


# --- defaults ---------------------------------------------------------------------------


def test_defaults_of_a_minimal_manifest():
    p = load_manifest(minimal())
    assert (p.name, p.namespace) == ("payments", "default")
    s = p.spec
    assert s.kafka.cluster == "dev-cluster"
    assert s.kafka.bootstrap_servers is None  # computed, not stored
    assert p.bootstrap_servers == "dev-cluster-kafka-bootstrap:9092"
    assert s.kafka.topics.customers.name is None
    assert (p.customers_topic, p.transactions_topic) == ("payments-customers", "payments-transactions")
    for topic in (s.kafka.topics.customers, s.kafka.topics.transactions):
        assert (topic.partitions, topic.replicas) == (3, 1)
    assert s.kafka.topics.customers.config == {"cleanup.policy": "compact"}
    assert s.kafka.topics.transactions.config == {"retention.ms": "604800000"}
    g = s.generator
    assert (g.replicas, g.rate_per_second, g.customers, g.locale, g.seed) == (1, 100.0, 1000, "pt_BR", 42)
    assert (g.invalid_ratio, g.max_lateness) == (0.02, "5s")
    assert g.resources.to_k8s() == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    pr = s.processing
    assert (pr.trigger, pr.watermark, pr.max_offsets_per_trigger, pr.age_bands) == (
        "5s",
        "30s",
        100_000,
        (30, 60),
    )
    assert pr.deduplication_window == "1h"
    assert (pr.driver.cores, pr.driver.memory, pr.driver.memory_overhead) == (1, "1g", None)
    assert (pr.executor.instances, pr.executor.cores, pr.executor.memory) == (1, 1, "1g")
    assert (s.sink.path, s.sink.volume.size, s.sink.retain_on_delete) == (
        "/data/streampipeline",
        "10Gi",
        True,
    )
    assert (s.sink.volume.storage_class_name, s.sink.volume.existing_claim) == (None, None)
    assert s.suspend is False


def test_dataclass_defaults_are_the_parsed_defaults():
    assert load_manifest(minimal()).spec == PipelineSpec(kafka=KafkaSpec(cluster="dev-cluster"))


def test_age_band_default_matches_the_data_contract():
    contract = pytest.importorskip("spjobs.contract")
    assert PipelineSpec(kafka=KafkaSpec(cluster="c")).processing.age_bands == contract.DEFAULT_AGE_BANDS


def test_null_counts_as_absent():
    p = load_manifest(manifest(**{"spec/generator": {"seed": None}, "spec/processing": None}))
    assert p == load_manifest(minimal())


def test_explicit_values_and_computed_defaults_override():
    p = load_manifest(
        manifest(
            **{
                "metadata/namespace": "team-a",
                "spec/kafka/bootstrapServers": "broker-0:9092,broker-1.example.com:9093",
                "spec/kafka/topics": {"customers": {"name": "crm.customers", "config": {}}},
            }
        )
    )
    assert p.namespace == "team-a"
    assert p.bootstrap_servers == "broker-0:9092,broker-1.example.com:9093"
    assert p.customers_topic == "crm.customers"
    assert p.spec.kafka.topics.customers.config == {}  # replaced, not merged
    assert p.transactions_topic == "payments-transactions"


def test_quantities_given_as_integers_become_strings():
    p = load_manifest(
        manifest(**{"spec/generator/resources": {"requests": {"cpu": 1}, "limits": {"cpu": 2}}})
    )
    assert p.spec.generator.resources.to_k8s() == {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}


def test_specs_are_frozen_and_hashable():
    p = load_manifest(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.spec.generator.replicas = 3  # type: ignore[misc]
    assert hash(p) == hash(load_manifest(EXAMPLE))


# --- the example, round trips, job config -----------------------------------------------


def test_example_manifest_loads():
    p = load_manifest(EXAMPLE)
    assert (p.name, p.namespace, p.spec.kafka.cluster) == ("payments", "streampipeline", "dev-cluster")
    g = p.spec.generator
    assert (g.rate_per_second, g.customers, g.invalid_ratio) == (500, 2000, 0.02)
    assert p.spec.processing.trigger == "2s"
    # Everything else in the example is a default, written out for reference.
    defaults = load_manifest(manifest(**{"metadata/namespace": "streampipeline"})).spec
    expected = dataclasses.replace(
        defaults,
        generator=dataclasses.replace(defaults.generator, rate_per_second=500.0, customers=2000),
        processing=dataclasses.replace(
            defaults.processing,
            trigger="2s",
            driver=dataclasses.replace(defaults.processing.driver, memory_overhead="1536m"),
        ),
    )
    assert p.spec == expected


def test_example_loads_from_str_path_and_text():
    assert load_manifest(str(EXAMPLE)) == load_manifest(EXAMPLE) == load_manifest(EXAMPLE.read_text())


@pytest.mark.parametrize(
    "source",
    [
        minimal(),
        EXAMPLE,
        manifest(
            **{
                "metadata/labels": {"app.kubernetes.io/part-of": "demo"},
                "metadata/annotations": {"example.com/owner": "data team"},
                "spec/kafka/bootstrapServers": "[::1]:9092",
                "spec/kafka/topics/transactions": {"name": "tx", "partitions": 12, "config": {"a.b": "1"}},
                "spec/generator": {"replicas": 0, "ratePerSecond": 0.5, "resources": {}},
                "spec/processing": {"maxOffsetsPerTrigger": 1000, "ageBands": [18, 25, 40, 65]},
                "spec/sink": {
                    "volume": {"existingClaim": "data", "storageClassName": ""},
                    "retainOnDelete": False,
                },
                "spec/suspend": True,
            }
        ),
    ],
    ids=["minimal", "example", "everything-set"],
)
def test_round_trip(source):
    p = load_manifest(source)
    m = p.to_manifest()
    assert load_manifest(m) == p
    assert load_manifest(yaml.safe_dump(m)) == p  # YAML-ready: only plain types
    assert load_manifest(json.loads(json.dumps(m))) == p
    assert m["metadata"]["namespace"] == p.namespace
    assert set(m["spec"]) == {"kafka", "generator", "processing", "sink", "suspend", "api"}


def test_parse_spec_matches_load_manifest():
    body = yaml.safe_load(EXAMPLE.read_text())
    p = parse_spec("payments", body["spec"], namespace="streampipeline")
    assert p == load_manifest(EXAMPLE)


class _KopfLikeSpec(Mapping):
    """kopf hands handlers Mapping views, not dicts."""

    def __init__(self, data):
        self._data = data

    def __getitem__(self, key):
        value = self._data[key]
        return _KopfLikeSpec(value) if isinstance(value, dict) else value

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


def test_parse_spec_accepts_any_mapping():
    spec = {"kafka": {"cluster": "c"}, "processing": {"ageBands": [10, 20]}}
    assert parse_spec("p", _KopfLikeSpec(spec)) == parse_spec("p", spec)


def test_parse_spec_reports_name_namespace_and_spec_together():
    with pytest.raises(SpecError) as info:
        parse_spec("Bad_Name", {"kafka": {}}, namespace="Nope!")
    assert info.value.paths == ["metadata.name", "metadata.namespace", "spec.kafka.cluster"]
    with pytest.raises(SpecError) as info:
        parse_spec("ok", None)
    assert info.value.paths == ["spec"]


def test_job_config_shape():
    config = load_manifest(EXAMPLE).to_job_config()
    assert json.loads(json.dumps(config)) == config
    assert config == {
        "name": "payments",
        "namespace": "streampipeline",
        "kafka": {
            "cluster": "dev-cluster",
            "bootstrapServers": "dev-cluster-kafka-bootstrap:9092",
            "topics": {
                "customers": {
                    "name": "payments-customers",
                    "partitions": 3,
                    "replicas": 1,
                    "config": {"cleanup.policy": "compact"},
                },
                "transactions": {
                    "name": "payments-transactions",
                    "partitions": 3,
                    "replicas": 1,
                    "config": {"retention.ms": "604800000"},
                },
            },
        },
        "generator": {
            "replicas": 1,
            "ratePerSecond": 500.0,
            "customers": 2000,
            "locale": "pt_BR",
            "seed": 42,
            "invalidRatio": 0.02,
            "maxLateness": "5s",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        },
        "processing": {
            "trigger": "2s",
            "watermark": "30s",
            "deduplicationWindow": "1h",
            "maxOffsetsPerTrigger": 100_000,
            "ageBands": [30, 60],
            "driver": {"cores": 1, "memory": "1g", "memoryOverhead": "1536m"},
            "executor": {"instances": 1, "cores": 1, "memory": "1g"},
        },
        "sink": {
            "path": "/data/streampipeline",
            "volume": {"size": "10Gi", "storageClassName": None, "existingClaim": None},
            "retainOnDelete": True,
        },
    }


def test_job_config_in_docs_matches():
    text = DOCS.read_text()
    block = text.split("## Job config", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    assert json.loads(block) == load_manifest(EXAMPLE).to_job_config()


def test_server_populated_metadata_and_status_are_ignored():
    doc = manifest(
        **{
            "metadata/uid": "0b7c",
            "metadata/resourceVersion": "12",
            "metadata/generation": 3,
            "metadata/creationTimestamp": "2025-01-01T00:00:00Z",
            "metadata/finalizers": ["streampipeline.io/cleanup"],
            "metadata/managedFields": [{"manager": "kubectl"}],
            "status": {"phase": "Running"},
        }
    )
    assert load_manifest(doc) == load_manifest(minimal())


def test_default_namespace_argument():
    assert load_manifest(minimal(), default_namespace="team-b").namespace == "team-b"
    assert load_manifest(manifest(**{"metadata/namespace": "x"}), default_namespace="team-b").namespace == "x"


# --- malformed manifests ----------------------------------------------------------------

YAML_HEAD = f"apiVersion: {API_VERSION}\nkind: {KIND}\nmetadata:\n  name: payments\n"


def _yaml(spec_text: str) -> str:
    return YAML_HEAD + "spec:\n  kafka:\n    cluster: dev-cluster\n" + spec_text


# fmt: off
CASES: list[tuple[str, Any, str, str]] = [
    # (id, source, path, message fragment)
    ("string-for-int", manifest(**{"spec/generator/customers": "ten"}),
     "spec.generator.customers", "must be an integer, got string 'ten'"),
    ("bool-as-int", manifest(**{"spec/generator/replicas": True}),
     "spec.generator.replicas", "must be an integer, got boolean true"),
    ("bool-as-number", manifest(**{"spec/generator/ratePerSecond": False}),
     "spec.generator.ratePerSecond", "must be a number, got boolean false"),
    ("float-for-int", manifest(**{"spec/kafka/topics/customers/partitions": 3.0}),
     "spec.kafka.topics.customers.partitions", "must be an integer, got number 3.0"),
    ("negative-rate", manifest(**{"spec/generator/ratePerSecond": -5}),
     "spec.generator.ratePerSecond", "must be >= 0, got -5"),
    ("nan-rate", _yaml("  generator:\n    ratePerSecond: .nan\n"),
     "spec.generator.ratePerSecond", "must be a finite number"),
    ("ratio-above-one", manifest(**{"spec/generator/invalidRatio": 1.5}),
     "spec.generator.invalidRatio", "must be <= 1, got 1.5"),
    ("negative-partitions", manifest(**{"spec/kafka/topics/transactions/partitions": -1}),
     "spec.kafka.topics.transactions.partitions", "must be >= 1, got -1"),
    ("too-many-partitions", manifest(**{"spec/kafka/topics/customers/partitions": 5000}),
     "spec.kafka.topics.customers.partitions", "must be <= 1000, got 5000"),
    ("zero-replicas", manifest(**{"spec/kafka/topics/customers/replicas": 0}),
     "spec.kafka.topics.customers.replicas", "must be >= 1, got 0"),
    ("max-offsets-zero", manifest(**{"spec/processing/maxOffsetsPerTrigger": 0}),
     "spec.processing.maxOffsetsPerTrigger", "must be >= 1, got 0"),
    ("unknown-field-suggestion", manifest(**{"spec/generator/ratePerSec": 5}),
     "spec.generator.ratePerSec", "unknown field (did you mean 'ratePerSecond'?)"),
    ("unknown-snake-case", manifest(**{"spec/generator/invalid_ratio": 0.1}),
     "spec.generator.invalid_ratio", "unknown field (did you mean 'invalidRatio'?)"),
    ("unknown-top-level", manifest(**{"Spec": {}}), "Spec", "unknown field (did you mean 'spec'?)"),
    ("unknown-metadata", manifest(**{"metadata/lables": {}}),
     "metadata.lables", "unknown field (did you mean 'labels'?)"),
    ("unknown-no-suggestion", manifest(**{"spec/monitoring": {}}),
     "spec.monitoring", "unknown field; expected one of: kafka, generator, processing, sink, suspend"),
    ("missing-cluster", manifest(**{"spec/kafka": {}}), "spec.kafka.cluster", "required field is missing"),
    ("missing-kafka", manifest(**{"spec": {}}), "spec.kafka", "required field is missing"),
    ("missing-spec", manifest(spec=DELETE), "spec", "required field is missing"),
    ("missing-name", manifest(**{"metadata/name": DELETE}), "metadata.name", "required field is missing"),
    ("wrong-api-version", manifest(apiVersion="streampipeline.io/v1"),
     "apiVersion", "must be 'streampipeline.io/v1alpha1', got 'streampipeline.io/v1'"),
    ("wrong-kind", manifest(kind="Deployment"), "kind", "must be 'StreamPipeline', got 'Deployment'"),
    ("name-too-long", manifest(**{"metadata/name": "p" * 41}),
     "metadata.name", "must be at most 40 characters"),
    ("name-not-dns", manifest(**{"metadata/name": "Payments_1"}), "metadata.name", "DNS-1123 label"),
    ("name-trailing-newline", manifest(**{"metadata/name": "payments\n"}), "metadata.name", "DNS-1123 label"),
    ("huge-rate", manifest(**{"spec/generator/ratePerSecond": 10**400}),
     "spec.generator.ratePerSecond", "must be a finite number"),
    ("namespace-not-dns", manifest(**{"metadata/namespace": "Team A"}),
     "metadata.namespace", "DNS-1123 label"),
    ("cluster-too-long", manifest(**{"spec/kafka/cluster": "c" * 48}),
     "spec.kafka.cluster", "must be at most 47 characters"),
    ("bad-bootstrap", manifest(**{"spec/kafka/bootstrapServers": "kafka"}),
     "spec.kafka.bootstrapServers", "comma-separated list of host:port"),
    ("bad-bootstrap-port", manifest(**{"spec/kafka/bootstrapServers": "a:9092,b:99999"}),
     "spec.kafka.bootstrapServers", "port must be 1..65535, got 99999"),
    ("bad-topic-name", manifest(**{"spec/kafka/topics/customers/name": "my topic"}),
     "spec.kafka.topics.customers.name", "must be a Kafka topic name"),
    ("dot-dot-topic", manifest(**{"spec/kafka/topics/transactions/name": ".."}),
     "spec.kafka.topics.transactions.name", "must not be '.' or '..'"),
    ("same-topic-twice", manifest(**{"spec/kafka/topics/customers/name": "payments-transactions"}),
     "spec.kafka.topics.transactions.name", "must differ from the customers topic"),
    ("config-number", manifest(**{"spec/kafka/topics/transactions/config": {"retention.ms": 604800000}}),
     'spec.kafka.topics.transactions.config["retention.ms"]', 'quote it: "604800000"'),
    ("config-bad-key", manifest(**{"spec/kafka/topics/customers/config": {"Cleanup Policy": "compact"}}),
     'spec.kafka.topics.customers.config["Cleanup Policy"]', "key must be a Kafka topic config name"),
    ("config-not-a-map", manifest(**{"spec/kafka/topics/customers/config": ["cleanup.policy=compact"]}),
     "spec.kafka.topics.customers.config", "must be a map of string to string, got a list"),
    ("bad-locale", manifest(**{"spec/generator/locale": "portuguese"}),
     "spec.generator.locale", "must be a locale such as 'pt_BR'"),
    ("locale-yaml-bool", _yaml("  generator:\n    locale: no\n"),
     "spec.generator.locale", "got boolean false (YAML reads unquoted yes/no"),
    ("bad-duration", manifest(**{"spec/processing/watermark": "30 seconds"}),
     "spec.processing.watermark", "must be a duration such as '250ms'"),
    ("dedup-window-too-short", manifest(**{"spec/processing/deduplicationWindow": "500ms"}),
     "spec.processing.deduplicationWindow", "must be at least 1s, got '500ms'"),
    ("overhead-without-unit", manifest(**{"spec/processing/driver/memoryOverhead": 512}),
     "spec.processing.driver.memoryOverhead", "got integer 512"),
    ("duration-without-unit", manifest(**{"spec/generator/maxLateness": 5}),
     "spec.generator.maxLateness", "add a unit, e.g. '5s'"),
    ("negative-duration", manifest(**{"spec/generator/maxLateness": "-5s"}),
     "spec.generator.maxLateness", "must be a duration"),
    ("trigger-too-short", manifest(**{"spec/processing/trigger": "50ms"}),
     "spec.processing.trigger", "must be at least 100ms, got '50ms'"),
    ("bad-quantity", manifest(**{"spec/sink/volume/size": "10 GB"}),
     "spec.sink.volume.size", "must be a quantity such as"),
    ("zero-size", manifest(**{"spec/sink/volume/size": "0Gi"}),
     "spec.sink.volume.size", "must be greater than zero"),
    ("float-cpu", manifest(**{"spec/generator/resources": {"requests": {"cpu": 0.5}}}),
     "spec.generator.resources.requests.cpu", 'quote it: "0.5"'),
    ("milli-memory", manifest(**{"spec/generator/resources": {"limits": {"memory": "512m"}}}),
     "spec.generator.resources.limits.memory", "millibytes; use '512Mi'"),
    ("unknown-resource", manifest(**{"spec/generator/resources": {"requests": {"gpu": "1"}}}),
     "spec.generator.resources.requests.gpu", "unknown field"),
    ("limit-below-request", manifest(**{"spec/generator/resources": {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}}),
     "spec.generator.resources.limits.cpu", "must be >= requests.cpu (1), got '500m'"),
    ("spark-memory-k8s-suffix", manifest(**{"spec/processing/driver": {"memory": "2Gi"}}),
     "spec.processing.driver.memory", "(Spark writes '2g', not '2Gi')"),
    ("spark-memory-too-small", manifest(**{"spec/processing/executor": {"memory": "256m"}}),
     "spec.processing.executor.memory", "must be at least 512m"),
    ("too-many-cores", manifest(**{"spec/processing/executor": {"cores": 65}}),
     "spec.processing.executor.cores", "must be <= 64, got 65"),
    ("age-bands-not-ascending", manifest(**{"spec/processing/ageBands": [60, 30]}),
     "spec.processing.ageBands", "must be strictly ascending, got [60, 30]"),
    ("age-bands-repeated", manifest(**{"spec/processing/ageBands": [30, 30]}),
     "spec.processing.ageBands", "must be strictly ascending"),
    ("age-bands-empty", manifest(**{"spec/processing/ageBands": []}),
     "spec.processing.ageBands", "must have at least 1 item, got 0"),
    ("age-bands-too-many", manifest(**{"spec/processing/ageBands": list(range(10, 120, 10))}),
     "spec.processing.ageBands", "must have at most 10 items, got 11"),
    ("age-band-out-of-range", manifest(**{"spec/processing/ageBands": [30, 151]}),
     "spec.processing.ageBands[1]", "must be <= 150, got 151"),
    ("age-bands-not-a-list", manifest(**{"spec/processing/ageBands": "30,60"}),
     "spec.processing.ageBands", "must be a list, got string '30,60'"),
    ("relative-sink-path", manifest(**{"spec/sink/path": "data/out"}),
     "spec.sink.path", "must be an absolute path"),
    ("sink-path-dotdot", manifest(**{"spec/sink/path": "/data/../etc"}),
     "spec.sink.path", "must not contain '..' segments"),
    ("bad-storage-class", manifest(**{"spec/sink/volume/storageClassName": "Fast_SSD"}),
     "spec.sink.volume.storageClassName", "DNS-1123 subdomain"),
    ("string-bool", manifest(**{"spec/sink/retainOnDelete": "yes"}),
     "spec.sink.retainOnDelete", "must be a boolean (true or false), got string 'yes'"),
    ("section-not-an-object", manifest(**{"spec/generator": [1, 2]}),
     "spec.generator", "must be an object (a mapping of fields), got a list"),
    ("label-value-number", manifest(**{"metadata/labels": {"version": 2}}),
     "metadata.labels.version", 'must be a string, got integer 2 (quote it: "2")'),
    ("root-not-a-mapping", "- apiVersion: x\n- kind: y\n", "<root>", "must be an object"),
    ("multi-document", YAML_HEAD + "spec: {kafka: {cluster: a}}\n---\n" + YAML_HEAD + "spec: {}\n",
     "<yaml>", "expected exactly one YAML document (one StreamPipeline), found 2"),
    ("empty-document", "# nothing here\n", "<yaml>", "the document is empty"),
    ("malformed-yaml", _yaml("  generator:\n    replicas: [1, 2\n  sink: {}\n"),
     "<yaml>", "malformed YAML at line"),
    ("tab-indented-yaml", YAML_HEAD + "spec:\n\tkafka: {}\n", "<yaml>", "malformed YAML at line 6"),
    ("duplicate-key", _yaml("  generator:\n    ratePerSecond: 5\n    ratePerSecond: 6\n"),
     "<yaml>", "duplicate key 'ratePerSecond' (first defined on line 9)"),
]
# fmt: on


@pytest.mark.parametrize(("source", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_manifest(source, path, fragment):
    errors = errors_of(source)
    rendered = "\n".join(map(str, errors))
    assert len(errors) == 1, rendered
    (error,) = errors
    assert error.path == path, rendered
    assert fragment in error.message, rendered


def test_there_are_many_distinct_malformed_cases():
    assert len({c[0] for c in CASES}) == len(CASES) >= 25


def test_malformed_yaml_reports_the_line():
    (error,) = errors_of(_yaml("  generator:\n    replicas: [1, 2\n  sink: {}\n"))
    assert error.line == 10
    assert "line 10" in error.message


def test_field_errors_carry_yaml_lines():
    (error,) = errors_of(_yaml("  generator:\n    replicas: 1\n    ratePerSecond: -5\n"))
    assert (error.path, error.line) == ("spec.generator.ratePerSecond", 10)
    assert str(error) == "spec.generator.ratePerSecond (line 10): must be >= 0, got -5"


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(_yaml("  suspend: maybe\n"))
    with pytest.raises(SpecError) as info:
        load_manifest(path)
    assert info.value.source == str(path)
    assert str(info.value).splitlines()[0] == f"invalid StreamPipeline in {path}: 1 error"


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_manifest(tmp_path / "nope.yaml")


def test_several_errors_are_all_reported():
    text = (
        "apiVersion: streampipeline.io/v1alpha2\n"  # 1
        "kind: StreamPipeline\n"
        "metadata:\n"
        "  name: Payments\n"  # 4
        "spec:\n"
        "  kafka:\n"
        "    clustr: dev\n"  # 7
        "  generator:\n"
        "    ratePerSecond: -5\n"  # 9
        "    replicas: true\n"  # 10
        "  processing:\n"
        "    trigger: 5\n"  # 12
        "    ageBands: [60, 30]\n"  # 13
        "  sink:\n"
        "    volume: {size: 10 GB}\n"  # 15
    )
    with pytest.raises(SpecError) as info:
        load_manifest(text)
    got = {(e.path, e.line) for e in info.value.errors}
    assert got == {
        ("apiVersion", 1),
        ("metadata.name", 4),
        ("spec.kafka.clustr", 7),
        ("spec.kafka.cluster", 6),
        ("spec.generator.ratePerSecond", 9),
        ("spec.generator.replicas", 10),
        ("spec.processing.trigger", 12),
        ("spec.processing.ageBands", 13),
        ("spec.sink.volume.size", 15),
    }
    message = str(info.value)
    assert message.startswith("invalid StreamPipeline: 9 errors\n")
    for path, _ in got:
        assert f"  - {path} (line " in message


def test_all_field_errors_in_one_section_are_reported():
    errors = errors_of(
        manifest(
            **{"spec/generator": {"replicas": -1, "customers": 0, "seed": "x", "invalidRatio": 2, "fps": 1}}
        )
    )
    assert [e.path for e in errors] == [
        "spec.generator.fps",
        "spec.generator.replicas",
        "spec.generator.customers",
        "spec.generator.seed",
        "spec.generator.invalidRatio",
    ]


def test_spec_error_pickles():
    import pickle

    with pytest.raises(SpecError) as info:
        load_manifest(manifest(**{"spec/suspend": "no"}))
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.errors, clone.source, str(clone)) == (info.value.errors, None, str(info.value))


def test_load_manifest_rejects_other_types():
    with pytest.raises(TypeError):
        load_manifest(42)  # type: ignore[arg-type]


# --- durations and quantities -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("0s", 0),
        ("250ms", 0.25),
        ("5s", 5),
        ("1m30s", 90),
        ("2h", 7200),
        ("1.5h", 5400),
        (".5s", 0.5),
        ("1h2m3s4ms", 3723.004),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("10ns", 1e-8),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
    assert is_duration(text)
    assert re.search(DURATION_PATTERN, text)


@pytest.mark.parametrize(
    "text", ["", "5", "5 s", "-5s", "+5s", "5sec", "1d", "s", ".s", "5s ", "1h-5m", "5S"]
)
def test_invalid_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)
    assert not is_duration(text)
    assert not re.search(DURATION_PATTERN, text)


def test_parse_duration_rejects_non_strings():
    with pytest.raises(TypeError):
        parse_duration(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", "0.1"),
        ("1", "1"),
        (2, "2"),
        ("1.5", "1.5"),
        ("128Mi", 128 * 2**20),
        ("10Gi", 10 * 2**30),
        ("1k", 1000),
        ("1M", 10**6),
        ("1E", 10**18),
        ("1e3", 1000),
        ("5e-1", "0.5"),
    ],
)
def test_parse_quantity(text, value):
    from decimal import Decimal

    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "1.2.3", "10 Gi", "1gi", "Gi", "-1", "1Ki2", "1e"])
def test_invalid_quantities(text):
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_driver_memory_estimate():
    def est(**changes: Any) -> sp.DriverMemoryEstimate:
        return load_manifest(manifest(**changes)).driver_memory()

    # defaults: 100/s x 1 replica x 0.98 valid x 3600 s x 17/16 = 374,850 ids in the window,
    # a batch of 100,000 transactions + 1,000 customers: 576 + 154.1 + 64.3 MiB
    d = est()
    assert (d.batch_records, d.window_ids) == (101_000, pytest.approx(374_850))
    assert d.needed_mib == pytest.approx(794.5, abs=0.1)
    assert d.configured_mib == pytest.approx(409.6) and not d.explicit  # Spark's: 40% of 1g
    assert d.sufficient is False and d.suggestion == "1g"
    # each generator pod has its own customers: all of them can arrive in one batch
    assert est(**{"spec/generator/replicas": 3}).batch_records == 100_000 + 3 * 1000
    # given, and enough
    given = est(**{"spec/processing/driver/memoryOverhead": "1g"})
    assert (given.configured_mib, given.explicit, given.sufficient) == (1024, True, True)
    # a paused generator adds no ids; "as fast as possible" leaves the window unknown
    assert est(**{"spec/generator/replicas": 0}).window_ids == 0
    fast = est(**{"spec/generator/ratePerSecond": 0, "spec/processing/driver/memoryOverhead": "2g"})
    assert fast.window_ids is None and fast.sufficient is None
    assert est(**{"spec/generator/ratePerSecond": 0}).sufficient is False  # short even without it
    # the largest rate the spec accepts still gives a finite size
    huge = est(**{"spec/generator/ratePerSecond": 1_000_000, "spec/processing/deduplicationWindow": "8760h"})
    assert huge.suggestion == "1024g"


def test_memory_steps():
    steps = [sp.memory_step(m) for m in (1, 768, 769, 1024, 1025, 1536, 1537, 2049, 3073, 4097, 6145)]
    assert steps == ["768m", "768m", "1g", "1g", "1536m", "1536m", "2g", "3g", "4g", "6g", "8g"]
    assert sp.memory_step(float("inf")) == sp.memory_step(10**12) == "1024g"


def test_parse_spark_memory():
    assert parse_spark_memory("512m") == 512 * 2**20
    assert parse_spark_memory("2g") == parse_spark_memory("2GB") == 2 * 2**30
    with pytest.raises(ValueError):
        parse_spark_memory("2")


# --- the OpenAPI schema -----------------------------------------------------------------

# The keys a structural schema may use (of those this generator could emit).
ALLOWED_KEYS = {
    "type", "description", "properties", "required", "default", "minimum", "maximum", "pattern",
    "minLength", "maxLength", "enum", "items", "minItems", "maxItems", "additionalProperties",
    "anyOf", "x-kubernetes-int-or-string",
}  # fmt: skip


def _nodes(schema: dict, path: str = "spec") -> Iterator[tuple[str, dict]]:
    yield path, schema
    for name, prop in schema.get("properties", {}).items():
        yield from _nodes(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


PY_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


def _validate(value: Any, schema: dict, path: str) -> None:
    """A small OpenAPI validator: enough to check that every default obeys its schema."""
    if schema.get("x-kubernetes-int-or-string"):
        assert isinstance(value, (int, str)) and not isinstance(value, bool), path
    else:
        expected = PY_TYPES[schema["type"]]
        assert isinstance(value, expected), path
        assert schema["type"] == "boolean" or not isinstance(value, bool), path
    if isinstance(value, str) and "pattern" in schema:
        assert re.search(schema["pattern"], value), (path, value)
    if isinstance(value, str):
        assert schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", 10**9), path
    if "enum" in schema:
        assert value in schema["enum"], path
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert schema.get("minimum", -math.inf) <= value <= schema.get("maximum", math.inf), path
    if isinstance(value, list):
        assert schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9), path
        for i, item in enumerate(value):
            _validate(item, schema["items"], f"{path}[{i}]")
    if isinstance(value, dict):
        for req in schema.get("required", []):
            assert req in value, (path, req)
        for key, item in value.items():
            if "properties" in schema:
                assert key in schema["properties"], (path, key)
                _validate(item, schema["properties"][key], f"{path}.{key}")
            else:
                _validate(item, schema["additionalProperties"], f"{path}.{key}")


def test_openapi_schema_is_structural():
    schema = openapi_schema()
    assert schema["type"] == "object" and schema["required"] == ["kafka"]
    for path, node in _nodes(schema):
        assert set(node) <= ALLOWED_KEYS, (path, set(node) - ALLOWED_KEYS)
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node and node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert node["type"] in {"object", "array", "string", "integer", "number", "boolean"}, path
            assert "anyOf" not in node, path
        if node.get("type") == "object":
            # either a struct with properties or a map with additionalProperties, never both
            assert ("properties" in node) != ("additionalProperties" in node), path
            assert set(node.get("required", [])) <= set(node.get("properties", {})), path
        if node.get("type") == "array":
            assert isinstance(node["items"], dict), path
        if "pattern" in node:
            re.compile(node["pattern"])
        for bound in ("minimum", "maximum"):  # the API server reads them as float64
            assert abs(node.get(bound, 0)) <= 2**53, (path, bound)
        if "default" in node:
            _validate(node["default"], node, path)
        if not path.endswith(("[]", "}")):
            assert node.get("description"), path
    json.dumps(schema)  # plain JSON
    assert openapi_schema() == schema and openapi_schema() is not schema


def _plain(value: Any) -> Any:
    """Test-local inverse of parsing: dataclass -> camelCase dict without unset fields."""
    if dataclasses.is_dataclass(value):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is not None:
                head, *rest = f.name.split("_")
                out[head + "".join(r.capitalize() for r in rest)] = _plain(item)
        return out
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _check_defaults(schema: dict, cls: type, path: str) -> int:
    """Walk the schema alongside the dataclasses; return how many defaults were compared."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    by_yaml = {_plain_name(name): f for name, f in fields.items()}
    assert set(schema["properties"]) == set(by_yaml), path
    compared = 0
    for name, prop in schema["properties"].items():
        f = by_yaml[name]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            assert "default" not in prop and name in schema["required"], f"{path}.{name}"
            default = dataclasses.MISSING
        if default is None:
            assert "default" not in prop and name not in schema.get("required", []), f"{path}.{name}"
        elif default is not dataclasses.MISSING:
            if prop["default"] == {} and dataclasses.is_dataclass(default):
                assert default == type(default)(), f"{path}.{name}"  # {} means: every nested default
            else:
                assert prop["default"] == _plain(default), f"{path}.{name}"
            compared += 1
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            compared += _check_defaults(prop, hint, f"{path}.{name}")
    return compared


def _plain_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(r.capitalize() for r in rest)


def test_openapi_defaults_equal_dataclass_defaults():
    assert _check_defaults(openapi_schema(), PipelineSpec, "spec") >= 30


def _apply_schema_defaults(value: Any, schema: dict) -> Any:
    """What the API server does with the CRD's defaults."""
    if isinstance(value, dict) and "properties" in schema:
        for name, prop in schema["properties"].items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                value[name] = _apply_schema_defaults(value[name], prop)
    return value


@pytest.mark.parametrize(
    "spec",
    [
        {"kafka": {"cluster": "dev-cluster"}},
        {
            "kafka": {"cluster": "dev-cluster", "topics": {"customers": {"partitions": 6}}},
            "generator": {"resources": {"requests": {"cpu": "1"}}},
            "processing": {"driver": {"memory": "2g"}},
            "sink": {"volume": {}},
        },
    ],
    ids=["minimal", "partial"],
)
def test_api_server_defaulting_agrees_with_python(spec):
    defaulted = _apply_schema_defaults(copy.deepcopy(spec), openapi_schema())
    _validate(defaulted, openapi_schema(), "spec")
    python = parse_spec("payments", spec)
    assert defaulted == python.to_manifest()["spec"]
    assert parse_spec("payments", defaulted) == python


def test_manifest_is_valid_against_schema():
    _validate(load_manifest(EXAMPLE).to_manifest()["spec"], openapi_schema(), "spec")


# --- docs -------------------------------------------------------------------------------


def test_docs_field_table_is_generated_from_the_spec():
    text = DOCS.read_text()
    generated = text.split("<!-- BEGIN GENERATED: python -m streampipeline.spec markdown -->\n", 1)[1]
    generated = generated.split("<!-- END GENERATED -->", 1)[0]
    assert generated == markdown_reference(), "regenerate with: python -m streampipeline.spec markdown"


def test_every_field_is_documented():
    table = markdown_reference()
    for path, _node in _nodes(openapi_schema()):
        if path != "spec" and not path.endswith(("[]", "}")):
            assert f"| `{path}` |" in table, path


def test_example_mentions_every_top_level_section():
    text = EXAMPLE.read_text()
    for section in ("kafka:", "generator:", "processing:", "sink:", "suspend:"):
        assert f"\n  {section}" in text


def test_module_exports_exist():
    for name in sp.__all__:
        assert hasattr(sp, name), name
    assert isinstance(load_manifest(minimal()), StreamPipeline)


# --- spec.api ---------------------------------------------------------------------------


def test_api_defaults_off_and_read_only():
    api = load_manifest(minimal()).spec.api
    assert (api.enabled, api.replicas, api.token_secret_name, api.mount_sink) == (False, 1, None, False)
    assert api.resources.to_k8s() == {
        "requests": {"cpu": "50m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert "api" not in load_manifest(minimal()).to_job_config()  # not the jobs' business


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec/api/replicas", 0),
        ("spec/api/replicas", 11),
        ("spec/api/tokenSecretName", "Not_A_Name"),
        ("spec/api/tokenSecretName", ""),
        ("spec/api/enabled", "yes"),
        ("spec/api/port", 80),
    ],
)
def test_api_bad_fields_are_named(path, value):
    (error,) = errors_of(manifest(**{path: value}))
    assert error.path == path.replace("/", ".")


def test_api_mount_sink_needs_an_existing_claim():
    (error,) = errors_of(manifest(**{"spec/api/mountSink": True}))
    assert error.path == "spec.api.mountSink"
    assert "existingClaim" in error.message and "ReadWriteMany" in error.message
    p = load_manifest(
        manifest(**{"spec/api/mountSink": True, "spec/sink/volume/existingClaim": "shared-rwx"})
    )
    assert p.spec.api.mount_sink


def test_api_mount_sink_rule_is_in_the_crd():
    from streampipeline import crd

    rules = crd.spec_schema()["x-kubernetes-validations"]
    (rule,) = [r for r in rules if r.get("fieldPath") == ".api.mountSink"]
    assert "existingClaim" in rule["rule"] and rule["message"].startswith("spec.api.mountSink ")

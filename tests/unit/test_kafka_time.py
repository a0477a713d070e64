"""The pipeline's topics are on LogAppendTime, whatever the manifest's topic configs say."""

from __future__ import annotations

from pathlib import Path

import pytest

from spjobs.kafka_time import REQUIRED_TOPIC_CONFIG, TIMESTAMP_TYPE, with_required
from streampipeline import render
from streampipeline.spec import SpecError, load_manifest

ROOT = Path(__file__).resolve().parents[2]


def manifest_with(config: dict) -> dict:
    m = load_manifest(ROOT / "k8s" / "examples" / "pipeline.yaml").to_manifest()
    m["spec"]["kafka"]["topics"] = {"customers": {"config": config}}
    return m


def test_a_topic_config_that_sets_create_time_is_refused_naming_the_field():
    with pytest.raises(SpecError) as err:
        load_manifest(manifest_with({"message.timestamp.type": "CreateTime"}))
    text = str(err.value)
    assert (
        "spec.kafka.topics.customers.config" in text
        and "message.timestamp.type must be LogAppendTime" in text
    )
    assert "must be LogAppendTime" in text and "'CreateTime'" in text


def test_overriding_the_config_map_keeps_log_append_time_on_the_rendered_topics():
    p = load_manifest(manifest_with({"retention.ms": "1000"}))  # replaces cleanup.policy: compact
    for role in ("customers", "transactions"):
        config = render.kafka_topic(p, role)["spec"]["config"]
        assert config[TIMESTAMP_TYPE] == "LogAppendTime", role
    assert render.kafka_topic(p, "customers")["spec"]["config"]["retention.ms"] == "1000"
    explicit = load_manifest(manifest_with({"message.timestamp.type": "LogAppendTime"}))
    assert render.kafka_topic(explicit, "customers")["spec"]["config"] == dict(REQUIRED_TOPIC_CONFIG)


def test_with_required_wins_over_a_given_value():
    assert with_required({TIMESTAMP_TYPE: "CreateTime", "a": "b"}) == {
        TIMESTAMP_TYPE: "LogAppendTime",
        "a": "b",
    }
    assert with_required(None) == dict(REQUIRED_TOPIC_CONFIG)

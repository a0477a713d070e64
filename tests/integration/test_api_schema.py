"""Schema fuzz (schemathesis) of the REST service over its own OpenAPI, against a real
broker: no request, valid or not, gets a 500, and every response matches the schema
(status code, content type, body, headers).  Bounded: a few dozen examples per route."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from streampipeline.api.app import create_app
from streampipeline.api.config import ApiConfig
from streampipeline.local.kafka import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration
TOKEN = "fuzz-" + uuid.uuid4().hex
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def api_schema(kafka, tmp_path_factory):
    suffix = uuid.uuid4().hex[:8]
    cfg = ApiConfig(
        pipeline="fuzz",
        bootstrap_servers=kafka.bootstrap_servers,
        customers_topic=f"fuzz-customers-{suffix}",
        transactions_topic=f"fuzz-transactions-{suffix}",
        sink=tmp_path_factory.mktemp("sink"),
        token=TOKEN,
        kafka_timeout=3.0,
    )
    ensure_topics(
        kafka.bootstrap_servers,
        [TopicSpec(cfg.customers_topic, 2, 1), TopicSpec(cfg.transactions_topic, 2, 1)],
    )
    app = create_app(cfg, sample=False)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_error_and_every_response_matches_the_schema(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_without_a_token_too(case):
    case.call_and_validate(checks=CHECKS)

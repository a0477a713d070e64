"""The REST service against a real Kafka broker: every endpoint, validation before
produce, offset reads that do not depend on the replica or a restart, auth, limits."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from fastapi.testclient import TestClient

from spjobs import contract as C
from spjobs.processor import records as P
from streampipeline.api.app import create_app
from streampipeline.api.config import ApiConfig
from streampipeline.local.kafka import TopicSpec, ensure_topics

from .api_util import auth, customer, transaction

pytestmark = pytest.mark.integration
TOKEN = "test-token-" + uuid.uuid4().hex
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def cfg(kafka, tmp_path_factory):
    suffix = uuid.uuid4().hex[:8]
    c = ApiConfig(
        pipeline="apitest",
        bootstrap_servers=kafka.bootstrap_servers,
        customers_topic=f"api-customers-{suffix}",
        transactions_topic=f"api-transactions-{suffix}",
        sink=tmp_path_factory.mktemp("sink"),
        token=TOKEN,
        max_batch=50,
        max_body_bytes=64 * 1024,
        sample_every=0.5,
    )
    ensure_topics(
        kafka.bootstrap_servers,
        [
            TopicSpec(c.customers_topic, 3, 1, {"cleanup.policy": "compact"}),
            TopicSpec(c.transactions_topic, 3, 1),
        ],
    )
    return c


@pytest.fixture(scope="module")
def client(cfg):
    with TestClient(create_app(cfg)) as c:
        yield c


def end_offsets(cfg, topic):
    c = Consumer({"bootstrap.servers": cfg.bootstrap_servers, "group.id": "unused", "log_level": 0})
    try:
        md = c.list_topics(topic, timeout=10)
        return {
            p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in md.topics[topic].partitions
        }
    finally:
        c.close()


def is_problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["status"] == status and body["title"]
    assert "Traceback" not in r.text
    return body


def test_health_and_ready(client, cfg):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "kafka": cfg.bootstrap_servers}


def test_not_ready_without_a_broker(cfg):
    down = ApiConfig("x", "127.0.0.1:1", "a", "b", kafka_timeout=1.0)
    with TestClient(create_app(down, sample=False)) as c:
        assert c.get("/healthz").status_code == 200
        is_problem(c.get("/readyz"), 503)
        assert c.get("/status").json()["kafka_connected"] is False
        assert c.get("/api/v1/status").json()["kafka"]["reachable"] is False


def test_writes_need_the_token(client, cfg):
    url = f"/api/v1/topics/{cfg.customers_topic}/messages"
    before = end_offsets(cfg, cfg.customers_topic)
    for headers in ({}, auth("wrong"), auth(TOKEN[:-1]), {"Authorization": f"Basic {TOKEN}"}, auth("")):
        body = is_problem(client.post(url, json=customer(), headers=headers), 401)
        assert "token" in body["detail"] or "Bearer" in body["detail"]
    body = is_problem(client.post(f"/publicar/{cfg.customers_topic}", json=customer()), 401)
    assert end_offsets(cfg, cfg.customers_topic) == before, "a refused write produced nothing"


def test_writes_refused_when_no_token_is_configured(cfg):
    open_cfg = ApiConfig("x", cfg.bootstrap_servers, cfg.customers_topic, cfg.transactions_topic, token=None)
    with TestClient(create_app(open_cfg, sample=False)) as c:
        url = f"/api/v1/topics/{cfg.customers_topic}/messages"
        is_problem(c.post(url, json=customer(), headers=auth("anything")), 401)


def test_post_produces_keyed_by_customer_and_reads_back(client, cfg):
    custs = [customer() for _ in range(6)]
    r = client.post(f"/api/v1/topics/{cfg.customers_topic}/messages", json=custs, headers=auth(TOKEN))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["count"] == 6 and [d["key"] for d in out["records"]] == [c["customer_id"] for c in custs]
    # a transaction of the same customer lands on the same partition number (same key, same partitioner)
    txns = [transaction(c["customer_id"]) for c in custs]
    r2 = client.post(
        f"/api/v1/topics/{cfg.transactions_topic}/messages", json={"records": txns}, headers=auth(TOKEN)
    )
    assert r2.status_code == 201, r2.text
    assert [d["partition"] for d in r2.json()["records"]] == [d["partition"] for d in out["records"]]
    # and each record reads back at its partition and offset, with its key
    for sent, d in zip(custs, out["records"]):
        got = client.get(
            f"/api/v1/topics/{cfg.customers_topic}/messages",
            params={"from": d["offset"], "partition": d["partition"], "limit": 1},
        ).json()["messages"]
        assert len(got) == 1
        m = got[0]
        assert (m["partition"], m["offset"], m["key"]) == (d["partition"], d["offset"], sent["customer_id"])
        assert json.loads(m["value"]) == sent
        assert m["timestamp"].endswith("Z") and m["value_encoding"] == "utf-8"
        # The bytes in Kafka pass the Spark job's own record checks, at their Kafka timestamp.
        kafka_us = P.instant_us(m["timestamp"])
        assert isinstance(P.check(True, m["value"].encode("utf-8"), kafka_us), P.Customer), m


BAD_TRANSACTIONS = [
    ({"amount": ...}, "amount", C.REASON_MISSING_FIELD),
    ({"amount": 12.5}, "amount", C.REASON_WRONG_TYPE),
    ({"merchant": "m" * (C.MAX_FIELD_CHARS + 1)}, "merchant", C.REASON_FIELD_TOO_LONG),
    ({"amount": "1.234"}, "amount", C.REASON_INVALID_AMOUNT),
    ({"amount": "-1.00"}, "amount", C.REASON_NON_POSITIVE_AMOUNT),
    ({"event_time": "yesterday"}, "event_time", C.REASON_MALFORMED_DATE),
    ({"category": "boats"}, "category", C.REASON_UNKNOWN_CATEGORY),
    ({"payment_method": "barter"}, "payment_method", C.REASON_UNKNOWN_PAYMENT_METHOD),
    ({"currency": "USD"}, "currency", C.REASON_UNSUPPORTED_CURRENCY),
    ({"merchant": "\ud800"}, "merchant", C.REASON_INVALID_ENCODING),
    ({"surprise": "x"}, "surprise", "unknown_field"),
    ({"customer_id": None}, "customer_id", C.REASON_MISSING_FIELD),
]


def test_a_bad_batch_is_refused_whole_naming_each_bad_field(client, cfg):
    good = transaction("api-c1")
    batch = (
        [good] + [transaction("api-c1", **over) for over, _, _ in BAD_TRANSACTIONS] + [good, "not an object"]
    )
    before = end_offsets(cfg, cfg.transactions_topic)
    r = client.post(  # ASCII JSON: the lone surrogate travels as a \ud800 escape
        f"/api/v1/topics/{cfg.transactions_topic}/messages",
        content=json.dumps(batch),
        headers={"content-type": "application/json", **auth(TOKEN)},
    )
    body = is_problem(r, 422)
    got = {(e["record"], e["field"], e["reason"]) for e in body["errors"]}
    want = {(i + 1, f, reason) for i, (_, f, reason) in enumerate(BAD_TRANSACTIONS)}
    want.add((len(batch) - 1, "", C.REASON_MALFORMED_JSON))
    assert got == want
    assert "nothing was produced" in body["detail"]
    assert end_offsets(cfg, cfg.transactions_topic) == before, "nothing of a bad batch reached Kafka"


def test_bad_customers_are_refused(client, cfg):
    before = end_offsets(cfg, cfg.customers_topic)
    batch = [customer(birth_date="1990-02-31"), customer(email=...), customer(updated_at=5)]
    body = is_problem(
        client.post(f"/api/v1/topics/{cfg.customers_topic}/messages", json=batch, headers=auth(TOKEN)), 422
    )
    assert {(e["record"], e["field"]) for e in body["errors"]} == {
        (0, "birth_date"),
        (1, "email"),
        (2, "updated_at"),
    }
    assert end_offsets(cfg, cfg.customers_topic) == before


def test_request_limits(client, cfg):
    url = f"/api/v1/topics/{cfg.customers_topic}/messages"
    before = end_offsets(cfg, cfg.customers_topic)
    is_problem(client.post(url, json=[customer() for _ in range(51)], headers=auth(TOKEN)), 413)
    big = customer(name="x" * 70_000)
    is_problem(client.post(url, json=big, headers=auth(TOKEN)), 413)
    is_problem(client.post(url, content=b"{not json", headers=auth(TOKEN)), 400)
    is_problem(client.post(url, content=b"\xff\xfe", headers=auth(TOKEN)), 400)
    is_problem(client.post(url, json=[], headers=auth(TOKEN)), 422)
    is_problem(
        client.post("/api/v1/topics/__consumer_offsets/messages", json=customer(), headers=auth(TOKEN)), 404
    )
    is_problem(client.get("/api/v1/topics/__consumer_offsets/messages"), 404)
    is_problem(client.get(f"/api/v1/topics/{cfg.customers_topic}/messages", params={"limit": 10_000}), 422)
    is_problem(client.get(f"/api/v1/topics/{cfg.customers_topic}/messages", params={"from": "-3"}), 422)
    is_problem(client.get(f"/api/v1/topics/{cfg.customers_topic}/messages", params={"partition": 99}), 404)
    assert end_offsets(cfg, cfg.customers_topic) == before


def test_reads_by_offset_are_the_same_on_any_replica_and_after_a_restart(client, cfg, kafka):
    topic = cfg.transactions_topic
    client.post(
        f"/api/v1/topics/{topic}/messages",
        json=[transaction(f"api-r{i}") for i in range(30)],
        headers=auth(TOKEN),
    ).raise_for_status()
    queries = [
        {"from": "earliest", "limit": 7},
        {"from": "latest", "limit": 5},
        {"from": "2", "limit": 4},
        {"from": "1", "partition": 1, "limit": 3},
    ]

    def answers(c):
        return [c.get(f"/api/v1/topics/{topic}/messages", params=q).json()["messages"] for q in queries]

    first = answers(client)
    assert [len(a) for a in first[:2]] == [7, 5]
    assert all(m["offset"] >= 2 for m in first[2])
    assert {m["partition"] for m in first[3]} == {1}
    with TestClient(create_app(cfg, sample=False)) as replica:
        assert answers(replica) == first
    kafka.restart()
    with TestClient(create_app(cfg, sample=False)) as restarted:
        deadline = time.monotonic() + 90
        while True:  # until the restarted broker has elected its partitions' leaders
            rs = [restarted.get(f"/api/v1/topics/{topic}/messages", params=q) for q in queries]
            if all(r.status_code == 200 for r in rs) or time.monotonic() > deadline:
                break
            assert all(r.status_code in (200, 503) for r in rs), [r.text for r in rs]
            time.sleep(1)
        assert [r.json()["messages"] for r in rs] == first, "the same answers after a broker restart"
    groups = AdminClient({"bootstrap.servers": cfg.bootstrap_servers}).list_consumer_groups().result(10)
    assert not [g.group_id for g in groups.valid if "streampipeline-api" in g.group_id], "no consumer group"


def test_latest_is_the_newest_records_across_partitions(client, cfg):
    topic = cfg.transactions_topic
    sent = [transaction(f"api-l{i}") for i in range(9)]
    client.post(f"/api/v1/topics/{topic}/messages", json=sent, headers=auth(TOKEN)).raise_for_status()
    got = client.get(f"/api/v1/topics/{topic}/messages", params={"limit": 9}).json()["messages"]
    assert {json.loads(m["value"])["transaction_id"] for m in got} == {t["transaction_id"] for t in sent}


def test_status_and_topics(client, cfg):
    st = client.get("/api/v1/status").json()
    assert st["kafka"] == {"bootstrap_servers": cfg.bootstrap_servers, "reachable": True}
    ends = end_offsets(cfg, cfg.transactions_topic)
    t = st["topics"][cfg.transactions_topic]
    assert t["kind"] == "transaction"
    assert {p["partition"]: p["high"] for p in t["partitions"]} == ends
    assert t["end_offset_total"] == sum(ends.values())
    assert st["processor"] is None, "no Spark job has written progress to this sink"
    assert st["lag"][cfg.transactions_topic] == sum(ends.values())
    topics = client.get("/api/v1/topics").json()["topics"]
    assert {(t["name"], t["kind"], t["partitions"]) for t in topics} == {
        (cfg.customers_topic, "customer", 3),
        (cfg.transactions_topic, "transaction", 3),
    }


def test_compatibility_layer(client, cfg):
    assert client.get("/status").json() == {
        "status": "ok",
        "kafka_connected": True,
        "bootstrap_servers": cfg.bootstrap_servers,
    }
    c = customer()
    before = end_offsets(cfg, cfg.customers_topic)
    r = client.post(
        f"/publicar/{cfg.customers_topic}", json={"key": c["customer_id"], **c}, headers=auth(TOKEN)
    )
    assert r.status_code == 200, r.text
    pub = r.json()
    assert pub["status"] == "ok" and pub["offset"] >= before[pub["partition"]]
    body = is_problem(
        client.post(
            f"/publicar/{cfg.customers_topic}", json={**customer(), "key": "other"}, headers=auth(TOKEN)
        ),
        422,
    )
    assert body["errors"][0]["field"] == "key"
    msgs = client.get(f"/mensagens/{cfg.customers_topic}", params={"limite": 50}).json()
    assert msgs["topic"] == cfg.customers_topic and msgs["total"] == len(msgs["mensagens"]) <= 50
    assert c in msgs["mensagens"], "values are JSON objects, as the original service returned them"
    assert client.get(f"/mensagens/{cfg.customers_topic}", params={"limite": 2}).json()["total"] == 2


def test_datasets_on_an_empty_sink(client):
    listing = client.get("/api/v1/datasets").json()
    assert listing["available"] is True
    assert {d["name"] for d in listing["datasets"]} >= {"transactions", "quarantine", "by_category"}
    r = client.get("/api/v1/datasets/transactions", params={"year": 2026}).json()
    assert r["rows"] == [] and r["truncated"] is False
    is_problem(client.get("/api/v1/datasets/nope"), 404)
    is_problem(client.get("/api/v1/datasets/by_category", params={"reason": "x"}), 422)


def test_dashboard_page_and_its_vendored_library(client):
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200 and '<canvas id="chart-rates">' in page.text
    assert "http://" not in page.text and "https://" not in page.text, "no CDN"
    lib = client.get("/static/vendor/chart.js-4.5.1.umd.min.js")
    assert lib.status_code == 200
    assert (
        hashlib.sha256(lib.content).hexdigest()
        == "48444a82d4edcb5bec0f1965faacdde18d9c17db3063d042abada2f705c9f54a"
    )
    listing = client.get("/", headers={"Accept": "application/json"}).json()
    assert {"/status", "/mensagens/{topic}", "/publicar/{topic}", "/api/v1/status"} <= set(
        listing["endpoints"]
    )
    assert client.get("/docs").status_code == 200
    ts = client.get("/api/v1/metrics/timeseries").json()
    assert ts["interval_seconds"] == 0.5 and ts["samples"], "the sampler has run"
    assert {"produced_per_s", "processed_per_s", "lag"} <= set(ts["samples"][-1])


def test_binary_values_are_returned_as_base64(client, cfg, kafka):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    p.produce(cfg.transactions_topic, value=b"\xff\x00bin", key=b"\xfe", partition=0)
    p.flush(10)
    got = client.get(
        f"/api/v1/topics/{cfg.transactions_topic}/messages", params={"partition": 0, "limit": 1}
    ).json()["messages"][0]
    assert got["value_encoding"] == "base64" and got["key_encoding"] == "base64"
    mensagens = client.get(f"/mensagens/{cfg.transactions_topic}", params={"limite": 50})
    assert mensagens.status_code == 200


def test_no_stack_trace_on_an_unexpected_error(cfg):
    app = create_app(cfg, sample=False)

    class Broken:
        def reachable(self):
            raise RuntimeError("secret internals")

    app.state.gateway = Broken()

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals at /etc/passwd")

    with TestClient(app, raise_server_exceptions=False) as c:
        body = is_problem(c.get("/boom"), 500)
        assert "secret" not in json.dumps(body)


def test_vendored_license_ships_with_the_library():
    vendor = Path(__import__("streampipeline.api", fromlist=["x"]).__file__).parent / "static" / "vendor"
    assert "MIT License" in (vendor / "chart.js-LICENSE.md").read_text()

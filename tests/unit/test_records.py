"""spjobs.records: the contract's rules in plain Python, as the REST service applies them
before producing.  Checked against the generator's real records, per defect class, for
hostile input (hypothesis), and against the Spark job's own verdicts on the same records."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spjobs import contract as C
from spjobs import records as R
from spjobs.generator.config import GeneratorConfig
from spjobs.generator.model import Record, RecordModel
from spjobs.processor import transforms as X

TXN = {
    "transaction_id": "T1",
    "customer_id": "C1",
    "event_time": "2026-11-26T09:59:58.123Z",
    "amount": "10.50",
    "currency": "BRL",
    "category": "groceries",
    "city": "Recife",
    "payment_method": "pix",
    "merchant": "M",
}
CUST = {
    "customer_id": "C1",
    "name": "Ana",
    "email": "a@x.br",
    "birth_date": "1990-05-01",
    "state": "PE",
    "city": "Recife",
    "signup_time": "2025-01-01T00:00:00.000Z",
    "updated_at": "2025-01-01T00:00:00.000Z",
}


def with_(base, **over):
    d = dict(base)
    for k, v in over.items():
        if v is ...:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def fields(errors):
    return [(e.field, e.reason) for e in errors]


def test_valid_records_pass():
    assert R.validate("transaction", TXN) == []
    assert R.validate("customer", CUST) == []
    assert R.validate("transaction", with_(TXN, currency=..., merchant=...)) == []


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"amount": ...}, [("amount", C.REASON_MISSING_FIELD)]),
        ({"category": "  "}, [("category", C.REASON_MISSING_FIELD)]),
        ({"city": None}, [("city", C.REASON_MISSING_FIELD)]),
        ({"amount": 10.5}, [("amount", R.REASON_WRONG_TYPE)]),
        ({"customer_id": 7}, [("customer_id", R.REASON_WRONG_TYPE)]),
        ({"merchant": ["x"]}, [("merchant", R.REASON_WRONG_TYPE)]),
        ({"amount": "12.345"}, [("amount", C.REASON_INVALID_AMOUNT)]),
        ({"amount": "ten"}, [("amount", C.REASON_INVALID_AMOUNT)]),
        ({"amount": "0.00"}, [("amount", C.REASON_NON_POSITIVE_AMOUNT)]),
        ({"amount": "-3.10"}, [("amount", C.REASON_NON_POSITIVE_AMOUNT)]),
        ({"event_time": "2026-13-45T25:61:00.000Z"}, [("event_time", C.REASON_MALFORMED_DATE)]),
        ({"event_time": "26/11/2026"}, [("event_time", C.REASON_MALFORMED_DATE)]),
        ({"category": "boats"}, [("category", C.REASON_UNKNOWN_CATEGORY)]),
        ({"payment_method": "barter"}, [("payment_method", C.REASON_UNKNOWN_PAYMENT_METHOD)]),
        ({"currency": "USD"}, [("currency", R.REASON_INVALID_CURRENCY)]),
        ({"colour": "red"}, [("colour", R.REASON_UNKNOWN_FIELD)]),
        ({"amount": "x" * 2000}, [("amount", R.REASON_WRONG_TYPE)]),
    ],
)
def test_each_defect_of_a_transaction_names_its_field(over, expected):
    assert fields(R.validate("transaction", with_(TXN, **over))) == expected


def test_every_bad_field_is_reported_not_only_the_first():
    bad = with_(TXN, amount="abc", category="boats", city=..., event_time="now")
    assert sorted(fields(R.validate("transaction", bad))) == sorted(
        [
            ("amount", C.REASON_INVALID_AMOUNT),
            ("category", C.REASON_UNKNOWN_CATEGORY),
            ("city", C.REASON_MISSING_FIELD),
            ("event_time", C.REASON_MALFORMED_DATE),
        ]
    )


@pytest.mark.parametrize(
    ("over", "expected"),
    [
        ({"email": ...}, [("email", C.REASON_MISSING_FIELD)]),
        ({"birth_date": "31/02/1990"}, [("birth_date", C.REASON_MALFORMED_DATE)]),
        ({"birth_date": "1990-02-31"}, [("birth_date", C.REASON_MALFORMED_DATE)]),
        ({"updated_at": "yesterday"}, [("updated_at", C.REASON_MALFORMED_DATE)]),
        ({"signup_time": 1700000000}, [("signup_time", R.REASON_WRONG_TYPE)]),
    ],
)
def test_each_defect_of_a_customer_names_its_field(over, expected):
    assert fields(R.validate("customer", with_(CUST, **over))) == expected


@pytest.mark.parametrize("value", [None, [], [TXN], "text", 3, True])
def test_a_record_that_is_not_an_object_is_refused(value):
    assert fields(R.validate("transaction", value)) == [("", C.REASON_MALFORMED_JSON)]


def test_timestamps_and_dates_as_the_job_reads_them():
    assert R.parse_timestamp("2026-11-26T09:59:58.123Z") is not None
    assert R.parse_timestamp("2026-11-26 09:59:58") is not None
    assert R.parse_timestamp("2026-11-26T09:59:58.123456789+03:00") is not None
    assert R.parse_timestamp("2026-11-26T09:59:58+25:00") is None
    assert R.parse_timestamp("2026-02-30T00:00:00Z") is None
    assert R.parse_date("2024-02-29") == date(2024, 2, 29)
    assert R.parse_date("2023-02-29") is None


def _generated(n=3000):
    cfg = GeneratorConfig(bootstrap_servers="unused:9", invalid_ratio=0.2, customers=50)
    out = []
    for item in RecordModel(cfg).stream():
        if isinstance(item, Record):
            out.append(item)
            if len(out) >= n:
                break
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["customer", "transaction"]), json_values)
def test_any_json_value_gets_a_verdict_never_an_exception(kind, value):
    errors = R.validate(kind, value)
    assert all(isinstance(e, R.FieldError) and e.reason and e.message for e in errors)
    if not isinstance(value, dict):
        assert errors


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(TXN)),
    st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.text(max_size=3), max_size=2)),
)
def test_changing_one_field_blames_that_field_only(name, value):
    errors = R.validate("transaction", with_(TXN, **{name: value}))
    assert {e.field for e in errors} <= {name}


# --- the same verdicts as the Spark job (stateless rules) ----------------------------------
RAW_SCHEMA = "topic string, partition int, offset long, kafka_timestamp timestamp, key string, value string"


def _spark_reasons(spark, topic, payloads):
    from datetime import datetime

    rows = [(topic, 0, i, datetime(2026, 11, 26), None, v) for i, v in enumerate(payloads)]
    df = X.checked_batch(spark.createDataFrame(rows, RAW_SCHEMA), "customers", "transactions")
    return [r["reason"] for r in df.orderBy("offset").select("reason").collect()]


AGREEMENT_TXNS = [
    TXN,
    with_(TXN, amount="12.345"),
    with_(TXN, amount="0"),
    with_(TXN, amount=" 7.5 "),
    with_(TXN, event_time="2026-02-30T00:00:00Z"),
    with_(TXN, event_time="2026-11-26 09:59:58"),
    with_(TXN, event_time="2026-11-26T09:59:58+03:00"),
    with_(TXN, category="Groceries"),
    with_(TXN, payment_method=" pix"),
    with_(TXN, currency=...),
    with_(TXN, merchant=...),
    with_(TXN, transaction_id=" "),
]
AGREEMENT_CUSTS = [
    CUST,
    with_(CUST, birth_date="1990-5-1"),
    with_(CUST, birth_date="2023-02-29"),
    with_(CUST, signup_time="2025-01-01T00:00:00"),
    with_(CUST, updated_at="2025-01-01"),
    with_(CUST, state=...),
]


def test_valid_and_first_reason_agree_with_the_spark_job(spark):
    """For records whose fields are all strings (what the job can read), the plain-Python
    verdict and the job's are the same: valid for both, or the job's reason among ours."""
    for kind, topic, recs in (
        ("transaction", "transactions", AGREEMENT_TXNS),
        ("customer", "customers", AGREEMENT_CUSTS),
    ):
        spark_reasons = _spark_reasons(spark, topic, [json.dumps(r) for r in recs])
        for rec, job in zip(recs, spark_reasons):
            ours = {e.reason for e in R.validate(kind, rec)}
            if job is None:
                assert not ours, (rec, ours)
            else:
                assert job in ours, (rec, job, ours)


def test_the_generators_records_agree_with_the_spark_job(spark):
    """Every record the generator makes, valid or deliberately broken, gets the same verdict
    from both (the stateful reasons, duplicates and unknown customers, are the job's alone)."""
    stateful = {C.REASON_DUPLICATE_TRANSACTION_ID, C.REASON_UNKNOWN_CUSTOMER}
    recs = _generated(1500)
    by_topic: dict[str, list] = {}
    for r in recs:
        by_topic.setdefault(r.topic, []).append(r)
    checked = 0
    for topic, rs in by_topic.items():
        is_customers = topic.endswith("customers")
        kind = "customer" if is_customers else "transaction"
        payloads = [r.value.decode() if isinstance(r.value, bytes) else r.value for r in rs]
        job = _spark_reasons(spark, "customers" if is_customers else "transactions", payloads)
        for payload, reason in zip(payloads, job):
            try:
                obj = json.loads(payload)
            except json.JSONDecodeError:
                assert reason == C.REASON_MALFORMED_JSON
                continue
            ours = {e.reason for e in R.validate(kind, obj)}
            if reason is None or reason in stateful:
                assert not ours, (payload, ours)
            else:
                assert reason in ours, (payload, reason, ours)
            checked += 1
    assert checked > 1000

"""spjobs.records: the REST service's write check, which is the Spark job's own record
checks on the bytes the service would produce, plus the API's unknown-field policy.
Checked per defect class, for hostile input (hypothesis), and against the job's verdicts
(plain Python and the Spark job itself) on generated records: they agree by construction."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spjobs import contract as C
from spjobs import records as R
from spjobs.generator.config import GeneratorConfig
from spjobs.generator.model import Record, RecordModel
from spjobs.processor import records as P
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


KAFKA_US = int(datetime(2026, 11, 26, tzinfo=timezone.utc).timestamp() * 1_000_000)


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
        ({"amount": 10.5}, [("amount", C.REASON_WRONG_TYPE)]),
        ({"customer_id": 7}, [("customer_id", C.REASON_WRONG_TYPE)]),
        ({"merchant": ["x"]}, [("merchant", C.REASON_WRONG_TYPE)]),
        ({"amount": "12.345"}, [("amount", C.REASON_INVALID_AMOUNT)]),
        ({"amount": "ten"}, [("amount", C.REASON_INVALID_AMOUNT)]),
        ({"amount": "0.00"}, [("amount", C.REASON_NON_POSITIVE_AMOUNT)]),
        ({"amount": "-3.10"}, [("amount", C.REASON_NON_POSITIVE_AMOUNT)]),
        ({"event_time": "2026-13-45T25:61:00.000Z"}, [("event_time", C.REASON_MALFORMED_DATE)]),
        ({"event_time": "26/11/2026"}, [("event_time", C.REASON_MALFORMED_DATE)]),
        ({"category": "boats"}, [("category", C.REASON_UNKNOWN_CATEGORY)]),
        ({"payment_method": "barter"}, [("payment_method", C.REASON_UNKNOWN_PAYMENT_METHOD)]),
        ({"currency": "USD"}, [("currency", C.REASON_UNSUPPORTED_CURRENCY)]),
        ({"colour": "red"}, [("colour", R.REASON_UNKNOWN_FIELD)]),
        ({"colour": 3, "amount": 1}, [("amount", C.REASON_WRONG_TYPE), ("colour", R.REASON_UNKNOWN_FIELD)]),
        ({"amount": "x" * 2000}, [("amount", C.REASON_FIELD_TOO_LONG)]),
        ({"merchant": "\ud800"}, [("merchant", C.REASON_INVALID_ENCODING)]),
        ({"event_time": "2100-01-01T00:00:00Z"}, [("event_time", C.REASON_TIMESTAMP_OUT_OF_RANGE)]),
        ({"event_time": "2026-11-26 09:59:58"}, [("event_time", C.REASON_MALFORMED_DATE)]),
        ({"amount": "7.5"}, [("amount", C.REASON_INVALID_AMOUNT)]),
        ({"currency": ""}, [("currency", C.REASON_UNSUPPORTED_CURRENCY)]),
    ],
)
def test_each_defect_of_a_transaction_names_its_field(over, expected):
    assert fields(R.validate("transaction", with_(TXN, **over), KAFKA_US)) == expected


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
        ({"signup_time": 1700000000}, [("signup_time", C.REASON_WRONG_TYPE)]),
        ({"birth_date": "2027-01-01"}, [("birth_date", C.REASON_IMPLAUSIBLE_BIRTH_DATE)]),
        ({"birth_date": "1850-01-01"}, [("birth_date", C.REASON_IMPLAUSIBLE_BIRTH_DATE)]),
    ],
)
def test_each_defect_of_a_customer_names_its_field(over, expected):
    assert fields(R.validate("customer", with_(CUST, **over), KAFKA_US)) == expected


@pytest.mark.parametrize("value", [None, [], [TXN], "text", 3, True])
def test_a_record_that_is_not_an_object_is_refused(value):
    assert fields(R.validate("transaction", value)) == [("", C.REASON_MALFORMED_JSON)]


def test_the_reasons_are_the_contracts_or_a_named_api_policy():
    assert set(R.API_POLICY_REASONS).isdisjoint(C.REASONS)
    assert R.REASON_UNKNOWN_FIELD in R.API_POLICY_REASONS


def test_a_lone_surrogate_is_named_not_a_crash():
    assert R.encode({"a": "\ud800"}) == b'{"a":"\\ud800"}'
    assert R.encode({"a": "é"}) == '{"a":"é"}'.encode()


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
    errors = R.validate(kind, value, KAFKA_US)
    assert all(isinstance(e, R.FieldError) and e.reason and e.message for e in errors)
    assert all(e.reason in C.REASONS or e.reason in R.API_POLICY_REASONS for e in errors)
    if not isinstance(value, dict):
        assert errors


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["customer", "transaction"]), json_values)
def test_the_api_accepts_exactly_what_the_job_accepts(kind, value):
    """By construction: the API's verdict on the bytes it would produce is the job's check
    (first problem = the job's reason), plus the unknown-field policy."""
    rec = value if not isinstance(value, dict) else {**(CUST if kind == "customer" else TXN), **value}
    errors = R.validate(kind, rec, KAFKA_US)
    job = P.check(kind == "customer", R.encode(rec), KAFKA_US)
    contract_errors = [e for e in errors if e.reason not in R.API_POLICY_REASONS]
    if isinstance(job, P.Rejected):
        assert contract_errors and (contract_errors[0].reason, contract_errors[0].message) == job
    else:
        assert contract_errors == []


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(TXN)),
    st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.text(max_size=3), max_size=2)),
)
def test_changing_one_field_blames_that_field_only(name, value):
    errors = R.validate("transaction", with_(TXN, **{name: value}), KAFKA_US)
    assert {e.field for e in errors} <= {name}


# --- the same verdicts as the Spark job (stateless rules) ----------------------------------
RAW_SCHEMA = "topic string, partition int, offset long, kafka_timestamp timestamp, key string, value string"


def _spark_reasons(spark, topic, payloads):
    ts = datetime.fromtimestamp(KAFKA_US / 1e6, timezone.utc).replace(tzinfo=None)
    rows = [(topic, 0, i, ts, None, v) for i, v in enumerate(payloads)]
    df = X.checked_batch(spark.createDataFrame(rows, RAW_SCHEMA), "customers", "transactions")
    return [r["reason"] for r in df.orderBy("offset").select("reason").collect()]


def test_the_generators_records_agree_with_the_job(spark):
    """Every record the generator makes, valid or deliberately broken, gets the same verdict
    from the API as from the Spark job on the bytes the API would produce: the same first
    reason, or valid for both (duplicates and unknown customers are the job's alone)."""
    stateful = set(C.STATEFUL_CHECKS)
    by_topic: dict[str, list] = {}
    for r in _generated(1500):
        by_topic.setdefault(r.topic, []).append(r)
    checked = 0
    for topic, rs in by_topic.items():
        kind = "customer" if topic.endswith("customers") else "transaction"
        objs = []
        for r in rs:
            try:
                objs.append(json.loads(r.value))
            except json.JSONDecodeError:  # the injected malformed_json: the API's body parser refuses it
                assert P.check(kind == "customer", r.value, KAFKA_US).reason == C.REASON_MALFORMED_JSON
        sent = [R.encode(o).decode() for o in objs]
        job = _spark_reasons(spark, "customers" if kind == "customer" else "transactions", sent)
        for obj, reason in zip(objs, job):
            ours = [e.reason for e in R.validate(kind, obj, KAFKA_US)]
            if reason is None or reason in stateful:
                assert ours == [], (obj, ours)
            else:
                assert ours and ours[0] == reason, (obj, reason, ours)
            checked += 1
    assert checked > 1000

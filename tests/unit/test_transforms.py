"""The Spark half of a batch (parse, validate, type) on a handful of rows, in a real local Spark session."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest

from spjobs import contract as C
from spjobs.processor import stateful as S
from spjobs.processor import transforms as X

RAW_SCHEMA = "topic string, partition int, offset long, kafka_timestamp timestamp, key binary, value binary"
T0 = datetime(2026, 11, 26, 10, 0, 0)


def txn(tid="T1", cid="C1", **over):
    d = {
        "transaction_id": tid,
        "customer_id": cid,
        "event_time": "2026-11-26T09:59:58.123Z",
        "amount": "10.50",
        "currency": "BRL",
        "category": "groceries",
        "city": "Recife",
        "payment_method": "pix",
        "merchant": "M",
    }
    d.update(over)
    return json.dumps({k: v for k, v in d.items() if v is not ...})


def cust(cid="C1", **over):
    d = {
        "customer_id": cid,
        "name": "Ana",
        "email": "a@x.br",
        "birth_date": "1990-05-01",
        "state": "PE",
        "city": "Recife",
        "signup_time": "2025-01-01T00:00:00.000Z",
        "updated_at": "2025-01-01T00:00:00.000Z",
    }
    d.update(over)
    return json.dumps({k: v for k, v in d.items() if v is not ...})


def _bytes(v):
    return v.encode() if isinstance(v, str) else v


def raw(spark, topic, values, start=0, ts=T0):
    rows = [(topic, 0, start + i, ts, None, _bytes(v)) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, RAW_SCHEMA)


def check(spark, topic, values):
    """The job's own validation (BatchChecker) over records of one topic."""
    return X.checked_batch(raw(spark, topic, values), "customers", "transactions")


def reasons(df):
    return [r["reason"] for r in df.orderBy("offset").select("reason").collect()]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (txn(), None),
        ('{"transaction_id": "T1"', C.REASON_MALFORMED_JSON),
        ("[1, 2]", C.REASON_MALFORMED_JSON),
        ("{}", C.REASON_MISSING_FIELD),
        (txn()[:-1] + ', "x": 1} {}', C.REASON_MALFORMED_JSON),  # two values in one record
        (txn().replace('"', "'"), C.REASON_MALFORMED_JSON),  # single quotes
        (txn().encode().replace(b"Recife", b"Rec\xedfe"), C.REASON_INVALID_ENCODING),  # Latin-1
        (txn()[:-1] + ', "amount": "1.00"}', C.REASON_DUPLICATE_FIELD),
        (txn(amount=10.5), C.REASON_WRONG_TYPE),
        (txn(city={"name": "Recife"}), C.REASON_WRONG_TYPE),
        (txn(city="\ud800"), C.REASON_INVALID_ENCODING),
        (txn(merchant="m" * (C.MAX_FIELD_CHARS + 1)), C.REASON_FIELD_TOO_LONG),
        (txn(event_time="9999-12-31T23:59:59-05:00"), C.REASON_TIMESTAMP_OUT_OF_RANGE),
        (txn(event_time="1969-12-31T23:59:59.999Z"), C.REASON_TIMESTAMP_OUT_OF_RANGE),
        (txn(event_time="2026-11-26 09:59:58Z"), C.REASON_MALFORMED_DATE),
        (txn(amount="10.5"), C.REASON_INVALID_AMOUNT),
        (txn(amount="10"), C.REASON_INVALID_AMOUNT),
        (txn(amount="100000000.00"), C.REASON_INVALID_AMOUNT),
        (txn(currency="USD"), C.REASON_UNSUPPORTED_CURRENCY),
        (txn(amount=...), C.REASON_MISSING_FIELD),
        (txn(category="  "), C.REASON_MISSING_FIELD),
        (txn(category=None), C.REASON_MISSING_FIELD),
        (txn(event_time="2026-13-45T25:61:00.000Z"), C.REASON_MALFORMED_DATE),
        (txn(event_time="26/11/2026"), C.REASON_MALFORMED_DATE),
        (txn(amount="12.345"), C.REASON_INVALID_AMOUNT),
        (txn(amount="ten"), C.REASON_INVALID_AMOUNT),
        (txn(amount="0.00"), C.REASON_NON_POSITIVE_AMOUNT),
        (txn(amount="-3.10"), C.REASON_NON_POSITIVE_AMOUNT),
        (txn(category="boats"), C.REASON_UNKNOWN_CATEGORY),
        (txn(payment_method="barter"), C.REASON_UNKNOWN_PAYMENT_METHOD),
        (txn(currency=...), None),  # currency is optional, defaults to BRL
    ],
)
def test_validate_transactions(spark, value, reason):
    row = check(spark, "transactions", [value]).collect()[0]
    assert row["reason"] == reason
    if reason is None:
        assert str(row["amount"]) == json.loads(value)["amount"]
    else:
        assert row["detail"], "a rejected record says why"


def test_validate_reports_the_missing_field_by_name(spark):
    row = check(spark, "transactions", [txn(city=...)]).collect()[0]
    assert row["detail"] == "missing required field 'city'"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (cust(), None),
        (cust(email=...), C.REASON_MISSING_FIELD),
        (cust(birth_date="31/02/1990"), C.REASON_MALFORMED_DATE),
        (cust(birth_date="1990-02-31"), C.REASON_MALFORMED_DATE),
        (cust(updated_at="yesterday"), C.REASON_MALFORMED_DATE),
        (cust(birth_date="2027-01-01"), C.REASON_IMPLAUSIBLE_BIRTH_DATE),  # after its Kafka day
        (cust(birth_date="1890-01-01"), C.REASON_IMPLAUSIBLE_BIRTH_DATE),  # older than 130
        (cust(signup_time="1989-01-01T00:00:00Z"), C.REASON_IMPLAUSIBLE_BIRTH_DATE),  # signed up unborn
        (None, C.REASON_NULL_VALUE),
        (b" " * (C.MAX_RECORD_BYTES + 1), C.REASON_RECORD_TOO_LARGE),
        ("not json", C.REASON_MALFORMED_JSON),
    ],
)
def test_validate_customers(spark, value, reason):
    assert reasons(check(spark, "customers", [value])) == [reason]


def test_checked_batch_judges_each_record_by_its_topic_and_hands_over_the_agreed_schema(spark):
    rows = [
        ("customers", 0, 0, T0, "C1", cust()),
        ("transactions", 0, 0, T0, "C1", txn(amount="1234.50")),
        ("transactions", 0, 1, T0, "C1", cust()),  # a customer on the transactions topic
        ("customers", 0, 1, T0, "C2", txn()),  # and a transaction on the customers topic
    ]
    rows = [(*r[:4], r[4].encode(), r[5].encode()) for r in rows]
    out = X.checked_batch(spark.createDataFrame(rows, RAW_SCHEMA), "customers", "transactions").toArrow()
    assert out.schema == S.CHECKED_SCHEMA
    got = {(r["topic"], r["offset"]): r for r in out.to_pylist()}
    assert set(got) == {("customers", 0), ("transactions", 0), ("transactions", 1), ("customers", 1)}
    c = got[("customers", 0)]
    assert c["reason"] is None and c["birth_date"] == date(1990, 5, 1) and c["transaction_id"] is None
    t = got[("transactions", 0)]
    assert t["reason"] is None and (t["amount_cents"], t["year"], t["month"], t["month_day"]) == (
        123450,
        2026,
        11,
        1126,
    )
    assert got[("transactions", 1)]["detail"] == "missing required field 'transaction_id'"
    assert got[("customers", 1)]["detail"] == "missing required field 'name'"


def test_parse_payloads_is_the_checkers_parse_without_the_checks(spark):
    """The benchmark's parse-only baseline: every field of both record types as text in
    place of the payload, what does not decode named in ``_corrupt``, nothing judged."""
    values = [txn(amount="-1"), cust(), '{"transaction_id": "T9"']
    out = X.parse_payloads(raw(spark, "transactions", values)).orderBy("offset").collect()
    fields = set(C.CUSTOMER_FIELDS) | set(C.TRANSACTION_FIELDS)
    assert set(out[0].asDict()) == set(X.RAW_COLUMNS) - {"value"} | fields | {"_corrupt"}
    assert (out[0]["amount"], out[0]["category"], out[0]["_corrupt"]) == ("-1", "groceries", None)
    assert (out[1]["birth_date"], out[1]["transaction_id"]) == ("1990-05-01", None)
    assert out[2]["_corrupt"] == C.REASON_MALFORMED_JSON and out[2]["transaction_id"] is None

"""Each transform of the Spark job on a handful of rows, in a real local Spark session."""

from __future__ import annotations

import json
from datetime import date, datetime

import pytest
from pyspark.sql import functions as F

from spjobs import contract as C
from spjobs.processor import transforms as X

RAW_SCHEMA = "topic string, partition int, offset long, kafka_timestamp timestamp, key string, value string"
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


def raw(spark, topic, values, start=0, ts=T0):
    rows = [(topic, 0, start + i, ts, None, v) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, RAW_SCHEMA)


def reasons(df):
    return [r["reason"] for r in df.orderBy("offset").select("reason").collect()]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (txn(), None),
        ('{"transaction_id": "T1"', C.REASON_MALFORMED_JSON),
        ("[1, 2]", C.REASON_MALFORMED_JSON),
        ("{}", C.REASON_MALFORMED_JSON),
        (txn(amount=...), C.REASON_MISSING_FIELD),
        (txn(category="  "), C.REASON_MISSING_FIELD),
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
    out = X.validate_transactions(raw(spark, "transactions", [value]))
    row = out.collect()[0]
    assert row["reason"] == reason
    if reason is None:
        assert str(row["amount_d"]) == json.loads(value)["amount"]
    else:
        assert row["detail"], "a rejected record says why"


def test_validate_reports_the_missing_field_by_name(spark):
    row = X.validate_transactions(raw(spark, "transactions", [txn(city=...)])).collect()[0]
    assert row["detail"] == "missing required field 'city'"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (cust(), None),
        (cust(email=...), C.REASON_MISSING_FIELD),
        (cust(birth_date="31/02/1990"), C.REASON_MALFORMED_DATE),
        (cust(birth_date="1990-02-31"), C.REASON_MALFORMED_DATE),
        (cust(updated_at="yesterday"), C.REASON_MALFORMED_DATE),
        ("not json", C.REASON_MALFORMED_JSON),
    ],
)
def test_validate_customers(spark, value, reason):
    assert reasons(X.validate_customers(raw(spark, "customers", [value]))) == [reason]


def test_duplicates_first_arrival_wins_and_broken_records_do_not_use_ids(spark):
    values = [txn("T1", amount="0.00"), txn("T1"), txn("T1"), txn("T2"), txn("T3")]
    checked = X.validate_transactions(raw(spark, "transactions", values))
    seen = spark.createDataFrame([("T3",)], "transaction_id string")
    out = X.mark_duplicates(checked, seen)
    assert reasons(out) == [
        C.REASON_NON_POSITIVE_AMOUNT,
        None,
        C.REASON_DUPLICATE_TRANSACTION_ID,
        None,
        C.REASON_DUPLICATE_TRANSACTION_ID,
    ]


def versions(spark, rows):
    """Customer versions; the offset (arrival order) defaults to the row's position."""
    rows = [r if len(r) == 7 else (*r, 0, i) for i, r in enumerate(rows)]
    return spark.createDataFrame(
        rows,
        "customer_id string, state string, city string, birth_date date, kafka_timestamp timestamp, "
        "kafka_partition int, kafka_offset long",
    )


def test_enrich_uses_the_customer_version_as_of_the_transaction(spark):
    hist = versions(
        spark,
        [
            ("C1", "PE", "Recife", date(1990, 5, 1), datetime(2026, 11, 26, 9)),
            ("C1", "SP", "Santos", date(1990, 5, 1), datetime(2026, 11, 26, 11)),  # moved later
            ("C2", "RJ", "Rio", date(2000, 1, 1), datetime(2026, 11, 26, 12)),  # only a later version
        ],
    )
    rows = [txn("T1", "C1"), txn("T2", "C2"), txn("T3", "C9")]
    df = X.mark_duplicates(X.validate_transactions(raw(spark, "transactions", rows)), None)
    out = {r["transaction_id"]: r for r in X.enrich(df, hist, C.DEFAULT_AGE_BANDS).collect()}
    assert out["T1"]["c_state"] == "PE" and out["T1"]["reason"] is None
    assert out["T2"]["c_state"] == "RJ", "falls back to the earliest version"
    assert out["T3"]["reason"] == C.REASON_UNKNOWN_CUSTOMER
    assert out["T3"]["detail"] == "no valid customer with id C9"


def test_enrich_breaks_timestamp_ties_by_arrival(spark):
    """Two versions sent in the same millisecond: the later offset is the current one."""
    same = datetime(2026, 11, 26, 9)
    hist = versions(
        spark,
        [
            ("C1", "PR", "Curitiba", date(1990, 5, 1), same, 0, 8),
            ("C1", "PA", "Belem", date(1990, 5, 1), same, 0, 9),  # alphabetically first, but last to arrive
        ],
    )
    df = X.mark_duplicates(X.validate_transactions(raw(spark, "transactions", [txn()])), None)
    assert X.enrich(df, hist, C.DEFAULT_AGE_BANDS).collect()[0]["c_state"] == "PA"


@pytest.mark.parametrize(
    ("birth", "band", "age"),
    [
        ("1996-11-27", "young", 29),
        ("1996-11-26", "adult", 30),
        ("1966-11-27", "adult", 59),
        ("1966-11-26", "senior", 60),
        ("1930-01-01", "senior", 96),
    ],
)
def test_age_bands_at_event_time(spark, birth, band, age):
    hist = versions(spark, [("C1", "PE", "Recife", date.fromisoformat(birth), datetime(2026, 1, 1))])
    df = X.mark_duplicates(X.validate_transactions(raw(spark, "transactions", [txn()])), None)
    row = X.enrich(df, hist, C.DEFAULT_AGE_BANDS).collect()[0]
    assert (row["age"], row["age_band"]) == (age, band)


def test_custom_age_bands_get_range_labels(spark):
    df = spark.createDataFrame([(17,), (18,), (64,), (65,)], "age int")
    got = [r[0] for r in df.select(X.age_band(F.col("age"), (18, 65))).collect()]
    assert got == ["under_18", "18_64", "18_64", "65_plus"]


def test_transaction_rows_follow_the_contract(spark):
    hist = versions(spark, [("C1", "PE", "Olinda", date(1990, 5, 1), datetime(2026, 1, 1))])
    df = X.mark_duplicates(X.validate_transactions(raw(spark, "transactions", [txn(amount="1234.5")])), None)
    rows = X.transaction_rows(X.enrich(df, hist, C.DEFAULT_AGE_BANDS))
    assert dict(rows.dtypes)["amount"] == "decimal(12,2)"
    r = rows.collect()[0]
    assert (str(r["amount"]), r["state"], r["customer_city"], r["city"], r["year"], r["month"]) == (
        "1234.50",
        "PE",
        "Olinda",
        "Recife",
        2026,
        11,
    )


def test_quarantine_rows_keep_the_raw_payload(spark):
    checked = X.validate_transactions(raw(spark, "transactions", ["{broken"]))
    q = X.quarantine_rows(checked, "transaction", batch_id=7).collect()[0]
    assert (q["raw_value"], q["reason"], q["batch_id"], q["record_type"]) == (
        "{broken",
        C.REASON_MALFORMED_JSON,
        7,
        "transaction",
    )
    assert tuple(X.quarantine_rows(checked, "transaction", 7).columns) == X.QUARANTINE_COLUMNS


def test_aggregate_deltas_cover_all_four_aggregates_in_cents(spark):
    hist = versions(spark, [("C1", "PE", "Recife", date(1990, 5, 1), datetime(2026, 1, 1))])
    vals = [txn("T1", amount="10.01"), txn("T2", amount="0.99", category="fuel")]
    df = X.mark_duplicates(X.validate_transactions(raw(spark, "transactions", vals)), None)
    deltas = X.aggregate_deltas(X.transaction_rows(X.enrich(df, hist, C.DEFAULT_AGE_BANDS))).toPandas()
    assert set(deltas["agg"]) == set(C.AGGREGATES)
    cat = deltas[deltas["agg"] == "by_category"].set_index("category")
    assert cat.loc["groceries", "total_cents"] == 1001 and cat.loc["fuel", "total_cents"] == 99
    period = deltas[deltas["agg"] == "by_period_state_age_band"]
    assert period[["year", "month", "state", "age_band", "transaction_count"]].values.tolist() == [
        [2026, 11, "PE", "adult", 2]
    ]

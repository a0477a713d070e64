"""processor.records.problems: every problem of a record, for the REST service, with the
job's own verdict first.  Held to :func:`check` on generated records (hypothesis): the
first problem is the job's rejection, byte for byte, and no problem means the job accepts."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from spjobs import contract as C
from spjobs.processor import records as P

NOW_US = 1_795_000_000_000_000  # 2026-11-17, a Kafka timestamp in range

GOOD_TXN = {
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
GOOD_CUST = {
    "customer_id": "C1",
    "name": "Ana",
    "email": "a@x.br",
    "birth_date": "1990-05-01",
    "state": "PE",
    "city": "Recife",
    "signup_time": "2025-01-01T00:00:00.000Z",
    "updated_at": "2025-01-01T00:00:00.000Z",
}

# Values near every rule's edge, valid and not, for any field.
edge_values = st.one_of(
    st.none(),
    st.integers(-5, 5),
    st.booleans(),
    st.lists(st.text(max_size=2), max_size=2),
    st.sampled_from(
        [
            "",
            "  ",
            "x" * 257,
            "x" * 256,
            "\ud800",
            "BRL",
            "USD",
            "groceries",
            "boats",
            "pix",
            "barter",
            "10.50",
            "0.00",
            "-1.00",
            "1.234",
            "012.00",
            "99999999.99",
            "1990-05-01",
            "1990-02-31",
            "1800-01-01",
            "2030-01-01",
            "2026-11-26T09:59:58.123Z",
            "2026-11-26T09:59:58+03:00",
            "2026-11-26 09:59:58",
            "2026-13-01T00:00:00Z",
            "2100-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2026-11-26T09:59:58+24:00",
        ]
    ),
    st.text(max_size=12),
)


@st.composite
def records(draw):
    is_customer = draw(st.booleans())
    rec = dict(GOOD_CUST if is_customer else GOOD_TXN)
    for name in draw(st.lists(st.sampled_from(sorted(rec)), max_size=4, unique=True)):
        v = draw(edge_values)
        if v is None and draw(st.booleans()):
            rec.pop(name)
        else:
            rec[name] = v
    if draw(st.booleans()):
        rec[draw(st.text(max_size=5))] = draw(edge_values)
    value = json.dumps(rec, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    kafka_us = draw(st.sampled_from([NOW_US, NOW_US, NOW_US, None, -1, C.MAX_TIMESTAMP_MS * 1000]))
    return is_customer, value, kafka_us


def _agree(is_customer, value, kafka_us):
    verdict = P.check(is_customer, value, kafka_us)
    found = P.problems(is_customer, value, kafka_us)
    if isinstance(verdict, P.Rejected):
        assert found and found[0].rejected == verdict, (value, verdict, found)
    else:
        assert found == [], (value, found)
    assert all(p.rejected.reason in C.REASONS for p in found)
    named = [p.field for p in found if p.field]
    assert len(named) == len(set(named)), found  # one problem per field: its first


@settings(max_examples=1500, deadline=None)
@given(records())
def test_the_first_problem_is_the_jobs_verdict(case):
    _agree(*case)


@settings(max_examples=300, deadline=None)
@given(st.booleans(), st.one_of(st.none(), st.binary(max_size=40)), st.sampled_from([NOW_US, None]))
def test_any_bytes_agree_too(is_customer, value, kafka_us):
    _agree(is_customer, value, kafka_us)


def test_every_bad_field_is_named():
    bad = dict(GOOD_TXN, amount="abc", category="boats", event_time="now", merchant=3)
    bad.pop("city")
    found = [(p.field, p.rejected.reason) for p in P.problems(False, json.dumps(bad).encode(), NOW_US)]
    assert found == [
        ("merchant", C.REASON_WRONG_TYPE),
        ("city", C.REASON_MISSING_FIELD),
        ("event_time", C.REASON_MALFORMED_DATE),
        ("amount", C.REASON_INVALID_AMOUNT),
        ("category", C.REASON_UNKNOWN_CATEGORY),
    ]

# ruff: noqa: E501 (tables of cases, one per line)
"""Property-based: whatever bytes a record holds, the checks and the driver half never raise,
and every record lands in exactly one output with a reason from the contract.

Payloads are random bytes, random JSON, and valid records mutated one or more ways
(wrong types, extreme and malformed timestamps and amounts, truncation, stray bytes,
duplicate names, huge fields); Kafka timestamps range over the whole of int64.  The
job's checks (:mod:`spjobs.processor.records`) must also agree, record by record, with
the independent reference the integration tests use (``tests/integration/reference.py``).
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from integration.reference import Raw, customer_reason, transaction_reason

from spjobs import contract as C
from spjobs.processor import records as R
from spjobs.processor import stateful as S
from spjobs.processor import transforms as X

NOW_MS = int(datetime(2026, 11, 26, 10, tzinfo=timezone.utc).timestamp() * 1000)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def js(d: object) -> bytes:
    return json.dumps(d).encode()


def valid_txn(**over) -> dict:
    d = {
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
    d.update(over)
    return d


def valid_cust(**over) -> dict:
    d = {
        "customer_id": "C1",
        "name": "Ana",
        "email": "a@x.br",
        "birth_date": "1990-05-01",
        "state": "PE",
        "city": "Recife",
        "signup_time": "2025-01-01T00:00:00.000Z",
        "updated_at": "2025-01-01T00:00:00.000Z",
    }
    d.update(over)
    return d


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.from_regex(
        r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})?\Z"
    ),
    st.sampled_from(
        [
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+14:00",
            "0000-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999Z",
            "2099-12-31T23:59:59.9999999Z",
            "2100-01-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2028-02-29T00:00:00Z",
            "2026-11-26T23:59:60Z",
            "2026-11-26t10:00:00z",
            "2026-11-26T10:00:00+24:00",
        ]
    ),
)
amounts = st.one_of(
    st.from_regex(r"\A[-+ ]?[0-9]{0,12}(\.[0-9]{0,4})?\Z"),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["99999999.99", "100000000.00", "0.01", "0.00", "-0.00", "1e3", "١٢.٣٤", "10.5"]),
)
field_values = st.one_of(json_values, timestamps, amounts, st.text(min_size=250, max_size=300))


@st.composite
def mutated(draw) -> bytes:
    """A valid record of either type with one to three defects."""
    d = draw(st.sampled_from([valid_txn, valid_cust]))()
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["set", "drop", "ts", "amount", "extra"]))
        field = draw(st.sampled_from(sorted(set(C.TRANSACTION_FIELDS) | set(C.CUSTOMER_FIELDS))))
        if op == "set":
            d[field] = draw(field_values)
        elif op == "drop":
            d.pop(field, None)
        elif op == "ts":
            d[draw(st.sampled_from(["event_time", "signup_time", "updated_at", "birth_date"]))] = draw(
                timestamps
            )
        elif op == "amount":
            d["amount"] = draw(amounts)
        else:
            d[draw(st.text(max_size=10))] = draw(json_values)
    text = json.dumps(d, ensure_ascii=draw(st.booleans()), allow_nan=True)
    raw = text.encode("utf-8", "surrogatepass")
    damage = draw(st.sampled_from(["none", "truncate", "byte", "append", "duplicate", "bom", "quotes"]))
    if damage == "truncate":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    elif damage == "byte":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=3)) + raw[at:]
    elif damage == "append":
        raw += draw(st.sampled_from([b" ", b"{}", b"\n" + raw, b"x", b"\x00"]))
    elif damage == "duplicate":
        raw = raw[:-1] + b', "amount": "1.00", "customer_id": "C1"}'
    elif damage == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif damage == "quotes":
        raw = raw.replace(b'"', b"'")
    return raw


payloads = st.one_of(
    st.none(),
    st.binary(max_size=400),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode("utf-8", "surrogatepass")),
    mutated(),
    mutated(),
    mutated(),
    st.just(b" " * (C.MAX_RECORD_BYTES + 1)),
    st.just(b"[" * 5000 + b"]" * 5000),
)
kafka_ms = st.one_of(
    st.just(NOW_MS),
    st.integers(min_value=NOW_MS - 10**12, max_value=NOW_MS + 10**7),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.sampled_from([-1, 0, C.MAX_TIMESTAMP_MS - 1, C.MAX_TIMESTAMP_MS]),
)


@SETTINGS
@given(is_customer=st.booleans(), value=payloads, ts_ms=kafka_ms)
def test_a_record_check_never_raises_and_agrees_with_the_reference(is_customer, value, ts_ms):
    out = R.check(is_customer, value, ts_ms * 1000)
    ref_reason, _ = (customer_reason if is_customer else transaction_reason)(
        Raw("t", 0, 0, ts_ms, None, value)
    )
    if isinstance(out, R.Rejected):
        assert out.reason in C.RECORD_CHECKS
        assert out.detail and out.detail.encode("utf-8")  # says why, as valid text
        assert out.reason == ref_reason, (out, ref_reason)
    else:
        assert ref_reason is None, (out, ref_reason)
        assert isinstance(out, R.Customer if is_customer else R.Transaction)


def _roundtrip(table: pa.Table) -> pa.Table:
    """Written and read back as Parquet, validated in full (what a reader would get)."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    back = pq.read_table(io.BytesIO(buf.getvalue()))
    back.validate(full=True)
    return back


records = st.lists(
    st.tuples(st.booleans(), payloads, kafka_ms, st.none() | st.binary(max_size=20)), max_size=25
)


@SETTINGS
@given(batch=records)
def test_every_record_of_a_batch_lands_in_exactly_one_output(batch):
    """The Spark half's Arrow function and the driver half over one batch: one row per
    record in transactions/ or customers/ or quarantine/, each quarantined one with a
    contract reason and a detail, every output a valid Parquet file."""
    seed = [(True, json.dumps(valid_cust()).encode(), NOW_MS, b"C1")]
    rows = seed + list(batch)
    raw = pa.record_batch(
        {
            "topic": pa.array(["customers" if c else "transactions" for c, *_ in rows]),
            "partition": pa.array([0] * len(rows), pa.int32()),
            "offset": pa.array(range(len(rows)), pa.int64()),
            "kafka_timestamp": pa.array([ms * 1000 for _, _, ms, _ in rows], S.TS),
            "key": pa.array([k for *_, k in rows], pa.binary()),
            "value": pa.array([v for _, v, _, _ in rows], pa.binary()),
        }
    )
    checked = pa.Table.from_batches([X.check_arrow(raw, "customers")])
    assert checked.schema == S.CHECKED_SCHEMA and checked.num_rows == len(rows)
    checked.validate(full=True)
    split = S.split(checked, "customers", "transactions")
    versions = S.customer_rows(split.customers)
    history = S.CustomerHistory()
    history.add(versions.select(list(S.VERSION_COLUMNS)))
    settled = S.settle_transactions(split.transactions, set(), history, (30, 60))
    outputs = {
        "transactions": _roundtrip(S.transaction_rows(settled)),
        "customers": _roundtrip(versions),
        "quarantine": _roundtrip(S.quarantine_rows(split.customers, settled, batch_id=0)),
    }
    q = outputs["quarantine"]
    landed = (
        [("transactions", o) for o in outputs["transactions"]["kafka_offset"].to_pylist()]
        + [("customers", o) for o in outputs["customers"]["kafka_offset"].to_pylist()]
        + [(t, o) for t, o in zip(q["topic"].to_pylist(), q["offset"].to_pylist())]
    )
    assert sorted(landed, key=lambda x: x[1]) == [
        ("customers" if c else "transactions", i) for i, (c, *_) in enumerate(rows)
    ]
    assert set(q["reason"].to_pylist()) <= set(C.REASONS)
    assert all(q["detail"].to_pylist())
    # The bytes are kept exactly, and the text for people is what they decode to.
    for off, value, key, text in zip(
        q["offset"].to_pylist(), q["raw_value"].to_pylist(), q["key"].to_pylist(), q["value_text"].to_pylist()
    ):
        assert value == rows[off][1] and key == rows[off][3]
        assert text == (None if value is None else value.decode("utf-8", "backslashreplace"))
    S.aggregate_deltas(outputs["transactions"], S.amount_cents(settled))


@pytest.mark.parametrize(
    ("is_customer", "value", "ts_ms", "reason", "says"),
    [
        (False, js(valid_txn()), -1, C.REASON_TIMESTAMP_OUT_OF_RANGE, "Kafka timestamp"),
        (False, None, NOW_MS, C.REASON_NULL_VALUE, "no value"),
        (False, b"x" * (C.MAX_RECORD_BYTES + 1), NOW_MS, C.REASON_RECORD_TOO_LARGE, "16385 bytes"),
        (False, b'{"a": "\xe9"}', NOW_MS, C.REASON_INVALID_ENCODING, "0xe9 at byte 7"),
        (False, js(valid_txn()) + b"{}", NOW_MS, C.REASON_MALFORMED_JSON, "Extra data"),
        (False, b"[]", NOW_MS, C.REASON_MALFORMED_JSON, "array, not an object"),
        (False, b'{"x": NaN}', NOW_MS, C.REASON_MALFORMED_JSON, "NaN"),
        (False, b'{"a": 1, "a": 1}', NOW_MS, C.REASON_DUPLICATE_FIELD, '"a"'),
        (False, js(valid_txn(amount=10.5)), NOW_MS, C.REASON_WRONG_TYPE, "'amount' must be a JSON string, not a JSON number"),
        (False, js(valid_txn(city=[])), NOW_MS, C.REASON_WRONG_TYPE, "'city' must be a JSON string, not a JSON array"),
        (False, js(valid_txn(city="\ud800")), NOW_MS, C.REASON_INVALID_ENCODING, "'city'"),
        (False, js(valid_txn(city=" ")), NOW_MS, C.REASON_MISSING_FIELD, "'city'"),
        (False, js(valid_txn(merchant="m" * 257)), NOW_MS, C.REASON_FIELD_TOO_LONG, "'merchant' has 257"),
        (False, js(valid_txn(event_time="2026-11-26")), NOW_MS, C.REASON_MALFORMED_DATE, "event_time"),
        (False, js(valid_txn(event_time="9999-12-31T23:59:59-05:00")), NOW_MS, C.REASON_TIMESTAMP_OUT_OF_RANGE, "event_time"),
        (False, js(valid_txn(amount="10.5")), NOW_MS, C.REASON_INVALID_AMOUNT, '"10.5"'),
        (False, js(valid_txn(amount="-1.00")), NOW_MS, C.REASON_NON_POSITIVE_AMOUNT, '"-1.00"'),
        (False, js(valid_txn(currency="EUR")), NOW_MS, C.REASON_UNSUPPORTED_CURRENCY, '"EUR"'),
        (False, js(valid_txn(category="boats")), NOW_MS, C.REASON_UNKNOWN_CATEGORY, '"boats"'),
        (False, js(valid_txn(payment_method="barter")), NOW_MS, C.REASON_UNKNOWN_PAYMENT_METHOD, '"barter"'),
        (True, js(valid_cust(birth_date="2030-01-01")), NOW_MS, C.REASON_IMPLAUSIBLE_BIRTH_DATE, "2030-01-01"),
        (True, js(valid_cust(updated_at="2026-11-26T10:00:00")), NOW_MS, C.REASON_MALFORMED_DATE, "updated_at"),
    ],
)  # fmt: skip
def test_each_reason_says_what_to_fix(is_customer, value, ts_ms, reason, says):
    out = R.check(is_customer, value, ts_ms * 1000)
    assert isinstance(out, R.Rejected) and out.reason == reason, out
    assert says in out.detail, out.detail


def test_a_valid_record_is_typed_exactly():
    t = R.check(False, js(valid_txn(event_time="2026-11-26T12:29:58.1234567+02:30")), NOW_MS * 1000)
    assert isinstance(t, R.Transaction) and t.amount_cents == 1050
    assert t.event_time == int(
        datetime(2026, 11, 26, 9, 59, 58, 123456, tzinfo=timezone.utc).timestamp() * 1e6
    )
    c = R.check(True, js(valid_cust()), NOW_MS * 1000)
    assert isinstance(c, R.Customer) and c.birth_date == (datetime(1990, 5, 1) - datetime(1970, 1, 1)).days

"""The driver half of a batch (duplicates, enrichment, output rows) on hand-made Arrow tables."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest

from spjobs import contract as C
from spjobs.processor import stateful as S

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 26, hour, minute, tzinfo=timezone.utc)


def checked(*rows: dict) -> pa.Table:
    """Rows as BatchChecker hands them over; unspecified columns are null."""
    full = []
    for i, r in enumerate(rows):
        row = {f.name: None for f in S.CHECKED_SCHEMA}
        row.update(topic="transactions", partition=0, offset=i, kafka_timestamp=T0, value=f"raw-{i}".encode())
        row.update(r)
        full.append(row)
    return pa.Table.from_pylist(full, schema=S.CHECKED_SCHEMA)


def txn(
    tid="T1", cid="C1", amount="10.50", ev=datetime(2026, 11, 26, 9, 59, 58, tzinfo=timezone.utc), **over
):
    d = {
        "transaction_id": tid,
        "customer_id": cid,
        "key": cid.encode(),
        "event_time": ev,
        "amount": Decimal(amount),
        "amount_cents": int(Decimal(amount) * 100),
        "category": "groceries",
        "city": "Recife",
        "payment_method": "pix",
        "year": ev.year,
        "month": ev.month,
        "month_day": ev.month * 100 + ev.day,
    }
    d.update(over)
    return d


VERSIONS_SCHEMA = pa.schema(
    [
        ("customer_id", pa.string()),
        ("state", pa.string()),
        ("city", pa.string()),
        ("birth_date", pa.date32()),
        ("updated_at", S.TS),
        ("kafka_timestamp", S.TS),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
    ]
)


def versions_table(*versions: tuple) -> pa.Table:
    """(customer_id, state, city, birth_date, kafka_timestamp[, partition, offset[, updated_at]])
    as a customers state delta; ``updated_at`` defaults to the Kafka timestamp."""
    rows = []
    for i, v in enumerate(versions):
        cid, state, city, birth, ts, *coords = v
        part, off, *updated = coords or (0, i)
        rows.append(
            dict(
                customer_id=cid,
                state=state,
                city=city,
                birth_date=birth,
                updated_at=updated[0] if updated else ts,
                kafka_timestamp=ts,
                kafka_partition=part,
                kafka_offset=off,
            )
        )
    return pa.Table.from_pylist(rows, schema=VERSIONS_SCHEMA)


def history(*versions: tuple) -> S.CustomerHistory:
    """A history holding these versions (see :func:`versions_table`)."""
    h = S.CustomerHistory()
    if versions:
        h.add(versions_table(*versions))
    return h


PE = ("C1", "PE", "Recife", date(1990, 5, 1), at(9))


def settle(table: pa.Table, seen=(), hist=None, late_before=None) -> list[dict]:
    out = S.settle_transactions(table, set(seen), hist or history(PE), C.DEFAULT_AGE_BANDS, late_before)
    return out.to_pylist()


def test_first_arrival_of_an_id_wins_and_broken_records_do_not_use_ids():
    rows = settle(
        checked(
            txn("T1", reason=C.REASON_NON_POSITIVE_AMOUNT, detail="x"),  # broken: does not use T1 up
            txn("T1", kafka_timestamp=at(10, 5)),  # arrives after the next row (later timestamp)
            txn("T1", kafka_timestamp=at(10, 1)),  # the first arrival of T1
            txn("T2"),
            txn("T3"),  # accepted in an earlier batch
        ),
        seen={"T3"},
    )
    assert [r["reason"] for r in rows] == [
        C.REASON_NON_POSITIVE_AMOUNT,
        C.REASON_DUPLICATE_TRANSACTION_ID,
        None,
        None,
        C.REASON_DUPLICATE_TRANSACTION_ID,
    ]
    assert rows[1]["detail"] == "transaction_id already received: T1"
    assert [r["id_taken"] for r in rows] == [False, False, True, True, False]


def test_same_timestamp_arrival_order_is_partition_then_offset():
    rows = settle(checked(txn("T1", partition=1, offset=0), txn("T1", partition=0, offset=7)))
    assert [r["reason"] for r in rows] == [C.REASON_DUPLICATE_TRANSACTION_ID, None]


def test_enrich_uses_the_customer_version_as_of_the_transaction():
    hist = history(
        PE,
        ("C1", "SP", "Santos", date(1990, 5, 1), at(11)),  # moved later
        ("C2", "RJ", "Rio", date(2000, 1, 1), at(12)),  # only a later version
    )
    rows = settle(checked(txn("T1", "C1"), txn("T2", "C2"), txn("T3", "C9")), hist=hist)
    assert (rows[0]["state"], rows[0]["customer_city"], rows[0]["reason"]) == ("PE", "Recife", None)
    assert rows[1]["reason"] == C.REASON_UNKNOWN_CUSTOMER, "a version that arrived later is never used"
    assert rows[2]["reason"] == C.REASON_UNKNOWN_CUSTOMER
    assert rows[2]["detail"] == "no valid customer with id C9 had arrived before this transaction"
    assert not rows[2]["id_taken"], "an id with an unknown customer is not used up"
    assert rows[2]["state"] is None and rows[2]["age"] is None


def test_a_transaction_sent_just_before_its_customer_is_unknown_in_the_same_batch():
    """Same micro-batch or not: the customer arrived 3 ms after the transaction."""
    hist = history(("C1", "PE", "Recife", date(1990, 5, 1), T0 + timedelta(milliseconds=3)))
    row = settle(checked(txn()), hist=hist)[0]
    assert (row["reason"], row["id_taken"]) == (C.REASON_UNKNOWN_CUSTOMER, False)
    same_ms = history(("C1", "PE", "Recife", date(1990, 5, 1), T0))
    assert settle(checked(txn()), hist=same_ms)[0]["reason"] is None, "the same millisecond counts as before"


def test_an_unknown_customer_transaction_replayed_after_its_customer_is_accepted():
    first = S.settle_transactions(checked(txn("T1", "C1")), set(), history(), C.DEFAULT_AGE_BANDS)
    assert first["reason"].to_pylist() == [C.REASON_UNKNOWN_CUSTOMER]
    ids = S.AcceptedIds(HOUR_US)
    ids.add(S.taken_ids(first))
    assert len(ids) == 0
    replay = settle(checked(txn("T1", "C1", kafka_timestamp=at(10, 5))), seen=ids._ids)
    assert (replay[0]["reason"], replay[0]["state"], replay[0]["id_taken"]) == (None, "PE", True)


def test_in_one_batch_the_first_arrival_with_a_customer_takes_the_id():
    hist = history(("C1", "PE", "Recife", date(1990, 5, 1), at(10, 1)))
    rows = settle(
        checked(
            txn("T1", kafka_timestamp=at(10, 0)),  # before its customer: unknown, id not used
            txn("T1", kafka_timestamp=at(10, 2)),  # accepted
            txn("T1", kafka_timestamp=at(10, 3)),  # a repeat of an accepted id
            txn("T2", "C9", kafka_timestamp=at(10, 4)),
            txn("T2", "C9", kafka_timestamp=at(10, 5)),  # unknown again, not a duplicate
        ),
        hist=hist,
    )
    assert [r["reason"] for r in rows] == [
        C.REASON_UNKNOWN_CUSTOMER,
        None,
        C.REASON_DUPLICATE_TRANSACTION_ID,
        C.REASON_UNKNOWN_CUSTOMER,
        C.REASON_UNKNOWN_CUSTOMER,
    ]
    assert [r["id_taken"] for r in rows] == [False, True, False, False, False]


def test_enrichment_uses_the_greatest_updated_at_among_versions_that_arrived():
    """An older update arriving later does not win; a newer one arriving after the
    transaction is not used."""
    hist = history(
        ("C1", "SP", "Santos", date(1990, 5, 1), at(9), 0, 0, at(8)),  # updated 08:00
        ("C1", "PE", "Recife", date(1990, 5, 1), at(9, 30), 0, 1, at(7)),  # older update, arrived later
        ("C1", "RJ", "Rio", date(1990, 5, 1), at(11), 0, 2, at(10, 30)),  # arrived after the txn
    )
    assert settle(checked(txn()), hist=hist)[0]["state"] == "SP"
    assert settle(checked(txn(kafka_timestamp=at(11))), hist=hist)[0]["state"] == "RJ"


def test_equal_updated_at_goes_to_the_later_arrival():
    hist = history(
        ("C1", "SP", "Santos", date(1990, 5, 1), at(9), 0, 0, at(8)),
        ("C1", "PE", "Recife", date(1990, 5, 1), at(9, 30), 0, 1, at(8)),
    )
    assert settle(checked(txn()), hist=hist)[0]["state"] == "PE"


def test_enrich_breaks_timestamp_ties_by_arrival():
    """Two versions sent in the same millisecond: the later offset is the current one."""
    hist = history(
        ("C1", "PA", "Belem", date(1990, 5, 1), at(9), 0, 9),  # added first, arrived last
        ("C1", "PR", "Curitiba", date(1990, 5, 1), at(9), 0, 8),
    )
    assert settle(checked(txn()), hist=hist)[0]["state"] == "PA"


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
def test_age_bands_at_event_time(birth, band, age):
    hist = history(("C1", "PE", "Recife", date.fromisoformat(birth), at(1)))
    row = settle(checked(txn()), hist=hist)[0]
    assert (row["age"], row["age_band"]) == (age, band)


def test_custom_age_bands_get_range_labels():
    got = S.age_bands(np.array([17, 18, 64, 65]), (18, 65)).tolist()
    assert got == ["under_18", "18_64", "18_64", "65_plus"]


def test_late_events_are_flagged_but_kept():
    late_before = int(datetime(2026, 11, 26, 9, 59, 59, tzinfo=timezone.utc).timestamp() * 1_000_000)
    rows = settle(
        checked(txn("T1"), txn("T2", ev=datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc))),
        late_before=late_before,
    )
    assert [(r["reason"], r["is_late"]) for r in rows] == [(None, True), (None, False)]


def test_transaction_rows_follow_the_contract():
    settled = S.settle_transactions(checked(txn(amount="1234.50")), set(), history(PE), (30, 60))
    rows = S.transaction_rows(settled)
    assert tuple(rows.column_names) == S.TRANSACTION_COLUMNS
    assert rows.schema.field("amount").type == pa.decimal128(12, 2)
    r = rows.to_pylist()[0]
    assert (str(r["amount"]), r["currency"], r["state"], r["customer_city"], r["year"], r["month"]) == (
        "1234.50",
        C.CURRENCY,
        "PE",
        "Recife",
        2026,
        11,
    )
    assert list(S.amount_cents(settled)) == [123450]


def test_quarantine_rows_keep_the_raw_payload_of_both_record_types():
    customers = checked(
        {"topic": "customers", "customer_id": "C7", "reason": C.REASON_MALFORMED_JSON, "detail": "d"}
    )
    settled = S.settle_transactions(checked(txn("T1", "C9")), set(), history(PE), (30, 60))
    q = S.quarantine_rows(customers, settled, batch_id=7)
    assert tuple(q.column_names) == S.QUARANTINE_COLUMNS
    assert [(r["record_type"], r["reason"], r["raw_value"], r["batch_id"]) for r in q.to_pylist()] == [
        ("customer", C.REASON_MALFORMED_JSON, b"raw-0", 7),
        ("transaction", C.REASON_UNKNOWN_CUSTOMER, b"raw-0", 7),
    ]


def test_aggregate_deltas_cover_all_four_aggregates_in_cents():
    settled = S.settle_transactions(
        checked(txn("T1", amount="10.01"), txn("T2", amount="0.99", category="fuel")),
        set(),
        history(PE),
        (30, 60),
    )
    deltas = S.aggregate_deltas(S.transaction_rows(settled), S.amount_cents(settled))
    assert set(deltas) == set(C.AGGREGATES)
    cat = deltas["by_category"].set_index("category")
    assert cat.loc["groceries", "total_cents"] == 1001 and cat.loc["fuel", "total_cents"] == 99
    period = deltas["by_period_state_age_band"]
    assert period[["year", "month", "state", "age_band", "transaction_count"]].values.tolist() == [
        [2026, 11, "PE", "adult", 2]
    ]


def test_customer_rows_are_the_valid_versions_with_their_coordinates():
    t = checked(
        {
            "topic": "customers",
            "customer_id": "C1",
            "name": "Ana",
            "birth_date": date(1990, 5, 1),
            "offset": 3,
        },
        {"topic": "customers", "customer_id": "C2", "reason": C.REASON_MISSING_FIELD, "offset": 4},
    )
    rows = S.customer_rows(t)
    assert tuple(rows.column_names) == S.CUSTOMER_COLUMNS
    assert [(r["customer_id"], r["kafka_offset"]) for r in rows.to_pylist()] == [("C1", 3)]


def test_split_keeps_each_record_type_to_its_own_columns():
    t = checked({"topic": "customers", "customer_id": "C1"}, txn(), {"topic": "other"})
    parts = S.split(t, "customers", "transactions")
    assert (parts.customers.num_rows, parts.transactions.num_rows) == (1, 1)
    assert "transaction_id" not in parts.customers.column_names
    assert "name" not in parts.transactions.column_names and "city" in parts.transactions.column_names


# -- the deduplication window -------------------------------------------------------------
HOUR_US = 3_600_000_000


def ids_delta(*rows: tuple[str, datetime]) -> pa.Table:
    return pa.table(
        {"transaction_id": [r[0] for r in rows], "kafka_timestamp": pa.array([r[1] for r in rows], S.TS)}
    )


def us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def test_accepted_ids_are_forgotten_once_older_than_the_window():
    ids = S.AcceptedIds(HOUR_US)
    ids.add(ids_delta(("T1", at(8)), ("T2", at(9, 30)), ("T3", at(10))))
    assert ids.forget_before(us(at(9))) == 1  # T1 is more than an hour older than 10:00
    assert ("T1" in ids, "T2" in ids, "T3" in ids, len(ids)) == (False, True, True, 2)
    assert ids.forget_before(us(at(9, 45))) == 1
    assert ("T2" in ids, "T3" in ids) == (False, True)


def test_window_is_kept_at_least_and_at_most_one_sixteenth_longer():
    ids = S.AcceptedIds(HOUR_US)
    ids.add(ids_delta(("T1", at(9))))
    ids.forget_before(us(at(9)))  # the cut-off equal to its time: kept
    assert "T1" in ids
    ids.forget_before(us(at(9)) + HOUR_US // 16 - 1)  # still in the cut-off's bucket or later
    ids.forget_before(us(at(9)) + HOUR_US // 16 + HOUR_US // 16)  # two buckets on: gone
    assert "T1" not in ids


def test_without_a_window_every_id_is_kept():
    ids = S.AcceptedIds(None)
    ids.add(ids_delta(("T1", at(1))))
    assert ids.forget_before(us(at(23))) == 0 and "T1" in ids
    assert ids.kept(ids_delta(("T1", at(1))), us(at(23))).num_rows == 1


def test_rebuilt_index_equals_the_one_kept_in_memory():
    """Batches with interleaved Kafka times, a cut-off that advances, and an id accepted
    again once forgotten: rebuilding from all deltas at any batch gives the same index."""
    rng = np.random.default_rng(7)
    memory = S.AcceptedIds(HOUR_US)
    deltas: list[pa.Table] = []
    accepted_before: set[str] = set()
    reaccepted = 0
    for batch in range(40):
        cutoff = us(at(0)) + batch * HOUR_US // 8 - HOUR_US
        memory.forget_before(cutoff)
        fresh = S.AcceptedIds.rebuilt(HOUR_US, deltas, cutoff)
        assert fresh._ids == memory._ids, batch
        assert fresh._buckets == memory._buckets, batch
        times = us(at(0)) + batch * HOUR_US // 8 - rng.integers(0, 2 * HOUR_US, size=5)
        candidates = [f"T{i}" for i in rng.integers(0, 60, size=5)]
        new = [(t, datetime.fromtimestamp(int(ts) / 1e6, timezone.utc)) for t, ts in zip(candidates, times)]
        new = [r for r in dict(new).items() if r[0] not in memory]  # what a batch would accept
        if new:
            reaccepted += sum(t in accepted_before for t, _ in new)
            accepted_before.update(t for t, _ in new)
            delta = ids_delta(*new)
            deltas.append(delta)
            memory.add(delta)
            # compaction drops from disk exactly what the index forgot
            assert {*memory.kept(delta, cutoff)["transaction_id"].to_pylist()} <= memory._ids
    assert reaccepted > 0  # the case that needs rebuilt() to skip forgotten rows


def test_a_delta_without_times_is_forgotten_by_a_windowed_index():
    ids = S.AcceptedIds.rebuilt(HOUR_US, [pa.table({"transaction_id": ["T1"]})], us(at(0)))
    assert "T1" not in ids and len(ids) == 0


def test_a_repeat_after_the_window_is_accepted_again():
    ids = S.AcceptedIds(HOUR_US)
    ids.add(ids_delta(("T1", at(8))))
    ids.forget_before(us(at(10)) - HOUR_US)
    out = S.settle_transactions(
        checked(txn("T1", kafka_timestamp=at(10)), txn("T2", kafka_timestamp=at(10))),
        ids,
        history(PE),
        C.DEFAULT_AGE_BANDS,
    )
    assert out["reason"].to_pylist() == [None, None]
    ids.add(S.taken_ids(out))
    assert S.taken_ids(out).column_names == ["transaction_id", "kafka_timestamp"]
    repeat = S.settle_transactions(checked(txn("T1", kafka_timestamp=at(10, 30))), ids, history(PE), (30, 60))
    assert repeat["reason"].to_pylist() == [C.REASON_DUPLICATE_TRANSACTION_ID]


def random_versions(rng, n: int, customers: int = 8) -> list[tuple]:
    base = us(at(0))
    out = []
    for i in range(n):
        ts = datetime.fromtimestamp((base + int(rng.integers(0, 4 * HOUR_US))) / 1e6, timezone.utc)
        cid = f"C{int(rng.integers(0, customers))}"
        updated = datetime.fromtimestamp((base + int(rng.integers(0, 4 * HOUR_US))) / 1e6, timezone.utc)
        if rng.random() < 0.2:  # equal updated_at: the tie-break matters
            updated = at(1)
        part = int(rng.integers(0, 3))
        out.append((cid, f"S{i}", f"city{i}", date(1990, 1, 1 + i % 28), ts, part, i, updated))
    return out


def test_superseded_customer_versions_are_dropped_without_changing_any_later_lookup():
    rng = np.random.default_rng(3)
    total_dropped = 0
    for _ in range(20):
        versions = random_versions(rng, 40)
        full, pruned = history(*versions), history(*versions)
        cutoff = us(at(0)) + int(rng.integers(0, 4 * HOUR_US))
        dropped = pruned.forget_before(cutoff)
        total_dropped += dropped
        assert len(pruned._frame) == len(versions) - dropped
        cids = np.array([f"C{i}" for i in rng.integers(0, 9, size=50)], dtype=object)  # C8: unknown
        times = cutoff + rng.integers(0, 5 * HOUR_US, size=50)
        cols = ["found", "state", "city", "birth_year", "birth_md"]
        expected = full.lookup(cids, times)[cols]
        assert pruned.lookup(cids, times)[cols].equals(expected)
    assert total_dropped > 100


def test_compacted_customer_versions_rebuild_the_pruned_history():
    rng = np.random.default_rng(5)
    versions = random_versions(rng, 60)
    cutoff = us(at(2))
    in_memory = history(*versions)
    in_memory.forget_before(cutoff)
    delta = versions_table(*versions)
    rebuilt = S.CustomerHistory()
    rebuilt.add(S.CustomerHistory.kept(delta, cutoff))
    rebuilt.forget_before(cutoff)
    assert rebuilt._frame.equals(in_memory._frame)
    assert S.CustomerHistory.kept(delta, cutoff).num_rows == len(in_memory._frame) < len(versions)

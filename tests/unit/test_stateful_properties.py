"""Property tests of the driver half: its results do not depend on how records fall into
micro-batches, nor on their order inside one, and they follow the README's rules.

Records are generated with few customer and transaction ids and a few milliseconds of
Kafka time, so ties, repeats, late customers and out-of-order updates are common.  Each
case runs the real :mod:`spjobs.processor.stateful` functions batch after batch, as
:class:`spjobs.processor.batch.BatchProcessor` does, and compares with a plain-Python
oracle written from the README.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from spjobs import contract as C
from spjobs.processor import stateful as S

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=timezone.utc)
EVENT = datetime(2026, 11, 26, 9, 59, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Cust:
    cid: str
    state: str
    updated: int  # minutes: updated_at
    ts: int  # ms after T0: Kafka (LogAppendTime) timestamp
    partition: int
    offset: int = 0

    def arrival(self) -> tuple[int, int, int]:
        return (self.ts, self.partition, self.offset)


@dataclass(frozen=True)
class Txn:
    tid: str
    cid: str
    ts: int
    partition: int
    broken: bool  # failed a record check (its reason is set by the Spark half)
    offset: int = 0

    def arrival(self) -> tuple[int, int, int]:
        return (self.ts, self.partition, self.offset)


def _with_offsets(records: list, cls: type) -> list:
    """Offsets per partition in Kafka-time order, as a LogAppendTime topic has them."""
    out, next_offset = [], {}
    for r in sorted(records, key=lambda r: (r.ts, r.partition)):
        off = next_offset.get(r.partition, 0)
        next_offset[r.partition] = off + 1
        out.append(cls(**{**r.__dict__, "offset": off}))
    return out


customers_st = st.lists(
    st.builds(
        Cust,
        cid=st.sampled_from(["C0", "C1", "C2"]),
        state=st.sampled_from(["PE", "SP", "RJ", "BA"]),
        updated=st.integers(0, 4),
        ts=st.integers(0, 12),
        partition=st.integers(0, 1),
    ),
    max_size=8,
).map(lambda rs: _with_offsets(rs, Cust))
transactions_st = st.lists(
    st.builds(
        Txn,
        tid=st.sampled_from(["T0", "T1", "T2", "T3", "T4"]),
        cid=st.sampled_from(["C0", "C1", "C2", "C3"]),
        ts=st.integers(0, 12),
        partition=st.integers(0, 2),
        broken=st.sampled_from([False, False, False, True]),
    ),
    min_size=1,
    max_size=14,
).map(lambda rs: _with_offsets(rs, Txn))


def _ts(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def versions_table(custs: list[Cust]) -> pa.Table:
    rows = [
        {
            "customer_id": c.cid,
            "updated_at": T0 - timedelta(hours=1) + timedelta(minutes=c.updated),
            "state": c.state,
            "city": f"city-{c.state}",
            "birth_date": date(1990, 5, 1),
            "kafka_timestamp": _ts(c.ts),
            "kafka_partition": c.partition,
            "kafka_offset": c.offset,
        }
        for c in custs
    ]
    schema = pa.schema(
        [
            ("customer_id", pa.string()),
            ("updated_at", S.TS),
            ("state", pa.string()),
            ("city", pa.string()),
            ("birth_date", pa.date32()),
            ("kafka_timestamp", S.TS),
            ("kafka_partition", pa.int32()),
            ("kafka_offset", pa.int64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def checked_table(txns: list[Txn]) -> pa.Table:
    rows = []
    for t in txns:
        row = {f.name: None for f in S.CHECKED_SCHEMA}
        row.update(
            topic="transactions",
            partition=t.partition,
            offset=t.offset,
            kafka_timestamp=_ts(t.ts),
            key=t.cid,
            value=f"{t.partition}/{t.offset}",
            transaction_id=t.tid,
            customer_id=t.cid,
            event_time=EVENT,
            amount=Decimal("1.00"),
            amount_cents=100,
            category="groceries",
            city="Recife",
            payment_method="pix",
            year=EVENT.year,
            month=EVENT.month,
            month_day=EVENT.month * 100 + EVENT.day,
        )
        if t.broken:
            row.update(reason=C.REASON_NON_POSITIVE_AMOUNT, detail="amount must be > 0")
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=S.CHECKED_SCHEMA)


Outcome = dict[tuple[int, int], tuple]  # (partition, offset) -> (reason, state, id_taken)


def run_batches(batches: list[tuple[list[Cust], list[Txn]]]) -> Outcome:
    """The driver half over consecutive batches (ids and history carried over)."""
    ids, history = S.AcceptedIds(None), S.CustomerHistory()
    out: Outcome = {}
    for custs, txns in batches:
        if custs:
            history.add(versions_table(custs))
        if not txns:
            continue
        settled = S.settle_transactions(checked_table(txns), ids, history, C.DEFAULT_AGE_BANDS)
        ids.add(S.taken_ids(settled))
        for r in settled.to_pylist():
            out[(r["partition"], r["offset"])] = (r["reason"], r["state"], r["id_taken"])
    return out


def oracle(custs: list[Cust], txns: list[Txn]) -> Outcome:
    """The README's rules, one transaction at a time in arrival order."""
    accepted: set[str] = set()
    out: Outcome = {}
    for t in sorted(txns, key=Txn.arrival):
        key = (t.partition, t.offset)
        if t.broken:
            out[key] = (C.REASON_NON_POSITIVE_AMOUNT, None, False)
            continue
        if t.tid in accepted:
            out[key] = (C.REASON_DUPLICATE_TRANSACTION_ID, None, False)
            continue
        arrived = [c for c in custs if c.cid == t.cid and c.ts <= t.ts]
        if not arrived:
            out[key] = (C.REASON_UNKNOWN_CUSTOMER, None, False)
            continue
        current = max(arrived, key=lambda c: (c.updated, *c.arrival()))
        accepted.add(t.tid)
        out[key] = (None, current.state, True)
    return out


@st.composite
def time_ordered_batches(draw):
    """Records split at Kafka-time cut points, as a caught-up job reads them: every
    customer version that arrived no later than a batch's transactions is in that batch
    or an earlier one (the job reads the customers offsets after the transactions'), and
    some arrive a batch early.  Each batch's rows are shuffled."""
    custs, txns = draw(customers_st), draw(transactions_st)
    cuts = sorted(set(draw(st.lists(st.integers(0, 12), max_size=4))))
    batches, prev_t, prev_c = [], -1, -1
    for cut in [*cuts, 12]:
        ahead = draw(st.integers(0, 3))
        c_cut = max(prev_c, min(cut + ahead, 12))
        b_txns = [t for t in txns if prev_t < t.ts <= cut]
        b_custs = [c for c in custs if prev_c < c.ts <= c_cut]
        batches.append((draw(st.permutations(b_custs)), draw(st.permutations(b_txns))))
        prev_t, prev_c = cut, c_cut
    return custs, txns, batches


@settings(max_examples=80, deadline=None)
@given(time_ordered_batches())
def test_outcome_is_the_oracles_whatever_the_batching_and_order(case):
    custs, txns, batches = case
    want = oracle(custs, txns)
    assert run_batches(batches) == want
    assert run_batches([(custs, txns)]) == want, "one batch"
    assert run_batches([(custs, list(reversed(txns)))]) == want, "order inside a batch"


@st.composite
def partition_prefix_batches(draw):
    """Batches as a capped backlog makes them (``maxOffsetsPerTrigger``): each takes a
    prefix of every transactions partition, so a later batch may hold records older than
    an earlier batch's; customers up to the newest transaction so far (or later)."""
    custs, txns = draw(customers_st), draw(transactions_st)
    by_part: dict[int, list[Txn]] = {}
    for t in sorted(txns, key=Txn.arrival):
        by_part.setdefault(t.partition, []).append(t)
    taken = dict.fromkeys(by_part, 0)
    batches, newest, prev_c = [], -1, -1
    while any(taken[p] < len(ts) for p, ts in by_part.items()):
        b_txns = []
        for p, ts in by_part.items():
            n = draw(st.integers(0, len(ts) - taken[p]))
            b_txns += ts[taken[p] : taken[p] + n]
            taken[p] += n
        if not b_txns:  # at least one record, so the batches end
            p = next(p for p, ts in by_part.items() if taken[p] < len(ts))
            b_txns, taken[p] = [by_part[p][taken[p]]], taken[p] + 1
        newest = max([newest, *(t.ts for t in b_txns)])
        c_cut = max(prev_c, newest + draw(st.integers(0, 3)))
        batches.append(([c for c in custs if prev_c < c.ts <= c_cut], b_txns))
        prev_c = c_cut
    batches.append(([c for c in custs if c.ts > prev_c], []))
    return custs, txns, batches


@settings(max_examples=80, deadline=None)
@given(partition_prefix_batches())
def test_out_of_time_order_batches_keep_enrichment_and_the_accepted_ids(case):
    """Across batches an earlier batch's copy of an id wins even if a later batch holds an
    older copy (it cannot be revoked); everything else is as in one batch."""
    custs, txns, batches = case
    want, got = oracle(custs, txns), run_batches(batches)
    assert got.keys() == want.keys()
    by_key = {(t.partition, t.offset): t for t in txns}
    accepted = [by_key[k].tid for k, (reason, _, _) in got.items() if reason is None]
    assert sorted(accepted) == sorted(by_key[k].tid for k, (r, _, _) in want.items() if r is None)
    assert len(accepted) == len(set(accepted)), "an id is accepted once"
    for k, (reason, state, _) in got.items():
        t = by_key[k]
        if t.broken:
            assert reason == C.REASON_NON_POSITIVE_AMOUNT
            continue
        arrived = [c for c in custs if c.cid == t.cid and c.ts <= t.ts]
        if reason is None:
            assert state == max(arrived, key=lambda c: (c.updated, *c.arrival())).state
        elif reason == C.REASON_UNKNOWN_CUSTOMER:
            assert not arrived
        else:
            assert reason == C.REASON_DUPLICATE_TRANSACTION_ID and t.tid in accepted

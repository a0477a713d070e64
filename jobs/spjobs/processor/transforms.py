"""The Spark half of a micro-batch: parse and check every record, on the executors.

Each record's bytes go through :mod:`.records` (strict RFC 8259 JSON in UTF-8, the
contract's checks in order) inside ``mapInArrow``, so the work stays on the executors
and a record is judged from exactly the bytes Kafka holds.  What comes back is one row
per record with its Kafka coordinates, raw key and value (binary, as received: a record
that ends in quarantine later, as a duplicate or for an unknown customer, needs them),
``reason``/``detail`` so far, and the typed fields (:data:`.stateful.CHECKED_SCHEMA`).
What needs the pipeline's history (duplicate ids, the customer as of a transaction) is
:mod:`.stateful`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_schema

from .. import contract as C
from . import records as R
from .stateful import CHECKED_SCHEMA

AMOUNT_TYPE = T.DecimalType(12, 2)
# Columns every raw row carries (from the Kafka source; key and value are binary).
RAW_COLUMNS = ("topic", "partition", "offset", "kafka_timestamp", "key", "value")
_TS = pa.timestamp("us", tz="UTC")

# Where each typed column of the checked batch comes from: its position in a valid
# Transaction, in a valid Customer, in a rejected record's (transaction_id, customer_id).
_SOURCES = {
    "customer_id": (pa.string(), 1, 0, 1),
    "city": (pa.string(), 6, 5, None),
    "name": (pa.string(), None, 1, None),
    "email": (pa.string(), None, 2, None),
    "birth_date": (pa.date32(), None, 3, None),
    "state": (pa.string(), None, 4, None),
    "signup_time": (_TS, None, 6, None),
    "updated_at": (_TS, None, 7, None),
    "transaction_id": (pa.string(), 0, None, 0),
    "event_time": (_TS, 2, None, None),
    "amount_cents": (pa.int64(), 3, None, None),
    "currency": (pa.string(), 4, None, None),
    "category": (pa.string(), 5, None, None),
    "payment_method": (pa.string(), 7, None, None),
    "merchant": (pa.string(), 8, None, None),
}


def _cents_to_decimal(cents: pa.Array) -> pa.Array:
    """Freshly built int64 cents as decimal128(12, 2) with the same nulls: the unscaled
    value is the cents, so each 16-byte value is the int64 and its sign extension."""
    values = cents.fill_null(0).to_numpy()
    wide = np.empty((len(values), 2), dtype="<i8")
    wide[:, 0] = values
    wide[:, 1] = values >> 63
    validity = cents.buffers()[0] if cents.null_count else None
    return pa.Array.from_buffers(
        pa.decimal128(12, 2), len(cents), [validity, pa.py_buffer(wide)], null_count=cents.null_count
    )


def check_arrow(batch: pa.RecordBatch, customers_topic: str) -> pa.RecordBatch:
    """One Arrow batch of raw records checked: :data:`.stateful.CHECKED_SCHEMA`.

    A record of any topic but ``customers_topic`` is judged by the transaction rules
    (the query subscribes to the two topics only; the driver splits by topic).  Valid
    transactions, valid customers and rejected records are gathered apart, as tuples,
    and each column is built once per group, then put in record order by one ``take``.
    """
    n = batch.num_rows
    is_customer = pc.equal(batch.column("topic"), customers_topic).to_pylist()
    values = batch.column("value").to_pylist()
    kafka = pc.cast(batch.column("kafka_timestamp"), _TS).cast(pa.int64()).to_pylist()
    reasons: list[str | None] = [None] * n
    details: list[str | None] = [None] * n
    groups: tuple[list, list, list] = ([], [], [])  # transactions, customers, rejected
    where: tuple[list, list, list] = ([], [], [])
    check_c, check_t, txn_t, cust_t = R.check_customer, R.check_transaction, R.Transaction, R.Customer
    for i, (customer, value, ts) in enumerate(zip(is_customer, values, kafka)):
        out = check_c(value, ts) if customer else check_t(value, ts)
        kind = type(out)
        g = 0 if kind is txn_t else 1 if kind is cust_t else 2
        if g == 2:
            rejected, payload = out
            reasons[i], details[i] = rejected
            out = R.ids_of(payload)
        groups[g].append(out)
        where[g].append(i)
    sizes = [len(g) for g in groups]
    columns = [list(zip(*g)) for g in groups]
    one_group = next((k for k, size in enumerate(sizes) if size == n), None)
    order = None
    if one_group is None:
        order = np.empty(n, dtype=np.int64)
        start = 0
        for size, pos in zip(sizes, where):
            order[pos] = np.arange(start, start + size)
            start += size
        order = pa.array(order)
    typed = {}
    for name, (kind, *at) in _SOURCES.items():
        if one_group is not None:  # the usual case: a batch is one Kafka partition of one topic
            j = at[one_group]
            typed[name] = pa.array(columns[one_group][j], kind) if j is not None else pa.nulls(n, kind)
            continue
        parts = [
            pa.array(cols[j], kind) if j is not None and size else pa.nulls(size, kind)
            for cols, j, size in zip(columns, at, sizes)
        ]
        typed[name] = pc.take(pa.concat_arrays(parts), order)
    ev = typed["event_time"]
    month = pc.month(ev).cast(pa.int32())
    arrays = {
        **{c: batch.column(c) for c in RAW_COLUMNS},
        "reason": pa.array(reasons, type=pa.string()),
        "detail": pa.array(details, type=pa.string()),
        **typed,
        "amount": _cents_to_decimal(typed["amount_cents"]),
        "year": pc.year(ev).cast(pa.int32()),
        "month": month,
        "month_day": pc.add(pc.multiply(month, 100), pc.day(ev).cast(pa.int32())),
    }
    return pa.RecordBatch.from_arrays(
        [arrays[f.name].cast(f.type) for f in CHECKED_SCHEMA], schema=CHECKED_SCHEMA
    )


def _raw(raw: DataFrame) -> DataFrame:
    """The raw columns, key and value as bytes (a no-op for the Kafka source's own)."""
    return raw.select(
        *RAW_COLUMNS[:4],
        F.col("key").cast("binary").alias("key"),
        F.col("value").cast("binary").alias("value"),
    )


class BatchChecker:
    """Both record types checked and typed in ONE pass over a batch: what the driver collects.

    The payloads are checked on the executors, by their topic's rules, in the same Spark
    job that reads them from Kafka (splitting the batch by topic first would read it
    twice).  Built once per query: the streaming plan holds it.
    """

    def __init__(self, customers_topic: str, transactions_topic: str) -> None:
        self.customers_topic = customers_topic
        self.transactions_topic = transactions_topic
        self.schema = from_arrow_schema(CHECKED_SCHEMA)

    def __call__(self, raw: DataFrame) -> DataFrame:
        topic = self.customers_topic

        def check_all(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            for b in batches:
                yield check_arrow(b, topic)

        return _raw(raw).mapInArrow(check_all, self.schema)


_PARSED_FIELDS = tuple(dict.fromkeys(C.CUSTOMER_FIELDS + C.TRANSACTION_FIELDS))
_PARSED_SCHEMA = pa.schema(
    [(c, CHECKED_SCHEMA.field(c).type) for c in RAW_COLUMNS if c != "value"]
    + [(f, pa.string()) for f in _PARSED_FIELDS]
    + [("_corrupt", pa.string())]
)


def _parse_arrow(batch: pa.RecordBatch) -> pa.RecordBatch:
    rows = []
    for value in batch.column("value").to_pylist():
        obj = R.decode(value)
        if type(obj) is dict:
            got = [obj.get(f) for f in _PARSED_FIELDS]
            rows.append((*(v if type(v) is str and R.encodable(v) else None for v in got), None))
        else:
            rows.append((*[None] * len(_PARSED_FIELDS), obj.reason))
    cols = list(zip(*rows)) if rows else [()] * (len(_PARSED_FIELDS) + 1)
    arrays = [batch.column(c) for c in RAW_COLUMNS if c != "value"]
    arrays += [pa.array(c, type=pa.string()) for c in cols]
    return pa.RecordBatch.from_arrays(arrays, schema=_PARSED_SCHEMA)


def parse_payloads(raw: DataFrame) -> DataFrame:
    """Every payload decoded exactly as :class:`BatchChecker` decodes it, its fields (as
    text) in place of the raw bytes, nothing checked: the benchmark's parse-only
    baseline (the plain copy with the same information, parsed)."""

    def parse_all(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield _parse_arrow(b)

    return _raw(raw).mapInArrow(parse_all, from_arrow_schema(_PARSED_SCHEMA))


def checked_batch(raw: DataFrame, customers_topic: str, transactions_topic: str) -> DataFrame:
    """:class:`BatchChecker` applied once (tests; the job keeps one checker)."""
    return BatchChecker(customers_topic, transactions_topic)(raw)
